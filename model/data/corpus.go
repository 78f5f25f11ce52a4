package data

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// FileSeparator is appended after every file of a multi-file corpus. A NUL
// byte never occurs in Go source (the language forbids it), so it marks
// document boundaries unambiguously.
const FileSeparator = "\x00"

// ValidModulus sets the by-file split of LoadGoSource: a file goes to the
// validation split when the FNV-1a 32-bit hash of its slash-separated path
// relative to GOROOT/src is 0 modulo ValidModulus (about 10% of files).
const ValidModulus = 10

// MinSplitBytes is the smallest split size LoadTextFile accepts: one input
// byte and its next-byte target.
const MinSplitBytes = 2

// Corpus is a byte-level language-modelling corpus with a training and a
// validation split.
type Corpus struct {
	// Name describes the corpus (e.g. "go-source" or a file name).
	Name string
	// Train and Valid are the raw bytes of the two splits.
	Train, Valid []byte
	// TrainFiles and ValidFiles list, in order, the files concatenated into
	// each split (paths relative to GOROOT/src for LoadGoSource; nil for
	// LoadTextFile). The last file taken may be truncated by maxBytes.
	TrainFiles, ValidFiles []string
}

// Split selects one split of a Corpus.
type Split int

const (
	// TrainSplit selects Corpus.Train.
	TrainSplit Split = iota
	// ValidSplit selects Corpus.Valid.
	ValidSplit
)

// String returns "train" or "valid".
func (s Split) String() string {
	switch s {
	case TrainSplit:
		return "train"
	case ValidSplit:
		return "valid"
	default:
		return fmt.Sprintf("Split(%d)", int(s))
	}
}

// Bytes returns the bytes of split s (not a copy), or an error for an
// unknown split.
func (c *Corpus) Bytes(s Split) ([]byte, error) {
	switch s {
	case TrainSplit:
		return c.Train, nil
	case ValidSplit:
		return c.Valid, nil
	default:
		return nil, fmt.Errorf("data: corpus %q: unknown split %v", c.Name, s)
	}
}

// SampleBatch draws batch windows for next-byte prediction from split s:
// each window starts at a position drawn uniformly (from rng) among all
// len-ctx valid starts, inputs[b] holds the ctx bytes from that start and
// targets[b][t] is the byte following inputs[b][t]. Bytes are returned as ints
// in 0..255. It fails if rng is nil, batch or ctx is not positive, or the
// split is shorter than ctx+1 bytes.
func (c *Corpus) SampleBatch(rng *rand.Rand, s Split, batch, ctx int) (inputs, targets [][]int, err error) {
	if rng == nil {
		return nil, nil, errors.New("data: Corpus.SampleBatch: nil rng")
	}
	if batch <= 0 || ctx <= 0 {
		return nil, nil, fmt.Errorf("data: Corpus.SampleBatch: batch %d and context %d must be positive", batch, ctx)
	}
	buf, err := c.Bytes(s)
	if err != nil {
		return nil, nil, err
	}
	if len(buf) < ctx+1 {
		return nil, nil, fmt.Errorf("data: corpus %q: %s split has %d bytes, need at least context+1 = %d",
			c.Name, s, len(buf), ctx+1)
	}
	in := make([]int, batch*ctx)
	tg := make([]int, batch*ctx)
	inputs = make([][]int, batch)
	targets = make([][]int, batch)
	for b := range batch {
		start := rng.IntN(len(buf) - ctx)
		row := in[b*ctx : (b+1)*ctx : (b+1)*ctx]
		trow := tg[b*ctx : (b+1)*ctx : (b+1)*ctx]
		for t := range ctx {
			row[t] = int(buf[start+t])
			trow[t] = int(buf[start+t+1])
		}
		inputs[b], targets[b] = row, trow
	}
	return inputs, targets, nil
}

// GoRoot returns the root of the Go installation: `go env GOROOT` if the go
// tool is available, else runtime.GOROOT(). The directory must contain src/.
func GoRoot() (string, error) {
	root, toolErr := goTool("env", "GOROOT")
	if toolErr != nil || root == "" {
		root = runtime.GOROOT() //nolint:staticcheck // documented fallback when the go tool is absent
	}
	if root == "" {
		return "", fmt.Errorf("data: GoRoot: GOROOT unknown: %w", toolErr)
	}
	if st, err := os.Stat(filepath.Join(root, "src")); err != nil || !st.IsDir() {
		return "", fmt.Errorf("data: GoRoot: %s has no src directory", root)
	}
	return root, nil
}

// IsValidationPath reports whether the file at relPath (slash-separated,
// relative to GOROOT/src) belongs to the validation split of LoadGoSource.
func IsValidationPath(relPath string) bool {
	h := fnv.New32a()
	_, _ = h.Write([]byte(relPath)) // hash.Hash writes never fail
	return h.Sum32()%ValidModulus == 0
}

// LoadGoSource builds a corpus from the .go files under goroot/src (all of
// them, testdata included), taken in sorted order of their slash-separated
// relative paths. Each file, followed by FileSeparator, goes whole to the
// validation split if IsValidationPath says so and to the training split
// otherwise. With maxBytes > 0, loading stops once the two splits together
// hold maxBytes bytes (the last file is truncated to fit); maxBytes == 0
// means no limit. An empty goroot means GoRoot(). The result is fully
// deterministic for a given tree and maxBytes; it is an error if either
// split ends up empty.
func LoadGoSource(goroot string, maxBytes int) (*Corpus, error) {
	if maxBytes < 0 {
		return nil, fmt.Errorf("data: LoadGoSource: maxBytes %d is negative", maxBytes)
	}
	if goroot == "" {
		r, err := GoRoot()
		if err != nil {
			return nil, fmt.Errorf("data: LoadGoSource: %w", err)
		}
		goroot = r
	}
	src := filepath.Join(goroot, "src")
	var files []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(d.Name(), ".go") {
			return nil
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("data: LoadGoSource: walking %s: %w", src, err)
	}
	sort.Strings(files)
	c := &Corpus{Name: "go-source"}
	total := 0
	for _, rel := range files {
		if maxBytes > 0 && total >= maxBytes {
			break
		}
		content, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(rel)))
		if err != nil {
			return nil, fmt.Errorf("data: LoadGoSource: %w", err)
		}
		piece := append(content, FileSeparator...)
		if maxBytes > 0 && total+len(piece) > maxBytes {
			piece = piece[:maxBytes-total]
		}
		total += len(piece)
		if IsValidationPath(rel) {
			c.Valid = append(c.Valid, piece...)
			c.ValidFiles = append(c.ValidFiles, rel)
		} else {
			c.Train = append(c.Train, piece...)
			c.TrainFiles = append(c.TrainFiles, rel)
		}
	}
	if len(c.Train) == 0 || len(c.Valid) == 0 {
		return nil, fmt.Errorf("data: LoadGoSource: %s (%d .go files, maxBytes %d): empty split (train %d bytes, valid %d bytes); raise maxBytes",
			src, len(files), maxBytes, len(c.Train), len(c.Valid))
	}
	return c, nil
}

// LoadTextFile builds a corpus from one file split by position: the last
// validFraction of its bytes (rounded to the nearest byte) is the validation
// split, the rest the training split. validFraction must lie strictly
// between 0 and 1, and each split must hold at least MinSplitBytes bytes.
func LoadTextFile(path string, validFraction float64) (*Corpus, error) {
	if !(validFraction > 0 && validFraction < 1) {
		return nil, fmt.Errorf("data: LoadTextFile: validation fraction %v not in (0,1)", validFraction)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: LoadTextFile: %w", err)
	}
	nValid := int(math.Round(float64(len(content)) * validFraction))
	nTrain := len(content) - nValid
	if nValid < MinSplitBytes || nTrain < MinSplitBytes {
		return nil, fmt.Errorf("data: LoadTextFile: %s: %d bytes split %d train / %d valid; each split needs at least %d bytes",
			path, len(content), nTrain, nValid, MinSplitBytes)
	}
	return &Corpus{
		Name:  filepath.Base(path),
		Train: content[:nTrain:nTrain],
		Valid: content[nTrain:],
	}, nil
}

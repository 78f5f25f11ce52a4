package data

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestEscapeModulePath(t *testing.T) {
	require.Equal(t, "github.com/petar/!go!m!n!i!s!t", escapeModulePath(MNISTModule))
	require.Equal(t, "golang.org/x/mod", escapeModulePath("golang.org/x/mod"))
}

// writeSyntheticMNIST writes a small MNIST-like directory: nTrain and nTest
// images of rows x cols, train files gzipped, test files plain.
func writeSyntheticMNIST(t *testing.T, nTrain, nTest, rows, cols int) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, p []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), p, 0o644))
	}
	labels := func(n int) []byte {
		l := make([]byte, n)
		for i := range l {
			l[i] = byte((i * 7) % NumClasses)
		}
		return l
	}
	write(MNISTTrainImages+".gz", gzipBytes(t, encodeIDXImages(IDXImagesMagic, uint32(nTrain), uint32(rows), uint32(cols), pattern(nTrain*rows*cols))))
	write(MNISTTrainLabels+".gz", gzipBytes(t, encodeIDXLabels(IDXLabelsMagic, uint32(nTrain), labels(nTrain))))
	write(MNISTTestImages, encodeIDXImages(IDXImagesMagic, uint32(nTest), uint32(rows), uint32(cols), pattern(nTest*rows*cols)))
	write(MNISTTestLabels, encodeIDXLabels(IDXLabelsMagic, uint32(nTest), labels(nTest)))
	return dir
}

func TestLoadMNISTSynthetic(t *testing.T) {
	dir := writeSyntheticMNIST(t, 7, 3, 4, 5)
	train, test, err := LoadMNIST(dir)
	require.NoError(t, err)
	require.Equal(t, 7, train.N)
	require.Equal(t, 3, test.N)
	require.Equal(t, []int{0, 7, 4, 1, 8, 5, 2}, train.Labels)
	require.Equal(t, []int{0, 7, 4}, test.Labels)
	require.Equal(t, float64(pattern(20)[19])/255, train.Image(0)[19])

	// The directory passes MNISTDir's check when named by the override.
	t.Setenv(MNISTDirEnv, dir)
	got, err := MNISTDir()
	require.NoError(t, err)
	require.Equal(t, dir, got)
}

func TestLoadMNISTErrors(t *testing.T) {
	t.Run("missing file", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
		require.NoError(t, os.Remove(filepath.Join(dir, MNISTTestLabels)))
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, MNISTTestLabels)
		require.ErrorContains(t, err, "not found")

		t.Setenv(MNISTDirEnv, dir)
		_, err = MNISTDir()
		require.ErrorContains(t, err, MNISTTestLabels)
	})
	t.Run("label count mismatch", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
		p := filepath.Join(dir, MNISTTestLabels)
		require.NoError(t, os.WriteFile(p, encodeIDXLabels(IDXLabelsMagic, 3, []byte{1, 2, 3}), 0o644))
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, p+" holds 3 labels")
		require.ErrorContains(t, err, "holds 2 images")
	})
	t.Run("corrupt file named", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
		p := filepath.Join(dir, MNISTTestImages)
		require.NoError(t, os.WriteFile(p, encodeIDXImages(IDXLabelsMagic, 2, 2, 2, pattern(8)), 0o644))
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, p)
		require.ErrorContains(t, err, "bad magic")
	})
	t.Run("bad label value named", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
		p := filepath.Join(dir, MNISTTestLabels)
		require.NoError(t, os.WriteFile(p, encodeIDXLabels(IDXLabelsMagic, 2, []byte{1, 12}), 0o644))
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, p)
		require.ErrorContains(t, err, "label 12")
	})
	t.Run("image size mismatch", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
		p := filepath.Join(dir, MNISTTestImages)
		require.NoError(t, os.WriteFile(p, encodeIDXImages(IDXImagesMagic, 2, 2, 3, pattern(12)), 0o644))
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, "2x2 but test images are 2x3")
	})
	t.Run("empty split", func(t *testing.T) {
		dir := writeSyntheticMNIST(t, 0, 2, 2, 2)
		_, _, err := LoadMNIST(dir)
		require.ErrorContains(t, err, "no images")
	})
	t.Run("missing dir", func(t *testing.T) {
		_, _, err := LoadMNIST(filepath.Join(t.TempDir(), "nope"))
		require.Error(t, err)
	})
}

// Published MNIST class counts (LeCun et al.).
var (
	mnistTrainCounts = [NumClasses]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}
	mnistTestCounts  = [NumClasses]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}
)

func TestLoadMNISTReal(t *testing.T) {
	// Package data imports the GoMNIST module, so building this test
	// downloaded it: the data must be found, never skipped.
	dir, err := MNISTDir()
	require.NoError(t, err)
	// The directory is the module's data/ folder in the cache the go tool
	// reports, at the version pinned in go.mod.
	if cache, err := goTool("env", "GOMODCACHE"); err == nil {
		want := filepath.Join(cache, escapeModulePath(MNISTModule)+"@"+MNISTModuleVersion, "data")
		require.NoError(t, checkMNISTDir(want))
		require.Equal(t, want, dir)
	}
	start := time.Now()
	train, test, err := LoadMNIST(dir)
	require.NoError(t, err)
	t.Logf("LoadMNIST(%s): %v", dir, time.Since(start))
	for _, tc := range []struct {
		name   string
		im     *Images
		n      int
		counts [NumClasses]int
	}{
		{"train", train, 60000, mnistTrainCounts},
		{"test", test, 10000, mnistTestCounts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			im := tc.im
			require.Equal(t, tc.n, im.N)
			require.Equal(t, 28, im.Rows)
			require.Equal(t, 28, im.Cols)
			require.Len(t, im.Pixels, tc.n*28*28)
			require.Len(t, im.Labels, tc.n)
			var counts [NumClasses]int
			for _, l := range im.Labels {
				counts[l]++
			}
			require.Equal(t, tc.counts, counts)
			sum, minPix, maxPix := 0.0, 1.0, 0.0
			for _, p := range im.Pixels {
				sum += p
				minPix, maxPix = min(minPix, p), max(maxPix, p)
			}
			require.Equal(t, 0.0, minPix)
			require.Equal(t, 1.0, maxPix)
			// The well-known MNIST pixel mean is 0.1307 (train) / 0.1325 (test).
			require.InDelta(t, 0.13, sum/float64(len(im.Pixels)), 0.005)
		})
	}
	require.Equal(t, 5, train.Labels[0])
	require.Equal(t, 7, test.Labels[0])
}

func TestMNISTDirWithoutGoTool(t *testing.T) {
	want, err := MNISTDir()
	require.NoError(t, err)
	t.Setenv("PATH", "")
	t.Setenv("GOPATH", "")
	if os.Getenv("GOMODCACHE") == "" {
		// Point the fallback at the cache the go tool reported.
		t.Setenv("GOMODCACHE", filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(want)))))
	}
	got, err := MNISTDir()
	require.NoError(t, err)
	require.Equal(t, want, got)

	t.Setenv("GOMODCACHE", "")
	t.Setenv("HOME", t.TempDir())
	home := t.TempDir()
	t.Setenv("HOME", home)
	_, err = MNISTDir()
	require.ErrorContains(t, err, "MNIST data not found in "+filepath.Join(home, "go", "pkg", "mod"))
	require.ErrorContains(t, err, "go mod download "+MNISTModule)
	require.ErrorContains(t, err, "--data DIR")
	require.NotContains(t, err.Error(), "\n")

	t.Setenv("HOME", "")
	_, err = MNISTDir()
	require.ErrorContains(t, err, "no Go module cache")
	require.ErrorContains(t, err, "go mod download "+MNISTModule)
}

// TestMNISTModuleVersion checks that the version recorded in the build
// (the one the go tool downloaded for this binary) is the pinned one.
func TestMNISTModuleVersion(t *testing.T) {
	require.Equal(t, MNISTModuleVersion, mnistModuleVersion())
	gomod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(gomod), MNISTModule+" "+MNISTModuleVersion)
}

// TestLoadMNISTErrorsNameTheFix: a missing or corrupt data directory is one
// line naming the path and the fix.
func TestLoadMNISTErrorsNameTheFix(t *testing.T) {
	dir := writeSyntheticMNIST(t, 2, 2, 2, 2)
	bad := filepath.Join(dir, MNISTTrainImages+".gz")
	require.NoError(t, os.WriteFile(bad, []byte("not gzip"), 0o644))
	_, _, err := LoadMNIST(dir)
	require.ErrorContains(t, err, bad)
	require.ErrorContains(t, err, "--data DIR")
	require.NotContains(t, err.Error(), "\n")

	missing := filepath.Join(t.TempDir(), "nope")
	_, _, err = LoadMNIST(missing)
	require.ErrorContains(t, err, missing)
	require.ErrorContains(t, err, "--data DIR")
}

package data

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGoRoot(t *testing.T) {
	root, err := GoRoot()
	require.NoError(t, err)
	st, err := os.Stat(filepath.Join(root, "src", "fmt", "print.go"))
	require.NoError(t, err)
	require.True(t, st.Mode().IsRegular())
}

// concatFiles returns the concatenation of src/f + FileSeparator for files.
func concatFiles(t *testing.T, src string, files []string) []byte {
	t.Helper()
	var b []byte
	for _, f := range files {
		p, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(f)))
		require.NoError(t, err)
		b = append(append(b, p...), FileSeparator...)
	}
	return b
}

func TestLoadGoSourceReal(t *testing.T) {
	root, err := GoRoot()
	require.NoError(t, err)
	const maxBytes = 400_000
	c1, err := LoadGoSource(root, maxBytes)
	require.NoError(t, err)
	c2, err := LoadGoSource("", maxBytes) // "" resolves to GoRoot()
	require.NoError(t, err)
	require.Equal(t, c1, c2, "two loads must be identical")

	require.Equal(t, maxBytes, len(c1.Train)+len(c1.Valid), "budget is filled exactly")
	require.NotEmpty(t, c1.TrainFiles)
	require.NotEmpty(t, c1.ValidFiles)
	t.Logf("train %d bytes / %d files, valid %d bytes / %d files",
		len(c1.Train), len(c1.TrainFiles), len(c1.Valid), len(c1.ValidFiles))

	// No file in both splits, each in the split its hash says, and together
	// they form a sorted prefix of the tree's .go files.
	seen := map[string]bool{}
	for _, f := range c1.TrainFiles {
		require.False(t, IsValidationPath(f), f)
		seen[f] = true
	}
	for _, f := range c1.ValidFiles {
		require.True(t, IsValidationPath(f), f)
		require.False(t, seen[f], "file %s in both splits", f)
		seen[f] = true
	}
	all := append(append([]string(nil), c1.TrainFiles...), c1.ValidFiles...)
	sort.Strings(all)
	require.True(t, strings.HasSuffix(all[0], ".go"))
	require.Len(t, seen, len(all))

	// Content: each split is a prefix of the concatenation of its files (the
	// very last file taken may be truncated), with one separator per file.
	src := filepath.Join(root, "src")
	require.True(t, bytes.HasPrefix(concatFiles(t, src, c1.TrainFiles), c1.Train))
	require.True(t, bytes.HasPrefix(concatFiles(t, src, c1.ValidFiles), c1.Valid))
	require.InDelta(t, len(c1.TrainFiles), bytes.Count(c1.Train, []byte(FileSeparator)), 1)
	require.InDelta(t, len(c1.ValidFiles), bytes.Count(c1.Valid, []byte(FileSeparator)), 1)
}

// writeTree creates files (slash paths relative to root/src) with content.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for rel, content := range files {
		p := filepath.Join(root, "src", filepath.FromSlash(rel))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	return root
}

// namesBySplit returns n train and n valid file names under pkg/.
func namesBySplit(n int) (train, valid []string) {
	for i := 0; len(train) < n || len(valid) < n; i++ {
		name := fmt.Sprintf("pkg/f%03d.go", i)
		if IsValidationPath(name) {
			if len(valid) < n {
				valid = append(valid, name)
			}
		} else if len(train) < n {
			train = append(train, name)
		}
	}
	return train, valid
}

func TestLoadGoSourceSynthetic(t *testing.T) {
	trainNames, validNames := namesBySplit(3)
	files := map[string]string{"README": "not go", "pkg/x.go.txt": "not go either"}
	for _, n := range append(append([]string(nil), trainNames...), validNames...) {
		files[n] = "package " + strings.TrimSuffix(filepath.Base(n), ".go") + "\n"
	}
	files["pkg/testdata/t.go"] = "package t\n" // testdata is included
	root := writeTree(t, files)

	c, err := LoadGoSource(root, 0)
	require.NoError(t, err)
	wantTrain, wantValid := []string{}, []string{}
	all := append(append(append([]string(nil), trainNames...), validNames...), "pkg/testdata/t.go")
	sort.Strings(all)
	for _, n := range all {
		if IsValidationPath(n) {
			wantValid = append(wantValid, n)
		} else {
			wantTrain = append(wantTrain, n)
		}
	}
	require.Equal(t, wantTrain, c.TrainFiles)
	require.Equal(t, wantValid, c.ValidFiles)
	src := filepath.Join(root, "src")
	require.Equal(t, concatFiles(t, src, wantTrain), c.Train)
	require.Equal(t, concatFiles(t, src, wantValid), c.Valid)

	// A budget that stops before any validation file is reached fails.
	_, err = LoadGoSource(root, 3)
	require.ErrorContains(t, err, "empty split")
	_, err = LoadGoSource(root, -1)
	require.ErrorContains(t, err, "negative")
	_, err = LoadGoSource(t.TempDir(), 0)
	require.Error(t, err)
}

func TestLoadTextFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "text.txt")
	content := []byte(strings.Repeat("hello, world. ", 50)) // 700 bytes
	require.NoError(t, os.WriteFile(p, content, 0o644))
	c, err := LoadTextFile(p, 0.1)
	require.NoError(t, err)
	require.Equal(t, "text.txt", c.Name)
	require.Len(t, c.Valid, 70)
	require.Len(t, c.Train, 630)
	require.Equal(t, content, append(append([]byte(nil), c.Train...), c.Valid...))

	tiny := filepath.Join(dir, "tiny.txt")
	require.NoError(t, os.WriteFile(tiny, []byte("abc"), 0o644))
	_, err = LoadTextFile(tiny, 0.5)
	require.ErrorContains(t, err, "at least")
	empty := filepath.Join(dir, "empty.txt")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	_, err = LoadTextFile(empty, 0.1)
	require.ErrorContains(t, err, "at least")
	_, err = LoadTextFile(p, 0.001) // rounds to 1 validation byte
	require.ErrorContains(t, err, "at least")
	for _, f := range []float64{0, 1, -0.5, 2} {
		_, err = LoadTextFile(p, f)
		require.ErrorContains(t, err, "not in (0,1)")
	}
	_, err = LoadTextFile(filepath.Join(dir, "missing"), 0.1)
	require.Error(t, err)
}

func TestSampleBatch(t *testing.T) {
	train := make([]byte, 20)
	for i := range train {
		train[i] = byte(100 + i)
	}
	c := &Corpus{Name: "seq", Train: train, Valid: []byte("abcdef")}
	rng := rand.New(rand.NewPCG(3, 4))
	const ctx = 5
	in, tg, err := c.SampleBatch(rng, TrainSplit, 2000, ctx)
	require.NoError(t, err)
	require.Len(t, in, 2000)
	require.Len(t, tg, 2000)
	starts := map[int]int{}
	for b := range in {
		require.Len(t, in[b], ctx)
		require.Len(t, tg[b], ctx)
		start := in[b][0] - 100
		for k := range ctx {
			require.Equal(t, int(train[start+k]), in[b][k])
			require.Equal(t, int(train[start+k+1]), tg[b][k], "target is the next byte")
		}
		starts[start]++
	}
	// All len-ctx = 15 starts (0..14) occur, none beyond.
	require.Len(t, starts, len(train)-ctx)
	require.Contains(t, starts, 0)
	require.Contains(t, starts, len(train)-ctx-1)

	in2, tg2, err := c.SampleBatch(rand.New(rand.NewPCG(3, 4)), TrainSplit, 2000, ctx)
	require.NoError(t, err)
	require.Equal(t, in, in2)
	require.Equal(t, tg, tg2)

	// The validation split has 6 bytes: ctx 5 is the largest that fits.
	in, tg, err = c.SampleBatch(rng, ValidSplit, 3, 5)
	require.NoError(t, err)
	for b := range in {
		require.Equal(t, []int{'a', 'b', 'c', 'd', 'e'}, in[b])
		require.Equal(t, []int{'b', 'c', 'd', 'e', 'f'}, tg[b])
	}
	_, _, err = c.SampleBatch(rng, ValidSplit, 3, 6)
	require.ErrorContains(t, err, "need at least context+1 = 7")
	_, _, err = c.SampleBatch(rng, Split(7), 3, 2)
	require.ErrorContains(t, err, "unknown split")
	_, _, err = c.SampleBatch(nil, TrainSplit, 3, 2)
	require.ErrorContains(t, err, "nil rng")
	_, _, err = c.SampleBatch(rng, TrainSplit, 0, 2)
	require.ErrorContains(t, err, "must be positive")
	_, _, err = c.SampleBatch(rng, TrainSplit, 1, 0)
	require.ErrorContains(t, err, "must be positive")
	require.Equal(t, "train", TrainSplit.String())
	require.Equal(t, "valid", ValidSplit.String())
}

func TestLoadGoSourcePrefixOfTree(t *testing.T) {
	root, err := GoRoot()
	require.NoError(t, err)
	src := filepath.Join(root, "src")
	var tree []string
	require.NoError(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && strings.HasSuffix(p, ".go") {
			rel, err := filepath.Rel(src, p)
			require.NoError(t, err)
			tree = append(tree, filepath.ToSlash(rel))
		}
		return nil
	}))
	sort.Strings(tree)
	c, err := LoadGoSource(root, 150_000)
	require.NoError(t, err)
	got := append(append([]string(nil), c.TrainFiles...), c.ValidFiles...)
	sort.Strings(got)
	require.Equal(t, tree[:len(got)], got, "files are taken in sorted order without gaps")
}

func TestLoadGoSourceFull(t *testing.T) {
	c, err := LoadGoSource("", 0) // the whole GOROOT/src tree, about 1 s
	require.NoError(t, err)
	total := len(c.Train) + len(c.Valid)
	frac := float64(len(c.Valid)) / float64(total)
	t.Logf("train %d bytes / %d files, valid %d bytes / %d files (%.3f)",
		len(c.Train), len(c.TrainFiles), len(c.Valid), len(c.ValidFiles), frac)
	require.InDelta(t, 0.1, float64(len(c.ValidFiles))/float64(len(c.TrainFiles)+len(c.ValidFiles)), 0.02)
	require.InDelta(t, 0.1, frac, 0.05)
}

func TestGoRootWithoutGoTool(t *testing.T) {
	want, err := GoRoot()
	require.NoError(t, err)
	t.Setenv("PATH", "")
	got, err := GoRoot()
	require.NoError(t, err)
	require.Equal(t, filepath.Clean(want), filepath.Clean(got))
}

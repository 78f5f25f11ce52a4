package importgraph

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// layers reads the fenced ```layers block of docs/architecture.md: one line
// per layer, the top layer first, each line the module-relative directories
// of the packages in that layer.
func layers(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	require.NoError(t, err)
	defer f.Close()
	var out [][]string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "```layers":
			in = true
		case in && line == "```":
			in = false
		case in && line != "":
			out = append(out, strings.Fields(line))
		}
	}
	require.NoError(t, sc.Err())
	require.NotEmpty(t, out, "docs/architecture.md has no ```layers block")
	return out
}

// TestLayers: every package of the module is in exactly one layer of
// docs/architecture.md, every layer names existing packages, and no
// package's code imports a module package of its own or a higher layer
// (test files may: they play the callers).
func TestLayers(t *testing.T) {
	ls := layers(t)
	imps := imports(t, false)
	all := imports(t, true) // packages with only test files count too
	layerOf := map[string]int{}
	for i, l := range ls {
		for _, dir := range l {
			_, dup := layerOf[dir]
			require.False(t, dup, "docs/architecture.md lists %s/ in two layers", dir)
			layerOf[dir] = len(ls) - i // bottom layer = 1
		}
	}
	var pkgs []string
	for dir := range all {
		if dir != "" {
			pkgs = append(pkgs, dir)
		}
	}
	sort.Strings(pkgs)
	for _, dir := range pkgs {
		_, ok := layerOf[dir]
		require.True(t, ok, "package %s/ is missing from the layers of docs/architecture.md", dir)
	}
	for dir := range layerOf {
		_, ok := all[dir]
		require.True(t, ok, "docs/architecture.md lists %s/, which holds no Go package", dir)
	}
	for _, dir := range pkgs {
		for _, imp := range imps[dir] {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok {
				continue
			}
			require.Less(t, layerOf[rel], layerOf[dir], "%s/ imports %s/, which is not in a lower layer of docs/architecture.md", dir, rel)
		}
	}
}

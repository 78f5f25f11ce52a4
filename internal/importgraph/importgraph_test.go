// Package importgraph holds the test of the module's import rules
// (docs/architecture.md): Lattigo is imported only under he/ (and the he
// accessors that hand out Lattigo objects are called only there), the service's
// server side never imports its client side, the compiler's back end
// (he/circuit) never imports the model or its front end (compiler), which
// never imports Lattigo, the service's code imports no model package, and
// the model's packages point one way (model/nn < model/norm < model <
// model/convert; model/eval and model/dataset do not import model/train).
//
// The test parses the import clauses of every Go file of the module (test
// files included) rather than running `go list`, so that go test's cache
// sees every file it depends on.
package importgraph

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// imports maps each directory of the module (relative, slash-separated, ""
// for the root) to the import paths of its Go files (with or without the
// _test.go files).
func imports(t *testing.T, withTests bool) map[string][]string {
	t.Helper()
	root := filepath.Join("..", "..")
	out := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || (!withTests && strings.HasSuffix(path, "_test.go")) {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			out[rel] = append(out[rel], p)
		}
		return nil
	})
	require.NoError(t, err)
	require.Contains(t, out, "he", "the walk must reach the module's packages")
	return out
}

func TestLattigoOnlyUnderHE(t *testing.T) {
	for dir, imps := range imports(t, true) {
		underHE := dir == "he" || strings.HasPrefix(dir, "he/")
		for _, imp := range imps {
			if strings.HasPrefix(imp, "github.com/tuneinsight/lattigo/") {
				require.True(t, underHE, "%s/ imports %s: Lattigo is imported only under he/", dir, imp)
			}
		}
	}
}

// TestServerDoesNotImportClient: the server's code (not its tests, which
// play the client) never imports the client side.
func TestServerDoesNotImportClient(t *testing.T) {
	for dir, imps := range imports(t, false) {
		if dir != "service/api" && dir != "service/keystore" && dir != "service/server" && !strings.HasPrefix(dir, "service/server/") {
			continue
		}
		for _, imp := range imps {
			require.NotEqual(t, "github.com/polyformer/polyformer/service/client", imp, "%s/ imports the client side", dir)
		}
	}
}

// TestCompilerHalves: the back end he/circuit (and its tests) never imports
// the model (model/ and below, norms included) or the front end, so that
// a client or server needs no model package; the front end compiler/ never imports Lattigo (it reaches
// the ciphertexts through he/circuit).
func TestCompilerHalves(t *testing.T) {
	for dir, imps := range imports(t, true) {
		for _, imp := range imps {
			if dir == "he/circuit" || strings.HasPrefix(dir, "he/circuit/") {
				for _, banned := range []string{"model", "compiler"} {
					require.False(t, imp == module+banned || strings.HasPrefix(imp, module+banned+"/"), "%s/ imports %s: the back end does not import the model or the front end", dir, imp)
				}
			}
			if dir == "compiler" || strings.HasPrefix(dir, "compiler/") {
				require.False(t, strings.HasPrefix(imp, "github.com/tuneinsight/lattigo/"), "%s/ imports %s: the front end does not import Lattigo", dir, imp)
			}
		}
	}
}

// TestServiceNeedsNoModel: the server's and the client's code (not their
// tests, which compile toy models) imports neither the front end nor the
// model.
func TestServiceNeedsNoModel(t *testing.T) {
	for dir, imps := range imports(t, false) {
		if dir != "service/server" && dir != "service/client" && !strings.HasPrefix(dir, "service/server/") && !strings.HasPrefix(dir, "service/client/") {
			continue
		}
		for _, imp := range imps {
			for _, banned := range []string{"compiler", "model"} {
				require.False(t, imp == module+banned || strings.HasPrefix(imp, module+banned+"/"), "%s/ imports %s: the service needs no model package", dir, imp)
			}
		}
	}
}

// module is the import path prefix of the module's packages.
const module = "github.com/polyformer/polyformer/"

// reaches reports whether package dir (module-relative) imports target
// (module-relative), directly or through other module packages, in the
// given import map.
func reaches(imps map[string][]string, dir, target string) bool {
	seen := map[string]bool{dir: true}
	queue := []string{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, imp := range imps[d] {
			rel, ok := strings.CutPrefix(imp, module)
			if !ok || seen[rel] {
				continue
			}
			if rel == target {
				return true
			}
			seen[rel] = true
			queue = append(queue, rel)
		}
	}
	return false
}

// TestModelPackagesPointOneWay: the model's packages are layered
// model/nn < model/norm < model < model/convert (issue 13): no package
// imports, directly or indirectly, one above it; the datasets and
// evaluation sit beside training, not on it (model/dataset and model/eval
// do not import model/train). Test files may import upward.
func TestModelPackagesPointOneWay(t *testing.T) {
	imps := imports(t, false)
	layers := []string{"model/nn", "model/norm", "model", "model/convert"}
	for i, low := range layers {
		require.Contains(t, imps, low, "the walk must reach %s", low)
		for _, high := range layers[i+1:] {
			require.False(t, reaches(imps, low, high), "%s/ imports %s/ (directly or through other packages): the model packages point one way (%s)", low, high, strings.Join(layers, " < "))
		}
	}
	for _, dir := range []string{"model/eval", "model/dataset"} {
		require.Contains(t, imps, dir, "the walk must reach %s", dir)
		require.False(t, reaches(imps, dir, "model/train"), "%s/ imports model/train (directly or through other packages)", dir)
	}
}

// TestReaches checks the reachability helper on a small graph.
func TestReaches(t *testing.T) {
	g := map[string][]string{
		"a": {module + "b", "fmt"},
		"b": {module + "c"},
		"c": {module + "a"},
		"d": {"github.com/other/d"},
	}
	require.True(t, reaches(g, "a", "c"))
	require.True(t, reaches(g, "c", "b"))
	require.False(t, reaches(g, "d", "a"))
	require.False(t, reaches(g, "a", "fmt"))
}

package importgraph

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// heOnlyMethods are the methods of package he that hand out Lattigo objects
// (documented "for packages under he/ only"); heOnlyFuncs its functions that
// take or return Lattigo objects. Outside he/ the he vocabulary
// (Parameters, SecretKey, EvaluationKeys, Ciphertext, Plaintext) suffices.
var (
	heOnlyMethods = map[string]bool{
		"HE": true, "KeySet": true, "Lattigo": true, "BootstrappingKeys": true,
		"BootstrappingParameters": true, "BootstrappingLiteral": true,
		"Encryptor": true, "Decryptor": true, "RingType": true,
	}
	heOnlyFuncs = map[string]bool{
		"NewEncoder": true, "GenerateBootstrappingKeys": true, "CheckBootstrappingKeysSafe": true,
		"CheckBootstrappingKeysComplete": true, "CheckSecurity": true, "CheckParametersSecurity": true,
	}
)

// TestLattigoAccessorsOnlyUnderHE: no Go file outside he/ (tests included)
// calls an he accessor that exposes Lattigo objects, so Lattigo types stay
// inside he/ even where no import names them. The check is syntactic: a
// call of a method with one of these names on any value, or of one of the
// functions through the he package name.
func TestLattigoAccessorsOnlyUnderHE(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	var bad []string
	seen := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel == "he" || (path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_"))) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		seen++
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			name := sel.Sel.Name
			pkg, isIdent := sel.X.(*ast.Ident)
			if (heOnlyMethods[name] && len(call.Args) == 0) || (isIdent && pkg.Name == "he" && heOnlyFuncs[name]) {
				bad = append(bad, fset.Position(call.Pos()).String()+": "+name)
			}
			return true
		})
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, seen, 10, "the walk must reach the module's packages")
	require.Empty(t, bad, "calls outside he/ of accessors that are for packages under he/ only")
}

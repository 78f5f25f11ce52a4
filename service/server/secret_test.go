package server_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/polyformer/polyformer"

// secretSymbols are the he identifiers that hold or produce a secret key
// (or decrypt).
var secretSymbols = map[string]bool{
	"SecretKey": true, "ReadSecretKey": true, "ReadSecretKeyFile": true, "WriteSecretKey": true, "WriteSecretKeyFile": true,
	"NewClient": true, "Client": true, "GenerateKeys": true, "GenerateEvaluationKeys": true, "NewSecretKeyBootstrapper": true,
	"DecryptReal": true, "DecryptComplex": true, "Decryptor": true,
}

// TestServerHoldsNoSecretKey fails if the code reachable from the server
// can read a secret key file or holds a secret-key type: it lists the
// module packages the server (and its key store) imports, finds every
// function that mentions a secret-key symbol of package he (and, by name,
// every function calling one), and checks that the server's own code
// (packages service/server, service/api, service/keystore and the serve
// command) reaches none of them, nor the client package.
func TestServerHoldsNoSecretKey(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}\t{{.Dir}}\t{{join .GoFiles \",\"}}", "./", "../api", "../keystore").Output()
	require.NoError(t, err)
	type pkg struct {
		path, dir string
		files     []string
	}
	var pkgs []pkg
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 3 || !strings.HasPrefix(f[0], module) {
			continue
		}
		require.NotEqual(t, module+"/service/client", f[0], "the server imports the client package")
		require.False(t, strings.HasPrefix(f[0], module+"/cmd"), "the server imports %s", f[0])
		pkgs = append(pkgs, pkg{f[0], f[1], strings.Split(f[2], ",")})
	}
	fset := token.NewFileSet()
	// refs[func] = identifiers it mentions; tainted = functions holding secrets
	refs := map[string]map[string]bool{}
	tainted := map[string]bool{}
	var roots []string
	parse := func(p pkg, file string, root bool) {
		f, err := parser.ParseFile(fset, filepath.Join(p.dir, file), nil, 0)
		require.NoError(t, err)
		heName := ""
		for _, imp := range f.Imports {
			if strings.Trim(imp.Path.Value, `"`) == module+"/he" {
				heName = "he"
				if imp.Name != nil {
					heName = imp.Name.Name
				}
			}
			require.NotEqual(t, `"`+module+`/service/client"`, imp.Path.Value)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			name := p.path + "." + file
			if ok {
				name = fd.Name.Name
			}
			if refs[name] == nil {
				refs[name] = map[string]bool{}
			}
			if root {
				roots = append(roots, name)
			}
			ast.Inspect(d, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.SelectorExpr:
					if id, ok := x.X.(*ast.Ident); ok && id.Name == heName && secretSymbols[x.Sel.Name] && p.path != module+"/he" {
						tainted[name] = true
					}
					refs[name][x.Sel.Name] = true
				case *ast.Ident:
					refs[name][x.Name] = true
				case *ast.BasicLit:
					if strings.Contains(x.Value, "secret.key") {
						tainted[name] = true
					}
				}
				return true
			})
			if p.path == module+"/he" && ok && secretSymbols[fd.Name.Name] {
				tainted[name] = true
			}
		}
	}
	for _, p := range pkgs {
		root := p.path == module+"/service/server" || p.path == module+"/service/api" || p.path == module+"/service/keystore"
		for _, file := range p.files {
			parse(p, file, root)
		}
	}
	parse(pkg{module + "/cmd/polyformer", "../../cmd/polyformer", nil}, "serve.go", true)
	// propagate by name to a fixed point
	for changed := true; changed; {
		changed = false
		for fn, ids := range refs {
			if tainted[fn] {
				continue
			}
			for id := range ids {
				if tainted[id] && id != fn {
					tainted[fn], changed = true, true
					break
				}
			}
		}
	}
	require.NotEmpty(t, roots)
	for _, r := range roots {
		require.False(t, tainted[r], "server code %s reaches a secret key or decryption", r)
	}
	// the check is not vacuous: the client-side helpers are found
	require.True(t, tainted["EncryptInputs"] && tainted["DecryptOutputs"] && tainted["ReadSecretKeyFile"])
}

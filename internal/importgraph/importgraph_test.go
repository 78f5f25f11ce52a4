// Package importgraph holds the test of the module's import rules
// (docs/architecture.md): Lattigo is imported only under he/, and the
// service's server side never imports its client side.
package importgraph

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/polyformer/polyformer"

type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list -json ./...` from the module root.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

func TestLattigoOnlyUnderHE(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(p.ImportPath, module)
		underHE := rel == "/he" || strings.HasPrefix(rel, "/he/")
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/tuneinsight/lattigo/") {
				require.True(t, underHE, "%s imports %s: Lattigo is imported only under he/", p.ImportPath, imp)
			}
		}
	}
}

func TestServerDoesNotImportClient(t *testing.T) {
	for _, p := range listPackages(t) {
		if !strings.HasPrefix(p.ImportPath, module+"/service/server") && p.ImportPath != module+"/service/api" && p.ImportPath != module+"/service/keystore" {
			continue
		}
		for _, imp := range p.Imports {
			require.NotEqual(t, module+"/service/client", imp, "%s imports the client side", p.ImportPath)
		}
	}
}

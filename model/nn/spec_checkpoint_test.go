package nn

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/polyapprox"
)

// moduleRoot returns the directory of go.mod above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test directory")
		dir = parent
	}
}

// The polynomial specs of the recorded checkpoints (written before
// polyapprox.Spec existed) load into PolySpec with every field in place,
// build their plans and twins, and are written back byte for byte.
func TestRecordedCheckpointSpecsLoad(t *testing.T) {
	root := moduleRoot(t)
	files, err := filepath.Glob(filepath.Join(root, "benchmarks", "*", "*", "config.json"))
	require.NoError(t, err)
	files = append(files, filepath.Join(root, "cmd", "polyformer", "demodata", "config.json"))
	methods := map[polyapprox.PlanMethod]int{}
	checked := 0
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		var typed struct {
			Poly *struct {
				Specs []PolySpec `json:"specs"`
			} `json:"poly"`
		}
		var loose struct {
			Poly *struct {
				Specs []json.RawMessage `json:"specs"`
			} `json:"poly"`
		}
		require.NoError(t, json.Unmarshal(raw, &typed), f)
		require.NoError(t, json.Unmarshal(raw, &loose), f)
		if typed.Poly == nil {
			continue
		}
		rel, _ := filepath.Rel(root, f)
		require.Len(t, typed.Poly.Specs, len(loose.Poly.Specs), rel)
		for i, s := range typed.Poly.Specs {
			var m map[string]any
			require.NoError(t, json.Unmarshal(loose.Poly.Specs[i], &m), rel)
			require.Equal(t, m["site"], s.Site, rel)
			require.Equal(t, m["kind"], s.Kind, rel)
			require.Equal(t, m["method"], string(s.Method), rel)
			iv := m["interval"].([]any)
			require.Equal(t, [2]float64{iv[0].(float64), iv[1].(float64)}, s.Interval, rel)
			if it, ok := m["iterations"]; ok {
				require.Equal(t, it, float64(s.Iterations), rel)
			}
			if cs, ok := m["coeffs"].([]any); ok {
				require.Len(t, s.Coeffs, len(cs), rel)
				for k, c := range cs {
					require.Equal(t, c, s.Coeffs[k], rel)
				}
			}
			require.NoError(t, s.Validate(), "%s: site %s", rel, s.Site)
			_, _, err := s.Evaluator()
			require.NoError(t, err, rel)
			methods[s.Method]++

			var want bytes.Buffer
			require.NoError(t, json.Compact(&want, loose.Poly.Specs[i]), rel)
			got, err := json.Marshal(s)
			require.NoError(t, err)
			require.Equal(t, want.String(), string(got), "%s: spec %d written back", rel, i)
			checked++
		}
	}
	require.Greater(t, checked, 0)
	for _, m := range []polyapprox.PlanMethod{polyapprox.PlanChebyshev, polyapprox.PlanGoldschmidt, polyapprox.PlanNewton} {
		require.Positive(t, methods[m], "no recorded spec uses %s", m)
	}
	t.Logf("%d recorded specs: %v", checked, methods)
}

package checkpoint

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/safetensors"
)

// TestLoadHostileCheckpoints: absurd sizes, NaN and huge weights and
// oversized weight files are refused with one-line errors naming the field
// or tensor, before the model or the weights are allocated.
func TestLoadHostileCheckpoints(t *testing.T) {
	save := func(t *testing.T, mod func(dir string, m *model.Model)) (string, error) {
		dir := t.TempDir()
		m := tiny(t, 4)
		require.NoError(t, Save(dir, m, nil, nil))
		mod(dir, m)
		_, err := Load(dir)
		return dir, err
	}
	setConfig := func(old, new string) func(dir string, m *model.Model) {
		return func(dir string, m *model.Model) {
			path := filepath.Join(dir, ConfigFile)
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Contains(t, string(b), old)
			s := strings.Replace(string(b), old, new, 1)
			require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
		}
	}
	setWidth := func(w int) func(dir string, m *model.Model) {
		return setConfig(`"width": 4,`, `"width": `+strconv.Itoa(w)+`,`)
	}
	_, err := save(t, setWidth(1<<24))
	require.ErrorContains(t, err, "width = 16777216 exceeds the limit 4096")
	require.NotContains(t, err.Error(), "\n")
	_, err = save(t, func(dir string, m *model.Model) { // within the width and depth limits, not within the parameter budget
		setWidth(4000)(dir, m)
		setConfig(`"depth": 1,`, `"depth": 3,`)(dir, m)
	})
	require.ErrorContains(t, err, "parameters, above the limit 134217728")
	_, err = save(t, setWidth(8)) // valid and small: the weights no longer fit
	require.ErrorContains(t, err, "do not match the architecture")
	require.NotContains(t, err.Error(), "\n")

	setWeight := func(v float64) func(dir string, m *model.Model) {
		return func(dir string, m *model.Model) {
			ts := map[string]safetensors.Tensor{}
			for i, p := range m.Params() {
				d := append([]float64(nil), p.Value.Data...)
				if i == 3 {
					d[1] = v
				}
				ts[p.Name] = safetensors.Tensor{DType: "F64", Shape: p.Value.Shape, Data: d}
			}
			require.NoError(t, safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, nil))
		}
	}
	name := tiny(t, 4).Params()[3].Name
	for _, v := range []float64{math.NaN(), math.Inf(-1), 1e300} {
		_, err = save(t, setWeight(v))
		require.Error(t, err, v)
		require.Contains(t, err.Error(), "tensor "+name+": entry 1 is")
		require.NotContains(t, err.Error(), "internal error")
		require.NotContains(t, err.Error(), "\n")
	}
	// a weights file larger than the architecture explains
	_, err = save(t, func(dir string, m *model.Model) {
		f, err := os.OpenFile(filepath.Join(dir, WeightsFile), os.O_APPEND|os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.Write(make([]byte, 4<<20))
		require.NoError(t, err)
		require.NoError(t, f.Close())
	})
	require.ErrorContains(t, err, "exceeds the limit")
	// truncated weights
	_, err = save(t, func(dir string, m *model.Model) {
		path := filepath.Join(dir, WeightsFile)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, b[:len(b)-9], 0o644))
	})
	require.Error(t, err)
	// a config file above the size limit is not read
	_, err = save(t, func(dir string, m *model.Model) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, ConfigFile), make([]byte, model.MaxConfigBytes+1), 0o644))
	})
	require.ErrorContains(t, err, "exceed the limit")
}

package model

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/polyapprox"
)

// configSeeds are valid and hostile config.json files.
func configSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for _, task := range []string{TaskMNIST, TaskText} {
		c, err := DefaultConfig(task)
		require.NoError(t, err)
		b, err := json.Marshal(c)
		require.NoError(t, err)
		out = append(out, b)
	}
	for _, s := range []string{
		`{}`, `{"version":1,"task":"text","width":16777216,"depth":1,"heads":1,"hidden":1,"context":4,"vocab":256,"attention":{"kind":"softmax"},"activation":"gelu","norm":"none"}`,
		`{"version":1,"task":"mnist","width":8,"depth":1,"heads":2,"hidden":8,"image_rows":1000000000,"image_cols":28,"patch":1,"classes":10,"attention":{"kind":"softmax"},"activation":"gelu","norm":"none"}`,
		`{"version":1,"task":"text","width":8,"depth":1,"heads":2,"hidden":8,"context":4,"vocab":256,"attention":{"kind":"softmax"},"activation":"gelu","norm":"none","poly":{"fit":{},"specs":[{"site":"a","kind":"exp","method":"chebyshev","interval":[-1,1],"coeffs":[1e300],"observed":[0,0]}]}}`,
		`{"width": 4} {}`, `[`, `{"version":1,"task":"text","width":-1}`,
	} {
		out = append(out, []byte(s))
	}
	return out
}

// FuzzDecodeConfig: DecodeConfig never panics, its errors are one line, an
// accepted config stays within the stated limits, and a small accepted
// config builds a model without panicking.
func FuzzDecodeConfig(f *testing.F) {
	for _, s := range configSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecodeConfig(t, data)
	})
}

func checkDecodeConfig(t *testing.T, data []byte) {
	c, err := DecodeConfig(data, Config{})
	if err != nil {
		require.NotContains(t, err.Error(), "\n")
		return
	}
	require.LessOrEqual(t, c.Width, MaxWidth)
	require.LessOrEqual(t, c.Depth, MaxDepth)
	require.LessOrEqual(t, c.Tokens(), MaxTokens)
	require.LessOrEqual(t, c.paramEstimate(), int64(MaxParams))
	if c.paramEstimate() <= 1<<14 {
		m, err := New(c)
		if err == nil {
			n := 0
			for _, p := range m.Params() {
				n += p.Value.Len()
			}
			require.LessOrEqual(t, int64(n), c.paramEstimate(), "the estimate bounds the real count")
		}
	}
}

// TestDecodeConfigMutations runs DecodeConfig on deterministic mutations of
// the seeds (a short fuzz run under plain `go test`, as in CI).
func TestDecodeConfigMutations(t *testing.T) {
	seeds := configSeeds(t)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 3000; i++ {
		b := append([]byte(nil), seeds[r.IntN(len(seeds))]...)
		for k := 1 + r.IntN(3); k > 0 && len(b) > 0; k-- {
			j := r.IntN(len(b))
			switch r.IntN(4) {
			case 0:
				b[j] = "0123456789"[r.IntN(10)]
			case 1:
				b = append(b[:j], append([]byte("9"), b[j:]...)...)
			case 2:
				b = append(b[:j], b[j+1:]...)
			case 3:
				b[j] ^= byte(1 << r.IntN(8))
			}
		}
		checkDecodeConfig(t, b)
	}
}

func TestConfigLimits(t *testing.T) {
	base, err := DefaultConfig(TaskText)
	require.NoError(t, err)
	for _, tc := range []struct {
		mod  func(c *Config)
		want string
	}{
		{func(c *Config) { c.Width = 1 << 24 }, "width = 16777216 exceeds the limit 4096"},
		{func(c *Config) { c.Depth = 1000 }, "depth = 1000 exceeds the limit 64"},
		{func(c *Config) { c.Heads = 512; c.Width = 1024 }, "heads = 512 exceeds the limit 256"},
		{func(c *Config) { c.Context = 1 << 20 }, "context = 1048576 exceeds the limit 4096"},
		{func(c *Config) { c.Width, c.Hidden, c.Depth = 4096, 16384, 64 }, "parameters, above the limit"},
		{func(c *Config) {
			c.Poly = &PolyConfig{Specs: []nn.PolySpec{{Site: "s", Spec: polyapprox.Spec{Method: "chebyshev", Interval: [2]float64{-1, 1}, Coeffs: []float64{0, 1e300}}}}}
		}, `coeffs[1] = 1e+300 is not finite or exceeds the limit`},
		{func(c *Config) {
			c.Poly = &PolyConfig{Specs: []nn.PolySpec{{Site: "s", Spec: polyapprox.Spec{Method: "chebyshev", Interval: [2]float64{-1e9, 1}, Coeffs: []float64{0}}}}}
		}, `interval[0] = -1e+09`},
	} {
		c := base
		tc.mod(&c)
		err := c.Validate()
		require.Error(t, err, tc.want)
		require.Contains(t, err.Error(), tc.want)
		require.NotContains(t, err.Error(), "\n")
		b, err := json.Marshal(c)
		require.NoError(t, err)
		_, err = DecodeConfig(b, Config{})
		require.ErrorContains(t, err, tc.want)
	}
	_, err = DecodeConfig([]byte(strings.Repeat(" ", MaxConfigBytes+1)), Config{})
	require.ErrorContains(t, err, "exceeds the limit")
}

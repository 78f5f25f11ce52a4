package compiler

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// CompileFor refuses a preset below 128-bit security unless the caller
// allows it, naming the preset, and compiles for it when allowed.
func TestCompileForRefusesInsecurePreset(t *testing.T) {
	m, _ := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	_, _, err := CompileFor(m, he.PresetTestN13, Options{Batch: 1})
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	require.ErrorContains(t, err, he.PresetTestN13)

	c, p, err := CompileFor(m, he.PresetTestN13, Options{Batch: 1, AllowInsecure: true})
	require.NoError(t, err)
	require.NotNil(t, c.Planned)
	require.Equal(t, 1, c.Layout.Batch)
	require.NotNil(t, p)
}

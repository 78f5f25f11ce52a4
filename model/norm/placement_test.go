package norm

import (
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

func newTestBlock(t *testing.T, method string, scaled bool, o nn.BlockOptions) *nn.Block {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	const d = 8
	attn, err := nn.NewMultiHeadAttention("b.attn", d, 2, 4, true, nn.NewSoftmax("b.attn"), false, rng)
	require.NoError(t, err)
	ffn, err := nn.NewFFN("b.ffn", d, 12, nn.ActGELU, 0, 0, rng)
	require.NoError(t, err)
	mk := func(name string) nn.Norm {
		n, err := NewWith(method, name, d, Options{})
		require.NoError(t, err)
		return n
	}
	if o.Placement == nn.PlacementPeri {
		o.Norm1Out, o.Norm2Out = mk("b.norm1_out"), mk("b.norm2_out")
	}
	b, err := nn.NewBlockWith("b", mk("b.norm1"), mk("b.norm2"), attn, ffn, scaled, o)
	require.NoError(t, err)
	perturb(b.Params(), 9)
	return b
}

func TestBlockPlacementsGradCheck(t *testing.T) {
	cases := map[string]nn.BlockOptions{
		"pre":      {},
		"post":     {Placement: nn.PlacementPost},
		"peri":     {Placement: nn.PlacementPeri},
		"lns":      {NormScale: 0.5},
		"deepnorm": {Placement: nn.PlacementPost, ResidScale: 1.7},
		"peri-lns": {Placement: nn.PlacementPeri, NormScale: 0.7, ResidScale: 1.2},
	}
	for name, o := range cases {
		for _, scaled := range []bool{false, true} {
			for _, method := range []string{MethodLayerNorm, MethodBatchNorm} {
				t.Run(name+"/"+method, func(t *testing.T) {
					b := newTestBlock(t, method, scaled, o)
					for _, n := range b.Norms() {
						if tr, ok := n.(nn.Trainable); ok {
							tr.SetTraining(true)
						}
					}
					res := nn.CheckModule(b, randInput(3, 2, 4, 8), false, nil, nil, 1e-5, 0, 11)
					require.NotEmpty(t, res)
					byName := map[string]*nn.Param{}
					for _, p := range b.Params() {
						byName[p.Name] = p
					}
					for _, r := range res {
						if r.AggRelErr < 1e-6 {
							continue
						}
						// a bias right before a training-mode BatchNorm (post,
						// peri output) has an exactly zero gradient: the batch
						// mean removes it, and a relative error of rounding
						// noise means nothing. Require that, nothing else.
						p := byName[r.Name]
						require.NotNil(t, p, r.String())
						require.Equal(t, MethodBatchNorm, method, r.String())
						require.NotEqual(t, "", o.Placement, r.String())
						require.Less(t, p.Grad.Norm2(), 1e-9, r.String())
					}
				})
			}
		}
	}
}

// TestPlacementsComputeTheirFormulas checks the forward of each placement
// against its definition written out with the block's own layers.
func TestPlacementsComputeTheirFormulas(t *testing.T) {
	x := randInput(4, 2, 4, 8)
	add := func(a *nn.Tensor, sa float64, b *nn.Tensor, sb float64) *nn.Tensor {
		y := nn.New(a.Shape...)
		for i := range y.Data {
			y.Data[i] = sa*a.Data[i] + sb*b.Data[i]
		}
		return y
	}
	scale := func(a *nn.Tensor, s float64) *nn.Tensor { return add(a, s, a, 0) }
	check := func(got, want *nn.Tensor) {
		for i := range want.Data {
			require.InDelta(t, want.Data[i], got.Data[i], 1e-12)
		}
	}
	b := newTestBlock(t, MethodLayerNorm, false, nn.BlockOptions{Placement: nn.PlacementPost, ResidScale: 1.5})
	h := b.Norm1.Forward(add(x, 1.5, b.Attn.Forward(x), 1))
	check(b.Forward(x), b.Norm2.Forward(add(h, 1.5, b.FFN.Forward(h), 1)))

	b = newTestBlock(t, MethodLayerNorm, false, nn.BlockOptions{Placement: nn.PlacementPeri})
	h = add(x, 1, b.Norm1Out.Forward(b.Attn.Forward(b.Norm1.Forward(x))), 1)
	check(b.Forward(x), add(h, 1, b.Norm2Out.Forward(b.FFN.Forward(b.Norm2.Forward(h))), 1))
	require.Len(t, b.Norms(), 4)
	require.Len(t, b.Sites(), 4+2+1) // four norms, softmax exp and recip, GELU

	b = newTestBlock(t, MethodLayerNorm, false, nn.BlockOptions{NormScale: 0.5})
	h = add(x, 1, b.Attn.Forward(scale(b.Norm1.Forward(x), 0.5)), 1)
	check(b.Forward(x), add(h, 1, b.FFN.Forward(scale(b.Norm2.Forward(h), 0.5)), 1))

	rng := rand.New(rand.NewPCG(1, 1))
	attn, err := nn.NewMultiHeadAttention("a", 8, 2, 4, true, nn.NewSoftmax("a"), false, rng)
	require.NoError(t, err)
	_, err = nn.NewBlockWith("b", None{}, None{}, attn, nil, false, nn.BlockOptions{Placement: nn.PlacementPeri})
	require.ErrorContains(t, err, "output norms")
	_, err = nn.NewBlockWith("b", None{}, None{}, attn, nil, false, nn.BlockOptions{Placement: "inside"})
	require.ErrorContains(t, err, "unknown placement")
}

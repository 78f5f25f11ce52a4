package compiler

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
)

// TestEncryptedVarPenalizedNorms trains a tiny LayerNorm (and RMSNorm) model
// a few steps with the variance range penalty on every norm's inverse square
// root, calibrates it on the target, compiles it and checks encrypted =
// simulator at the bootstrapping test preset, and that the compiled norms'
// levels and relinearizations are those norm.InvSqrtNormCost (and so
// norm.CostOf) counts for the fitted plan.
func TestEncryptedVarPenalizedNorms(t *testing.T) {
	const lo, hi = 0.8, 1.25
	for _, method := range []string{norm.MethodLayerNorm, norm.MethodRMSNorm} {
		t.Run(method, func(t *testing.T) {
			fit := shallowFit()
			fit.Degree = 3 // depth 2: what one bootstrap of the test preset leaves
			m, b := tinyMNIST(t, func(c *model.Config) {
				c.Norm = method
				c.Attention.P = 2
				c.Attention.Eps = 0.5
				c.Activation = nn.ActQuad
			}, fit)
			targets := map[string]model.Target{}
			var pens []*nn.RangePenalty
			for _, n := range m.Norms() {
				vn := n.(interface{ SetVarPenalty(*nn.RangePenalty) })
				site := n.Sites()[0].Name
				pen, err := nn.NewRangePenalty(site, lo, hi, 10)
				require.NoError(t, err)
				vn.SetVarPenalty(pen)
				defer vn.SetVarPenalty(nil)
				pens = append(pens, pen)
				targets[site] = model.Target{Lo: lo, Hi: hi}
			}
			train := synthImages(m.Cfg, 16, 4)
			var first, last float64
			for step := 0; step < 30; step++ {
				_, err := m.Step(train)
				require.NoError(t, err)
				var v float64
				for _, p := range pens {
					v += p.Value()
				}
				if step == 0 {
					first = v
				}
				last = v
				for _, p := range m.Params() {
					for i, g := range p.Grad.Data {
						p.Value.Data[i] -= 0.02 * g
						p.Grad.Data[i] = 0
					}
				}
			}
			t.Logf("variance penalty %.3g -> %.3g", first, last)
			require.LessOrEqual(t, last, first)
			cal := []model.Batch{synthImages(m.Cfg, 16, 1), synthImages(m.Cfg, 16, 2)}
			require.NoError(t, m.Calibrate(cal, fit, targets))
			c, err := Compile(m, CompileOptions{Batch: 2})
			require.NoError(t, err)
			rep := encryptedRun(t, m, c, b, he.PresetTestBootN13, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true}, 1e-4)
			layers := map[string]circuit.LayerReport{}
			for _, l := range rep.Layers {
				layers[l.Layer] = l
			}
			for _, s := range m.Cfg.Poly.Specs {
				if s.Kind != nn.FnInvSqrt {
					continue
				}
				plan, err := s.Newton()
				require.NoError(t, err)
				layer := strings.TrimSuffix(s.Site, ".invsqrt")
				t.Logf("%s: interval [%.3g, %.3g] observed [%.3g, %.3g]: newton depth %d ct-mults %d; compiled depth %d relins %d rotations %d",
					s.Site, s.Interval[0], s.Interval[1], s.Observed[0], s.Observed[1], plan.Depth(), plan.CtMults(),
					layerDepth(c, layer), layers[layer].Relinearizations, layers[layer].Rotations)
				// what norm.CostOf counts is what the compiler emits
				depth, mults := norm.InvSqrtNormCost(method, plan.Depth(), plan.CtMults())
				require.Equal(t, depth, layerDepth(c, layer), layer)
				require.Equal(t, mults, layers[layer].Relinearizations, layer)
			}
		})
	}
}

// layerDepth returns the levels the ops labelled label consume on their
// longest path, from their inputs to their output.
func layerDepth(c *circuit.Circuit, label string) int {
	depth := make([]int, len(c.Ops))
	best := 0
	for i, op := range c.Ops {
		if op.Label != label {
			continue
		}
		d := 0
		for _, in := range op.In {
			if c.Ops[in].Label == label {
				d = max(d, depth[in])
			}
		}
		depth[i] = d + op.Levels()
		best = max(best, depth[i])
	}
	return best
}

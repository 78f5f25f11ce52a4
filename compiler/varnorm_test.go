package compiler

import (
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
// simulator at the bootstrapping test preset; the compiled norms' levels and
// relinearizations are logged next to norm.CostOf's at the fitted interval.
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
			for _, s := range m.Cfg.Poly.Specs {
				if s.Kind != nn.FnInvSqrt {
					continue
				}
				dinv, minv, err := norm.InvSqrtCost(s.Interval)
				require.NoError(t, err)
				t.Logf("%s: interval [%.3g, %.3g] observed [%.3g, %.3g]: CostOf invsqrt depth %d ct-mults %d", s.Site, s.Interval[0], s.Interval[1], s.Observed[0], s.Observed[1], dinv, minv)
			}
			for _, l := range rep.Layers {
				t.Logf("layer %s: levels %d -> %d, relins %d, rotations %d", l.Layer, l.LevelIn, l.LevelOut, l.Relinearizations, l.Rotations)
			}
		})
	}
}

package train

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
)

// TestVarRangePenalty trains a tiny LayerNorm and RMSNorm model with and
// without the variance penalty: with it, every norm's inverse-square-root
// input ends inside (or much closer to) the target, and calibration fits the
// inverse square root on the hull of the target and the observed range.
func TestVarRangePenalty(t *testing.T) {
	for _, method := range []string{norm.MethodLayerNorm, norm.MethodRMSNorm} {
		t.Run(method, func(t *testing.T) {
			cfg := tinyCfg(t, model.TaskMNIST)
			cfg.Norm = method
			ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), cfg)
			require.NoError(t, err)
			run := func(r RangeOptions) (*Result, []nn.PolySpec) {
				o := opts(t.TempDir())
				o.Dataset, o.CalibBatches, o.Steps, o.LR = ds, 4, 60, 3e-2
				o.Range = r
				res, err := Run(context.Background(), cfg, o, nil)
				require.NoError(t, err)
				require.NotNil(t, res.Config.Poly)
				var specs []nn.PolySpec
				for _, s := range res.Config.Poly.Specs {
					if s.Kind == nn.FnInvSqrt {
						specs = append(specs, s)
					}
				}
				require.Len(t, specs, 3, "two block norms and the final norm")
				return res, specs
			}
			spread := func(specs []nn.PolySpec) float64 {
				w := 0.0
				for _, s := range specs {
					w = max(w, s.Observed[1]/s.Observed[0])
				}
				return w
			}
			_, free := run(RangeOptions{})
			res, bound := run(RangeOptions{Weight: 10, VarLo: 0.5, VarHi: 2})
			require.Len(t, res.RangeStats, 3, "one variance penalty per norm")
			for _, s := range bound {
				require.LessOrEqual(t, s.Interval[0], 0.5, s.Site)
				require.GreaterOrEqual(t, s.Interval[1], 2.0, s.Site)
				require.LessOrEqual(t, s.Interval[0], s.Observed[0], s.Site)
				require.GreaterOrEqual(t, s.Interval[1], s.Observed[1], s.Site)
			}
			require.Less(t, spread(bound), spread(free), "the penalty narrows max/min of the variances")
		})
	}
	for _, r := range []RangeOptions{{Weight: 1, VarLo: 2, VarHi: 1}, {Weight: 1, VarHi: 1}, {Weight: 1, VarLo: 1}, {Weight: 1, VarLo: -1, VarHi: 1}} {
		_, err := AttachRangePenalties(nil, r)
		require.ErrorContains(t, err, "var_", "%+v", r)
	}
}

package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/nn"
)

// recordedRangeKD is a byte LM (width 32, 4 heads, hidden 128, 2 blocks,
// context 64; shifted p = 4 + weight norm, range regularization of the
// normalizer to [1, 1000] with weight 10, distillation from a softmax +
// LayerNorm model; 256 steps) whose poly mode failed on held-out window
// batch 8 like the frontier's range + distillation run. Its directory holds
// the checkpoint with the polynomial forms its training run calibrated on
// 16 training batches, those 16 batches (calib.bytes) and the 32 held-out
// windows of batch 8 (heldout.bytes), each window as its 65 bytes.
const recordedRangeKD = "testdata/range-kd"

// windowBatch cuts raw into windows of t+1 bytes (inputs and the next byte).
func windowBatch(t *testing.T, path string, ctx int) model.Batch {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Zero(t, len(raw)%(ctx+1), "%s: not whole windows of %d bytes", path, ctx+1)
	b := model.Batch{B: len(raw) / (ctx + 1), T: ctx}
	for w := 0; w < b.B; w++ {
		win := raw[w*(ctx+1) : (w+1)*(ctx+1)]
		for i := 0; i < ctx; i++ {
			b.Inputs = append(b.Inputs, int(win[i]))
			b.Targets = append(b.Targets, int(win[i+1]))
		}
	}
	return b
}

// The recorded failure: on held-out batch 8 (a run of the rune sequence
// ☺☻☹ repeated some 40 times), block 0's row normalizer reaches 2320,
// above its reciprocal's interval [0.416, 2200] (the range target's upper
// end 1000 with margin and headroom; the 16 calibration batches' largest
// normalizer was 712), where Goldschmidt's 1/x overflows; NaN then reaches
// every later site. Calibration with the repetition bound covers it.
func TestRecordedRangeKDPolyFailure(t *testing.T) {
	m, err := checkpoint.Load(recordedRangeKD)
	require.NoError(t, err)
	ctx := m.Cfg.Context
	held := windowBatch(t, filepath.Join(recordedRangeKD, "heldout.bytes"), ctx)
	calib := windowBatch(t, filepath.Join(recordedRangeKD, "calib.bytes"), ctx)
	require.Equal(t, 32, held.B)
	require.Equal(t, 16*32, calib.B)

	// the forms the run calibrated: the failure, named by its first site
	require.NoError(t, m.SetMode(nn.ModePoly))
	_, err = m.Evaluate([]model.Batch{held})
	require.ErrorContains(t, err, "loss is not finite")
	require.ErrorContains(t, err, "poly mode: site blocks.0.attn.shifted.recip (recip): 2 of 8192 inputs outside [0.4161, 2200], inputs in [1.073, 2320], 2 non-finite outputs; site blocks.0.ffn.act.gelu")
	require.NoError(t, m.SetMode(nn.ModeExact))

	// calibrated again the same way (the same 16 batches, fit options and
	// range targets as the run), now with the repetition bound
	pens, err := AttachRangePenalties(m, RangeOptions{Weight: 10, RecipLo: 1, RecipHi: 1000})
	require.NoError(t, err)
	targets := pens.Targets
	pens.Detach()
	batches := make([]model.Batch, 16)
	for i := range batches {
		batches[i] = model.Batch{B: 32, T: ctx, Inputs: calib.Inputs[i*32*ctx : (i+1)*32*ctx], Targets: calib.Targets[i*32*ctx : (i+1)*32*ctx]}
	}
	require.NoError(t, m.Calibrate(batches, m.Cfg.Poly.Fit, targets))
	m.ResetPolyStats()
	require.NoError(t, m.SetMode(nn.ModePoly))
	pr, err := m.Evaluate([]model.Batch{held})
	require.NoError(t, err)
	for _, s := range m.Cfg.Poly.Specs {
		if s.Site == "blocks.0.attn.shifted.recip" {
			require.InDelta(t, 712, s.Observed[1], 1, "the same calibration data as the run")
			require.Greater(t, s.Interval[1], 2320.0)
		}
	}
	for _, st := range m.PolyStats() {
		// above the interval Goldschmidt overflows; below it (one block-1
		// row normalizer of 0.069 under 0.42 here) it only underestimates
		require.LessOrEqual(t, st.Inputs[1], st.Interval[1], st.Site)
		require.Zero(t, st.NonFinite, st.Site)
	}
	require.NoError(t, m.SetMode(nn.ModeExact))
	ex, err := m.Evaluate([]model.Batch{held})
	require.NoError(t, err)
	require.InEpsilon(t, ex.Loss, pr.Loss, 0.01, "poly mode = exact mode on the failing windows")
}

package compiler

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// splitShape gives tinyMNIST 16 tokens of 4 pixels (2x2 patches), width 8
// and an FFN hidden of 32: the stream's stride is 8 channels, the widest
// activation's 32, so Block 8 carries the hidden over 4 ciphertexts.
func splitShape(c *model.Config) {
	c.Patch, c.Hidden = 2, 32
}

// ffnOps counts the linear ops of a layer and the distinct hoisting groups
// among them.
func ffnOps(c *circuit.Circuit, label string) (linear int, groups map[int]bool) {
	groups = map[int]bool{}
	for _, op := range c.Ops {
		if op.Label == label && op.Kind == circuit.KindLinear {
			linear++
			groups[op.Group] = true
		}
	}
	return linear, groups
}

// The channel-block split at every stride the model allows: the simulated
// circuit reproduces poly mode, ffn.up is k transforms of one hoisting
// group, ffn.down k transforms, and the layout records k.
func TestChannelSplitSimulatorMatchesPolyMode(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	for name, mod := range map[string]func(c *model.Config){
		"gelu-none":      splitShape,
		"layernorm-poly": func(c *model.Config) { splitShape(c); c.Norm, c.Activation = "layernorm", nn.ActPoly },
		"rmsnorm-quad-scaled-2blocks-hidden-not-pow2": func(c *model.Config) {
			splitShape(c)
			c.Hidden, c.Norm, c.Activation, c.ScaledResidual, c.Depth = 20, "rmsnorm", nn.ActQuad, true, 2
		},
	} {
		t.Run(name, func(t *testing.T) {
			m, b := tinyMNIST(t, mod, fit)
			want := polyLogits(t, m, b)
			for _, block := range []int{8, 16, 0} {
				c, err := Compile(m, CompileOptions{Batch: 2, Block: block})
				require.NoError(t, err)
				k := c.Layout.Ciphertexts()
				require.Equal(t, channelBlocks(m.Cfg.Hidden, c.Layout.Block), k)
				up, groups := ffnOps(c, "blocks.0.ffn.up")
				require.Equal(t, k, up, "block %d: ffn.up transforms", block)
				require.Len(t, groups, 1, "block %d: ffn.up is one hoisting group", block)
				down, _ := ffnOps(c, "blocks.0.ffn.down")
				require.Equal(t, k, down, "block %d: ffn.down transforms", block)
				got := simLogits(t, c, b, m.Cfg)
				require.Less(t, maxAbsDiff(want, got), 1e-9, "block %d (%d ciphertexts): want %v got %v", block, k, want, got)
			}
		})
	}
}

// The LM's split: byte inputs make the stream 256 channels wide; an FFN
// hidden of 1024 spans 4 ciphertexts.
func TestChannelSplitSimulatorMatchesPolyModeLM(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	m, b := tinyText(t, func(c *model.Config) { c.Hidden = 1024 }, fit)
	require.NoError(t, m.SetMode(nn.ModePoly))
	lg, err := m.Logits(b)
	require.NoError(t, err)
	require.NoError(t, m.SetMode(nn.ModeExact))
	c, err := Compile(m, CompileOptions{Batch: 2, Block: 256})
	require.NoError(t, err)
	require.Equal(t, 4, c.Layout.Ciphertexts())
	got := textSimLogits(t, c, b)
	worst := 0.0
	for i := range got {
		for j, v := range got[i] {
			worst = math.Max(worst, math.Abs(v-lg.Data[i*len(got[i])+j]))
		}
	}
	require.Less(t, worst, 1e-9)
}

// Encrypted = simulated (within the predicted error) on a model whose FFN
// hidden spans 4 ciphertexts, the key spec exact (checkTraceKeyLevels),
// and the dry run's key switches per layer equal to what the executor's
// trace records.
func TestChannelSplitEncrypted(t *testing.T) {
	m, b := tinyMNIST(t, func(c *model.Config) {
		splitShape(c)
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 4, Block: 8})
	require.NoError(t, err)
	require.Equal(t, 4, c.Layout.Ciphertexts())
	const tol = 1e-5
	rep := encryptedRun(t, m, c, b, he.PresetTestN13, circuit.PlanOptions{}, tol)
	requirePredictionsCarried(t, polyLogits(t, m, b), tol)
	requireDryRunKeySwitches(t, rep, b.B/c.Layout.Batch)
}

// requirePredictionsCarried checks that every row of poly-mode logits has
// a margin above 2·tol: encrypted within tol of the simulator, which is
// within 1e-9 of poly mode, then gives poly mode's prediction.
func requirePredictionsCarried(t *testing.T, logits [][]float64, tol float64) {
	t.Helper()
	for i, lg := range logits {
		top, second := math.Inf(-1), math.Inf(-1)
		for _, v := range lg {
			if v > top {
				top, second = v, top
			} else if v > second {
				second = v
			}
		}
		require.Greater(t, top-second, 2*tol+1e-9, "row %d: margin too small to carry poly mode's prediction", i)
	}
}

// requireDryRunKeySwitches checks the dry run's key switches per layer
// against the executor's trace over nbatch batches of inputs.
func requireDryRunKeySwitches(t *testing.T, rep *circuit.Report, nbatch int) {
	t.Helper()
	for _, l := range rep.Layers {
		require.Equal(t, l.KeySwitches*nbatch, l.MeasuredKeySwitches, "layer %s (%d batches)", l.Layer, nbatch)
	}
}

// MaxBatch picks the full stride when one input fits a ring, the stream's
// (the FFN hidden split) when only that fits, the token-block split when
// even the stream's tokens do not fit, and names every need otherwise.
func TestMaxBatchChannelSplit(t *testing.T) {
	m, _ := tinyMNIST(t, splitShape, shallowFit())
	for _, tc := range []struct{ slots, batch, block, tokenBlock int }{
		{1024, 2, 32, 16}, {512, 1, 32, 16}, {256, 2, 8, 16}, {128, 1, 8, 16}, {64, 1, 8, 8}, {8, 1, 8, 1},
	} {
		pk, err := MaxBatch(m, tc.slots)
		require.NoError(t, err)
		require.Equal(t, Packing{tc.batch, tc.block, tc.tokenBlock}, pk, "%d slots", tc.slots)
	}
	_, err := MaxBatch(m, 4)
	require.ErrorContains(t, err, "16 tokens × 32 channels = 512 slots, the ring has 4")
	require.ErrorContains(t, err, "the FFN hidden over 4 ciphertexts")
	require.ErrorContains(t, err, "16 tokens × 8 channels = 128 slots")
	require.True(t, strings.Contains(err.Error(), "one token's 8 channels in one ring"))
}

// CompileFor splits a model whose FFN hidden does not fit the ring
// (16 tokens × 512 channels > 4096 slots of test-n13; the stream is 16
// channels wide) and the dry run reports it.
func TestCompileForChoosesChannelSplit(t *testing.T) {
	m, _ := tinyMNIST(t, func(c *model.Config) {
		splitShape(c)
		c.Width, c.Hidden = 16, 512
		c.Activation = nn.ActQuad
		c.Attention.P = 2
		c.Attention.Eps = 0.5
	}, shallowFit())
	_, err := Compile(m, CompileOptions{Block: 4})
	require.ErrorContains(t, err, "channel block 4: want a power of two in [16, 512]")
	c, p, err := CompileFor(m, he.PresetTestN13, Options{Batch: 1, AllowInsecure: true})
	require.NoError(t, err)
	require.Equal(t, 16, c.Layout.Block)
	require.Equal(t, 32, c.Layout.Ciphertexts())
	rep, err := circuit.NewReport(c, p)
	require.NoError(t, err)
	require.Equal(t, 32, rep.Layout.ChannelBlocks)
	var tbl bytes.Buffer
	require.NoError(t, rep.WriteTable(&tbl))
	require.Contains(t, tbl.String(), "the widest activation spans 32 ciphertexts")
	// the circuit file carries the split; the decoder refuses a bad count
	var buf bytes.Buffer
	require.NoError(t, circuit.WriteCircuitFor(&buf, c, p))
	back, err := circuit.DecodeCircuit(buf.Bytes(), p)
	require.NoError(t, err)
	require.Equal(t, c, back)
	bad := bytes.Replace(buf.Bytes(), []byte(`"channel_blocks":32`), []byte(`"channel_blocks":-3`), 1)
	require.NotEqual(t, buf.Bytes(), bad)
	_, err = circuit.DecodeCircuit(bad, p)
	require.ErrorContains(t, err, "channel blocks -3")
}

// The BERT-base shape (width 768, 12 heads, hidden 3072, 128 tokens)
// needs the token-block split: its stream alone exceeds an n16 ring, so
// MaxBatch splits the tokens over 4 ciphertexts of 32 (and the hidden over
// 3 channel blocks).
func TestMaxBatchBERTBaseTokenSplit(t *testing.T) {
	cfg, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	cfg.Width, cfg.Heads, cfg.Hidden, cfg.Context, cfg.Depth = 768, 12, 3072, 128, 12
	pk, err := MaxBatch(&model.Model{Cfg: cfg}, 1<<15)
	require.NoError(t, err)
	require.Equal(t, Packing{Batch: 1, Block: 1024, TokenBlock: 32}, pk)
}

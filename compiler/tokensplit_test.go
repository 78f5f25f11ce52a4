package compiler

import (
	"bytes"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// The token-block split at every block size of a classifier and an LM,
// alone and with the channel split: the simulated circuit reproduces poly
// mode and the unsplit circuit's simulation, and the layout records the
// split.
func TestTokenSplitSimulatorMatchesPolyMode(t *testing.T) {
	fit := nn.DefaultFitOptions()
	fit.Degree = 15
	t.Run("mnist", func(t *testing.T) {
		m, b := tinyMNIST(t, splitShape, fit)
		want := polyLogits(t, m, b)
		un, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: true})
		require.NoError(t, err)
		unsplit := simLogits(t, un, b, m.Cfg)
		for _, block := range []int{0, 8} {
			for _, tb := range []int{1, 2, 4, 8, 16} {
				c, err := Compile(m, CompileOptions{Batch: 2, Block: block, TokenBlock: tb})
				require.NoError(t, err)
				require.Equal(t, 16/tb, c.Layout.NumTokenBlocks())
				require.Equal(t, tb, c.Layout.BlockTokens())
				got := simLogits(t, c, b, m.Cfg)
				require.Less(t, maxAbsDiff(want, got), 1e-9, "block %d, token block %d: want %v got %v", block, tb, want, got)
				require.Less(t, maxAbsDiff(unsplit, got), 1e-9, "block %d, token block %d vs unsplit", block, tb)
			}
		}
	})
	for name, mod := range map[string]func(c *model.Config){
		"lm-power-softmax": nil,
		"lm-softmax-temp": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnSoftmax, Temperature: true}
		},
		"lm-powerfixed-layernorm-2blocks": func(c *model.Config) {
			c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
			c.Norm, c.Depth = "layernorm", 2
		},
		"lm-hidden-split": func(c *model.Config) { c.Hidden = 1024 },
	} {
		t.Run(name, func(t *testing.T) {
			m, b := tinyText(t, mod, fit)
			un, err := Compile(m, CompileOptions{Batch: 2, OneDiagonalPerCiphertext: true})
			require.NoError(t, err)
			unsplit := textSimLogits(t, un, b)
			want := textPolyLogits(t, m, b, len(unsplit), len(unsplit[0]))
			for _, tb := range []int{1, 2, 4} {
				c, err := Compile(m, CompileOptions{Batch: 2, Block: 256, TokenBlock: tb})
				require.NoError(t, err)
				require.Equal(t, 8/tb, c.Layout.OutputCiphertexts())
				got := textSimLogits(t, c, b)
				require.Less(t, maxAbsDiff(want, got), 1e-9, "token block %d vs poly mode", tb)
				require.Less(t, maxAbsDiff(unsplit, got), 1e-9, "token block %d vs unsplit", tb)
			}
		})
	}
}

// tokenSplitShape is a shallow classifier with 16 tokens and an FFN hidden
// of 32 (splitShape) the encrypted tests run at test-n13.
func tokenSplitShape(c *model.Config) {
	splitShape(c)
	c.Attention.P = 2
	c.Attention.Eps = 0.5
	c.Activation = nn.ActQuad
}

// Encrypted = simulated within the predicted error on a classifier split
// by tokens only (2 ciphertexts per input) and by tokens and channels (2
// token blocks × the hidden over 4 channel blocks): the key spec is exact
// (encryptedRun), the dry run's key switches per layer equal the trace's,
// and the predictions are poly mode's.
func TestTokenSplitEncrypted(t *testing.T) {
	m, b := tinyMNIST(t, tokenSplitShape, shallowFit())
	const tol = 1e-5
	for name, opt := range map[string]CompileOptions{
		"tokens":          {Batch: 2, TokenBlock: 8},
		"tokens+channels": {Batch: 2, TokenBlock: 8, Block: 8},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Compile(m, opt)
			require.NoError(t, err)
			require.Equal(t, 2, c.Layout.NumTokenBlocks())
			rep := encryptedRun(t, m, c, b, he.PresetTestN13, circuit.PlanOptions{}, tol)
			require.Equal(t, 2, rep.Layout.TokenBlocks)
			requirePredictionsCarried(t, polyLogits(t, m, b), tol)
			requireDryRunKeySwitches(t, rep, b.B/c.Layout.Batch)
		})
	}
}

// Encrypted = simulated within the predicted error (at test-boot-n13 with
// the secret-key test bootstrapper) on a causal LM whose
// activations span 2 token blocks × 4 channel blocks (the FFN hidden of
// 1024 at the byte stream's 256 channels); the simulator equals poly
// mode, the keys the executor used are the spec's, and the dry run's key
// switches per layer are the trace's.
func TestTokenSplitEncryptedLM(t *testing.T) {
	m, b := tinyText(t, func(c *model.Config) {
		c.Attention.P = 2
		c.Attention.Eps = 0.5
		c.Activation = nn.ActQuad
		c.Hidden = 1024
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 1, Block: 256, TokenBlock: 4})
	require.NoError(t, err)
	require.Equal(t, [2]int{2, 4}, [2]int{c.Layout.NumTokenBlocks(), c.Layout.Ciphertexts()})
	p, err := he.ParametersFromPreset(he.PresetTestBootN13)
	require.NoError(t, err)
	pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true})
	require.NoError(t, err)
	spec := pc.Planned.Keys.KeySpec()
	spec.Bootstrapping = false // the secret-key test bootstrapper needs none
	sk, evk, err := he.GenerateKeys(p, spec)
	require.NoError(t, err)
	client, err := he.NewClient(p, sk)
	require.NoError(t, err)
	btp, err := he.NewSecretKeyBootstrapper(p, sk)
	require.NoError(t, err)
	vecs, err := pc.EncodeBytes(b.Inputs, b.B, b.T)
	require.NoError(t, err)
	require.Len(t, vecs, 2)
	require.Len(t, vecs[0], 2*pc.Layout.Slots())
	eo := circuit.ExecOptions{Chunk: 1, Trace: he.NewTrace(), Bootstrapper: btp}
	rep, dec, err := circuit.Bench(pc, p, evk, client, vecs, eo)
	require.NoError(t, err)
	got, err := pc.DecodeLogits(dec, b.B)
	require.NoError(t, err)
	sim := textSimLogits(t, pc, b)
	want := textPolyLogits(t, m, b, len(sim), len(sim[0]))
	require.Less(t, maxAbsDiff(want, sim), 1e-9, "simulator vs poly mode")
	e := maxAbsDiff(sim, got)
	t.Logf("LM 2 token blocks x 4 channel blocks: max |encrypted - simulated| %.3g (predicted 2^%.1f), bootstraps %d, key switches %d, rotation keys %d",
		e, rep.PredictedLog2Err, rep.Bootstraps, rep.KeySwitches, rep.RotationKeys)
	require.Less(t, e, 1e-4)
	require.Less(t, math.Log2(e), rep.PredictedLog2Err, "the dry run's precision prediction holds")
	checkTraceKeyLevels(t, pc, p, eo.Trace)
	requireDryRunKeySwitches(t, rep, len(vecs))
	requirePredictionsCarried(t, want, 1e-4)
}

// Compile refuses token blocks that do not divide the tokens and the
// packed layouts that are not split.
func TestTokenSplitRefuses(t *testing.T) {
	m, _ := tinyMNIST(t, splitShape, shallowFit())
	_, err := Compile(m, CompileOptions{TokenBlock: 3})
	require.ErrorContains(t, err, "token block 3: want a power of two in [1, 16]")
	_, err = Compile(m, CompileOptions{TokenBlock: 4, CompactAttention: true})
	require.ErrorContains(t, err, "compact and legacy packed attention layouts are not split")
}

// CompileFor splits the tokens of an LM whose stream does not fit the ring
// (32 tokens × 256 channels > 4096 slots of test-n13): 2 token blocks
// of 16; the dry run reports the split, the circuit file carries it and the
// decoder refuses a bad count.
func TestCompileForChoosesTokenSplit(t *testing.T) {
	m, _ := tinyText(t, func(c *model.Config) {
		c.Context = 32
		c.Attention = model.AttentionConfig{Kind: model.AttnPowerFixed, P: 2}
		c.Activation, c.Norm = nn.ActQuad, "none"
	}, shallowFit())
	c, p, err := CompileFor(m, he.PresetTestN13, Options{AllowInsecure: true})
	require.NoError(t, err)
	require.Equal(t, [3]int{2, 16, 1}, [3]int{c.Layout.TokenBlocks, c.Layout.BlockTokens(), c.Layout.Batch})
	rep, err := circuit.NewReport(c, p)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Layout.TokenBlocks)
	var tbl bytes.Buffer
	require.NoError(t, rep.WriteTable(&tbl))
	require.Contains(t, tbl.String(), "token-block split: the tokens of an input span 2 ciphertexts of 16 tokens (2 input and 2 output ciphertexts per batch of inputs)")
	var buf bytes.Buffer
	require.NoError(t, circuit.WriteCircuitFor(&buf, c, p))
	back, err := circuit.DecodeCircuit(buf.Bytes(), p)
	require.NoError(t, err)
	require.Equal(t, c, back)
	for bad, msg := range map[string]string{
		`"token_blocks":3`:   "token blocks 3 must be 0 or a power of two dividing tokens 32",
		`"token_blocks":64`:  "token blocks 64 must be 0 or a power of two dividing tokens 32",
		`"token_blocks":-1`:  "token blocks -1",
		`"token_blocks":128`: "token blocks 128",
	} {
		b := bytes.Replace(buf.Bytes(), []byte(`"token_blocks":2`), []byte(bad), 1)
		require.NotEqual(t, buf.Bytes(), b)
		_, err = circuit.DecodeCircuit(b, p)
		require.ErrorContains(t, err, msg, bad)
	}
	// one input op fewer than the token blocks: refused
	var ops []circuit.Op
	ops = append(ops, c.Ops...)
	ops[1] = circuit.Op{Kind: circuit.KindAddConst, In: []int{0}, Label: "input", Ref: ops[1].Ref}
	bad := *c
	bad.Ops = ops
	require.ErrorContains(t, bad.Validate(), "circuit must start with its 2 input ops (one per token block); op 1 is add_const")
}

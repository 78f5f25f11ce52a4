package compiler

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// lnTextModel is the LayerNorm text model of issue 15 (width 64, 2 blocks,
// 32 tokens, default attention and activation), made deterministically
// and calibrated on synthetic text the way the other compiler tests build
// their models.
func lnTextModel(t *testing.T) *model.Model {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskText)
	require.NoError(t, err)
	c.Width, c.Depth, c.Context = 64, 2, 32 // the default heads (4) and hidden width (256)
	c.Norm = "layernorm"
	m, err := model.New(c)
	require.NoError(t, err)
	fit := nn.DefaultFitOptions()
	fit.Degree = 31 // with this fit the old placement bootstrapped 31 rotated copies of K in block 1 (65 bootstraps)
	require.NoError(t, m.Calibrate([]model.Batch{synthText(c, 8, 1), synthText(c, 8, 2)}, fit, nil))
	return m
}

// bootstrapsAfterRotation counts the bootstrap ops of a planned circuit
// whose input is a rotation (a rotated copy bootstrapped instead of the
// value before the fan-out), and the bootstraps per layer.
func bootstrapsAfterRotation(c *circuit.Circuit) (int, map[string]int) {
	n := 0
	per := map[string]int{}
	for _, op := range c.Ops {
		if op.Kind != circuit.KindBootstrap {
			continue
		}
		per[op.Label]++
		if k := c.Ops[op.In[0]].Kind; k == circuit.KindRotate {
			n++
		}
	}
	return n, per
}

func TestBootstrapPlacementLayerNorm(t *testing.T) {
	if testing.Short() {
		t.Skip("plans a 2-block model at n16-boot")
	}
	m := lnTextModel(t)
	greedy, c := planBoth(t, compileAt(t, m, he.PresetN16Boot), he.PresetN16Boot, false)
	after, per := bootstrapsAfterRotation(c)
	t.Logf("%d bootstraps per ciphertext (greedy %d; depth %d), per layer %v", c.Planned.Bootstraps, greedy.Planned.Bootstraps, c.Depth(), per)
	require.Zero(t, after, "bootstraps on rotated copies: %v", per)
	require.Zero(t, per["blocks.1.attn.rotk"]+per["blocks.0.attn.rotk"])
	require.LessOrEqual(t, c.Planned.Bootstraps, greedy.Planned.Bootstraps)
	// Recorded: 65 bootstraps before the fan-out rule, 26 after it; 27 since
	// calibration fits the shifted kernel's reciprocal up to its repetition
	// bound (model/repetition.go): depth 105 -> 107, block 0's reciprocal 5
	// -> 6 bootstraps, measured on the commit before and after; 18 with the
	// placement on the cheapest cut (greedy: 27).
	require.LessOrEqual(t, c.Planned.Bootstraps, 18, "recorded: 18 bootstraps per ciphertext (27 with the greedy placement, 65 before the fan-out rule)")
	// the plan still executes exactly the circuit: simulator = poly mode
	b := synthText(m.Cfg, 2, 3)
	require.Less(t, maxAbsDiff(textPolyLogits(t, m, b, b.B, b.T*m.Cfg.Vocab), textSimLogits(t, c, b)), 1e-6)
}

// planBoth plans c on preset with bootstraps at the greedy placement and at
// the chosen one.
func planBoth(t *testing.T, c *circuit.Circuit, preset string, skBoot bool) (greedy, chosen *circuit.Circuit) {
	t.Helper()
	p, err := he.ParametersFromPreset(preset)
	require.NoError(t, err)
	opt := circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: skBoot}
	chosen, err = circuit.Plan(c, p, opt)
	require.NoError(t, err)
	opt.GreedyPlacement = true
	greedy, err = circuit.Plan(c, p, opt)
	require.NoError(t, err)
	return greedy, chosen
}

// compileAt compiles m with the largest batch preset's slots hold.
func compileAt(t *testing.T, m *model.Model, preset string) *circuit.Circuit {
	t.Helper()
	p, err := he.ParametersFromPreset(preset)
	require.NoError(t, err)
	pk, err := MaxBatch(m, p.Slots())
	require.NoError(t, err)
	c, err := Compile(m, CompileOptions{Batch: pk.Batch, Block: pk.Block, TokenBlock: pk.TokenBlock})
	require.NoError(t, err)
	return c
}

// defaultMNISTModel is a model of the default MNIST shape (width 64, 2
// blocks, 4 heads, hidden 128, 7x7 patches: 16 tokens, weight
// normalization) with shifted power attention p = 2 and the quadratic
// activation, built deterministically and calibrated on synthetic images,
// its weight normalization folded as compile does.
func defaultMNISTModel(t *testing.T) *model.Model {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	c.Attention.P = 2
	c.Activation = nn.ActQuad
	m, err := model.New(c)
	require.NoError(t, err)
	require.NoError(t, m.Calibrate([]model.Batch{synthImages(c, 16, 1), synthImages(c, 16, 2)}, nn.DefaultFitOptions(), nil))
	f, err := FoldNorms(m)
	require.NoError(t, err)
	return f
}

// TestPlacementDefaultMNISTShape: the placement on the cheapest cut
// bootstraps the default-shaped MNIST ViT far less often than the greedy
// one, never after a rotation, and the planned circuit still computes poly
// mode.
func TestPlacementDefaultMNISTShape(t *testing.T) {
	if testing.Short() {
		t.Skip("plans a 2-block model at n16-boot and n16-boot14")
	}
	m := defaultMNISTModel(t)
	c := compileAt(t, m, he.PresetN16Boot)
	b := synthImages(m.Cfg, 4, 3)
	// recorded: greedy 6 (n16-boot14) and 10 (n16-boot) bootstraps; the
	// checkpoint /work/runs/mc/d20-s2q of the same shape and recipe after 20
	// training steps goes from 7 to 3 and from 13 to 5
	// (benchmarks/cost/placement)
	for preset, want := range map[string]int{he.PresetN16Boot14: 3, he.PresetN16Boot: 8} {
		greedy, chosen := planBoth(t, c, preset, false)
		after, per := bootstrapsAfterRotation(chosen)
		t.Logf("%s: %d bootstraps (greedy %d), per layer %v", preset, chosen.Planned.Bootstraps, greedy.Planned.Bootstraps, per)
		require.Zero(t, after)
		require.Less(t, chosen.Planned.Bootstraps, greedy.Planned.Bootstraps)
		require.Equal(t, want, chosen.Planned.Bootstraps, preset)
		require.Less(t, maxAbsDiff(polyLogits(t, m, b), simLogits(t, chosen, b, m.Cfg)), 1e-6)
	}
}

// TestPlacementNeverMoreBootstraps: on the compiler's test models and the
// recorded checkpoints, the chosen placement never has more bootstraps
// than the greedy one.
func TestPlacementNeverMoreBootstraps(t *testing.T) {
	if testing.Short() {
		t.Skip("plans the recorded checkpoints at n16-boot")
	}
	type tc struct {
		name   string
		c      *circuit.Circuit
		preset string
		sk     bool
	}
	var cases []tc
	for _, dir := range []string{"../cmd/polyformer/demodata", "../benchmarks/compiler/mnist-small", "../benchmarks/compiler/mnist-wn", "../benchmarks/compiler/lm2"} {
		cases = append(cases, tc{dir, compileAt(t, loadCheckpointForCompile(t, dir), he.PresetN16Boot), he.PresetN16Boot, false})
	}
	fit := shallowFit()
	for name, mod := range map[string]func(c *model.Config){
		"mnist-p2-quad-2blocks": func(c *model.Config) { c.Attention.P, c.Attention.Eps, c.Activation, c.Depth = 2, 0.5, nn.ActQuad, 2 },
		"mnist-p2-quad-1block":  func(c *model.Config) { c.Attention.P, c.Attention.Eps, c.Activation = 2, 0.5, nn.ActQuad },
	} {
		m, _ := tinyMNIST(t, mod, fit)
		c, err := Compile(m, CompileOptions{Batch: 2})
		require.NoError(t, err)
		cases = append(cases, tc{name, c, he.PresetTestBootN13, true})
	}
	m, _ := tinyText(t, func(c *model.Config) { c.Attention.P, c.Attention.Eps, c.Activation, c.Depth = 2, 0.5, nn.ActQuad, 2 }, fit)
	c, err := Compile(m, CompileOptions{Batch: 1})
	require.NoError(t, err)
	cases = append(cases, tc{"text-p2-quad-2blocks", c, he.PresetTestBootN13, true})
	for _, k := range cases {
		greedy, chosen := planBoth(t, k.c, k.preset, k.sk)
		t.Logf("%s at %s: %d bootstraps (greedy %d)", k.name, k.preset, chosen.Planned.Bootstraps, greedy.Planned.Bootstraps)
		require.LessOrEqual(t, chosen.Planned.Bootstraps, greedy.Planned.Bootstraps, k.name)
		after, _ := bootstrapsAfterRotation(chosen)
		require.Zero(t, after, k.name)
	}
}

// TestEncryptedChangedPlacement: encrypted = simulator = poly mode at the
// bootstrapping test preset for a 2-block model whose placement differs
// from the greedy one.
func TestEncryptedChangedPlacement(t *testing.T) {
	m, b := tinyMNIST(t, func(c *model.Config) {
		c.Attention.P, c.Attention.Eps, c.Activation, c.Depth = 2, 0.5, nn.ActQuad, 2
	}, shallowFit())
	c, err := Compile(m, CompileOptions{Batch: 2})
	require.NoError(t, err)
	greedy, chosen := planBoth(t, c, he.PresetTestBootN13, true)
	t.Logf("%d bootstraps (greedy %d)", chosen.Planned.Bootstraps, greedy.Planned.Bootstraps)
	require.Less(t, chosen.Planned.Bootstraps, greedy.Planned.Bootstraps, "the placement changed")
	rep := encryptedRun(t, m, c, b, he.PresetTestBootN13, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true}, 1e-4)
	require.Equal(t, chosen.Planned.Bootstraps, rep.Bootstraps)
}

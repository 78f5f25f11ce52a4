package model

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
)

// Model is an image encoder classifier or a byte-level decoder LM.
type Model struct {
	Cfg       Config
	Patch     *nn.PatchEmbedding // task mnist
	Embed     *nn.Embedding      // task text
	Pos       *nn.PosEmbedding
	Blocks    []*nn.Block
	FinalNorm nn.Norm
	Pool      *nn.MeanPool // task mnist
	Head      *nn.Linear
	Entropy   *nn.EntropyRegularizer // nil unless enabled
	// Reparams are the weight-side reparameterizations of the block linears
	// (norm methods sigmareparam, weightnorm, scaledws), else empty.
	Reparams []norm.Reparam
	Reg      *nn.Registry

	mode     nn.Mode
	training bool
}

// blockOptions returns the placement of block l of depth blocks.
func blockOptions(no norm.Options, l, depth int) nn.BlockOptions {
	switch no.Placement {
	case norm.PlacePost:
		return nn.BlockOptions{Placement: nn.PlacementPost}
	case norm.PlacePeri:
		return nn.BlockOptions{Placement: nn.PlacementPeri}
	case norm.PlaceMix:
		if l < int(math.Ceil(no.MixFraction*float64(depth))) {
			return nn.BlockOptions{Placement: nn.PlacementPost}
		}
	case norm.PlaceLNScaling:
		return nn.BlockOptions{NormScale: 1 / math.Sqrt(float64(l+1))}
	case norm.PlaceDeepNorm:
		return nn.BlockOptions{Placement: nn.PlacementPost, ResidScale: math.Pow(2*float64(depth), 0.25)}
	}
	return nn.BlockOptions{}
}

// deepNormInit scales the initial FFN, value and output projections by
// DeepNet's beta = (8L)^(-1/4).
func deepNormInit(attn *nn.MultiHeadAttention, ffn *nn.FFN, depth int) {
	beta := math.Pow(8*float64(depth), -0.25)
	for _, w := range []*nn.Param{ffn.Up.W, ffn.Down.W, attn.Out.W} {
		for i := range w.Value.Data {
			w.Value.Data[i] *= beta
		}
	}
	d := attn.Dim
	q := attn.QKV.W.Value.Data
	for i := 0; i < d; i++ {
		for j := 2 * d; j < 3*d; j++ {
			q[i*3*d+j] *= beta
		}
	}
}

// Norms returns every norm layer of the model (blocks, then the final norm).
func (m *Model) Norms() []nn.Norm {
	var ns []nn.Norm
	for _, b := range m.Blocks {
		ns = append(ns, b.Norms()...)
	}
	return append(ns, m.FinalNorm)
}

func (m *Model) setTraining(on bool) {
	m.training = on
	for _, n := range m.Norms() {
		if t, ok := n.(nn.Trainable); ok {
			t.SetTraining(on)
		}
	}
}

// Materialize recomputes the weights of weight-side reparameterizations
// from their parameters (Logits does it before every forward pass; call it
// before reading the linears' weights directly, e.g. after an optimizer
// update).
func (m *Model) Materialize() {
	for _, r := range m.Reparams {
		r.Prepare(false)
	}
}

// Batch is one batch of examples. For images, Pixels holds B images of
// ImageRows*ImageCols pixels and Targets B labels; for text, Inputs and
// Targets hold B*T byte ids (row-major).
type Batch struct {
	B, T    int
	Pixels  []float64
	Inputs  []int
	Targets []int
}

// StepResult summarizes a forward pass on a batch.
type StepResult struct {
	// Loss is CE + Lambda * L_ent (the optimized loss); CE the cross-entropy
	// (mean per target, nats); EntLoss is Lambda * L_ent.
	Loss, CE, EntLoss float64
	// Correct counts argmax hits; Targets the number of predictions.
	Correct, Targets int
	// Entropy[l][h] is the attention entropy of layer l, head h.
	Entropy [][]float64
}

// New builds a model with weights initialized from Cfg.Seed and installs
// the polynomial specs of Cfg.Poly, if any.
func New(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x706f6c79666f726d))
	m := &Model{Cfg: cfg}
	t := cfg.Tokens()
	var err error
	if cfg.Task == TaskMNIST {
		if m.Patch, err = nn.NewPatchEmbedding("patch", cfg.ImageRows, cfg.ImageCols, cfg.Patch, cfg.Width, rng); err != nil {
			return nil, err
		}
		m.Pool = &nn.MeanPool{}
	} else {
		m.Embed = nn.NewEmbedding("embed", cfg.Vocab, cfg.Width, rng)
	}
	m.Pos = nn.NewPosEmbedding("pos", t, cfg.Width, rng)
	causal := cfg.Task == TaskText
	no := cfg.NormOpts()
	for l := 0; l < cfg.Depth; l++ {
		name := fmt.Sprintf("blocks.%d", l)
		bo := blockOptions(no, l, cfg.Depth)
		n1, err := norm.NewWith(cfg.Norm, name+".norm1", cfg.Width, no)
		if err != nil {
			return nil, err
		}
		n2, err := norm.NewWith(cfg.Norm, name+".norm2", cfg.Width, no)
		if err != nil {
			return nil, err
		}
		if bo.Placement == nn.PlacementPeri {
			if bo.Norm1Out, err = norm.NewWith(cfg.Norm, name+".norm1_out", cfg.Width, no); err != nil {
				return nil, err
			}
			if bo.Norm2Out, err = norm.NewWith(cfg.Norm, name+".norm2_out", cfg.Width, no); err != nil {
				return nil, err
			}
		}
		k, err := newKernel(cfg, name+".attn")
		if err != nil {
			return nil, err
		}
		attn, err := newAttention(cfg, name+".attn", t, causal, k, rng)
		if err != nil {
			return nil, err
		}
		ffn, err := nn.NewFFN(name+".ffn", cfg.Width, cfg.Hidden, cfg.Activation, cfg.PolyActDegree, cfg.PolyActRadius, rng)
		if err != nil {
			return nil, err
		}
		if no.Placement == norm.PlaceDeepNorm {
			deepNormInit(attn, ffn, cfg.Depth)
		}
		blk, err := nn.NewBlockWith(name, n1, n2, attn, ffn, cfg.ScaledResidual, bo)
		if err != nil {
			return nil, err
		}
		m.Blocks = append(m.Blocks, blk)
		if norm.IsWeightSide(cfg.Norm) {
			for _, lin := range []*nn.Linear{attn.QKV, attn.Out, ffn.Up, ffn.Down} {
				r, err := norm.NewReparam(cfg.Norm, lin)
				if err != nil {
					return nil, err
				}
				m.Reparams = append(m.Reparams, r)
			}
		}
	}
	finalMethod := cfg.Norm
	if no.Placement == norm.PlacePost || no.Placement == norm.PlaceDeepNorm {
		finalMethod = norm.MethodNone // the last block already ends with a norm
	}
	if m.FinalNorm, err = norm.NewWith(finalMethod, "norm", cfg.Width, no); err != nil {
		return nil, err
	}
	out := cfg.Classes
	if cfg.Task == TaskText {
		out = cfg.Vocab
	}
	m.Head = nn.NewLinear("head", cfg.Width, out, rng)
	if cfg.Entropy.Enabled {
		m.Entropy = nn.NewEntropyRegularizer("entropy", cfg.Depth, cfg.Heads, cfg.Entropy.Gamma, cfg.Entropy.Lambda, cfg.Entropy.Theta0)
	}
	var ps [][]*nn.Param
	if m.Patch != nil {
		ps = append(ps, m.Patch.Params())
	} else {
		ps = append(ps, m.Embed.Params())
	}
	ps = append(ps, m.Pos.Params())
	for _, b := range m.Blocks {
		ps = append(ps, b.Params())
	}
	ps = append(ps, m.FinalNorm.Params(), m.Head.Params())
	for _, r := range m.Reparams {
		ps = append(ps, r.Params())
	}
	if m.Entropy != nil {
		ps = append(ps, m.Entropy.Params())
	}
	if m.Reg, err = nn.NewRegistry(ps...); err != nil {
		return nil, fmt.Errorf("build model: %w", err)
	}
	if cfg.Poly != nil {
		if err := m.InstallPoly(cfg.Poly.Specs); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Params returns every parameter in registry order.
func (m *Model) Params() []*nn.Param { return m.Reg.List() }

// Sites returns every non-linearity site of the model, in forward order.
func (m *Model) Sites() []*nn.Site {
	var s []*nn.Site
	for _, b := range m.Blocks {
		s = append(s, b.Sites()...)
	}
	return append(s, m.FinalNorm.Sites()...)
}

func (m *Model) checkBatch(b Batch) error {
	if b.B <= 0 {
		return fmt.Errorf("batch size %d must be positive", b.B)
	}
	if m.Cfg.Task == TaskMNIST {
		if len(b.Pixels) != b.B*m.Cfg.ImageRows*m.Cfg.ImageCols {
			return fmt.Errorf("batch has %d pixels, want %d images of %dx%d", len(b.Pixels), b.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
		}
		if len(b.Targets) != b.B {
			return fmt.Errorf("batch has %d labels for %d images", len(b.Targets), b.B)
		}
		return nil
	}
	if b.T <= 0 || b.T > m.Cfg.Context {
		return fmt.Errorf("batch sequence length %d outside [1, %d]", b.T, m.Cfg.Context)
	}
	if len(b.Inputs) != b.B*b.T || len(b.Targets) != b.B*b.T {
		return fmt.Errorf("batch has %d inputs and %d targets, want %d", len(b.Inputs), len(b.Targets), b.B*b.T)
	}
	return nil
}

// Logits runs the forward pass and returns [B, Classes] (images) or
// [B, T, 256] (text) logits.
func (m *Model) Logits(b Batch) (*nn.Tensor, error) {
	logits, _, err := m.forward(b, false)
	return logits, err
}

// forward runs the forward pass; with hidden set it also returns the
// residual stream after each block ([B, T, Width] each, the blocks' own
// output tensors: read them before the next forward pass).
func (m *Model) forward(b Batch, hidden bool) (*nn.Tensor, []*nn.Tensor, error) {
	if err := m.checkBatch(b); err != nil {
		return nil, nil, err
	}
	for _, r := range m.Reparams {
		r.Prepare(m.training)
	}
	var x *nn.Tensor
	if m.Patch != nil {
		img, err := nn.FromData(b.Pixels, b.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
		if err != nil {
			return nil, nil, err
		}
		x = m.Patch.Forward(img)
	} else {
		var err error
		if x, err = m.Embed.ForwardIDs(b.Inputs, b.B, b.T); err != nil {
			return nil, nil, err
		}
	}
	x = m.Pos.Forward(x)
	var hs []*nn.Tensor
	for _, blk := range m.Blocks {
		x = blk.Forward(x)
		if hidden {
			hs = append(hs, x)
		}
	}
	x = m.FinalNorm.Forward(x)
	if m.Pool != nil {
		x = m.Pool.Forward(x)
	}
	return m.Head.Forward(x), hs, nil
}

func (m *Model) seqLen(b Batch) int {
	if m.Cfg.Task == TaskMNIST {
		return m.Cfg.Tokens()
	}
	return b.T
}

// Forward runs the model on a batch and computes the losses (no gradients).
func (m *Model) Forward(b Batch) (StepResult, error) {
	res, _, err := m.forwardLoss(b)
	return res, err
}

func (m *Model) forwardLoss(b Batch) (StepResult, *nn.Tensor, error) {
	logits, err := m.Logits(b)
	if err != nil {
		return StepResult{}, nil, err
	}
	return m.lossOf(b, logits)
}

// lossOf computes the cross-entropy (and its gradient with respect to the
// logits), the accuracy, the attention entropies of the last forward pass
// and the entropy penalty.
func (m *Model) lossOf(b Batch, logits *nn.Tensor) (StepResult, *nn.Tensor, error) {
	ce, grad, err := nn.CrossEntropy(logits, b.Targets)
	if err != nil {
		return StepResult{}, nil, err
	}
	res := StepResult{CE: ce, Loss: ce, Targets: len(b.Targets)}
	for i, p := range nn.Argmax(logits) {
		if p == b.Targets[i] {
			res.Correct++
		}
	}
	for _, blk := range m.Blocks {
		res.Entropy = append(res.Entropy, blk.Attn.Entropy())
	}
	if m.Entropy != nil {
		res.EntLoss = m.Entropy.Value(res.Entropy, m.seqLen(b))
		res.Loss += res.EntLoss
	}
	if math.IsNaN(ce) || math.IsInf(ce, 0) {
		return res, nil, errors.New("loss is not finite (training diverged)")
	}
	return res, grad, nil
}

// Step runs forward and backward on a batch: gradients (of CE plus the
// entropy penalty, when enabled) are accumulated into the parameters'
// Grad; callers zero them between steps. Norms with training behaviour
// (nn.Trainable: batch statistics) are in training mode during Step only;
// after the backward pass, weight-side reparameterizations receive their
// gradients and norms with per-step state (nn.StepEnder: running
// statistics, schedules) advance.
func (m *Model) Step(b Batch) (StepResult, error) {
	m.setTraining(true)
	defer m.setTraining(false)
	res, grad, err := m.forwardLoss(b)
	if err != nil {
		return res, err
	}
	m.backward(res, b, grad, nil)
	return res, nil
}

// backward back-propagates grad (dL/dlogits of the last forward pass) plus
// the entropy penalty of res and, when hidGrad is not nil, hidGrad[l]
// (dL/d output of block l; nil entries are skipped), then completes the
// training step: weight-side reparameterizations receive their gradients
// and StepEnders advance.
func (m *Model) backward(res StepResult, b Batch, grad *nn.Tensor, hidGrad []*nn.Tensor) {
	if m.Entropy != nil {
		_, de := m.Entropy.Loss(res.Entropy, m.seqLen(b))
		for l, blk := range m.Blocks {
			blk.Attn.SetEntropyGrad(de[l])
		}
	}
	g := m.Head.Backward(grad)
	if m.Pool != nil {
		g = m.Pool.Backward(g)
	}
	g = m.FinalNorm.Backward(g)
	for l := len(m.Blocks) - 1; l >= 0; l-- {
		if l < len(hidGrad) && hidGrad[l] != nil {
			sum := g.Clone()
			for i, v := range hidGrad[l].Data {
				sum.Data[i] += v
			}
			g = sum
		}
		g = m.Blocks[l].Backward(g)
	}
	g = m.Pos.Backward(g)
	if m.Patch != nil {
		m.Patch.Backward(g)
	} else {
		m.Embed.Backward(g)
	}
	for _, r := range m.Reparams {
		r.Backprop()
	}
	for _, n := range m.Norms() {
		if s, ok := n.(nn.StepEnder); ok {
			s.EndStep()
		}
	}
}

// Mode returns the current non-linearity mode.
func (m *Model) Mode() nn.Mode { return m.mode }

// SetMode switches every site; ModePoly requires calibrated specs.
func (m *Model) SetMode(mode nn.Mode) error {
	for _, s := range m.Sites() {
		if err := s.SetMode(mode); err != nil {
			return fmt.Errorf("poly mode: %w", err)
		}
	}
	m.mode = mode
	return nil
}

// InstallPoly installs polynomial specs by site name; every site must get one.
func (m *Model) InstallPoly(specs []nn.PolySpec) error {
	byName := map[string]nn.PolySpec{}
	for _, s := range specs {
		byName[s.Site] = s
	}
	for _, s := range m.Sites() {
		spec, ok := byName[s.Name]
		if !ok {
			return fmt.Errorf("poly specs: no polynomial for site %s", s.Name)
		}
		if err := s.Install(spec); err != nil {
			return fmt.Errorf("poly specs: %w", err)
		}
	}
	return nil
}

// SiteStats is the poly-mode range report of one site.
type SiteStats struct {
	Site     string     `json:"site"`
	Kind     string     `json:"kind"`
	Method   string     `json:"method"`
	Interval [2]float64 `json:"interval"`
	Depth    int        `json:"depth"`
	Outside  int64      `json:"outside"`
	Total    int64      `json:"total"`
	Worst    float64    `json:"worst_distance"`
	// MaxErr is the fit's measured error on its interval when it was fitted
	// against a precision target (nn.PolySpec.MaxErr; 0 otherwise).
	MaxErr float64 `json:"max_err,omitempty"`
	// Inputs are the smallest and largest poly-mode inputs; NonFinite
	// counts the poly-mode outputs that were NaN or infinite.
	Inputs    [2]float64 `json:"inputs"`
	NonFinite int64      `json:"non_finite,omitempty"`
}

// PolyStats reports, per site, how many poly-mode inputs fell outside the
// calibrated interval since the last ResetPolyStats.
func (m *Model) PolyStats() []SiteStats {
	var out []SiteStats
	for _, s := range m.Sites() {
		o, t, w := s.Outside()
		st := SiteStats{Site: s.Name, Kind: s.Kind, Outside: o, Total: t, Worst: w}
		st.Inputs[0], st.Inputs[1], st.NonFinite = s.PolyInputs()
		if sp := s.Spec(); sp != nil {
			st.Method, st.Interval, st.MaxErr = string(sp.Method), sp.Interval, sp.MaxErr
			if _, d, err := sp.Evaluator(); err == nil {
				st.Depth = d
			}
		}
		out = append(out, st)
	}
	return out
}

// ResetPolyStats clears the out-of-interval counters (and calibration ranges).
func (m *Model) ResetPolyStats() {
	for _, s := range m.Sites() {
		s.ResetStats()
	}
}

// TrainFLOPs estimates the floating-point operations of one training step
// (forward and backward, counted as 3x the forward matrix products) on a
// batch of b sequences: projections, FFN, attention scores and mixing,
// embeddings and head. Element-wise work is not counted.
func (c Config) TrainFLOPs(b int) float64 {
	t, d, h := float64(c.Tokens()), float64(c.Width), float64(c.Hidden)
	perTokLayer := 2*d*3*d + 2*d*d + 2*2*d*h
	attnPerSeqLayer := 2 * 2 * t * t * d
	fwd := float64(c.Depth) * (float64(b)*t*perTokLayer + float64(b)*attnPerSeqLayer)
	if c.Task == TaskMNIST {
		fwd += float64(b)*t*2*float64(c.Patch*c.Patch)*d + float64(b)*2*d*float64(c.Classes)
	} else {
		fwd += float64(b) * t * 2 * d * float64(c.Vocab)
	}
	return 3 * fwd
}

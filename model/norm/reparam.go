package norm

import (
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
)

// Reparam is a weight-side substitute for normalization: the weight W of a
// linear layer is computed from trainable parameters (V and gains) rather
// than trained directly. W itself becomes a frozen parameter holding the
// materialized weight, so inference (and the encrypted circuit) uses W as
// is: the method folds to zero cost by construction.
//
// Protocol: Prepare(training) before every forward pass materializes W
// (in training, sigmaReparam first runs one power iteration); after the
// backward pass, Backprop turns the accumulated dL/dW into gradients of
// the underlying parameters and clears dL/dW.
type Reparam interface {
	// Method is the registry name (sigmareparam, weightnorm, scaledws).
	Method() string
	// Linear is the reparameterized layer.
	Linear() *nn.Linear
	// Prepare materializes the weight.
	Prepare(training bool)
	// Backprop maps dL/dW to the underlying parameters.
	Backprop()
	// Params returns the underlying trainable (and frozen state) parameters.
	Params() []*nn.Param
}

// NewReparam wraps lin with the weight-side method, initialized so
// that the materialized weight equals lin's current weight, and freezes
// lin.W. Parameter names start with lin.W.Name.
func NewReparam(method string, lin *nn.Linear) (Reparam, error) {
	var r Reparam
	switch method {
	case MethodSigmaReparam:
		r = newSigmaReparam(lin)
	case MethodWeightNorm:
		r = newWeightNorm(lin)
	case MethodScaledWS:
		r = newScaledWS(lin)
	default:
		return nil, fmt.Errorf("%q is not a weight-side method (want sigmareparam, weightnorm or scaledws)", method)
	}
	lin.W.Frozen = true
	r.Prepare(false)
	return r, nil
}

// SigmaReparam is sigmaReparam (Zhai et al., 2023): W = Gamma / sigma(V) * V
// with sigma(V) the spectral norm estimated by one power iteration per
// training step (vectors U [In] and Vv [Out], frozen, no gradient through
// them: sigma = U^T V Vv). Gamma is a learnable scalar, initialized to the
// initial sigma so that W starts equal to the layer's initial weight.
type SigmaReparam struct {
	Lin          *nn.Linear
	V, Gamma     *nn.Param
	U, Vv        *nn.Param
	sigma        float64
	materialized bool
}

func newSigmaReparam(lin *nn.Linear) *SigmaReparam {
	s := &SigmaReparam{Lin: lin, V: nn.NewParam(lin.W.Name+"_v", lin.In, lin.Out), Gamma: nn.NewParam(lin.W.Name+"_gamma", 1),
		U: nn.NewParam(lin.W.Name+"_u", lin.In), Vv: nn.NewParam(lin.W.Name+"_vv", lin.Out)}
	copy(s.V.Value.Data, lin.W.Value.Data)
	s.Gamma.NoDecay = true
	s.U.Frozen, s.Vv.Frozen, s.U.NoDecay, s.Vv.NoDecay = true, true, true, true
	// start the power iteration from a fixed unit vector and converge it
	fill(s.Vv.Value.Data, 1/math.Sqrt(float64(lin.Out)))
	for i := 0; i < 30; i++ {
		s.powerIteration()
	}
	s.Gamma.Value.Data[0] = s.estimate()
	return s
}

// Method returns "sigmareparam".
func (s *SigmaReparam) Method() string { return MethodSigmaReparam }

// Linear returns the layer.
func (s *SigmaReparam) Linear() *nn.Linear { return s.Lin }

// powerIteration: u = V v / |V v|, v = V^T u / |V^T u|.
func (s *SigmaReparam) powerIteration() {
	in, out := s.Lin.In, s.Lin.Out
	v, u, w := s.Vv.Value.Data, s.U.Value.Data, s.V.Value.Data
	nn.Gemm(false, false, in, 1, out, 1, w, out, v, 1, 0, u, 1)
	normalize(u)
	nn.Gemm(true, false, out, 1, in, 1, w, out, u, 1, 0, v, 1)
	normalize(v)
}

func normalize(a []float64) {
	var s float64
	for _, v := range a {
		s += v * v
	}
	s = math.Sqrt(s)
	if s == 0 {
		fill(a, 1/math.Sqrt(float64(len(a))))
		return
	}
	for i := range a {
		a[i] /= s
	}
}

// estimate returns U^T V Vv.
func (s *SigmaReparam) estimate() float64 {
	in, out := s.Lin.In, s.Lin.Out
	w, u, v := s.V.Value.Data, s.U.Value.Data, s.Vv.Value.Data
	var sig float64
	for i := 0; i < in; i++ {
		var r float64
		for j := 0; j < out; j++ {
			r += w[i*out+j] * v[j]
		}
		sig += u[i] * r
	}
	return sig
}

// Prepare runs one power iteration in training and materializes W.
func (s *SigmaReparam) Prepare(training bool) {
	if training {
		s.powerIteration()
	}
	s.sigma = s.estimate()
	f := s.Gamma.Value.Data[0] / s.sigma
	for i, v := range s.V.Value.Data {
		s.Lin.W.Value.Data[i] = f * v
	}
}

// Backprop: with G = dL/dW, dL/dGamma = <G, V> / sigma and
// dL/dV = Gamma/sigma G - Gamma <G, V> / sigma^2 U Vv^T.
func (s *SigmaReparam) Backprop() {
	g, w := s.Lin.W.Grad.Data, s.V.Value.Data
	var gv float64
	for i, x := range g {
		gv += x * w[i]
	}
	gam, sig := s.Gamma.Value.Data[0], s.sigma
	s.Gamma.Grad.Data[0] += gv / sig
	out := s.Lin.Out
	c := gam * gv / (sig * sig)
	for i := 0; i < s.Lin.In; i++ {
		for j := 0; j < out; j++ {
			k := i*out + j
			s.V.Grad.Data[k] += gam/sig*g[k] - c*s.U.Value.Data[i]*s.Vv.Value.Data[j]
		}
	}
	s.Lin.W.Grad.Zero()
}

// Params returns V, Gamma and the frozen power-iteration vectors.
func (s *SigmaReparam) Params() []*nn.Param { return []*nn.Param{s.V, s.Gamma, s.U, s.Vv} }

// WeightNorm is weight normalization (Salimans and Kingma, 2016) per output
// unit j: W[:, j] = G_j V[:, j] / |V[:, j]|, G initialized to the initial
// column norms.
type WeightNorm struct {
	Lin   *nn.Linear
	V, G  *nn.Param
	norms []float64
}

func newWeightNorm(lin *nn.Linear) *WeightNorm {
	w := &WeightNorm{Lin: lin, V: nn.NewParam(lin.W.Name+"_v", lin.In, lin.Out), G: nn.NewParam(lin.W.Name+"_g", lin.Out)}
	copy(w.V.Value.Data, lin.W.Value.Data)
	w.G.NoDecay = true
	w.columnNorms()
	copy(w.G.Value.Data, w.norms)
	return w
}

// Method returns "weightnorm".
func (w *WeightNorm) Method() string { return MethodWeightNorm }

// Linear returns the layer.
func (w *WeightNorm) Linear() *nn.Linear { return w.Lin }

func (w *WeightNorm) columnNorms() {
	in, out := w.Lin.In, w.Lin.Out
	w.norms = make([]float64, out)
	for i := 0; i < in; i++ {
		for j := 0; j < out; j++ {
			v := w.V.Value.Data[i*out+j]
			w.norms[j] += v * v
		}
	}
	for j := range w.norms {
		w.norms[j] = math.Sqrt(w.norms[j])
	}
}

// Prepare materializes W.
func (w *WeightNorm) Prepare(bool) {
	w.columnNorms()
	out := w.Lin.Out
	for k, v := range w.V.Value.Data {
		j := k % out
		w.Lin.W.Value.Data[k] = w.G.Value.Data[j] * v / w.norms[j]
	}
}

// Backprop: dL/dG_j = <G_j, V_j>/n_j, dL/dV_j = g_j/n_j (G_j - <G_j, V_j> V_j / n_j^2).
func (w *WeightNorm) Backprop() {
	in, out := w.Lin.In, w.Lin.Out
	g, v := w.Lin.W.Grad.Data, w.V.Value.Data
	dots := make([]float64, out)
	for k, x := range g {
		dots[k%out] += x * v[k]
	}
	for j := 0; j < out; j++ {
		w.G.Grad.Data[j] += dots[j] / w.norms[j]
	}
	for i := 0; i < in; i++ {
		for j := 0; j < out; j++ {
			k := i*out + j
			n := w.norms[j]
			w.V.Grad.Data[k] += w.G.Value.Data[j] / n * (g[k] - dots[j]*v[k]/(n*n))
		}
	}
	w.Lin.W.Grad.Zero()
}

// Params returns V and G.
func (w *WeightNorm) Params() []*nn.Param { return []*nn.Param{w.V, w.G} }

// ScaledWS is scaled weight standardization (Brock et al., 2021) per output
// unit j: W[:, j] = G_j (V[:, j] - mean_j) / (sqrt(var_j + Eps) sqrt(In)),
// mean and variance over the In inputs. G starts at 1 (the standardized
// weight then has the N(0, 1/In) scale of the default initialization); the
// activation-specific constant gain of NF-Nets is left to G.
type ScaledWS struct {
	Lin  *nn.Linear
	V, G *nn.Param
	Eps  float64
	mean []float64
	std  []float64
}

func newScaledWS(lin *nn.Linear) *ScaledWS {
	w := &ScaledWS{Lin: lin, V: nn.NewParam(lin.W.Name+"_v", lin.In, lin.Out), G: nn.NewParam(lin.W.Name+"_g", lin.Out), Eps: 1e-8}
	copy(w.V.Value.Data, lin.W.Value.Data)
	fill(w.G.Value.Data, 1)
	w.G.NoDecay = true
	return w
}

// Method returns "scaledws".
func (w *ScaledWS) Method() string { return MethodScaledWS }

// Linear returns the layer.
func (w *ScaledWS) Linear() *nn.Linear { return w.Lin }

// Prepare materializes W.
func (w *ScaledWS) Prepare(bool) {
	in, out := w.Lin.In, w.Lin.Out
	v := w.V.Value.Data
	w.mean, w.std = make([]float64, out), make([]float64, out)
	for k, x := range v {
		w.mean[k%out] += x / float64(in)
	}
	for k, x := range v {
		c := x - w.mean[k%out]
		w.std[k%out] += c * c / float64(in)
	}
	for j := range w.std {
		w.std[j] = math.Sqrt(w.std[j] + w.Eps)
	}
	sq := math.Sqrt(float64(in))
	for k, x := range v {
		j := k % out
		w.Lin.W.Value.Data[k] = w.G.Value.Data[j] * (x - w.mean[j]) / (w.std[j] * sq)
	}
}

// Backprop differentiates the standardization (z = (v - mean) / std,
// W = G z / sqrt(In)).
func (w *ScaledWS) Backprop() {
	in, out := w.Lin.In, w.Lin.Out
	g, v := w.Lin.W.Grad.Data, w.V.Value.Data
	sq := math.Sqrt(float64(in))
	dz := make([]float64, len(g))
	szc := make([]float64, out) // sum dz * (v - mean)
	for k := range g {
		j := k % out
		c := v[k] - w.mean[j]
		w.G.Grad.Data[j] += g[k] * c / (w.std[j] * sq)
		dz[k] = g[k] * w.G.Value.Data[j] / sq
		szc[j] += dz[k] * c
	}
	// dxc = dz/s - (sum dz xc) xc / (s^3 In); dv = dxc - mean(dxc)
	dxc := make([]float64, len(g))
	mean := make([]float64, out)
	for k := range g {
		j := k % out
		s := w.std[j]
		c := v[k] - w.mean[j]
		dxc[k] = dz[k]/s - szc[j]*c/(s*s*s*float64(in))
		mean[j] += dxc[k] / float64(in)
	}
	for k := range g {
		w.V.Grad.Data[k] += dxc[k] - mean[k%out]
	}
	w.Lin.W.Grad.Zero()
}

// Params returns V and G.
func (w *ScaledWS) Params() []*nn.Param { return []*nn.Param{w.V, w.G} }

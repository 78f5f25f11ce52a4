package norm

import (
	"errors"
	"fmt"
	"math"
	"sort"
)

// Methods accepted by New and NewWith (the Norm field of model.Config).
const (
	MethodLayerNorm = "layernorm"
	MethodRMSNorm   = "rmsnorm"
	MethodNone      = "none"
	// MethodBatchNorm is BatchNorm with running statistics (folds at inference).
	MethodBatchNorm = "batchnorm"
	// MethodRepBN is BN(x) + alpha*x (folds at inference).
	MethodRepBN = "repbn"
	// MethodPRepBN is lambda*LN(x) + (1-lambda)*RepBN(x), lambda decaying 1 -> 0 (folds once lambda = 0).
	MethodPRepBN = "prepbn"
	// MethodPowerNorm is PowerNorm: a running quadratic mean per channel (folds
	// unless Options.Groups > 0, the per-group RMS scaling of the released code).
	MethodPowerNorm = "powernorm"
	// MethodUnified is Unified Normalization (folds at inference).
	MethodUnified = "unified"
	// MethodFixedScale centres each row and multiplies by a calibrated 1/std (folds).
	MethodFixedScale = "fixedscale"
	// MethodSigmaReparam, MethodWeightNorm and MethodScaledWS are weight-side
	// substitutes: no norm layer at all, the block linears are
	// reparameterized instead (see Reparam); they fold to the plain weights.
	MethodSigmaReparam = "sigmareparam"
	MethodWeightNorm   = "weightnorm"
	MethodScaledWS     = "scaledws"
)

// Placements of the norms inside a block (Options.Placement).
const (
	// PlacePre: x + F(N(x)) (the default).
	PlacePre = "pre"
	// PlacePost: N(x + F(x)).
	PlacePost = "post"
	// PlacePeri: x + N_out(F(N_in(x))), a norm on both sides of each sublayer.
	PlacePeri = "peri"
	// PlaceMix: Post for the first MixFraction of the blocks, Pre after.
	PlaceMix = "mix"
	// PlaceLNScaling: Pre with the norm output scaled by 1/sqrt(layer index) (1-based).
	PlaceLNScaling = "lns"
	// PlaceDeepNorm: Post with the skip path scaled by alpha = (2L)^(1/4) and
	// the FFN, value and output projections initialized scaled by beta = (8L)^(-1/4).
	PlaceDeepNorm = "deepnorm"
)

// DefaultEps is added to the variance (or mean square) before the inverse square root.
const DefaultEps = 1e-5

// Options holds the hyper-parameters of every method and the placement. The
// zero value means the documented defaults (see Defaults).
type Options struct {
	// Placement is pre (default), post, peri, mix, lns or deepnorm.
	Placement string `json:"placement,omitempty"`
	// MixFraction is the share of blocks that are Post in the mix placement (default 0.25).
	MixFraction float64 `json:"mix_fraction,omitempty"`
	// Eps is added under every square root (default 1e-5).
	Eps float64 `json:"eps,omitempty"`
	// Momentum is the weight of the new batch in running averages (BatchNorm,
	// RepBN, PRepBN, Unified, FixedScale; default 0.1). PowerNorm uses
	// 1 - PowerAlpha.
	Momentum float64 `json:"momentum,omitempty"`
	// RepAlpha is the initial alpha of RepBN (default 1).
	RepAlpha float64 `json:"rep_alpha,omitempty"`
	// DecaySteps is the PRepBN schedule: lambda = max(0, 1 - step/DecaySteps) (default 1000).
	DecaySteps int `json:"decay_steps,omitempty"`
	// PowerAlpha is PowerNorm's running-average factor alpha (default 0.9).
	PowerAlpha float64 `json:"power_alpha,omitempty"`
	// Groups > 0 adds the per-group RMS scaling of the released PowerNorm
	// code (GroupScaling1D) in front of PowerNorm; it does not fold.
	Groups int `json:"groups,omitempty"`
	// ExactBackward disables PowerNorm's approximate backward (the gradient
	// is then the exact one of the forward, which uses running statistics).
	ExactBackward bool `json:"exact_backward,omitempty"`
	// Window is the number of recent quadratic means Unified Normalization
	// smooths over by their geometric mean (default 4).
	Window int `json:"window,omitempty"`
	// OutlierRatio is Unified Normalization's outlier filter: a batch whose
	// quadratic mean differs from the smoothed history by more than this
	// factor (either way) is not used (default 4).
	OutlierRatio float64 `json:"outlier_ratio,omitempty"`
}

// Defaults returns o with every zero field set to its default.
func (o Options) Defaults() Options {
	if o.Placement == "" {
		o.Placement = PlacePre
	}
	if o.MixFraction == 0 {
		o.MixFraction = 0.25
	}
	if o.Eps == 0 {
		o.Eps = DefaultEps
	}
	if o.Momentum == 0 {
		o.Momentum = 0.1
	}
	if o.RepAlpha == 0 {
		o.RepAlpha = 1
	}
	if o.DecaySteps == 0 {
		o.DecaySteps = 1000
	}
	if o.PowerAlpha == 0 {
		o.PowerAlpha = 0.9
	}
	if o.Window == 0 {
		o.Window = 4
	}
	if o.OutlierRatio == 0 {
		o.OutlierRatio = 4
	}
	return o
}

// Validate checks the options (after Defaults) and returns a descriptive error.
func (o Options) Validate() error {
	o = o.Defaults()
	var errs []error
	switch o.Placement {
	case PlacePre, PlacePost, PlacePeri, PlaceMix, PlaceLNScaling, PlaceDeepNorm:
	default:
		errs = append(errs, fmt.Errorf("unknown norm placement %q (want pre, post, peri, mix, lns or deepnorm)", o.Placement))
	}
	if !(o.MixFraction > 0 && o.MixFraction <= 1) {
		errs = append(errs, fmt.Errorf("mix fraction %g outside (0, 1]", o.MixFraction))
	}
	if !(o.Eps > 0) || math.IsInf(o.Eps, 0) {
		errs = append(errs, fmt.Errorf("eps %g must be positive", o.Eps))
	}
	if !(o.Momentum > 0 && o.Momentum <= 1) {
		errs = append(errs, fmt.Errorf("momentum %g outside (0, 1]", o.Momentum))
	}
	if !(o.PowerAlpha >= 0 && o.PowerAlpha < 1) {
		errs = append(errs, fmt.Errorf("power alpha %g outside [0, 1)", o.PowerAlpha))
	}
	if o.DecaySteps < 0 || o.Groups < 0 || o.Window < 0 {
		errs = append(errs, fmt.Errorf("decay steps %d, groups %d and window %d must be >= 0", o.DecaySteps, o.Groups, o.Window))
	}
	if !(o.OutlierRatio > 1) {
		errs = append(errs, fmt.Errorf("outlier ratio %g must be > 1", o.OutlierRatio))
	}
	if math.IsNaN(o.RepAlpha) || math.IsInf(o.RepAlpha, 0) {
		errs = append(errs, fmt.Errorf("rep alpha %g must be finite", o.RepAlpha))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid norm options: %w", errors.Join(errs...))
	}
	return nil
}

// methodInfo describes a method for Methods, ValidMethod and the cost table.
var methodInfo = map[string]string{
	MethodLayerNorm:    "LayerNorm: (x - mean) / sqrt(var + eps) * g + b per token",
	MethodRMSNorm:      "RMSNorm: x / sqrt(mean(x^2) + eps) * g per token",
	MethodNone:         "no normalization",
	MethodBatchNorm:    "BatchNorm: batch statistics in training, running statistics at inference",
	MethodRepBN:        "RepBN: BN(x) + alpha * x",
	MethodPRepBN:       "progressive RepBN: lambda * LN(x) + (1 - lambda) * RepBN(x), lambda 1 -> 0",
	MethodPowerNorm:    "PowerNorm: x / running quadratic mean, approximate backward",
	MethodUnified:      "Unified Normalization: geometric mean of recent quadratic means, outlier filter",
	MethodFixedScale:   "fixed scale: centring and a calibrated 1/std",
	MethodSigmaReparam: "sigmaReparam: W = gamma / sigma(W) * V, no norm layers",
	MethodWeightNorm:   "weight normalization: W_j = g_j V_j / |V_j|, no norm layers",
	MethodScaledWS:     "scaled weight standardization: W_j = g_j (V_j - mean) / (std sqrt(fan_in)), no norm layers",
}

// Methods lists every method accepted by NewWith, sorted.
func Methods() []string {
	out := make([]string, 0, len(methodInfo))
	for k := range methodInfo {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Describe returns a one-line description of a method ("" if unknown).
func Describe(method string) string { return methodInfo[method] }

// ValidMethod returns an error naming the accepted methods when method is unknown.
// The empty string means none.
func ValidMethod(method string) error {
	if method == "" {
		return nil
	}
	if _, ok := methodInfo[method]; !ok {
		return fmt.Errorf("unknown normalization %q (want one of %v)", method, Methods())
	}
	return nil
}

// IsWeightSide reports whether method is a weight reparameterization
// (sigmareparam, weightnorm, scaledws): the blocks then have no norm layers.
func IsWeightSide(method string) bool {
	return method == MethodSigmaReparam || method == MethodWeightNorm || method == MethodScaledWS
}

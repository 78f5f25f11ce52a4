// Package model assembles polyformer's transformer architectures from the
// layers of model/nn and the norms of model/norm: a ViT-style image encoder
// classifier (MNIST) and a decoder-only byte-level language model. A
// JSON-serializable Config fixes every choice that changes the function,
// including the calibrated polynomial forms used in poly mode.
package model

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/polyapprox"
)

// Tasks.
const (
	TaskMNIST = "mnist"
	TaskText  = "text"
)

// Attention kinds.
const (
	AttnSoftmax      = "softmax"
	AttnPowerSoftmax = "power-softmax"
	AttnPowerFixed   = "power-fixed"
	// AttnPowerShifted is sign-preserving shifted power attention (nn.ShiftedPower).
	AttnPowerShifted = "power-shifted"
)

// Shift modes of power-shifted attention (AttentionConfig.ShiftMode).
const (
	ShiftLearned    = nn.ShiftLearned
	ShiftCalibrated = nn.ShiftCalibrated
)

// Temperature scopes (AttentionConfig.TemperatureScope).
const (
	TempScopePosition = nn.TempPosition
	TempScopeHead     = nn.TempHead
)

// ConfigVersion is the current config.json format version.
const ConfigVersion = 1

// Limits of a model config: a checkpoint may come from anyone, so every
// size that drives an allocation is bounded before the model is built.
const (
	MaxWidth     = 4096
	MaxHidden    = 16384
	MaxDepth     = 64
	MaxHeads     = 256
	MaxContext   = 4096
	MaxImageSide = 1024
	MaxClasses   = 1 << 16
	MaxTokens    = 4096
	// MaxParams bounds the number of trainable values the config implies
	// (2^27: 1 GB of float64 weights; the recorded models have < 1M, the
	// BERT-base shape of benchmarks/bert about 86M).
	MaxParams = 1 << 27
	// MaxPolySpecs, MaxPolyCoeffs and MaxPolyIterations bound the
	// calibrated polynomial forms; MaxMagnitude bounds their intervals,
	// observed ranges and coefficients (and every weight, see
	// model/checkpoint).
	MaxPolySpecs      = 1 << 12
	MaxPolyCoeffs     = 1024
	MaxPolyIterations = polyapprox.MaxIterations
	MaxMagnitude      = 1 << 20
	// MaxConfigBytes caps a config.json file (16 MiB).
	MaxConfigBytes = 16 << 20
)

// paramEstimate returns an upper bound of the number of trainable values
// of a config whose individual sizes are within their limits.
func (c Config) paramEstimate() int64 {
	w, h, d := int64(c.Width), int64(c.Hidden), int64(c.Depth)
	t := int64(c.Tokens())
	block := 4*w*w + 2*w*h + 16*w + 2*h + 4*int64(c.Heads)*(t+2)
	embed := t*w + 4*w
	switch c.Task {
	case TaskMNIST:
		embed += int64(c.Patch)*int64(c.Patch)*w + w*int64(c.Classes) + int64(c.Classes)
	case TaskText:
		embed += 2*int64(c.Vocab)*w + int64(c.Vocab)
	}
	return d*block + embed
}

// AttentionConfig selects the attention kernel (see nn.Softmax,
// nn.PowerSoftmax, nn.PowerFixed, nn.ShiftedPower).
type AttentionConfig struct {
	Kind string `json:"kind"`
	// P is the power of Power-Softmax and power attention (default 4): even
	// in [2, 16], except power-shifted, where any p in [1, 16] is allowed.
	P int `json:"p,omitempty"`
	// Eps is added to the Power-Softmax (and power-shifted) row normalizer.
	Eps float64 `json:"eps"`
	// Scaled selects the training-stable form s / (max|s| + Delta).
	Scaled      bool    `json:"scaled"`
	Delta       float64 `json:"delta"`
	StopGradMax bool    `json:"stop_grad_max,omitempty"`
	// LengthNorm normalizes by mean_k x^p instead of sum_k x^p (power-softmax
	// and power-shifted).
	LengthNorm bool `json:"length_norm,omitempty"`
	// ShiftInit is the power-shifted shift's start value (learned) or lower
	// bound (calibrated); nil means p, which makes the kernel approximate
	// softmax at init ((x+p)^p ~ exp(x) p^p).
	ShiftInit *float64 `json:"shift_init,omitempty"`
	// ShiftMode is "learned" (default) or "calibrated": set on the first
	// batch to max(init, (1+ShiftMargin) max(0, -min score)) per head, then frozen.
	ShiftMode string `json:"shift_mode,omitempty"`
	// ShiftMargin is the calibrated shift's relative margin (>= 0, default 0).
	ShiftMargin float64 `json:"shift_margin,omitempty"`
	// Learned makes the power-fixed normalizer trainable (else calibrated on the first batch and frozen).
	Learned bool `json:"learned,omitempty"`
	// Temperature adds a learnable inverse temperature.
	Temperature bool `json:"temperature,omitempty"`
	// TemperatureScope is "position" (default: per head and position,
	// [heads, tokens]) or "head" (per head, [heads, 1]); only with Temperature.
	TemperatureScope string `json:"temperature_scope,omitempty"`
}

// Shift returns the power-shifted shift init (ShiftInit, or p when unset).
func (a AttentionConfig) Shift() float64 {
	if a.ShiftInit != nil {
		return *a.ShiftInit
	}
	return float64(a.P)
}

// ShiftModeOrDefault returns ShiftMode, or "learned" when unset.
func (a AttentionConfig) ShiftModeOrDefault() string {
	if a.ShiftMode == "" {
		return ShiftLearned
	}
	return a.ShiftMode
}

// TempScope returns the nn temperature scope: nn.TempNone without
// Temperature, else TemperatureScope ("position" when unset).
func (a AttentionConfig) TempScope() string {
	if !a.Temperature {
		return nn.TempNone
	}
	if a.TemperatureScope == "" {
		return nn.TempPosition
	}
	return a.TemperatureScope
}

// EntropyConfig configures entropy regularization (nn.EntropyRegularizer).
type EntropyConfig struct {
	Enabled bool    `json:"enabled"`
	Gamma   float64 `json:"gamma"`
	Lambda  float64 `json:"lambda"`
	Theta0  float64 `json:"theta0"`
}

// DataConfig says where the data of the task comes from, so that evaluation
// can reload it. Empty fields mean the defaults (GoMNIST module directory,
// GOROOT).
type DataConfig struct {
	// Dir holds the MNIST IDX files (task mnist).
	Dir string `json:"dir,omitempty"`
	// GoRoot is the Go installation whose src/ is the corpus (task text, unless TextFile).
	GoRoot string `json:"goroot,omitempty"`
	// TextFile is a text corpus (task text).
	TextFile string `json:"text_file,omitempty"`
	// MaxBytes caps the Go source corpus (0: data package default / no cap).
	MaxBytes int `json:"max_bytes,omitempty"`
	// ValidFraction is the validation share of a text file (default 0.1).
	ValidFraction float64 `json:"valid_fraction,omitempty"`
}

// PolyConfig holds the polynomial forms of every non-linearity, as calibrated.
type PolyConfig struct {
	Fit   nn.FitOptions `json:"fit"`
	Specs []nn.PolySpec `json:"specs"`
}

// Config is the architecture and every function-changing choice of a model.
type Config struct {
	Version int    `json:"version"`
	Task    string `json:"task"`
	Width   int    `json:"width"`
	Depth   int    `json:"depth"`
	Heads   int    `json:"heads"`
	// Hidden is the FFN hidden width (default 4*Width).
	Hidden int `json:"hidden"`
	// Context is the sequence length of the language model.
	Context int `json:"context,omitempty"`
	// ImageRows, ImageCols, Patch and Classes describe the image task.
	ImageRows int `json:"image_rows,omitempty"`
	ImageCols int `json:"image_cols,omitempty"`
	Patch     int `json:"patch,omitempty"`
	Classes   int `json:"classes,omitempty"`
	// Vocab is 256 for the byte language model.
	Vocab     int             `json:"vocab,omitempty"`
	Attention AttentionConfig `json:"attention"`
	// Activation is gelu, relu, quad, poly or none.
	Activation    string  `json:"activation"`
	PolyActDegree int     `json:"poly_act_degree,omitempty"`
	PolyActRadius float64 `json:"poly_act_radius,omitempty"`
	// ScaledResidual enables X_out = beta X + (1/alpha) FFN(X) (with activation
	// none: the activation-free fused FFN).
	ScaledResidual bool `json:"scaled_residual,omitempty"`
	// Norm is the normalization method (norm.Methods(): layernorm, rmsnorm,
	// none, batchnorm, repbn, prepbn, powernorm, unified, fixedscale,
	// sigmareparam, weightnorm, scaledws).
	Norm string `json:"norm"`
	// NormOptions are the method's hyper-parameters and the placement (nil: defaults, pre-norm).
	NormOptions *norm.Options `json:"norm_options,omitempty"`
	Entropy     EntropyConfig `json:"entropy"`
	Seed        uint64        `json:"seed"`
	Data        DataConfig    `json:"data"`
	Poly        *PolyConfig   `json:"poly,omitempty"`
}

// DefaultConfig returns the HE-friendly defaults of a task: shifted power
// attention (p = 4, a learned per-head shift starting at c = p, where
// (x + c)^p / sum (x + c)^p approximates softmax; sum-normalized, eps = 0.01),
// GELU, and weight normalization: zero HE cost (it only reparametrizes the
// weights, which the compiler folds) and the best zero-cost method of the
// normalization ablation (benchmarks/normfree, docs/normalization.md).
//
// Shifted power attention is the default because it closed the attention
// part of the quality gap on the byte LM: at the same budget it is within 1%
// of softmax with the same normalization, where the even-power Power-Softmax
// was 7% behind (benchmarks/frontier, docs/attention.md). Its price under
// encryption is a wider reciprocal range than Power-Softmax's (more
// Goldschmidt iterations); range regularization narrows it.
func DefaultConfig(task string) (Config, error) {
	c := Config{Version: ConfigVersion, Task: task, Width: 64, Depth: 2, Heads: 4, Hidden: 128,
		Attention:  AttentionConfig{Kind: AttnPowerShifted, P: 4, Eps: 1e-2, Delta: 1e-2},
		Activation: nn.ActGELU, Norm: norm.MethodWeightNorm, Seed: 1,
		Entropy: EntropyConfig{Gamma: 0.2, Lambda: 1e-5, Theta0: 0.5}}
	switch task {
	case TaskMNIST:
		c.ImageRows, c.ImageCols, c.Patch, c.Classes = 28, 28, 7, 10
	case TaskText:
		c.Context, c.Vocab = 64, 256
		c.Hidden = 256
	default:
		return Config{}, fmt.Errorf("unknown task %q (want mnist or text)", task)
	}
	return c, nil
}

// NormOpts returns the normalization options with defaults filled in.
func (c Config) NormOpts() norm.Options {
	if c.NormOptions == nil {
		return norm.Options{}.Defaults()
	}
	return c.NormOptions.Defaults()
}

// Tokens is the sequence length the model processes.
func (c Config) Tokens() int {
	if c.Task == TaskMNIST {
		if c.Patch <= 0 {
			return 0
		}
		return (c.ImageRows / c.Patch) * (c.ImageCols / c.Patch)
	}
	return c.Context
}

// Validate checks every field and returns a descriptive error.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Version != ConfigVersion {
		bad("config version %d, this build reads version %d", c.Version, ConfigVersion)
	}
	switch c.Task {
	case TaskMNIST:
		if c.ImageRows <= 0 || c.ImageCols <= 0 || c.Patch <= 0 || c.ImageRows%c.Patch != 0 || c.ImageCols%c.Patch != 0 {
			bad("image %dx%d is not divisible into %dx%d patches", c.ImageRows, c.ImageCols, c.Patch, c.Patch)
		}
		if c.Classes < 2 {
			bad("classes = %d, need at least 2", c.Classes)
		}
	case TaskText:
		if c.Context < 2 {
			bad("context = %d, need at least 2", c.Context)
		}
		if c.Vocab != 256 {
			bad("vocab = %d, the byte language model needs 256", c.Vocab)
		}
	default:
		bad("unknown task %q (want mnist or text)", c.Task)
	}
	sizesOK := true
	for _, f := range []struct {
		name     string
		val, max int
		applies  bool
	}{
		{"width", c.Width, MaxWidth, true}, {"hidden", c.Hidden, MaxHidden, true}, {"depth", c.Depth, MaxDepth, true},
		{"heads", c.Heads, MaxHeads, true}, {"context", c.Context, MaxContext, c.Task == TaskText},
		{"image_rows", c.ImageRows, MaxImageSide, c.Task == TaskMNIST}, {"image_cols", c.ImageCols, MaxImageSide, c.Task == TaskMNIST},
		{"patch", c.Patch, MaxImageSide, c.Task == TaskMNIST}, {"classes", c.Classes, MaxClasses, c.Task == TaskMNIST},
		{"poly_act_degree", c.PolyActDegree, MaxPolyCoeffs - 1, true},
	} {
		if f.applies && f.val > f.max {
			bad("%s = %d exceeds the limit %d", f.name, f.val, f.max)
			sizesOK = false
		}
	}
	if c.Width <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.Hidden <= 0 {
		bad("width %d, depth %d, heads %d and hidden %d must be positive", c.Width, c.Depth, c.Heads, c.Hidden)
		sizesOK = false
	} else if c.Width%c.Heads != 0 {
		bad("width %d is not divisible by %d heads", c.Width, c.Heads)
	}
	if sizesOK {
		if t := c.Tokens(); t > MaxTokens {
			bad("tokens = %d exceeds the limit %d", t, MaxTokens)
		} else if n := c.paramEstimate(); n > MaxParams {
			bad("the config implies about %d parameters, above the limit %d", n, MaxParams)
		}
	}
	if !(math.Abs(c.PolyActRadius) <= MaxMagnitude) {
		bad("poly_act_radius = %g is not finite or exceeds the limit %g", c.PolyActRadius, float64(MaxMagnitude))
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"attention.eps", c.Attention.Eps}, {"attention.delta", c.Attention.Delta}, {"attention.shift_margin", c.Attention.ShiftMargin},
		{"entropy.gamma", c.Entropy.Gamma}, {"entropy.lambda", c.Entropy.Lambda}, {"entropy.theta0", c.Entropy.Theta0}} {
		if !(math.Abs(f.v) <= MaxMagnitude) {
			bad("%s = %g is not finite or exceeds the limit %g", f.name, f.v, float64(MaxMagnitude))
		}
	}
	if c.Poly != nil {
		if err := c.Poly.validate(); err != nil {
			bad("%v", err)
		}
	}
	switch c.Attention.Kind {
	case AttnSoftmax:
	case AttnPowerSoftmax, AttnPowerFixed:
		if c.Attention.P < 2 || c.Attention.P%2 != 0 || c.Attention.P > 16 {
			bad("attention power p = %d must be even in [2, 16] for %s (power-shifted allows any p in [1, 16])", c.Attention.P, c.Attention.Kind)
		}
		if c.Attention.Eps < 0 || c.Attention.Delta < 0 {
			bad("attention eps %g and delta %g must be >= 0", c.Attention.Eps, c.Attention.Delta)
		}
		if c.Attention.Kind == AttnPowerSoftmax && c.Attention.Scaled && c.Attention.Eps == 0 && c.Attention.Delta == 0 {
			bad("scaled power-softmax with eps = 0 needs delta > 0")
		}
	case AttnPowerShifted:
		a := c.Attention
		if a.P < 1 || a.P > 16 {
			bad("power-shifted attention p = %d must be in [1, 16]", a.P)
		}
		if a.Eps < 0 {
			bad("attention eps %g must be >= 0", a.Eps)
		}
		if m := a.ShiftModeOrDefault(); m != ShiftLearned && m != ShiftCalibrated {
			bad("attention shift mode %q (want %s or %s)", a.ShiftMode, ShiftLearned, ShiftCalibrated)
		}
		if s := a.Shift(); math.IsNaN(s) || math.IsInf(s, 0) {
			bad("attention shift init %g must be finite", s)
		}
		if !(a.ShiftMargin >= 0) || math.IsInf(a.ShiftMargin, 0) {
			bad("attention shift margin %g must be finite and >= 0", a.ShiftMargin)
		}
	default:
		bad("unknown attention %q (want softmax, power-softmax, power-fixed or power-shifted)", c.Attention.Kind)
	}
	if c.Attention.Kind != AttnPowerShifted && (c.Attention.ShiftInit != nil || c.Attention.ShiftMode != "" || c.Attention.ShiftMargin != 0) {
		bad("attention shift_init, shift_mode and shift_margin apply only to power-shifted, not %q", c.Attention.Kind)
	}
	switch c.Attention.TemperatureScope {
	case "", TempScopePosition, TempScopeHead:
		if c.Attention.TemperatureScope != "" && !c.Attention.Temperature {
			bad("attention temperature_scope %q needs temperature = true", c.Attention.TemperatureScope)
		}
	default:
		bad("unknown temperature scope %q (want position or head)", c.Attention.TemperatureScope)
	}
	switch c.Activation {
	case nn.ActGELU, nn.ActReLU, nn.ActQuad, nn.ActPoly, nn.ActNone:
	default:
		bad("unknown activation %q (want gelu, relu, quad, poly or none)", c.Activation)
	}
	if err := norm.ValidMethod(c.Norm); err != nil {
		bad("%v", err)
	}
	if c.NormOptions != nil {
		if err := c.NormOptions.Validate(); err != nil {
			bad("%v", err)
		}
	}
	if c.Entropy.Enabled && (c.Entropy.Gamma < 0 || c.Entropy.Lambda < 0) {
		bad("entropy gamma %g and lambda %g must be >= 0", c.Entropy.Gamma, c.Entropy.Lambda)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid model config: %w", oneLine(errs))
	}
	return nil
}

// joinedErrors joins errors on one line ("; "), unlike errors.Join.
type joinedErrors []error

func (j joinedErrors) Error() string {
	parts := make([]string, len(j))
	for i, e := range j {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

func (j joinedErrors) Unwrap() []error { return j }

func oneLine(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	return joinedErrors(errs)
}

// validate checks the calibrated polynomial forms: counts, degrees,
// iterations, and that intervals, observed ranges and coefficients are
// finite and within MaxMagnitude (errors name the site and the index).
func (p *PolyConfig) validate() error {
	if len(p.Specs) > MaxPolySpecs {
		return fmt.Errorf("poly.specs: %d entries exceed the limit %d", len(p.Specs), MaxPolySpecs)
	}
	ok := func(x float64) bool { return math.Abs(x) <= MaxMagnitude }
	for i, s := range p.Specs {
		where := fmt.Sprintf("poly.specs[%d] (site %.64q)", i, s.Site)
		if len(s.Coeffs) > MaxPolyCoeffs {
			return fmt.Errorf("%s: %d coefficients exceed the limit %d", where, len(s.Coeffs), MaxPolyCoeffs)
		}
		if s.Degree < 0 || s.Degree >= MaxPolyCoeffs {
			return fmt.Errorf("%s: degree %d outside [0, %d]", where, s.Degree, MaxPolyCoeffs-1)
		}
		if s.Iterations < 0 || s.Iterations > MaxPolyIterations {
			return fmt.Errorf("%s: %d iterations outside [0, %d]", where, s.Iterations, MaxPolyIterations)
		}
		for k, v := range [4]float64{s.Interval[0], s.Interval[1], s.Observed[0], s.Observed[1]} {
			if !ok(v) {
				field := [4]string{"interval[0]", "interval[1]", "observed[0]", "observed[1]"}[k]
				return fmt.Errorf("%s: %s = %g is not finite or exceeds the limit %g in magnitude", where, field, v, float64(MaxMagnitude))
			}
		}
		if !(s.Interval[0] < s.Interval[1]) {
			return fmt.Errorf("%s: interval [%g, %g] is empty", where, s.Interval[0], s.Interval[1])
		}
		for k, v := range s.Coeffs {
			if !ok(v) {
				return fmt.Errorf("%s: coeffs[%d] = %g is not finite or exceeds the limit %g in magnitude", where, k, v, float64(MaxMagnitude))
			}
		}
		if !(s.MaxErr >= 0) || math.IsInf(s.MaxErr, 0) {
			return fmt.Errorf("%s: max_err = %g must be finite and >= 0", where, s.MaxErr)
		}
	}
	return nil
}

// PolyCaveat returns a non-empty explanation when poly mode cannot reproduce
// the trained function exactly for structural reasons (not range reasons):
// the max-scaled Power-Softmax with eps > 0 depends on the row maximum,
// which an encrypted circuit does not compute, so poly mode evaluates the
// unscaled form.
func (c Config) PolyCaveat() string {
	if c.Attention.Kind == AttnPowerSoftmax && c.Attention.Scaled && c.Attention.Eps > 0 {
		return fmt.Sprintf("power-softmax is max-scaled with eps = %g: poly mode (and encrypted inference) evaluates the unscaled form, a different function; use eps = 0 or scaled = false", c.Attention.Eps)
	}
	return ""
}

// LoadConfig reads and validates a JSON config file. Unknown fields are an error.
func LoadConfig(path string) (Config, error) {
	return LoadConfigOver(path, Config{})
}

// DecodeConfig decodes and validates a config held in memory on top of
// base (fields absent from data keep base's values): at most
// MaxConfigBytes, one JSON object, no unknown fields, every size within its
// limit. Errors are one line naming the field, the value and the limit.
func DecodeConfig(data []byte, base Config) (Config, error) {
	if len(data) > MaxConfigBytes {
		return Config{}, fmt.Errorf("config of %d bytes exceeds the limit %d", len(data), MaxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	c := base
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Config{}, errors.New("parse config: data after the config object")
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readConfigFile reads a config file, refusing files above MaxConfigBytes
// before reading them.
func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > MaxConfigBytes {
		return nil, fmt.Errorf("config %s: %d bytes exceed the limit %d", path, st.Size(), MaxConfigBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	return b, nil
}

// LoadConfigOver reads a JSON config file on top of base: fields absent from
// the file keep base's values (e.g. base = DefaultConfig(task), so a config
// file may set only what it changes). Unknown fields are an error; the
// result is validated.
func LoadConfigOver(path string, base Config) (Config, error) {
	b, err := readConfigFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := DecodeConfig(b, base)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// SaveConfig writes the config as indented JSON.
func SaveConfig(path string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

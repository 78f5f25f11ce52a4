// Package model assembles polyformer's transformer architectures from the
// layers of model/nn and the norms of normfree: a ViT-style image encoder
// classifier (MNIST) and a decoder-only byte-level language model. A
// JSON-serializable Config fixes every choice that changes the function,
// including the calibrated polynomial forms used in poly mode.
package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/normfree"
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
	// Norm is the normalization kind (normfree.Kinds(): layernorm, rmsnorm,
	// none, batchnorm, repbn, prepbn, powernorm, unified, fixedscale,
	// sigmareparam, weightnorm, scaledws).
	Norm string `json:"norm"`
	// NormOptions are the method's hyper-parameters and the placement (nil: defaults, pre-norm).
	NormOptions *normfree.Options `json:"norm_options,omitempty"`
	Entropy     EntropyConfig     `json:"entropy"`
	Seed        uint64            `json:"seed"`
	Data        DataConfig        `json:"data"`
	Poly        *PolyConfig       `json:"poly,omitempty"`
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
		Activation: nn.ActGELU, Norm: normfree.KindWeightNorm, Seed: 1,
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
func (c Config) NormOpts() normfree.Options {
	if c.NormOptions == nil {
		return normfree.Options{}.Defaults()
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
	if c.Width <= 0 || c.Depth <= 0 || c.Heads <= 0 || c.Hidden <= 0 {
		bad("width %d, depth %d, heads %d and hidden %d must be positive", c.Width, c.Depth, c.Heads, c.Hidden)
	} else if c.Width%c.Heads != 0 {
		bad("width %d is not divisible by %d heads", c.Width, c.Heads)
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
	if err := normfree.ValidKind(c.Norm); err != nil {
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
		return fmt.Errorf("invalid model config: %w", errors.Join(errs...))
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
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// LoadConfigOver reads a JSON config file on top of base: fields absent from
// the file keep base's values (e.g. base = DefaultConfig(task), so a config
// file may set only what it changes). Unknown fields are an error; the
// result is validated.
func LoadConfigOver(path string, base Config) (Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	c := base
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("parse config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
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

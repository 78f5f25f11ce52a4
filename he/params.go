package he

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// Preset is a named CKKS parameter set.
//
// Literal describes the residual (user-facing) parameters. Bootstrapping, when
// non-nil, is the Lattigo bootstrapping literal built on top of Literal; the
// bootstrapping circuit then runs on its own, larger modulus chain, which the
// security check covers too. InsecureForTesting marks parameter sets that are
// deliberately below 128-bit security (small ring degrees for fast tests);
// they are refused by NewParameters unless this flag is set.
type Preset struct {
	Name               string
	Literal            hefloat.ParametersLiteral
	Bootstrapping      *bootstrapping.ParametersLiteral
	InsecureForTesting bool
	Description        string
}

// Preset names.
const (
	PresetN14         = "n14"
	PresetN15         = "n15"
	PresetN16         = "n16"
	PresetN16Boot     = "n16-boot"
	PresetN16Boot14   = "n16-boot14"
	PresetTestN12     = "test-n12"
	PresetTestN13     = "test-n13"
	PresetTestBootN13 = "test-boot-n13"
)

// repeatInt returns n copies of v.
func repeatInt(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// Presets returns every named preset, secure ones first. Each call builds
// fresh values, so callers may modify the result freely.
func Presets() []Preset {
	ternary := ring.Ternary{P: 2.0 / 3.0}
	return []Preset{
		{
			Name: PresetN14,
			Literal: hefloat.ParametersLiteral{
				LogN: 14, LogQ: append([]int{55}, repeatInt(40, 8)...), LogP: []int{61},
				Xs: ternary, LogDefaultScale: 40,
			},
			Description: "logN=14, 8 levels at 2^40, logQP≈436 (HE-standard bound 438); cheapest secure set",
		},
		{
			Name: PresetN15,
			Literal: hefloat.ParametersLiteral{
				LogN: 15, LogQ: append([]int{55}, repeatInt(40, 16)...), LogP: []int{61, 61, 61},
				Xs: ternary, LogDefaultScale: 40,
			},
			Description: "logN=15, 16 levels at 2^40, logQP≈878 (bound 881)",
		},
		{
			Name: PresetN16,
			Literal: hefloat.ParametersLiteral{
				LogN: 16, LogQ: append([]int{55}, repeatInt(40, 24)...), LogP: repeatInt(61, 5),
				Xs: ternary, LogDefaultScale: 40,
			},
			Description: "logN=16, 24 levels at 2^40, logQP≈1320 (bound 1761); deep leveled circuits",
		},
		{
			Name: PresetN16Boot,
			Literal: hefloat.ParametersLiteral{
				LogN: 16, LogQ: append([]int{60}, repeatInt(40, 9)...), LogP: repeatInt(61, 5),
				Xs: ring.Ternary{H: 192}, LogDefaultScale: 40,
			},
			Bootstrapping: &bootstrapping.ParametersLiteral{},
			Description: "Lattigo N16QP1546H192H32: 9 levels at 2^40 after each bootstrap, " +
				"sparse secret H=192, circuit logQP≈1546 (Lattigo's bound 1550 for H=192); keys ≈8 GB",
		},
		{
			Name: PresetN16Boot14,
			Literal: hefloat.ParametersLiteral{
				LogN: 16, LogQ: append([]int{60}, repeatInt(40, 14)...), LogP: repeatInt(61, 6),
				Xs: ternary, LogDefaultScale: 40,
			},
			Bootstrapping: &bootstrapping.ParametersLiteral{},
			Description: "Lattigo N16QP1767H32768H32 with 14 levels at 2^40 after each bootstrap (the most within the bound), " +
				"dense ternary secret, circuit logQP≈1746 (bound 1761); 5 more levels per bootstrap than n16-boot",
		},
		{
			Name: PresetTestN12,
			Literal: hefloat.ParametersLiteral{
				LogN: 12, LogQ: append([]int{55}, repeatInt(40, 8)...), LogP: []int{61},
				Xs: ternary, LogDefaultScale: 40,
			},
			InsecureForTesting: true,
			Description:        "INSECURE test set: the n14 modulus chain at logN=12",
		},
		{
			Name: PresetTestN13,
			Literal: hefloat.ParametersLiteral{
				LogN: 13, LogQ: append([]int{55}, repeatInt(40, 16)...), LogP: []int{61, 61, 61},
				Xs: ternary, LogDefaultScale: 40,
			},
			InsecureForTesting: true,
			Description:        "INSECURE test set: the n15 modulus chain at logN=13",
		},
		{
			Name: PresetTestBootN13,
			Literal: hefloat.ParametersLiteral{
				LogN: 13, LogQ: []int{60, 40, 40}, LogP: []int{61},
				Xs: ternary, LogDefaultScale: 40,
			},
			// Modeled on Lattigo's own bootstrapping tests (testPrec45 and
			// TestCircuitWithEncapsulation): default circuit at a small ring
			// degree, message ratio raised by 16-logN to keep the precision.
			Bootstrapping: &bootstrapping.ParametersLiteral{
				LogN:            utils.Pointy(13),
				LogMessageRatio: utils.Pointy(bootstrapping.DefaultLogMessageRatio + 16 - 13),
			},
			InsecureForTesting: true,
			Description:        "INSECURE test set: bootstrapping at logN=13, 2 levels after each bootstrap",
		},
	}
}

// PresetNames returns the names of all presets in table order.
func PresetNames() []string {
	ps := Presets()
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
	}
	return names
}

// LookupPreset returns the preset with the given name.
func LookupPreset(name string) (Preset, error) {
	for _, p := range Presets() {
		if p.Name == name {
			return p, nil
		}
	}
	return Preset{}, fmt.Errorf("unknown parameter preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
}

// Parameters are resolved, security-checked CKKS parameters: the Lattigo
// parameters, the optional bootstrapping parameters, the preset metadata and
// the parameter fingerprint. A *Parameters is immutable and safe for
// concurrent use.
type Parameters struct {
	name        string
	description string
	insecure    bool
	params      hefloat.Parameters
	btpLit      *bootstrapping.ParametersLiteral
	btp         *bootstrapping.Parameters
	fp          Fingerprint
	security    SecurityReport
}

// NewParameters resolves a preset into Parameters. It generates the primes,
// builds the bootstrapping parameters if any, and runs CheckSecurity: a
// preset above the 128-bit bound is refused unless InsecureForTesting is set.
func NewParameters(p Preset) (*Parameters, error) {
	params, btp, err := buildLattigoParameters(p.Literal, p.Bootstrapping)
	if err != nil {
		return nil, fmt.Errorf("preset %q: %w", p.Name, err)
	}
	report, err := CheckParametersSecurity(params, btp, p.InsecureForTesting)
	if err != nil {
		return nil, fmt.Errorf("preset %q: %w", p.Name, err)
	}
	var btpLit *bootstrapping.ParametersLiteral
	if p.Bootstrapping != nil {
		c := cloneBootstrappingLiteral(*p.Bootstrapping)
		btpLit = &c
	}
	canon, err := canonicalDescription(params, btpLit, btp)
	if err != nil {
		return nil, fmt.Errorf("preset %q: %w", p.Name, err)
	}
	fp := Fingerprint(sha256.Sum256([]byte(canon)))
	return &Parameters{
		name:        p.Name,
		description: p.Description,
		insecure:    p.InsecureForTesting,
		params:      params,
		btpLit:      btpLit,
		btp:         btp,
		fp:          fp,
		security:    report,
	}, nil
}

// ParametersFromPreset looks up a preset by name and resolves it.
func ParametersFromPreset(name string) (*Parameters, error) {
	p, err := LookupPreset(name)
	if err != nil {
		return nil, err
	}
	return NewParameters(p)
}

// buildLattigoParameters builds the Lattigo parameters, converting any panic
// inside Lattigo (which validates some inputs by panicking) into an error.
func buildLattigoParameters(lit hefloat.ParametersLiteral, btpLit *bootstrapping.ParametersLiteral) (params hefloat.Parameters, btp *bootstrapping.Parameters, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("invalid parameters (lattigo panicked: %v)", r)
		}
	}()
	if err = checkLiteralBounds(lit); err != nil {
		return params, nil, err
	}
	if params, err = hefloat.NewParametersFromLiteral(lit); err != nil {
		return params, nil, fmt.Errorf("hefloat.NewParametersFromLiteral: %w", err)
	}
	if btpLit != nil {
		if err = checkBootstrappingLiteralBounds(*btpLit, params.LogN()); err != nil {
			return params, nil, err
		}
		b, err := bootstrapping.NewParametersFromLiteral(params, *btpLit)
		if err != nil {
			return params, nil, fmt.Errorf("bootstrapping.NewParametersFromLiteral: %w", err)
		}
		btp = &b
	}
	return params, btp, nil
}

// Limits applied to parameter literals before they reach Lattigo, so that a
// corrupted parameters file cannot make Lattigo allocate without bound.
const (
	minLogN      = 10
	maxLogN      = 17
	maxQPrimes   = 64
	maxPPrimes   = 16
	maxPrimeBits = 61
)

func checkLiteralBounds(lit hefloat.ParametersLiteral) error {
	if lit.LogN < minLogN || lit.LogN > maxLogN {
		return fmt.Errorf("LogN=%d outside the supported range [%d, %d]", lit.LogN, minLogN, maxLogN)
	}
	if lit.LogNthRoot != 0 && (lit.LogNthRoot < lit.LogN+1 || lit.LogNthRoot > maxLogN+1) {
		return fmt.Errorf("LogNthRoot=%d invalid for LogN=%d", lit.LogNthRoot, lit.LogN)
	}
	nq := len(lit.Q) + len(lit.LogQ)
	np := len(lit.P) + len(lit.LogP)
	if nq == 0 || nq > maxQPrimes {
		return fmt.Errorf("%d Q primes, want 1..%d", nq, maxQPrimes)
	}
	if np > maxPPrimes {
		return fmt.Errorf("%d P primes, want at most %d", np, maxPPrimes)
	}
	for _, b := range append(append([]int{}, lit.LogQ...), lit.LogP...) {
		if b < 10 || b > maxPrimeBits {
			return fmt.Errorf("prime bit size %d outside [10, %d]", b, maxPrimeBits)
		}
	}
	for _, q := range append(append([]uint64{}, lit.Q...), lit.P...) {
		if q < 1<<10 || q >= 1<<maxPrimeBits+1 {
			return fmt.Errorf("modulus %d outside [2^10, 2^%d]", q, maxPrimeBits+1)
		}
	}
	if lit.LogDefaultScale < 0 || lit.LogDefaultScale > 128 {
		return fmt.Errorf("LogDefaultScale=%d outside [0, 128]", lit.LogDefaultScale)
	}
	if lit.RingType != ring.Standard && lit.RingType != ring.ConjugateInvariant {
		return fmt.Errorf("unknown ring type %d", lit.RingType)
	}
	if err := checkDistributionBounds(lit.Xs, lit.LogN); err != nil {
		return fmt.Errorf("Xs: %w", err)
	}
	if err := checkDistributionBounds(lit.Xe, lit.LogN); err != nil {
		return fmt.Errorf("Xe: %w", err)
	}
	return nil
}

func checkDistributionBounds(d ring.DistributionParameters, logN int) error {
	switch d := d.(type) {
	case nil:
		return nil
	case ring.Ternary:
		if d.H < 0 || d.H > 1<<logN || math.IsNaN(d.P) || d.P < 0 || d.P > 1 || (d.H == 0) == (d.P == 0) {
			return fmt.Errorf("invalid ternary distribution %+v (exactly one of P in (0,1], H in [1,N] must be set)", d)
		}
	case ring.DiscreteGaussian:
		if !(d.Sigma > 0 && d.Sigma < 1<<20 && d.Bound >= d.Sigma && d.Bound < 1<<24) {
			return fmt.Errorf("invalid Gaussian distribution %+v", d)
		}
	case ring.Uniform:
	default:
		return fmt.Errorf("unsupported distribution %T", d)
	}
	return nil
}

func checkBootstrappingLiteralBounds(b bootstrapping.ParametersLiteral, residualLogN int) error {
	intIn := func(name string, v *int, lo, hi int) error {
		if v != nil && (*v < lo || *v > hi) {
			return fmt.Errorf("bootstrapping %s=%d outside [%d, %d]", name, *v, lo, hi)
		}
		return nil
	}
	logN := bootstrapping.DefaultLogN
	if b.LogN != nil {
		logN = *b.LogN
	}
	checks := []error{
		intIn("LogN", b.LogN, residualLogN, maxLogN),
		intIn("LogSlots", b.LogSlots, 0, logN-1),
		intIn("EvalModLogScale", b.EvalModLogScale, 10, maxPrimeBits),
		intIn("EphemeralSecretWeight", b.EphemeralSecretWeight, 0, 1<<logN),
		intIn("LogMessageRatio", b.LogMessageRatio, 0, 40),
		intIn("K", b.K, 1, 512),
		intIn("Mod1Degree", b.Mod1Degree, 1, 512),
		intIn("DoubleAngle", b.DoubleAngle, 0, 8),
		intIn("Mod1InvDegree", b.Mod1InvDegree, 0, 64),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if len(b.LogP) > maxPPrimes {
		return fmt.Errorf("bootstrapping LogP has %d primes, want at most %d", len(b.LogP), maxPPrimes)
	}
	for _, v := range b.LogP {
		if v < 10 || v > maxPrimeBits {
			return fmt.Errorf("bootstrapping LogP entry %d outside [10, %d]", v, maxPrimeBits)
		}
	}
	for name, m := range map[string][][]int{"CoeffsToSlots": b.CoeffsToSlotsFactorizationDepthAndLogScales, "SlotsToCoeffs": b.SlotsToCoeffsFactorizationDepthAndLogScales} {
		if len(m) > 16 {
			return fmt.Errorf("bootstrapping %s depth %d > 16", name, len(m))
		}
		for _, row := range m {
			if len(row) == 0 || len(row) > 8 {
				return fmt.Errorf("bootstrapping %s level with %d factors, want 1..8", name, len(row))
			}
			for _, v := range row {
				if v < 10 || v > maxPrimeBits {
					return fmt.Errorf("bootstrapping %s log-scale %d outside [10, %d]", name, v, maxPrimeBits)
				}
			}
		}
	}
	if b.Mod1Type > hefloat.CosContinuous {
		return fmt.Errorf("bootstrapping Mod1Type %d unknown", b.Mod1Type)
	}
	if it := b.IterationsParameters; it != nil {
		if len(it.BootstrappingPrecision) == 0 || len(it.BootstrappingPrecision) > 4 || it.ReservedPrimeBitSize < 0 || it.ReservedPrimeBitSize > maxPrimeBits {
			return fmt.Errorf("bootstrapping IterationsParameters %+v out of range", *it)
		}
		for _, p := range it.BootstrappingPrecision {
			if math.IsNaN(p) || p <= 0 || p > 128 {
				return fmt.Errorf("bootstrapping precision %v out of range", p)
			}
		}
	}
	if err := checkDistributionBounds(b.Xs, logN); err != nil {
		return fmt.Errorf("bootstrapping Xs: %w", err)
	}
	if err := checkDistributionBounds(b.Xe, logN); err != nil {
		return fmt.Errorf("bootstrapping Xe: %w", err)
	}
	return nil
}

func cloneBootstrappingLiteral(b bootstrapping.ParametersLiteral) bootstrapping.ParametersLiteral {
	cp := func(v *int) *int {
		if v == nil {
			return nil
		}
		x := *v
		return &x
	}
	cpm := func(m [][]int) [][]int {
		if m == nil {
			return nil
		}
		out := make([][]int, len(m))
		for i := range m {
			out[i] = append([]int{}, m[i]...)
		}
		return out
	}
	out := b
	out.LogN, out.LogSlots, out.EvalModLogScale = cp(b.LogN), cp(b.LogSlots), cp(b.EvalModLogScale)
	out.EphemeralSecretWeight, out.LogMessageRatio, out.K = cp(b.EphemeralSecretWeight), cp(b.LogMessageRatio), cp(b.K)
	out.Mod1Degree, out.DoubleAngle, out.Mod1InvDegree = cp(b.Mod1Degree), cp(b.DoubleAngle), cp(b.Mod1InvDegree)
	if b.LogP != nil {
		out.LogP = append([]int{}, b.LogP...)
	}
	out.CoeffsToSlotsFactorizationDepthAndLogScales = cpm(b.CoeffsToSlotsFactorizationDepthAndLogScales)
	out.SlotsToCoeffsFactorizationDepthAndLogScales = cpm(b.SlotsToCoeffsFactorizationDepthAndLogScales)
	if b.IterationsParameters != nil {
		it := *b.IterationsParameters
		it.BootstrappingPrecision = append([]float64{}, it.BootstrappingPrecision...)
		out.IterationsParameters = &it
	}
	return out
}

// Name returns the preset name ("" for parameters read from an unnamed file).
func (p *Parameters) Name() string { return p.name }

// Description returns the preset's one-line description.
func (p *Parameters) Description() string { return p.description }

// Insecure reports whether the parameters are marked InsecureForTesting.
func (p *Parameters) Insecure() bool { return p.insecure }

// HE returns the Lattigo CKKS parameters (the residual parameters when
// bootstrapping is enabled). Encoders, encryptors and evaluators are built on
// these. For packages under he/ only: Lattigo types stay inside he/.
func (p *Parameters) HE() hefloat.Parameters { return p.params }

// HasBootstrapping reports whether the parameters carry bootstrapping parameters.
func (p *Parameters) HasBootstrapping() bool { return p.btp != nil }

// BootstrappingParameters returns the Lattigo bootstrapping parameters, or
// nil when the preset has none. For packages under he/ only.
func (p *Parameters) BootstrappingParameters() *bootstrapping.Parameters { return p.btp }

// BootstrappingLiteral returns a copy of the Lattigo bootstrapping literal,
// or nil. For packages under he/ only.
func (p *Parameters) BootstrappingLiteral() *bootstrapping.ParametersLiteral {
	if p.btpLit == nil {
		return nil
	}
	c := cloneBootstrappingLiteral(*p.btpLit)
	return &c
}

// Literal returns the resolved parameter literal, with explicit Q and P
// primes (LogQ/LogP cleared), so that it rebuilds exactly these parameters.
// For packages under he/ only (it is a Lattigo literal).
func (p *Parameters) Literal() hefloat.ParametersLiteral {
	lit := hefloat.ParametersLiteral(p.params.ParametersLiteral())
	lit.LogQ, lit.LogP = nil, nil
	return lit
}

// GaloisElement returns the Galois element of a left rotation by k slots
// (negative k rotates right): the key a rotation by k needs.
func (p *Parameters) GaloisElement(k int) uint64 { return p.params.GaloisElement(k) }

// LogN returns log2 of the ring degree.
func (p *Parameters) LogN() int { return p.params.LogN() }

// N returns the ring degree.
func (p *Parameters) N() int { return p.params.N() }

// Slots returns the number of slots of a full ciphertext: N/2 complex slots
// for the standard ring, N real slots for the conjugate-invariant ring.
func (p *Parameters) Slots() int { return p.params.MaxSlots() }

// MaxLevel returns the number of rescalings a fresh ciphertext allows (and
// the level of a bootstrapped ciphertext).
func (p *Parameters) MaxLevel() int { return p.params.MaxLevel() }

// LogDefaultScale returns log2 of the default scale.
func (p *Parameters) LogDefaultScale() int { return p.params.LogDefaultScale() }

// LogQP returns log2(Q·P) of the residual parameters.
func (p *Parameters) LogQP() float64 { return p.params.LogQP() }

// RingType returns the Lattigo ring type (ring.Standard or
// ring.ConjugateInvariant); for packages under he/ only (Info().Ring names
// it).
func (p *Parameters) RingType() ring.Type { return p.params.RingType() }

// Fingerprint returns the parameter fingerprint.
func (p *Parameters) Fingerprint() Fingerprint { return p.fp }

// Security returns the security report computed when the parameters were built.
func (p *Parameters) Security() SecurityReport { return p.security }

// String returns "name (fingerprint prefix)".
func (p *Parameters) String() string {
	name := p.name
	if name == "" {
		name = "unnamed"
	}
	return fmt.Sprintf("%s (%s)", name, p.fp.Short())
}

// ParamsInfo is one row of the parameter table printed by `polyformer params`.
type ParamsInfo struct {
	Name                 string  `json:"name"`
	LogN                 int     `json:"log_n"`
	Slots                int     `json:"slots"`
	Levels               int     `json:"levels"`
	LogScale             int     `json:"log_scale"`
	LogQP                float64 `json:"log_qp"`
	SecurityBits         float64 `json:"security_bits"`
	Secret               string  `json:"secret"`
	Ring                 string  `json:"ring"`
	Bootstrapping        bool    `json:"bootstrapping"`
	BootstrapLogQP       float64 `json:"bootstrap_log_qp,omitempty"`
	BootstrapDepth       int     `json:"bootstrap_depth,omitempty"`
	Insecure             bool    `json:"insecure"`
	Fingerprint          string  `json:"fingerprint"`
	Description          string  `json:"description"`
	LevelsAfterBootstrap int     `json:"levels_after_bootstrap,omitempty"`
}

// Info returns the table row for these parameters. SecurityBits is the
// estimate for the weakest part (the bootstrapping circuit when present).
func (p *Parameters) Info() ParamsInfo {
	info := ParamsInfo{
		Name:         p.name,
		LogN:         p.LogN(),
		Slots:        p.Slots(),
		Levels:       p.MaxLevel(),
		LogScale:     p.LogDefaultScale(),
		LogQP:        round2(p.LogQP()),
		SecurityBits: round2(p.security.EstimatedBits),
		Secret:       p.security.Secret,
		Ring:         p.RingType().String(),
		Insecure:     p.insecure,
		Fingerprint:  p.fp.String(),
		Description:  p.description,
	}
	if p.btp != nil {
		info.Bootstrapping = true
		info.BootstrapLogQP = round2(p.btp.BootstrappingParameters.LogQP())
		info.BootstrapDepth = p.btp.Depth()
		info.LevelsAfterBootstrap = p.btp.ResidualParameters.MaxLevel()
		if p.security.Bootstrapping != nil {
			info.SecurityBits = round2(math.Min(p.security.EstimatedBits, p.security.Bootstrapping.EstimatedBits))
		}
	}
	return info
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// PresetTable resolves every preset and returns its table row, in the order
// of Presets(). It builds bootstrapping parameters (prime generation only; no
// keys), which takes well under a second.
func PresetTable() ([]ParamsInfo, error) {
	var rows []ParamsInfo
	for _, pr := range Presets() {
		p, err := NewParameters(pr)
		if err != nil {
			return nil, err
		}
		rows = append(rows, p.Info())
	}
	return rows, nil
}

// Fingerprint is the SHA-256 of the canonical description of a parameter set
// (see CanonicalDescription). Every file polyformer writes carries it.
type Fingerprint [32]byte

// String returns the fingerprint in lower-case hex (64 characters).
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// Short returns the first 16 hex characters, for messages.
func (f Fingerprint) Short() string { return f.String()[:16] }

// IsZero reports whether f is all zeros (no fingerprint).
func (f Fingerprint) IsZero() bool { return f == Fingerprint{} }

// ParseFingerprint parses a 64-character hex fingerprint.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(f) {
		return f, fmt.Errorf("invalid fingerprint %q: want %d hex characters", s, 2*len(f))
	}
	copy(f[:], b)
	return f, nil
}

// CanonicalDescription returns the text that Fingerprint hashes: one
// "key=value" line per field, in a fixed order, with integers in decimal and
// floats in shortest round-trip form. It covers LogN, the NTT root, the exact
// Q and P primes, the secret and error distributions, the ring type, the
// default scale and, when present, the bootstrapping literal (as JSON of our
// own fixed-field mirror) together with the resolved bootstrapping primes.
// The preset name is deliberately not part of it.
func (p *Parameters) CanonicalDescription() string {
	s, _ := canonicalDescription(p.params, p.btpLit, p.btp)
	return s
}

func canonicalDescription(params hefloat.Parameters, btpLit *bootstrapping.ParametersLiteral, btp *bootstrapping.Parameters) (string, error) {
	var b strings.Builder
	line := func(k, v string) { b.WriteString(k + "=" + v + "\n") }
	u64s := func(xs []uint64) string {
		parts := make([]string, len(xs))
		for i, x := range xs {
			parts[i] = strconv.FormatUint(x, 10)
		}
		return strings.Join(parts, ",")
	}
	line("format", "polyformer-params-v1")
	line("logN", strconv.Itoa(params.LogN()))
	line("nthRoot", strconv.Itoa(params.NthRoot()))
	line("Q", u64s(params.Q()))
	line("P", u64s(params.P()))
	line("Xs", canonicalDistribution(params.Xs()))
	line("Xe", canonicalDistribution(params.Xe()))
	line("ring", params.RingType().String())
	line("logDefaultScale", strconv.Itoa(params.LogDefaultScale()))
	if btpLit != nil {
		j, err := json.Marshal(bootstrappingLiteralToJSON(*btpLit))
		if err != nil {
			return "", fmt.Errorf("canonical bootstrapping literal: %w", err)
		}
		line("bootstrapping", string(j))
		if btp != nil {
			bp := btp.BootstrappingParameters
			line("bootstrapping.logN", strconv.Itoa(bp.LogN()))
			line("bootstrapping.Q", u64s(bp.Q()))
			line("bootstrapping.P", u64s(bp.P()))
			line("bootstrapping.Xs", canonicalDistribution(bp.Xs()))
			line("bootstrapping.Xe", canonicalDistribution(bp.Xe()))
		}
	} else {
		line("bootstrapping", "none")
	}
	return b.String(), nil
}

func canonicalDistribution(d ring.DistributionParameters) string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	switch d := d.(type) {
	case ring.Ternary:
		return fmt.Sprintf("ternary(p=%s,h=%d)", f(d.P), d.H)
	case ring.DiscreteGaussian:
		return fmt.Sprintf("gaussian(sigma=%s,bound=%s)", f(d.Sigma), f(d.Bound))
	case ring.Uniform:
		return "uniform"
	default:
		return fmt.Sprintf("unknown(%T)", d)
	}
}

// sortedUint64 returns a sorted copy.
func sortedUint64(xs []uint64) []uint64 {
	out := append([]uint64{}, xs...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

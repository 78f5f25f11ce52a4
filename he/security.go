package he

import (
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Security bounds.
//
// Sources:
//
//   - Dense secrets (uniform ternary, as Lattigo's default Ternary{P: 2/3};
//     also used for uniform and Gaussian secrets, for which the standard's
//     bounds are equal or slightly larger): Albrecht et al., "Homomorphic
//     Encryption Security Standard", HomomorphicEncryption.org, 2018
//     (Table 1, ternary secret, σ=3.2, classical attacks), reproduced in
//     Albrecht et al., "Homomorphic Encryption Standard", in Protecting
//     Privacy through Homomorphic Encryption, Springer 2021. The standard
//     stops at N=32768; the N=65536 value 1761 is the one Lattigo's 128-bit
//     parameter set PN16QP1761 uses (≈ 2×881). The 192/256-bit columns at
//     N=65536 are our extrapolation (2× the N=32768 values).
//   - Sparse ternary secrets of Hamming weight h=192: Lattigo v5.0.7
//     bootstrapping parameters (default_parameter.go and the bootstrapping
//     example) state "LogN=16 ... H=192 ... at least 128-bit if their
//     LogQP <= 1550", and the N=32768 sparse set N15QP768H192H32 uses 768.
//     We take the logN=16 statement as the bound and scale the dense table
//     by the same ratio for other ring degrees: sparseFactor = 1550/1761
//     (≈0.880; at logN=15 this gives 775, above Lattigo's 768). For h < 192
//     we know no published bound and refuse the parameters (they can only be
//     used when marked InsecureForTesting). The 192/256-bit columns are
//     scaled by the same factor.
//
// The security estimate (SecurityReport.EstimatedBits) is NOT the output of a
// lattice estimator: it interpolates the 128/192/256-bit columns of the table
// linearly in log2(QP), and above the 128-bit bound it uses the rule of thumb
// that security is inversely proportional to log2(QP) at fixed N
// (λ ≈ 128·bound/logQP). Treat it as an order of magnitude.
type hestdRow struct {
	logN             int
	b128, b192, b256 float64
}

var hestdTernary = [...]hestdRow{
	{10, 27, 19, 14},
	{11, 54, 37, 29},
	{12, 109, 75, 58},
	{13, 218, 152, 118},
	{14, 438, 305, 237},
	{15, 881, 611, 476},
	{16, 1761, 1222, 952},
}

const (
	// minEphemeralWeight and maxEphemeralLogQP bound the bootstrapping
	// encapsulation key: Lattigo v5.0.7's default sets use h=32 with
	// log2(Q0·P0) = 60+61 at logN=15 and 16.
	minEphemeralWeight  = 32
	maxEphemeralLogQP   = 121.5
	sparseFactor        = 1550.0 / 1761.0
	minSparseWeight     = 192
	securityTargetBits  = 128
	hestdSource         = "HE standard 2018 (ternary, 128-bit classical); logN=16 from Lattigo PN16QP1761"
	sparseSecuritySrc   = "Lattigo v5.0.7 bootstrapping sets (H=192: logQP<=1550 at logN=16, 768 at logN=15), dense bounds x1550/1761"
	securityEstimateDoc = "estimate: linear interpolation of the 128/192/256-bit table in logQP, 128*bound/logQP beyond; not a lattice-estimator run"
)

// SecurityReport is the result of a security check of one parameter set.
type SecurityReport struct {
	LogN          int     `json:"log_n"`
	LogQP         float64 `json:"log_qp"`
	Secret        string  `json:"secret"`         // e.g. "ternary", "sparse-ternary(h=192)"
	HammingWeight int     `json:"hamming_weight"` // expected Hamming weight of the secret
	MaxLogQP128   float64 `json:"max_log_qp_128"` // 0 when no bound is known
	EstimatedBits float64 `json:"estimated_bits"` // 0 when no bound is known
	Secure        bool    `json:"secure"`         // logQP <= MaxLogQP128
	Source        string  `json:"source"`
	Note          string  `json:"note"`
	// Bootstrapping is the report for the bootstrapping circuit's parameters
	// (larger modulus chain, same or ephemeral secret), nil without bootstrapping.
	Bootstrapping *SecurityReport `json:"bootstrapping,omitempty"`
}

// OK reports whether these parameters and their bootstrapping circuit (if
// any) meet 128-bit security.
func (r SecurityReport) OK() bool {
	return r.Secure && (r.Bootstrapping == nil || r.Bootstrapping.Secure)
}

// MaxLogQP returns the largest log2(QP) that gives 128-bit classical
// security at ring degree 2^logN for a secret of expected Hamming weight h
// (h >= N/2 counts as dense), together with the source of the bound. It
// returns an error when no bound is known (logN outside [10,16], or a sparse
// secret with h < 192).
func MaxLogQP(logN, h int) (float64, string, error) {
	row, err := hestdRowFor(logN)
	if err != nil {
		return 0, "", err
	}
	factor, src, err := sparseScaling(logN, h)
	if err != nil {
		return 0, "", err
	}
	return row.b128 * factor, src, nil
}

func hestdRowFor(logN int) (hestdRow, error) {
	for _, r := range hestdTernary {
		if r.logN == logN {
			return r, nil
		}
	}
	return hestdRow{}, fmt.Errorf("no security bound known for logN=%d (table covers 10..16)", logN)
}

func sparseScaling(logN, h int) (float64, string, error) {
	n := 1 << logN
	switch {
	case h >= n/2:
		return 1, hestdSource, nil
	case h >= minSparseWeight:
		return sparseFactor, sparseSecuritySrc, nil
	default:
		return 0, "", fmt.Errorf("no security bound known for a sparse secret of Hamming weight %d < %d at logN=%d", h, minSparseWeight, logN)
	}
}

// EstimateSecurityBits returns a rough estimate of the classical security in
// bits (see the package security notes: an interpolation in the HE-standard
// table, not a lattice-estimator run). It returns 0 when no bound is known.
// Values above 256 are reported as 256.
func EstimateSecurityBits(logN int, logQP float64, h int) float64 {
	row, err := hestdRowFor(logN)
	if err != nil {
		return 0
	}
	f, _, err := sparseScaling(logN, h)
	if err != nil || logQP <= 0 {
		return 0
	}
	b128, b192, b256 := row.b128*f, row.b192*f, row.b256*f
	switch {
	case logQP <= b256:
		return 256
	case logQP <= b192:
		return 256 - 64*(logQP-b256)/(b192-b256)
	case logQP <= b128:
		return 192 - 64*(logQP-b192)/(b128-b192)
	default:
		return 128 * b128 / logQP
	}
}

// secretWeight returns the expected Hamming weight of a secret distribution
// at ring degree 2^logN and a human-readable name for it.
func secretWeight(xs ring.DistributionParameters, logN int) (int, string) {
	n := 1 << logN
	switch d := xs.(type) {
	case ring.Ternary:
		if d.H != 0 {
			if d.H >= n/2 {
				return d.H, fmt.Sprintf("ternary(h=%d)", d.H)
			}
			return d.H, fmt.Sprintf("sparse-ternary(h=%d)", d.H)
		}
		h := int(math.Ceil(float64(n) * d.P))
		if h >= n/2 {
			return h, fmt.Sprintf("ternary(p=%.3g)", d.P)
		}
		return h, fmt.Sprintf("sparse-ternary(p=%.3g)", d.P)
	case ring.DiscreteGaussian:
		return n, fmt.Sprintf("gaussian(sigma=%g)", d.Sigma)
	case ring.Uniform:
		return n, "uniform"
	default:
		return 0, fmt.Sprintf("unknown(%T)", xs)
	}
}

// Minimum error and secret spreads the bounds assume: the HE standard's
// tables are for a discrete Gaussian error of σ ≈ 3.2 (Lattigo's DefaultXe:
// σ = 3.2 truncated at 6σ); a narrower error (or a Gaussian secret of smaller
// σ) is outside them, whatever the modulus.
const (
	minErrorSigma       = 3.2
	minErrorBoundSigmas = 6.0
)

// checkSpread reports why an error (or Gaussian secret) distribution is
// outside the tables, or "" when it is a discrete Gaussian of σ >= 3.2 (error:
// truncated at >= 6σ).
func checkSpread(d ring.DistributionParameters, what string, needBound bool) string {
	g, ok := d.(ring.DiscreteGaussian)
	if !ok {
		return fmt.Sprintf("%s distribution %s: the bounds assume a discrete Gaussian", what, canonicalDistribution(d))
	}
	if !(g.Sigma >= minErrorSigma*(1-1e-9)) {
		return fmt.Sprintf("%s sigma %g below %g", what, g.Sigma, minErrorSigma)
	}
	if needBound && !(g.Bound >= minErrorBoundSigmas*g.Sigma*(1-1e-9)) {
		return fmt.Sprintf("%s bound %g below %g sigma", what, g.Bound, minErrorBoundSigmas)
	}
	return ""
}

// checkOne builds the report for one (logN, logQP, secret, error) tuple.
func checkOne(logN int, logQP float64, xs, xe ring.DistributionParameters, rt ring.Type) SecurityReport {
	h, name := secretWeight(xs, logN)
	r := SecurityReport{LogN: logN, LogQP: logQP, Secret: name, HammingWeight: h, Note: securityEstimateDoc}
	if why := checkSpread(xe, "error", true); why != "" {
		r.Note = "no security bound known: " + why
		return r
	}
	if _, gauss := xs.(ring.DiscreteGaussian); gauss {
		if why := checkSpread(xs, "Gaussian secret", false); why != "" {
			r.Note = "no security bound known: " + why
			return r
		}
	}
	bound, src, err := MaxLogQP(logN, h)
	if err != nil {
		r.Note = err.Error()
		return r
	}
	r.MaxLogQP128 = bound
	r.Source = src
	r.EstimatedBits = EstimateSecurityBits(logN, logQP, h)
	r.Secure = logQP <= bound
	if rt == ring.ConjugateInvariant {
		r.Note += "; conjugate-invariant ring: bound of the degree-N standard ring applied (Kim et al. 2018 reduction)"
	}
	return r
}

// CheckParametersSecurity checks resolved Lattigo parameters (and the
// bootstrapping circuit's parameters, if btp is non-nil) against the 128-bit
// bound. When the check fails it returns the report and an error, unless
// insecureForTesting is true, in which case only the report says so.
//
// For bootstrapping, the circuit runs under the bootstrapping parameters'
// modulus chain. When the bootstrapping ring degree equals the residual one,
// Lattigo extends the user's own secret to that chain, so the user's secret
// distribution is checked against the circuit's logQP; otherwise the
// circuit's own secret distribution is. The ephemeral sparse secret
// (EphemeralSecretWeight, default h=32) only appears in the encapsulation
// keys, which we generate at level (Q0, P0) (see GenerateBootstrappingKeys),
// following Bossuat et al., "Bootstrapping for approximate HE with negligible
// failure probability by using sparse-secret encapsulation" (ePrint
// 2022/024); this report does not estimate that key separately (noted).
// It takes Lattigo parameters: for packages under he/ only (Parameters.Security
// reports the same for resolved parameters).
func CheckParametersSecurity(params hefloat.Parameters, btp *bootstrapping.Parameters, insecureForTesting bool) (SecurityReport, error) {
	r := checkOne(params.LogN(), params.LogQP(), params.Xs(), params.Xe(), params.RingType())
	if btp != nil {
		bp := btp.BootstrappingParameters
		xs := bp.Xs()
		if bp.N() == params.N() {
			xs = params.Xs()
		}
		br := checkOne(bp.LogN(), bp.LogQP(), xs, bp.Xe(), bp.RingType())
		logQ0P0 := math.Log2(float64(bp.Q()[0]))
		if len(bp.P()) > 0 {
			logQ0P0 += math.Log2(float64(bp.P()[0]))
		}
		br.Note += fmt.Sprintf("; bootstrapping circuit; ephemeral encapsulation secret h=%d used only at level (Q0,P0), logQP=%.1f, per ePrint 2022/024",
			btp.EphemeralSecretWeight, logQ0P0)
		// The dense-to-sparse key encrypts the user's secret under the
		// ephemeral one: a weaker ephemeral secret than Lattigo's default
		// sets use (h=32 at log(Q0·P0) <= 121) would expose the secret key.
		if btp.EphemeralSecretWeight < minEphemeralWeight || logQ0P0 > maxEphemeralLogQP {
			br.Secure = false
			br.EstimatedBits = 0
			br.Note = fmt.Sprintf("ephemeral encapsulation secret h=%d at log(Q0*P0)=%.1f is outside Lattigo's default sets (h >= %d, log(Q0*P0) <= %g)",
				btp.EphemeralSecretWeight, logQ0P0, minEphemeralWeight, maxEphemeralLogQP)
		}
		r.Bootstrapping = &br
	}
	if !r.OK() && !insecureForTesting {
		return r, fmt.Errorf("parameters below 128-bit security: %s (mark them InsecureForTesting to use them in tests)", r.Summary())
	}
	return r, nil
}

// CheckSecurity resolves a parameter literal (and optional bootstrapping
// literal) and checks it; see CheckParametersSecurity.
// It takes Lattigo literals: for packages under he/ only.
func CheckSecurity(lit hefloat.ParametersLiteral, btpLit *bootstrapping.ParametersLiteral, insecureForTesting bool) (SecurityReport, error) {
	params, btp, err := buildLattigoParameters(lit, btpLit)
	if err != nil {
		return SecurityReport{}, err
	}
	return CheckParametersSecurity(params, btp, insecureForTesting)
}

// Summary returns a one-line human-readable description.
func (r SecurityReport) Summary() string {
	one := func(x SecurityReport) string {
		if x.MaxLogQP128 == 0 {
			return fmt.Sprintf("logN=%d logQP=%.1f secret=%s: %s", x.LogN, x.LogQP, x.Secret, x.Note)
		}
		status := "OK"
		if !x.Secure {
			status = "EXCEEDS 128-bit bound"
		}
		return fmt.Sprintf("logN=%d logQP=%.1f <= %.0f? %s (secret=%s, ~%.0f bits)", x.LogN, x.LogQP, x.MaxLogQP128, status, x.Secret, x.EstimatedBits)
	}
	s := one(r)
	if r.Bootstrapping != nil {
		s += "; bootstrapping circuit: " + one(*r.Bootstrapping)
	}
	return s
}

// SecurityFloorBits is the security every key-generating or encrypting path
// requires unless the user explicitly allows insecure parameters.
const SecurityFloorBits = securityTargetBits

// ErrInsecureParameters is wrapped by RequireSecure's refusal.
var ErrInsecureParameters = errors.New("parameters below the 128-bit security floor")

// weakest returns the report of the weaker part (the bootstrapping circuit
// when it fails or is weaker).
func (r SecurityReport) weakest() (SecurityReport, bool) {
	if b := r.Bootstrapping; b != nil && r.Secure && (!b.Secure || b.EstimatedBits < r.EstimatedBits) {
		return *b, true
	}
	return r, false
}

// MinEstimatedBits returns the estimate of the weaker part: the parameters
// or, with bootstrapping, the bootstrapping circuit.
func (r SecurityReport) MinEstimatedBits() float64 {
	if r.Bootstrapping != nil {
		return math.Min(r.EstimatedBits, r.Bootstrapping.EstimatedBits)
	}
	return r.EstimatedBits
}

// RequireSecure is polyformer's one security policy, used by every path that
// generates keys or encrypts (keygen, infer, bench layers, demo, the client)
// and by preset selection. It computes the security of p from the
// parameters themselves (ring degree, log2(QP) of the residual parameters
// and, with bootstrapping, of the bootstrapping circuit, the secret and
// error distributions, the ephemeral encapsulation secret), never from a
// preset name, the InsecureForTesting mark or any flag carried in a file,
// and returns an error wrapping ErrInsecureParameters, naming the estimate
// and the 128-bit floor, unless the parameters meet it or allowInsecure is
// true. The report is returned in every case.
func RequireSecure(p *Parameters, allowInsecure bool) (SecurityReport, error) {
	if p == nil {
		return SecurityReport{}, errors.New("security check: nil parameters")
	}
	r, _ := CheckParametersSecurity(p.params, p.btp, true)
	if r.OK() || allowInsecure {
		return r, nil
	}
	w, boot := r.weakest()
	part := ""
	if boot {
		part = " (bootstrapping circuit)"
	}
	name := p.name
	if name == "" {
		name = "unnamed"
	}
	var why string
	if w.MaxLogQP128 == 0 || w.EstimatedBits == 0 {
		why = fmt.Sprintf("logN=%d logQP=%.1f secret=%s: %s", w.LogN, w.LogQP, w.Secret, w.Note)
	} else {
		why = fmt.Sprintf("estimated %.0f bits: logN=%d logQP=%.1f exceeds the 128-bit bound %.0f for secret %s",
			w.EstimatedBits, w.LogN, w.LogQP, w.MaxLogQP128, w.Secret)
	}
	return r, fmt.Errorf("%w: parameters %q (fingerprint %s)%s: %s; the floor is %d bits (pass --insecure to allow insecure parameters, for tests only)",
		ErrInsecureParameters, name, p.fp.Short(), part, why, SecurityFloorBits)
}

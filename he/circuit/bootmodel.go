package circuit

import (
	"errors"
	"fmt"
	"math"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"github.com/polyformer/polyformer/he"
)

// BootstrapModel predicts the error a real (Lattigo) bootstrap adds to a
// ciphertext, from the bootstrapping parameters. Two parts:
//
//   - Systematic: Lattigo's EvalMod replaces each plaintext coefficient c (in
//     message units) by 2^R·sin(2π·c·2^-R)/(2π) (with R = LogMessageRatio;
//     the arcsine correction when Mod1InvDegree > 0), a cubic error of about
//     (2π)²·2^-2R·c³/6 per coefficient. The coefficients are the inverse
//     canonical embedding of the slots, so the error depends on the whole
//     slot vector: spread values have small coefficients and little error,
//     while a nearly constant vector puts its mean in coefficient 0 (a
//     vector of ones loses 2^-13.3 at R = 8). The model computes it exactly
//     with Lattigo's encoding FFT.
//   - Random: the rest (DFT rounding, sine-approximation and key-switch
//     noise), bounded by Floor whatever the message (measured: the same
//     for U[-1,1] and U[-8,8]). The simulator adds ±Floor per slot with
//     one random sign pattern shared by all bootstraps of a run: the
//     worst case where successive bootstraps add their errors coherently
//     (independent errors would add as √n). Floor = 2^(R + logN/2 - 39.8)
//     (the usual √N growth of rounding noise, times the message ratio
//     through which EvalMod's errors reach the message): the largest
//     measured random errors were 2^-22.5 at test-boot-n13 (R = 11,
//     logN = 13; Floor 2^-22.3) and 2^-24.6 at n16-boot (R = 8,
//     logN = 16; Floor 2^-23.8), see
//     benchmarks/compiler/bootstrap-precision.md.
//
// The model assumes inputs at the bootstrapper's exact input scale, as
// Execute makes them (see bootstrapScaled).
//
// A bootstrap op with Const = s in (0, 1) (set by Plan) scales the message
// by s before the bootstrap and by 1/s after it: the systematic error
// shrinks by s² relative to the message, the random part grows by 1/s.
// A BootstrapModel is not safe for concurrent use.
type BootstrapModel struct {
	logSlots int
	ratio    float64 // 2^R
	invDeg   int     // arcsine Taylor degree (0: none)
	floor    float64
	ecd      *hefloat.Encoder
	buf      []complex128
}

// bootstrapFloorLog2Base is the fitted constant of the random bootstrap
// error: Floor = 2^(R + logN/2 - bootstrapFloorLog2Base).
const bootstrapFloorLog2Base = 39.8

// NewBootstrapModel returns the error model of p's bootstrapping circuit.
func NewBootstrapModel(p *he.Parameters) (*BootstrapModel, error) {
	if p == nil || !p.HasBootstrapping() {
		return nil, errors.New("bootstrap model: parameters have no bootstrapping")
	}
	bp := p.BootstrappingParameters()
	lit := bp.Mod1ParametersLiteral
	hp := p.HE()
	logSlots := hp.LogMaxSlots()
	r := float64(lit.LogMessageRatio)
	return &BootstrapModel{
		logSlots: logSlots,
		ratio:    math.Exp2(r),
		invDeg:   lit.Mod1InvDegree,
		floor:    math.Exp2(r + float64(hp.LogN())/2 - bootstrapFloorLog2Base),
		ecd:      hefloat.NewEncoder(hp),
		buf:      make([]complex128, 1<<logSlots),
	}, nil
}

// Floor returns the amplitude of the random part of the bootstrap error
// (message units, for a message not scaled before the bootstrap).
func (m *BootstrapModel) Floor() float64 { return m.floor }

// mod1 is what EvalMod computes for a coefficient c (message units).
func (m *BootstrapModel) mod1(c float64) float64 {
	t := math.Sin(2 * math.Pi * c / m.ratio)
	if m.invDeg > 0 {
		// Lattigo's arcsine Taylor series: sum_k (2k)!/(4^k (k!)^2 (2k+1)) t^(2k+1)
		sum, coef, pow := 0.0, 1.0, t
		for k := 0; 2*k+1 <= m.invDeg; k++ {
			sum += coef / float64(2*k+1) * pow
			coef *= float64((2*k+1)*(2*k+2)) / float64(4*(k+1)*(k+1))
			pow *= t * t
		}
		t = sum
	}
	return m.ratio * t / (2 * math.Pi)
}

// Systematic returns the systematic slot error of bootstrapping the
// virtual slot vector v (replicated over all slots of the parameters)
// scaled by s before and by 1/s after the bootstrap.
func (m *BootstrapModel) Systematic(v []float64, s float64) ([]float64, error) {
	n := len(m.buf)
	if len(v) == 0 || n%len(v) != 0 {
		return nil, fmt.Errorf("bootstrap model: %d values do not tile %d slots", len(v), n)
	}
	if !(s > 0) {
		s = 1
	}
	for i := range m.buf {
		m.buf[i] = complex(s*v[i%len(v)], 0)
	}
	if err := m.ecd.IFFT(m.buf, m.logSlots); err != nil {
		return nil, fmt.Errorf("bootstrap model: %w", err)
	}
	for i, c := range m.buf {
		re, im := real(c), imag(c)
		m.buf[i] = complex(m.mod1(re)-re, m.mod1(im)-im)
	}
	if err := m.ecd.FFT(m.buf, m.logSlots); err != nil {
		return nil, fmt.Errorf("bootstrap model: %w", err)
	}
	out := make([]float64, len(v))
	for i := range out {
		out[i] = real(m.buf[i]) / s
	}
	return out, nil
}

// RandomBound returns the bound of the random part of the error of
// bootstrapping a message of largest magnitude mag (after any
// pre-scaling). Measured, it does not depend on the message (U[-1,1] and
// U[-8,8] gave the same): it is Floor.
func (m *BootstrapModel) RandomBound(mag float64) float64 { return m.floor }

// BootstrapPart selects parts of the modeled bootstrap error.
type BootstrapPart int

// The parts of the bootstrap error (see BootstrapModel).
const (
	BootstrapSystematic BootstrapPart = 1 << iota // the modular reduction's deterministic error
	BootstrapRandom                               // uniform noise of the measured floor
)

// apply returns v plus the modeled error of bootstrapping it with
// pre-scale s (0: none): the systematic error if sys, and, with signs (±1
// per slot), the random part at its bound with those signs.
func (m *BootstrapModel) apply(v []float64, s float64, sys bool, signs []float64) ([]float64, error) {
	if s == 0 {
		s = 1
	}
	e := make([]float64, len(v))
	if sys {
		var err error
		if e, err = m.Systematic(v, s); err != nil {
			return nil, err
		}
	}
	mag := 0.0
	for _, x := range v {
		mag = math.Max(mag, math.Abs(x))
	}
	r := m.RandomBound(mag*s) / s
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x + e[i]
		if signs != nil {
			out[i] += r * signs[i]
		}
	}
	return out, nil
}

// UnitPreScale returns the pre-scale 2^-k (k >= 0) that minimizes the
// modeled error of bootstrapping a vector of ones, the worst case for a
// message of magnitude 1 (its mean lands in one coefficient): about
// argmin_s A·s² + Floor/s with A the systematic error at s = 1. Plan uses
// it for every real bootstrap.
func (m *BootstrapModel) UnitPreScale() float64 {
	best, bestErr := 1.0, math.Inf(1)
	for k := 0; k <= 12; k++ {
		s := math.Exp2(-float64(k))
		e := math.Abs(m.mod1(s)-s)/s + m.floor/s
		if e < bestErr {
			best, bestErr = s, e
		}
	}
	return best
}

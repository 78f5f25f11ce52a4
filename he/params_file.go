package he

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// maxParamsPayload caps a parameters file's payload (JSON, about 1-3 kB).
const maxParamsPayload = 1 << 20

const paramsFormat = "polyformer-params-v1"

// maxDescriptionLen caps a parameters description (presets' are < 200 bytes).
const maxDescriptionLen = 1024

// distJSON is our own fixed-field encoding of ring.DistributionParameters
// (Lattigo's interface-typed fields do not round-trip through encoding/json).
type distJSON struct {
	Type  string  `json:"type"` // "ternary", "gaussian", "uniform" or "" (default)
	P     float64 `json:"p,omitempty"`
	H     int     `json:"h,omitempty"`
	Sigma float64 `json:"sigma,omitempty"`
	Bound float64 `json:"bound,omitempty"`
}

func distToJSON(d ring.DistributionParameters) distJSON {
	switch d := d.(type) {
	case ring.Ternary:
		return distJSON{Type: "ternary", P: d.P, H: d.H}
	case ring.DiscreteGaussian:
		return distJSON{Type: "gaussian", Sigma: d.Sigma, Bound: d.Bound}
	case ring.Uniform:
		return distJSON{Type: "uniform"}
	default:
		return distJSON{}
	}
}

func distFromJSON(d distJSON) (ring.DistributionParameters, error) {
	switch d.Type {
	case "":
		return nil, nil
	case "ternary":
		return ring.Ternary{P: d.P, H: d.H}, nil
	case "gaussian":
		return ring.DiscreteGaussian{Sigma: d.Sigma, Bound: d.Bound}, nil
	case "uniform":
		return ring.Uniform{}, nil
	default:
		return nil, fmt.Errorf("%w: unknown distribution type %q", ErrMalformed, d.Type)
	}
}

// btpLitJSON mirrors bootstrapping.ParametersLiteral with fixed fields.
type btpLitJSON struct {
	LogN                  *int                                `json:"log_n,omitempty"`
	LogP                  []int                               `json:"log_p,omitempty"`
	Xs                    distJSON                            `json:"xs"`
	Xe                    distJSON                            `json:"xe"`
	LogSlots              *int                                `json:"log_slots,omitempty"`
	CoeffsToSlots         [][]int                             `json:"coeffs_to_slots,omitempty"`
	SlotsToCoeffs         [][]int                             `json:"slots_to_coeffs,omitempty"`
	EvalModLogScale       *int                                `json:"eval_mod_log_scale,omitempty"`
	EphemeralSecretWeight *int                                `json:"ephemeral_secret_weight,omitempty"`
	Iterations            *bootstrapping.IterationsParameters `json:"iterations,omitempty"`
	Mod1Type              uint64                              `json:"mod1_type"`
	LogMessageRatio       *int                                `json:"log_message_ratio,omitempty"`
	K                     *int                                `json:"k,omitempty"`
	Mod1Degree            *int                                `json:"mod1_degree,omitempty"`
	DoubleAngle           *int                                `json:"double_angle,omitempty"`
	Mod1InvDegree         *int                                `json:"mod1_inv_degree,omitempty"`
}

func bootstrappingLiteralToJSON(b bootstrapping.ParametersLiteral) btpLitJSON {
	b = cloneBootstrappingLiteral(b)
	return btpLitJSON{
		LogN: b.LogN, LogP: b.LogP, Xs: distToJSON(b.Xs), Xe: distToJSON(b.Xe), LogSlots: b.LogSlots,
		CoeffsToSlots: b.CoeffsToSlotsFactorizationDepthAndLogScales, SlotsToCoeffs: b.SlotsToCoeffsFactorizationDepthAndLogScales,
		EvalModLogScale: b.EvalModLogScale, EphemeralSecretWeight: b.EphemeralSecretWeight, Iterations: b.IterationsParameters,
		Mod1Type: uint64(b.Mod1Type), LogMessageRatio: b.LogMessageRatio, K: b.K, Mod1Degree: b.Mod1Degree,
		DoubleAngle: b.DoubleAngle, Mod1InvDegree: b.Mod1InvDegree,
	}
}

func bootstrappingLiteralFromJSON(j btpLitJSON) (bootstrapping.ParametersLiteral, error) {
	xs, err := distFromJSON(j.Xs)
	if err != nil {
		return bootstrapping.ParametersLiteral{}, err
	}
	xe, err := distFromJSON(j.Xe)
	if err != nil {
		return bootstrapping.ParametersLiteral{}, err
	}
	return bootstrapping.ParametersLiteral{
		LogN: j.LogN, LogP: j.LogP, Xs: xs, Xe: xe, LogSlots: j.LogSlots,
		CoeffsToSlotsFactorizationDepthAndLogScales: j.CoeffsToSlots, SlotsToCoeffsFactorizationDepthAndLogScales: j.SlotsToCoeffs,
		EvalModLogScale: j.EvalModLogScale, EphemeralSecretWeight: j.EphemeralSecretWeight, IterationsParameters: j.Iterations,
		Mod1Type: hefloat.Mod1Type(j.Mod1Type), LogMessageRatio: j.LogMessageRatio, K: j.K, Mod1Degree: j.Mod1Degree,
		DoubleAngle: j.DoubleAngle, Mod1InvDegree: j.Mod1InvDegree,
	}, nil
}

// paramsFileJSON is the payload of a parameters file.
type paramsFileJSON struct {
	Format             string      `json:"format"`
	Name               string      `json:"name"`
	Description        string      `json:"description"`
	InsecureForTesting bool        `json:"insecure_for_testing"`
	Fingerprint        string      `json:"fingerprint"`
	LogN               int         `json:"log_n"`
	LogNthRoot         int         `json:"log_nth_root"`
	Q                  []uint64    `json:"q"`
	P                  []uint64    `json:"p"`
	Xs                 distJSON    `json:"xs"`
	Xe                 distJSON    `json:"xe"`
	RingType           string      `json:"ring_type"`
	LogDefaultScale    int         `json:"log_default_scale"`
	Bootstrapping      *btpLitJSON `json:"bootstrapping,omitempty"`
}

// Preset returns a preset that rebuilds exactly these parameters (explicit
// primes instead of bit sizes).
func (p *Parameters) Preset() Preset {
	return Preset{
		Name:               p.name,
		Literal:            p.Literal(),
		Bootstrapping:      p.BootstrappingLiteral(),
		InsecureForTesting: p.insecure,
		Description:        p.description,
	}
}

func (p *Parameters) marshalPayload() ([]byte, error) {
	lit := p.Literal()
	j := paramsFileJSON{
		Format: paramsFormat, Name: p.name, Description: p.description, InsecureForTesting: p.insecure,
		Fingerprint: p.fp.String(), LogN: lit.LogN, LogNthRoot: lit.LogNthRoot, Q: lit.Q, P: lit.P,
		Xs: distToJSON(p.params.Xs()), Xe: distToJSON(p.params.Xe()), RingType: p.params.RingType().String(),
		LogDefaultScale: lit.LogDefaultScale,
	}
	if p.btpLit != nil {
		b := bootstrappingLiteralToJSON(*p.btpLit)
		j.Bootstrapping = &b
	}
	out, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode parameters: %w", err)
	}
	return out, nil
}

// WriteParameters writes the parameters file (kind FileParameters) to w.
func WriteParameters(w io.Writer, p *Parameters) error {
	if p == nil {
		return fmt.Errorf("write parameters: nil parameters")
	}
	payload, err := p.marshalPayload()
	if err != nil {
		return err
	}
	return WriteEnvelope(w, FileParameters, p.fp, p.name, payload)
}

// WriteParametersFile writes the parameters file at path (mode 0644).
func WriteParametersFile(path string, p *Parameters, overwrite bool) error {
	return writeFileAtomic(path, 0o644, overwrite, func(w io.Writer) error { return WriteParameters(w, p) })
}

// ReadParameters reads and validates a parameters file: envelope, JSON
// (unknown fields rejected), bounds, Lattigo construction (panics recovered),
// security check (refused above the bound unless the file marks the set
// InsecureForTesting), and the fingerprint, which must match both the header
// and the recomputed value.
func ReadParameters(r io.Reader) (*Parameters, error) {
	hdr, payload, err := ReadEnvelope(r, EnvelopeExpect{Kind: FileParameters, MaxPayload: maxParamsPayload})
	if err != nil {
		return nil, fmt.Errorf("read parameters: %w", err)
	}
	p, err := decodeParametersPayload(payload)
	if err != nil {
		return nil, fmt.Errorf("read parameters: %w", err)
	}
	if p.fp != hdr.Fingerprint {
		return nil, fmt.Errorf("read parameters: %w: header says %s, parameters hash to %s", ErrFingerprintMismatch, hdr.Fingerprint.Short(), p.fp.Short())
	}
	return p, nil
}

// DecodeParameters reads a parameters file held in memory (no trailing bytes).
func DecodeParameters(data []byte) (*Parameters, error) {
	r := bytes.NewReader(data)
	p, err := ReadParameters(r)
	if err != nil {
		return nil, err
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("read parameters: %w: %d bytes", ErrTrailingData, r.Len())
	}
	return p, nil
}

// ReadParametersFile reads a parameters file from disk.
func ReadParametersFile(path string) (*Parameters, error) {
	var p *Parameters
	err := readEnvelopeFile(path, func(r io.Reader) (err error) {
		p, err = ReadParameters(r)
		return err
	})
	return p, err
}

// MaxParametersJSON caps the parameters JSON accepted by
// DecodeParametersJSON and parameters files (1 MiB; real ones are 1-3 kB).
const MaxParametersJSON = maxParamsPayload

// MarshalParametersJSON returns the JSON description of p that
// DecodeParametersJSON reads back (the payload of a parameters file: the
// exact primes, distributions, ring, scale, bootstrapping literal and the
// fingerprint). Circuit files embed it, so the parameters a client generates
// keys for are exactly the ones whose security it computed.
func MarshalParametersJSON(p *Parameters) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("encode parameters: nil parameters")
	}
	return p.marshalPayload()
}

// DecodeParametersJSON decodes parameters from untrusted JSON (as written
// by MarshalParametersJSON), with the bounds checks of ReadParameters
// (size, unknown fields, literal bounds before Lattigo sees them, Lattigo
// panics recovered, fingerprint recomputed and compared). Unlike
// ReadParameters it does not trust the file's insecure_for_testing mark
// either way: the parameters are built whatever their security, Insecure()
// reports the security computed from them, and the caller applies the
// policy with RequireSecure.
func DecodeParametersJSON(data []byte) (*Parameters, error) {
	if len(data) > MaxParametersJSON {
		return nil, fmt.Errorf("%w: parameters JSON of %d bytes, limit %d", ErrTooLarge, len(data), MaxParametersJSON)
	}
	p, err := decodeParameters(data, true)
	if err != nil {
		return nil, err
	}
	p.insecure = !p.security.OK()
	return p, nil
}

func decodeParametersPayload(payload []byte) (*Parameters, error) {
	return decodeParameters(payload, false)
}

// decodeParameters decodes a parameters payload; untrusted builds the
// parameters whatever the file's insecure mark says (policy applied later).
func decodeParameters(payload []byte, untrusted bool) (*Parameters, error) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var j paramsFileJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: parameters JSON: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the parameters JSON", ErrMalformed)
	}
	if j.Format != paramsFormat {
		return nil, fmt.Errorf("%w: parameters format %q, want %q", ErrUnsupportedVersion, j.Format, paramsFormat)
	}
	xs, err := distFromJSON(j.Xs)
	if err != nil {
		return nil, err
	}
	xe, err := distFromJSON(j.Xe)
	if err != nil {
		return nil, err
	}
	var rt ring.Type
	switch j.RingType {
	case ring.Standard.String():
		rt = ring.Standard
	case ring.ConjugateInvariant.String():
		rt = ring.ConjugateInvariant
	default:
		return nil, fmt.Errorf("%w: ring type %q", ErrMalformed, j.RingType)
	}
	lit := hefloat.ParametersLiteral{
		LogN: j.LogN, LogNthRoot: j.LogNthRoot, Q: j.Q, P: j.P, Xs: xs, Xe: xe, RingType: rt, LogDefaultScale: j.LogDefaultScale,
	}
	pr := Preset{Name: j.Name, Literal: lit, InsecureForTesting: j.InsecureForTesting || untrusted, Description: j.Description}
	if len(pr.Name) > maxLabelLen {
		return nil, fmt.Errorf("%w: name longer than %d bytes", ErrMalformed, maxLabelLen)
	}
	if len(pr.Description) > maxDescriptionLen {
		return nil, fmt.Errorf("%w: description longer than %d bytes", ErrMalformed, maxDescriptionLen)
	}
	if j.Bootstrapping != nil {
		b, err := bootstrappingLiteralFromJSON(*j.Bootstrapping)
		if err != nil {
			return nil, err
		}
		pr.Bootstrapping = &b
	}
	p, err := NewParameters(pr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if j.Fingerprint != p.fp.String() {
		return nil, fmt.Errorf("%w: payload says %q, parameters hash to %s", ErrFingerprintMismatch, j.Fingerprint, p.fp)
	}
	return p, nil
}

package circuit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/polyformer/polyformer/he"
)

// Circuit files.
//
// A circuit file is one he envelope (kind circuit, the parameters'
// fingerprint, the parameter set's name as label) whose payload is the JSON
// object
//
//	{"format": "polyformer-circuit-v2",
//	 "parameters": <he.MarshalParametersJSON: exact primes, distributions, bootstrapping literal, fingerprint>,
//	 "circuit": <Circuit: version, task, layout, ops, mats, vecs, planned>}
//
// The parameters travel with the circuit: a client generates keys and
// encrypts under exactly the parameters whose security it computed
// (he.RequireSecure in VerifyCircuit), never under parameters looked up by a
// name the file claims.
//
// The reader is streaming and bounded: it checks the envelope header (kind,
// version, fingerprint, declared length <= MaxCircuitPayload) before reading
// the body, decodes the JSON one value at a time, each under a byte budget
// and an entry count derived from the layout and the limits (limits.go)
// before it is unmarshalled, verifies the checksum, and only then builds the
// parameters and validates the circuit.

// CircuitFileFormat is the format of a circuit file's payload.
const CircuitFileFormat = "polyformer-circuit-v2"

type circuitFile struct {
	Format     string          `json:"format"`
	Parameters json.RawMessage `json:"parameters"`
	Circuit    *Circuit        `json:"circuit"`
}

// WriteCircuit writes a planned circuit for the parameters of the preset it
// was planned for (looked up by name; the fingerprint must match). Use
// WriteCircuitFor for parameters that are not a preset of this build.
func WriteCircuit(w io.Writer, c *Circuit) error {
	if c == nil || c.Planned == nil {
		return errors.New("write circuit: circuit is not planned (run Plan or CompileFor)")
	}
	p, err := he.ParametersFromPreset(c.Planned.Preset)
	if err != nil {
		return fmt.Errorf("write circuit: %w (use WriteCircuitFor with the parameters it was planned for)", err)
	}
	return WriteCircuitFor(w, c, p)
}

// WriteCircuitFor writes a planned circuit and the parameters p it was
// planned for in the versioned envelope (see the file format above).
func WriteCircuitFor(w io.Writer, c *Circuit, p *he.Parameters) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	if c.Planned == nil {
		return errors.New("write circuit: circuit is not planned (run Plan or CompileFor)")
	}
	if p == nil || p.Fingerprint().String() != c.Planned.Fingerprint || p.Name() != c.Planned.Preset {
		return fmt.Errorf("write circuit: circuit planned for %s (%.16s), parameters are %v: %w", c.Planned.Preset, c.Planned.Fingerprint, p, he.ErrFingerprintMismatch)
	}
	params, err := he.MarshalParametersJSON(p)
	if err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	payload, err := json.Marshal(circuitFile{Format: CircuitFileFormat, Parameters: params, Circuit: c})
	if err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	if len(payload) > MaxCircuitPayload {
		return fmt.Errorf("write circuit: %w", &LimitError{Field: "circuit file", What: "bytes", Value: int64(len(payload)), Limit: MaxCircuitPayload})
	}
	return he.WriteEnvelope(w, he.FileCircuit, p.Fingerprint(), p.Name(), payload)
}

// WriteCircuitFile writes the circuit (and the parameters of its preset) to
// path atomically; an existing file is an error unless overwrite.
func WriteCircuitFile(path string, c *Circuit, overwrite bool) error {
	return writeCircuitFile(path, overwrite, func(w io.Writer) error { return WriteCircuit(w, c) })
}

// WriteCircuitFileFor is WriteCircuitFile with explicit parameters.
func WriteCircuitFileFor(path string, c *Circuit, p *he.Parameters, overwrite bool) error {
	return writeCircuitFile(path, overwrite, func(w io.Writer) error { return WriteCircuitFor(w, c, p) })
}

func writeCircuitFile(path string, overwrite bool, write func(io.Writer) error) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("write circuit: %s exists", path)
		}
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".circuit-*")
	if err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return fmt.Errorf("write circuit: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	return nil
}

// DecodeCircuit decodes and validates a circuit file held in data (no
// trailing bytes). When p is non-nil the circuit must have been planned for
// p (else an error wrapping he.ErrFingerprintMismatch). Corrupted or hostile
// data gives an error, never a panic or an unbounded allocation.
func DecodeCircuit(data []byte, p *he.Parameters) (*Circuit, error) {
	c, _, err := DecodeCircuitAndParameters(data, p)
	return c, err
}

// DecodeCircuitAndParameters is DecodeCircuit that also returns the
// parameters the file carries (equal to p when p is non-nil). The
// parameters are not checked for security: call VerifyCircuit before
// generating keys or encrypting.
func DecodeCircuitAndParameters(data []byte, p *he.Parameters) (*Circuit, *he.Parameters, error) {
	r := bytes.NewReader(data)
	c, cp, err := readCircuit(r, p)
	if err != nil {
		return nil, nil, err
	}
	if r.Len() != 0 {
		return nil, nil, fmt.Errorf("read circuit: %w: %d bytes", he.ErrTrailingData, r.Len())
	}
	return c, cp, nil
}

// ReadCircuit reads one circuit envelope from r (see DecodeCircuit).
func ReadCircuit(r io.Reader, p *he.Parameters) (*Circuit, error) {
	c, _, err := readCircuit(r, p)
	return c, err
}

// ReadCircuitAndParameters reads one circuit envelope from r and returns
// the circuit and the parameters it carries (see DecodeCircuitAndParameters).
func ReadCircuitAndParameters(r io.Reader) (*Circuit, *he.Parameters, error) {
	return readCircuit(r, nil)
}

// LoadCircuitFile reads a circuit file and the parameters it carries. The
// parameters are those of the file, whatever name it gives them: call
// VerifyCircuit (security, key spec, key budget) before generating keys or
// encrypting.
func LoadCircuitFile(path string) (*Circuit, *he.Parameters, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	c, p, err := readCircuit(br, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, nil, fmt.Errorf("%s: read circuit: %w", path, he.ErrTrailingData)
	}
	return c, p, nil
}

func readCircuit(r io.Reader, want *he.Parameters) (*Circuit, *he.Parameters, error) {
	exp := he.ExpectFor(he.FileCircuit, want)
	exp.MaxPayload = MaxCircuitPayload
	er, err := he.OpenEnvelope(r, exp)
	if err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w", err)
	}
	hdr := er.Header()
	d := newStreamDecoder(er)
	var cf circuitFile
	if err := d.file(&cf); err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w", err)
	}
	if er.Remaining() != 0 {
		return nil, nil, fmt.Errorf("read circuit: %w: %d payload bytes after the circuit", he.ErrMalformed, er.Remaining())
	}
	if err := er.Finish(); err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w", err)
	}
	// The checksum holds: now build the parameters and check the graph.
	p, err := he.DecodeParametersJSON(cf.Parameters)
	if err != nil {
		return nil, nil, fmt.Errorf("read circuit: parameters: %w", err)
	}
	c := cf.Circuit
	if err := c.Validate(); err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w: %v", he.ErrMalformed, err)
	}
	if c.Planned == nil {
		return nil, nil, fmt.Errorf("read circuit: %w: circuit is not planned", he.ErrMalformed)
	}
	if p.Fingerprint() != hdr.Fingerprint || c.Planned.Fingerprint != hdr.Fingerprint.String() {
		return nil, nil, fmt.Errorf("read circuit: %w: envelope %s, plan %.16s, carried parameters %s",
			he.ErrFingerprintMismatch, hdr.Fingerprint.Short(), c.Planned.Fingerprint, p.Fingerprint().Short())
	}
	if c.Planned.Preset != p.Name() || hdr.Label != p.Name() {
		return nil, nil, fmt.Errorf("read circuit: %w: envelope label %q, plan %q and parameters %q disagree", he.ErrMalformed, hdr.Label, c.Planned.Preset, p.Name())
	}
	if want != nil && p.Fingerprint() != want.Fingerprint() {
		return nil, nil, fmt.Errorf("read circuit: %w", he.ErrFingerprintMismatch)
	}
	return c, p, nil
}

// --- bounded streaming JSON ------------------------------------------------

// budgetReader lets the JSON decoder read at most up to limit (in stream
// bytes); beyond it Read returns err.
type budgetReader struct {
	r     io.Reader
	n     int64
	limit int64
	err   error
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.n >= b.limit {
		return 0, b.err
	}
	if int64(len(p)) > b.limit-b.n {
		p = p[:b.limit-b.n]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// streamDecoder decodes a circuit file's JSON one bounded value at a time.
type streamDecoder struct {
	br  *budgetReader
	dec *json.Decoder
	// running totals
	weights, opNumbers int
}

func newStreamDecoder(r io.Reader) *streamDecoder {
	br := &budgetReader{r: r}
	return &streamDecoder{br: br, dec: json.NewDecoder(br)}
}

// allow lets the decoder read maxBytes past its current position.
func (d *streamDecoder) allow(field string, maxBytes int64) {
	d.br.limit = d.dec.InputOffset() + maxBytes
	d.br.err = &LimitError{Field: field, What: "bytes", Value: -1, Limit: maxBytes}
}

func (d *streamDecoder) wrap(field string, err error) error {
	var le *LimitError
	if errors.As(err, &le) {
		return le
	}
	if errors.Is(err, he.ErrTruncated) {
		return fmt.Errorf("%s: %w", field, err)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: %w: JSON ends early", field, he.ErrMalformed)
	}
	return fmt.Errorf("%s: %w: %v", field, he.ErrMalformed, err)
}

func (d *streamDecoder) token(field string) (json.Token, error) {
	d.allow(field, 4096)
	t, err := d.dec.Token()
	if err != nil {
		return nil, d.wrap(field, err)
	}
	return t, nil
}

func (d *streamDecoder) delim(field string, want json.Delim) error {
	t, err := d.token(field)
	if err != nil {
		return err
	}
	if t != want {
		return fmt.Errorf("%s: %w: got %v, want %q", field, he.ErrMalformed, t, string(want))
	}
	return nil
}

// key reads the next object key; ok is false at the object's end.
func (d *streamDecoder) key(field string) (string, bool, error) {
	t, err := d.token(field)
	if err != nil {
		return "", false, err
	}
	if t == json.Delim('}') {
		return "", false, nil
	}
	k, isStr := t.(string)
	if !isStr {
		return "", false, fmt.Errorf("%s: %w: unexpected %v", field, he.ErrMalformed, t)
	}
	return k, true, nil
}

// value decodes the next value into v: at most maxBytes of JSON, at most
// maxEntries array elements and object fields (counted on the raw bytes
// before unmarshalling, so the decoded value stays within its bound).
func (d *streamDecoder) value(field string, maxBytes int64, maxEntries int, v any) error {
	d.allow(field, maxBytes)
	var raw json.RawMessage
	if err := d.dec.Decode(&raw); err != nil {
		return d.wrap(field, err)
	}
	if n := bytes.Count(raw, []byte{','}) + 1; n > maxEntries {
		return &LimitError{Field: field, What: "entries", Value: int64(n), Limit: int64(maxEntries)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w: %v", field, he.ErrMalformed, err)
	}
	return nil
}

// array calls elem for each element of the next JSON array (null: none),
// refusing more than max elements.
func (d *streamDecoder) array(field string, max int, elem func(i int) error) error {
	t, err := d.token(field)
	if err != nil {
		return err
	}
	if t == nil {
		return nil
	}
	if t != json.Delim('[') {
		return fmt.Errorf("%s: %w: got %v, want an array", field, he.ErrMalformed, t)
	}
	for i := 0; ; i++ {
		d.allow(field, 4096)
		if !d.dec.More() {
			break
		}
		if i >= max {
			return &LimitError{Field: field, What: "entries", Value: -1, Limit: int64(max)}
		}
		if err := elem(i); err != nil {
			return err
		}
	}
	return d.delim(field, ']')
}

func (d *streamDecoder) file(cf *circuitFile) error {
	if err := d.delim("circuit file", '{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	for first := true; ; first = false {
		k, ok, err := d.key("circuit file")
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if seen[k] {
			return fmt.Errorf("circuit file: %w: field %q twice", he.ErrMalformed, k)
		}
		seen[k] = true
		switch k {
		case "format":
			if err := d.value("format", 256, 1, &cf.Format); err != nil {
				return err
			}
			if cf.Format != CircuitFileFormat {
				return fmt.Errorf("format: %w: %q, this build reads %q (recompile the circuit)", he.ErrUnsupportedVersion, cf.Format, CircuitFileFormat)
			}
		case "parameters":
			var raw json.RawMessage
			if err := d.value("parameters", he.MaxParametersJSON, 1<<16, &raw); err != nil {
				return err
			}
			cf.Parameters = raw
		case "circuit":
			if !seen["format"] {
				return fmt.Errorf("circuit file: %w: circuit before format", he.ErrMalformed)
			}
			cf.Circuit = &Circuit{}
			if err := d.circuit(cf.Circuit); err != nil {
				return err
			}
		default:
			if first && k == "version" {
				return fmt.Errorf("format: %w: circuit file without parameters (format 1, written by an older build): recompile the circuit", he.ErrUnsupportedVersion)
			}
			return fmt.Errorf("circuit file: %w: unknown field %q", he.ErrMalformed, k)
		}
	}
	if cf.Format == "" || cf.Parameters == nil || cf.Circuit == nil {
		return fmt.Errorf("circuit file: %w: format, parameters and circuit are required", he.ErrMalformed)
	}
	// Nothing but whitespace may follow.
	d.allow("circuit file", 4096)
	if _, err := d.dec.Token(); err != io.EOF {
		if err == nil {
			return fmt.Errorf("circuit file: %w: data after the circuit", he.ErrMalformed)
		}
		return d.wrap("circuit file", err)
	}
	return nil
}

func (d *streamDecoder) circuit(c *Circuit) error {
	if err := d.delim("circuit", '{'); err != nil {
		return err
	}
	seen := map[string]bool{}
	needLayout := func(k string) error {
		if !seen["layout"] {
			return fmt.Errorf("circuit.%s: %w: comes before circuit.layout", k, he.ErrMalformed)
		}
		return nil
	}
	for {
		k, ok, err := d.key("circuit")
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if seen[k] {
			return fmt.Errorf("circuit: %w: field %q twice", he.ErrMalformed, k)
		}
		seen[k] = true
		L := &c.Layout
		switch k {
		case "version":
			if err := d.value("circuit.version", 64, 1, &c.Version); err != nil {
				return err
			}
			if c.Version != FormatVersion {
				return fmt.Errorf("circuit.version: %w: %d, this build reads %d", he.ErrUnsupportedVersion, c.Version, FormatVersion)
			}
		case "task":
			if err := d.value("circuit.task", MaxLabel+2, 1, &c.Task); err != nil {
				return err
			}
		case "layout":
			if err := d.value("circuit.layout", 4096, 16, L); err != nil {
				return err
			}
			if err := L.Validate(); err != nil {
				return fmt.Errorf("circuit.%w", err)
			}
		case "ops":
			if err := needLayout(k); err != nil {
				return err
			}
			err = d.array("circuit.ops", MaxOps, func(i int) error {
				field := fmt.Sprintf("circuit.ops[%d]", i)
				var op Op
				if err := d.value(field, 64<<10, 16+MaxPolyDegree+1+MaxRotSteps+2, &op); err != nil {
					return err
				}
				n := len(op.In) + len(op.Rot)
				if op.Poly != nil {
					n += len(op.Poly.Coeffs)
				}
				d.opNumbers += n
				if d.opNumbers > MaxOpNumbers {
					return &LimitError{Field: "circuit.ops", What: "numbers (inputs, rotations, coefficients)", Value: int64(d.opNumbers), Limit: MaxOpNumbers}
				}
				c.Ops = append(c.Ops, op)
				return nil
			})
			if err != nil {
				return err
			}
		case "mats":
			if err := needLayout(k); err != nil {
				return err
			}
			tb := L.BlockTokens()
			per := tb * L.Block * L.Block
			err = d.array("circuit.mats", MaxMats, func(i int) error {
				field := fmt.Sprintf("circuit.mats[%d]", i)
				limit := min(per, MaxWeights-d.weights)
				var m Matrix
				if err := d.value(field, int64(limit)*maxNumberBytes+64<<10, limit+tb+8, &m); err != nil {
					return err
				}
				if len(m.Blocks) != 1 && len(m.Blocks) != tb {
					return fmt.Errorf("%s (%.64s): %w: %d blocks, want 1 or %d", field, m.Name, he.ErrMalformed, len(m.Blocks), tb)
				}
				for _, b := range m.Blocks {
					d.weights += len(b)
				}
				if err := tooMany("circuit weights (matrix and vector entries)", "entries", d.weights, MaxWeights); err != nil {
					return err
				}
				c.Mats = append(c.Mats, m)
				return nil
			})
			if err != nil {
				return err
			}
		case "vecs":
			if err := needLayout(k); err != nil {
				return err
			}
			per := L.BlockTokens() * L.Block
			err = d.array("circuit.vecs", MaxVecs, func(i int) error {
				field := fmt.Sprintf("circuit.vecs[%d]", i)
				limit := min(per, MaxWeights-d.weights)
				var v []float64
				if err := d.value(field, int64(limit)*maxNumberBytes+1024, limit, &v); err != nil {
					return err
				}
				d.weights += len(v)
				if err := tooMany("circuit weights (matrix and vector entries)", "entries", d.weights, MaxWeights); err != nil {
					return err
				}
				c.Vecs = append(c.Vecs, v)
				return nil
			})
			if err != nil {
				return err
			}
		case "planned":
			n := MaxOps
			if seen["ops"] {
				n = len(c.Ops)
			}
			entries := n + MaxRotationKeys + 16
			var pi *PlanInfo
			if err := d.value("circuit.planned", int64(entries)*maxNumberBytes+4096, entries, &pi); err != nil {
				return err
			}
			c.Planned = pi
		default:
			return fmt.Errorf("circuit: %w: unknown field %q", he.ErrMalformed, k)
		}
	}
}

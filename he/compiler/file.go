package compiler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/polyformer/polyformer/he"
)

// MaxCircuitPayload caps the size of a circuit file's payload (1 GiB).
const MaxCircuitPayload = 1 << 30

// WriteCircuit writes a planned circuit in the versioned envelope (kind
// circuit, the parameters' fingerprint, the preset name as label) with a
// JSON payload: op graph, weights (matrices and slot patterns), layout,
// level plan and key spec.
func WriteCircuit(w io.Writer, c *Circuit) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	if c.Planned == nil {
		return errors.New("write circuit: circuit is not planned (run Plan or CompileFor)")
	}
	fp, err := he.ParseFingerprint(c.Planned.Fingerprint)
	if err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("write circuit: %w", err)
	}
	if len(payload) > MaxCircuitPayload {
		return fmt.Errorf("write circuit: payload of %d bytes exceeds %d", len(payload), MaxCircuitPayload)
	}
	return he.WriteEnvelope(w, he.KindCircuit, fp, c.Planned.Preset, payload)
}

// WriteCircuitFile writes the circuit to path (atomically: a temporary file
// renamed into place); an existing file is an error unless overwrite.
func WriteCircuitFile(path string, c *Circuit, overwrite bool) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return fmt.Errorf("write circuit: %s exists", path)
		}
	}
	var buf bytes.Buffer
	if err := WriteCircuit(&buf, c); err != nil {
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

// DecodeCircuit decodes and validates a circuit file held in data. When p
// is non-nil the circuit must have been planned for p (else an error
// wrapping he.ErrFingerprintMismatch). Corrupted or hostile data gives an
// error, never a panic.
func DecodeCircuit(data []byte, p *he.Parameters) (*Circuit, error) {
	want := he.ExpectFor(he.KindCircuit, p)
	want.MaxPayload = MaxCircuitPayload
	h, payload, err := he.DecodeEnvelope(data, want)
	if err != nil {
		return nil, fmt.Errorf("read circuit: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	var c Circuit
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("read circuit: %w: %v", he.ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("read circuit: %w: data after the circuit", he.ErrMalformed)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("read circuit: %w: %v", he.ErrMalformed, err)
	}
	if c.Planned == nil {
		return nil, fmt.Errorf("read circuit: %w: circuit is not planned", he.ErrMalformed)
	}
	if c.Planned.Fingerprint != h.Fingerprint.String() || c.Planned.Preset != h.Label {
		return nil, fmt.Errorf("read circuit: %w: envelope (%s, %s) and plan (%s, %.16s) disagree", he.ErrMalformed,
			h.Label, h.Fingerprint.Short(), c.Planned.Preset, c.Planned.Fingerprint)
	}
	return &c, nil
}

// ReadCircuit reads one circuit envelope from r (see DecodeCircuit).
func ReadCircuit(r io.Reader, p *he.Parameters) (*Circuit, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxCircuitPayload+4096))
	if err != nil {
		return nil, fmt.Errorf("read circuit: %w", err)
	}
	return DecodeCircuit(data, p)
}

// LoadCircuitFile reads a circuit file and rebuilds the parameters of the
// preset it was planned for, checking that this build's preset still has
// the recorded fingerprint.
func LoadCircuitFile(path string) (*Circuit, *he.Parameters, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read circuit: %w", err)
	}
	c, err := DecodeCircuit(data, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	p, err := he.ParametersFromPreset(c.Planned.Preset)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	if p.Fingerprint().String() != c.Planned.Fingerprint {
		return nil, nil, fmt.Errorf("%s: circuit planned for preset %s with fingerprint %.16s, this build's %s has %s: %w",
			path, c.Planned.Preset, c.Planned.Fingerprint, p.Name(), p.Fingerprint().Short(), he.ErrFingerprintMismatch)
	}
	return c, p, nil
}

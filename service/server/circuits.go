package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
)

// CircuitFileExt is the extension of the circuit files LoadCircuits reads.
const CircuitFileExt = ".circuit"

// Circuit is a circuit the server evaluates: the full circuit (weights
// included: the server's asset) and what it publishes about it.
type Circuit struct {
	ID      string
	Circuit *circuit.Circuit
	Params  *he.Parameters
	Spec    he.KeySpec
	Info    api.CircuitInfo
	Summary api.CircuitSummary
}

// NewCircuit prepares a planned circuit for serving. data is the circuit
// file's bytes (its SHA-256 is the id). Circuits planned for insecure test
// presets are refused unless allowInsecure.
func NewCircuit(data []byte, allowInsecure bool, maxCiphertexts int) (*Circuit, error) {
	c, p, err := circuit.DecodeCircuitAndParameters(data, nil)
	if err != nil {
		return nil, err
	}
	if _, err := he.RequireSecure(p, allowInsecure); err != nil {
		return nil, fmt.Errorf("%w (serve test presets only with --insecure)", err)
	}
	pjson, err := he.MarshalParametersJSON(p)
	if err != nil {
		return nil, err
	}
	if c.Planned.InsecureSKBootstrap {
		return nil, fmt.Errorf("circuit was planned for the insecure secret-key bootstrapper, which needs the secret key: it cannot be served")
	}
	pub, err := c.Public()
	if err != nil {
		return nil, err
	}
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return nil, err
	}
	var dry bytes.Buffer
	if err := rep.WriteJSON(&dry); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	id := hex.EncodeToString(sum[:])
	if maxCiphertexts <= 0 {
		maxCiphertexts = 64
	}
	sc := &Circuit{ID: id, Circuit: c, Params: p, Spec: c.Planned.Keys.KeySpec()}
	sc.Info = api.CircuitInfo{
		ID: id, Task: c.Task, Preset: p.Name(), Fingerprint: p.Fingerprint().String(), Params: p.Info(),
		Parameters: json.RawMessage(pjson), KeySpec: c.Planned.Keys, Layout: c.Layout, InputLevel: c.Planned.InputLevel, LogScale: p.LogDefaultScale(),
		MaxCiphertexts: maxCiphertexts, DryRun: json.RawMessage(bytes.TrimSpace(dry.Bytes())), Circuit: pub,
	}
	sc.Summary = api.CircuitSummary{ID: id, Task: c.Task, Preset: p.Name(), Fingerprint: p.Fingerprint().String(),
		InputsPerCiphertext: c.Layout.Batch, KeyBytes: rep.KeyBytes.Total}
	return sc, nil
}

// LoadCircuits loads every *.circuit file of dir.
func LoadCircuits(dir string, allowInsecure bool, maxCiphertexts int) ([]*Circuit, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"+CircuitFileExt))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	if len(paths) == 0 {
		return nil, fmt.Errorf("no %s files in %s", CircuitFileExt, dir)
	}
	var out []*Circuit
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		c, err := NewCircuit(data, allowInsecure, maxCiphertexts)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	return out, nil
}

package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/client"
)

// KeyDir is a key directory as `polyformer keygen` writes it and the
// service client reuses it: client.SecretKeyFile (mode 0600, never leaves
// the client) and client.EvalKeysFile (public, for the server).
type KeyDir string

// SecretKeyPath is the path of the secret key file.
func (d KeyDir) SecretKeyPath() string { return filepath.Join(string(d), client.SecretKeyFile) }

// EvalKeysPath is the path of the evaluation keys file.
func (d KeyDir) EvalKeysPath() string { return filepath.Join(string(d), client.EvalKeysFile) }

// ErrMissingKeys is the error of Check when a key file is missing.
var ErrMissingKeys = errors.New("missing key file")

// Check reports an error (ErrMissingKeys) naming the first key file that
// is missing or unreadable, without reading the (large) files.
func (d KeyDir) Check() error {
	if d == "" {
		return fmt.Errorf("%w: no key directory given", ErrMissingKeys)
	}
	for _, path := range []string{d.SecretKeyPath(), d.EvalKeysPath()} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("key directory: %w (%w)", err, ErrMissingKeys)
		}
	}
	return nil
}

// Generate makes the directory (mode 0700), generates a fresh secret key
// for p and exactly the evaluation keys of spec, and writes both files
// (existing files are replaced only with overwrite). It returns the keys.
func (d KeyDir) Generate(p *he.Parameters, spec he.KeySpec, overwrite bool) (*he.SecretKey, *he.EvaluationKeys, error) {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return nil, nil, err
	}
	sk, evk, err := he.GenerateKeys(p, spec)
	if err != nil {
		return nil, nil, err
	}
	if err := he.WriteSecretKeyFile(d.SecretKeyPath(), sk, overwrite); err != nil {
		return nil, nil, err
	}
	if err := he.WriteEvaluationKeysFile(d.EvalKeysPath(), evk, overwrite); err != nil {
		return nil, nil, err
	}
	return sk, evk, nil
}

// Load reads the keys for circuit c on parameters p: the secret key, and
// the evaluation keys refused above maxKeyBytes (the budget of
// circuit.VerifyCircuit) before they are read, and unless they cover the
// circuit's key spec.
func (d KeyDir) Load(c *circuit.Circuit, p *he.Parameters, maxKeyBytes uint64) (*he.SecretKey, *he.EvaluationKeys, error) {
	sk, err := he.ReadSecretKeyFile(d.SecretKeyPath(), p)
	if err != nil {
		return nil, nil, err
	}
	evk, err := he.ReadEvaluationKeysFileMax(d.EvalKeysPath(), p, maxKeyBytes)
	if err != nil {
		return nil, nil, err
	}
	if err := evk.CheckCovers(c.Planned.Keys.KeySpec()); err != nil {
		return nil, nil, fmt.Errorf("keys in %s do not cover the circuit: %w", d, err)
	}
	return sk, evk, nil
}

package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
)

// Key directory layout (the same as `polyformer keygen`).
const (
	SecretKeyFile = "secret.key"      // never leaves this machine, mode 0600
	EvalKeysFile  = "evaluation.keys" // uploaded to the server
)

// Policy is what the client accepts from a server.
type Policy = circuit.ClientPolicy

// Verified is a circuit description the client checked.
type Verified struct {
	Info   *api.CircuitInfo
	Params *he.Parameters
	// Skeleton is the circuit rebuilt from the public description (no
	// weights): it encodes inputs and decodes outputs; never evaluate it.
	Skeleton *circuit.Circuit
	Budget   circuit.KeyBudget
}

// VerifyCircuit checks a circuit description received from a server before
// anything is generated or encrypted for it: the parameters are decoded
// from their own description (bounded) and must have the announced
// fingerprint; circuit.VerifyCircuit then computes their security from the
// parameters themselves, re-derives the levels and the key spec from the op
// graph and compares them with the plan's, and bounds the key bytes; the
// key spec the server announces must equal the recomputed one. This is the
// one place where the client decides to trust a circuit.
func VerifyCircuit(info *api.CircuitInfo, pol Policy) (*Verified, error) {
	if info == nil || info.Circuit == nil {
		return nil, errors.New("verify circuit: empty description")
	}
	p, err := he.DecodeParametersJSON(info.Parameters)
	if err != nil {
		return nil, fmt.Errorf("verify circuit %.16s: parameters: %w", info.ID, err)
	}
	if p.Fingerprint().String() != info.Fingerprint {
		return nil, fmt.Errorf("verify circuit %.16s: the parameters have fingerprint %s, the server announced %.16s: %w",
			info.ID, p.Fingerprint().Short(), info.Fingerprint, he.ErrFingerprintMismatch)
	}
	sk, err := info.Circuit.Skeleton()
	if err != nil {
		return nil, fmt.Errorf("verify circuit %.16s: %w", info.ID, err)
	}
	budget, err := circuit.VerifyCircuit(sk, p, pol)
	if err != nil {
		return nil, fmt.Errorf("circuit %.16s from the server: %w", info.ID, err)
	}
	if !sameKeyNeeds(info.KeySpec, sk.Planned.Keys) {
		return nil, fmt.Errorf("verify circuit %.16s: the announced key spec differs from the circuit's: %w", info.ID, circuit.ErrKeySpec)
	}
	if info.LogScale != p.LogDefaultScale() {
		return nil, fmt.Errorf("verify circuit %.16s: announced scale 2^%d, parameters use 2^%d", info.ID, info.LogScale, p.LogDefaultScale())
	}
	return &Verified{Info: info, Params: p, Skeleton: sk, Budget: budget}, nil
}

func sameKeyNeeds(a, b circuit.KeyNeeds) bool {
	if a.Relinearization != b.Relinearization || a.Bootstrapping != b.Bootstrapping || len(a.Rotations) != len(b.Rotations) {
		return false
	}
	for i := range a.Rotations {
		if a.Rotations[i] != b.Rotations[i] {
			return false
		}
	}
	if (a.Levels == nil) != (b.Levels == nil) {
		return false
	}
	if a.Levels != nil {
		if a.Levels.Relinearization != b.Levels.Relinearization || !slices.Equal(a.Levels.Rotations, b.Levels.Rotations) {
			return false
		}
	}
	return true
}

// Keys are the client's keys for one circuit: the secret key (in memory)
// and the evaluation-key file with its SHA-256 (the key set's id).
type Keys struct {
	Secret    *he.SecretKey
	EvalPath  string
	ID        string
	Size      int64
	Generated bool
	KeygenDur time.Duration
}

// EnsureKeys returns the keys in dir for the verified circuit, generating
// them (secret key mode 0600, evaluation keys) when dir has none. Existing
// keys must be for the circuit's parameters and cover its key spec.
// before, if set, is called before generating (with the budget).
func EnsureKeys(dir string, v *Verified, before func(circuit.KeyBudget)) (*Keys, error) {
	skPath, evPath := filepath.Join(dir, SecretKeyFile), filepath.Join(dir, EvalKeysFile)
	_, skErr := os.Stat(skPath)
	_, evErr := os.Stat(evPath)
	k := &Keys{EvalPath: evPath}
	switch {
	case skErr == nil && evErr == nil:
		sk, err := he.ReadSecretKeyFile(skPath, v.Params)
		if err != nil {
			return nil, fmt.Errorf("keys in %s: %w (use another --keys directory for this circuit)", dir, err)
		}
		f, err := os.Open(evPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		info, err := he.VerifyEvaluationKeysStream(bufio.NewReaderSize(f, 1<<20), func(he.Fingerprint, string) (*he.Parameters, error) { return v.Params, nil }, 0)
		if err != nil {
			return nil, fmt.Errorf("keys in %s: %w", dir, err)
		}
		if err := info.Covers(v.Skeleton.Planned.Keys.KeySpec()); err != nil {
			return nil, fmt.Errorf("keys in %s do not cover circuit %.16s: %w (use another --keys directory)", dir, v.Info.ID, err)
		}
		k.Secret = sk
	case os.IsNotExist(skErr) && os.IsNotExist(evErr):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if before != nil {
			before(v.Budget)
		}
		t0 := time.Now()
		sk, evk, err := he.GenerateKeys(v.Params, v.Skeleton.Planned.Keys.KeySpec())
		if err != nil {
			return nil, err
		}
		if err := he.WriteSecretKeyFile(skPath, sk, false); err != nil {
			return nil, err
		}
		if err := he.WriteEvaluationKeysFile(evPath, evk, false); err != nil {
			return nil, err
		}
		k.Secret, k.Generated, k.KeygenDur = sk, true, time.Since(t0)
	default:
		return nil, fmt.Errorf("key directory %s holds only one of %s and %s", dir, SecretKeyFile, EvalKeysFile)
	}
	id, size, err := fileSHA256(evPath)
	if err != nil {
		return nil, err
	}
	k.ID, k.Size = id, size
	return k, nil
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Stats are the client-side measurements of a prediction.
type Stats struct {
	// Request is the round trip of the infer requests; ServerEval and
	// KeyLoad the parts the server reported (evaluation, loading the key
	// set from its store).
	Encrypt, Request, ServerEval, KeyLoad, Decrypt time.Duration
	BytesSent, BytesReceived                       int64
	Requests                                       int
}

// Predict encrypts the encoded inputs (virtual slot vectors of the
// circuit's layout, for n inputs), sends them in requests of at most the
// circuit's MaxCiphertexts, decrypts the answers and returns each input's
// output values (circuit.Circuit.DecodeLogits). The answers are checked:
// as many ciphertexts as sent, valid for the parameters, finite values.
func (c *Client) Predict(ctx context.Context, v *Verified, keys *Keys, vecs [][]float64, n int) ([][]float64, *Stats, error) {
	st := &Stats{}
	hc, err := he.NewClient(v.Params, keys.Secret)
	if err != nil {
		return nil, nil, err
	}
	var dec [][]float64
	L := v.Skeleton.Layout
	per := max(1, v.Info.MaxCiphertexts/L.NumTokenBlocks()) // batches of inputs per request (each its token blocks' ciphertexts)
	for lo := 0; lo < len(vecs); lo += per {
		hi := min(lo+per, len(vecs))
		t0 := time.Now()
		cts, err := circuit.EncryptInputs(hc, v.Skeleton, vecs[lo:hi])
		if err != nil {
			return nil, nil, err
		}
		var body bytes.Buffer
		if err := he.WriteCiphertexts(&body, v.Params, cts); err != nil {
			return nil, nil, err
		}
		st.Encrypt += time.Since(t0)
		t1 := time.Now()
		res, err := c.Infer(ctx, v.Info.ID, keys.ID, body.Bytes())
		if err != nil {
			return nil, nil, err
		}
		st.Request += time.Since(t1)
		st.ServerEval += res.ServerEval
		st.KeyLoad += res.KeyLoad
		st.BytesSent += res.Sent
		st.BytesReceived += int64(len(res.Body))
		st.Requests++
		t2 := time.Now()
		outs, err := he.ReadCiphertexts(bytes.NewReader(res.Body), v.Params)
		if err != nil {
			return nil, nil, fmt.Errorf("answer from the server: %w", err)
		}
		if want := (hi - lo) * L.OutputCiphertexts(); len(outs) != want {
			return nil, nil, fmt.Errorf("answer from the server: %d ciphertexts, want %d (%d batches of inputs sent)", len(outs), want, hi-lo)
		}
		d, err := circuit.DecryptOutputs(hc, v.Skeleton, outs)
		if err != nil {
			return nil, nil, err
		}
		dec = append(dec, d...)
		st.Decrypt += time.Since(t2)
	}
	logits, err := v.Skeleton.DecodeLogits(dec, n)
	if err != nil {
		return nil, nil, err
	}
	for i, row := range logits {
		for j, x := range row {
			if math.IsNaN(x) || math.IsInf(x, 0) || math.Abs(x) > 1e12 {
				return nil, nil, fmt.Errorf("decrypted output %d value %d is %g: the answer is not a valid evaluation", i, j, x)
			}
		}
	}
	return logits, st, nil
}

package pipeline

import (
	"fmt"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

// RunOptions configure Run.
type RunOptions struct {
	// Workers are the goroutines evaluating independent ciphertext work of
	// a query (circuit.ExecOptions.Workers).
	Workers int
	// Chunk is the number of ciphertexts evaluated together (0: Workers);
	// 1 bounds memory.
	Chunk int
	// Trace records per-kind op statistics in Result.Trace.
	Trace bool
	// Model, when set, is the plaintext model of the circuit: Result.Poly
	// gets its poly-mode logits on the same inputs.
	Model *model.Model
	// SecretKeyBootstrap bootstraps with the secret-key bootstrapper
	// (INSECURE, tests only: for circuits planned with it).
	SecretKeyBootstrap bool
}

// GenerateKeys generates in memory a secret key and exactly the evaluation
// keys circuit c needs (no bootstrapping keys with SecretKeyBootstrap, whose
// bootstrapper needs none).
func GenerateKeys(c *circuit.Circuit, p *he.Parameters, opt RunOptions) (*he.SecretKey, *he.EvaluationKeys, error) {
	spec := c.Planned.Keys.KeySpec()
	spec.Bootstrapping = spec.Bootstrapping && !opt.SecretKeyBootstrap
	return he.GenerateKeys(p, spec)
}

// Run encrypts the inputs with the secret key, evaluates the circuit on
// the ciphertexts with the evaluation keys (opt.Workers goroutines, the
// per-layer breakdown measured against the simulator), decrypts, and
// compares with the float64 simulation of the circuit (and the model's
// poly-mode logits when opt.Model is set).
func Run(c *circuit.Circuit, p *he.Parameters, evk *he.EvaluationKeys, sk *he.SecretKey, in *Inputs, opt RunOptions) (*Result, error) {
	if len(in.Vecs) == 0 {
		return nil, fmt.Errorf("no inputs to evaluate")
	}
	client, err := he.NewClient(p, sk)
	if err != nil {
		return nil, err
	}
	eo := circuit.ExecOptions{Workers: opt.Workers, Chunk: opt.Chunk}
	if opt.Trace {
		eo.Trace = he.NewTrace()
	}
	if opt.SecretKeyBootstrap {
		if eo.Bootstrapper, err = he.NewSecretKeyBootstrapper(p, sk); err != nil {
			return nil, err
		}
	}
	rep, dec, err := circuit.Bench(c, p, evk, client, in.Vecs, eo)
	if err != nil {
		return nil, err
	}
	got, err := c.DecodeLogits(dec, in.N)
	if err != nil {
		return nil, err
	}
	want, err := Simulate(c, in)
	if err != nil {
		return nil, err
	}
	res := NewResult(c, rep, got, want, in.Labels)
	if eo.Trace != nil {
		res.Trace = eo.Trace.ByKind()
	}
	if opt.Model != nil {
		if res.Poly, err = ModelLogits(opt.Model, in.Batch, nn.ModePoly); err != nil {
			return nil, fmt.Errorf("poly-mode model: %w", err)
		}
	}
	return res, nil
}

// InferFile is the client's in-process inference on a circuit file it did
// not make: it loads the circuit and verifies it under pol (security from
// the parameters, key spec recomputed from the ops, key budget), checks
// that the key directory holds both files (ErrMissingKeys), encodes the
// inputs (so that missing or bad data is reported before the large keys
// are read), loads the keys within the budget, and Runs.
func InferFile(circuitPath string, keys KeyDir, encode func(*circuit.Circuit) (*Inputs, error), pol circuit.ClientPolicy, opt RunOptions) (*Result, error) {
	c, p, err := circuit.LoadCircuitFile(circuitPath)
	if err != nil {
		return nil, err
	}
	budget, err := circuit.VerifyCircuit(c, p, pol)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", circuitPath, err)
	}
	if err := keys.Check(); err != nil {
		return nil, err
	}
	in, err := encode(c)
	if err != nil {
		return nil, err
	}
	sk, evk, err := keys.Load(c, p, budget.MaxKeyBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", circuitPath, err)
	}
	return Run(c, p, evk, sk, in, opt)
}

// Simulate returns the logits of the float64 simulation of the circuit on
// the inputs (the plaintext reference of Run and Remote), per input.
func Simulate(c *circuit.Circuit, in *Inputs) ([][]float64, error) {
	sims := make([][]float64, len(in.Vecs))
	for i, v := range in.Vecs {
		var err error
		if sims[i], _, err = c.Simulate(v, circuit.SimOptions{}); err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
	}
	return c.DecodeLogits(sims, in.N)
}

// ModelLogits evaluates the plaintext model on a batch in the given mode
// (restoring exact mode after) and returns one logit row per input: classes
// for images, positions × vocabulary for byte sequences (the layout of the
// circuit's decoded logits).
func ModelLogits(m *model.Model, b model.Batch, mode nn.Mode) ([][]float64, error) {
	if err := m.SetMode(mode); err != nil {
		return nil, err
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	lg, err := m.Logits(b)
	if err != nil {
		return nil, err
	}
	per := lg.Cols() * max(b.T, 1) // logits per input
	out := make([][]float64, b.B)
	for i := range out {
		out[i] = lg.Data[i*per : (i+1)*per]
	}
	return out, nil
}

package pipeline

import (
	"context"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/client"
)

// RemoteOptions configure RunRemote.
type RemoteOptions struct {
	// Client configures the HTTP client (token, CA, retries, chunk size).
	Client client.Options
	// Policy is what the client accepts from the server (security, key budget).
	Policy client.Policy
	// CircuitID selects the circuit ("": the only one served).
	CircuitID string
	// KeyDir holds the client's keys for the circuit; they are generated
	// there when it has none (client.EnsureKeys).
	KeyDir KeyDir
	// Encode encodes the inputs for the verified circuit's skeleton (its
	// layout, no weights). Required.
	Encode func(c *circuit.Circuit) (*Inputs, error)
	// BeforeKeygen, if set, is called before keys are generated (the
	// verified circuit holds the key budget).
	BeforeKeygen func(*client.Verified)
	// KeysReady, if set, is called once the keys are on disk, before the upload.
	KeysReady func(*client.Keys)
	// UploadProgress, if set, receives the bytes of the key upload done and in total.
	UploadProgress func(done, total int64)
}

// Remote is one private inference against a server, as the client saw it.
type Remote struct {
	// Server is the server's URL.
	Server string
	// Verified is the circuit description the client fetched and checked.
	Verified *client.Verified
	// Inputs are the encoded inputs.
	Inputs *Inputs
	// Keys are the client's keys (the secret key stays in memory here).
	Keys *client.Keys
	// Upload is the evaluation-key upload (skipped bytes when the server had them).
	Upload *client.UploadResult
	// Logits are the decrypted outputs per input.
	Logits [][]float64
	// Stats are the client-side measurements of the inference requests.
	Stats *client.Stats
}

// RunRemote runs the client protocol against the server at serverURL:
// fetch the circuit description and verify it (trusting nothing the server
// says), encode the inputs, ensure keys in opt.KeyDir (the secret key never
// leaves it), upload the evaluation keys (resumable, skipped when the
// server has them), encrypt, ask for the inference and decrypt.
func RunRemote(ctx context.Context, serverURL string, opt RemoteOptions) (*Remote, error) {
	cl, err := client.New(serverURL, opt.Client)
	if err != nil {
		return nil, err
	}
	info, err := cl.Circuit(ctx, opt.CircuitID)
	if err != nil {
		return nil, err
	}
	r := &Remote{Server: serverURL}
	if r.Verified, err = client.VerifyCircuit(info, opt.Policy); err != nil {
		return nil, err
	}
	if r.Inputs, err = opt.Encode(r.Verified.Skeleton); err != nil {
		return nil, err
	}
	var before func(circuit.KeyBudget)
	if opt.BeforeKeygen != nil {
		before = func(circuit.KeyBudget) { opt.BeforeKeygen(r.Verified) }
	}
	if r.Keys, err = client.EnsureKeys(string(opt.KeyDir), r.Verified, before); err != nil {
		return nil, err
	}
	if opt.KeysReady != nil {
		opt.KeysReady(r.Keys)
	}
	if r.Upload, err = cl.UploadKeys(ctx, r.Keys.EvalPath, r.Keys.ID, opt.UploadProgress); err != nil {
		return nil, err
	}
	if r.Logits, r.Stats, err = cl.Predict(ctx, r.Verified, r.Keys, r.Inputs.Vecs, r.Inputs.N); err != nil {
		return nil, err
	}
	return r, nil
}

// Rows are the decrypted logits split into one row per prediction (per
// position for a byte LM).
func (r *Remote) Rows() [][]float64 {
	res := Result{Task: r.Verified.Info.Task, Outputs: r.Verified.Info.Layout.Outputs}
	return res.Rows(r.Logits)
}

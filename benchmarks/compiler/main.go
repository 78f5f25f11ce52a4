// Command compiler-bench compiles an MNIST or byte-LM checkpoint into a CKKS circuit
// (through the pipeline package: foldable norms folded, as `polyformer
// compile` does; compiler, he/circuit), prints the dry-run report, and unless -dry-run generates
// exactly the keys the circuit needs, encrypts -images test images, runs
// the circuit on 2 cores and reports: encrypted vs poly-mode predictions,
// encrypted, poly-mode and exact-mode accuracy, the largest logit error
// against the simulator, end-to-end and amortized per-image latency, and the
// per-layer breakdown (time, levels, rotations, key switches, bootstraps,
// log2 error against the simulator). For a byte LM it encrypts -images
// windows of the validation split of a text corpus (-text FILE, or the Go
// source) and compares every token's next-byte logits and predictions.
//
// Usage (from the repository root):
//
//	go run ./benchmarks/compiler -ckpt DIR [-preset n15] [-images 64] [-json out.json] [-dry-run]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/pipeline"
)

// Result is what the command records (JSON).
type Result struct {
	Command          string            `json:"command"`
	Checkpoint       string            `json:"checkpoint"`
	Config           model.Config      `json:"config"`
	Images           int               `json:"inputs"`
	Ciphertexts      int               `json:"ciphertexts"`
	Workers          int               `json:"workers"`
	KeygenSeconds    float64           `json:"keygen_seconds"`
	AgreeWithPoly    int               `json:"encrypted_equals_poly_predictions"`
	EncryptedCorrect int               `json:"encrypted_correct"`
	PolyCorrect      int               `json:"poly_correct"`
	ExactCorrect     int               `json:"exact_correct"`
	MaxLogitErrPoly  float64           `json:"max_logit_err_vs_poly_mode"`
	Report           *circuit.Report   `json:"report"`
	Trace            []he.OpStats      `json:"trace_by_kind"`
	Extra            map[string]string `json:"extra,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compiler-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	ckpt := flag.String("ckpt", "", "checkpoint directory (MNIST model)")
	preset := flag.String("preset", "", "parameter preset (default: smallest that fits)")
	batch := flag.Int("batch", 0, "images per ciphertext (0: as many as fit)")
	images := flag.Int("images", 0, "test images to evaluate (0: one ciphertext's worth)")
	allowBoot := flag.Bool("allow-bootstrap", false, "allow bootstrapping")
	dry := flag.Bool("dry-run", false, "print the dry-run report only")
	out := flag.String("json", "", "write the result as JSON to this file")
	workers := flag.Int("workers", 2, "worker goroutines")
	chunk := flag.Int("chunk", 0, "ciphertexts evaluated together (0: workers); 1 bounds memory")
	textFile := flag.String("text", "", "text corpus for a byte LM (default: Go source under GOROOT, 1 MB)")
	insecure := flag.Bool("insecure", false, "allow presets below 128-bit security (tests only)")
	insecureBoot := flag.Bool("insecure-sk-bootstrap", false, "INSECURE (tests only): bootstrap with the secret-key bootstrapper (for test-boot-n13)")
	flag.Parse()
	if *ckpt == "" {
		return errors.New("-ckpt is required")
	}
	m, err := pipeline.LoadForCompile(*ckpt)
	if err != nil {
		return err
	}
	var c *circuit.Circuit
	var p *he.Parameters
	if *insecureBoot {
		if p, err = he.ParametersFromPreset(*preset); err != nil {
			return err
		}
		pk, err := compiler.MaxBatch(m, p.Slots())
		if err != nil {
			return err
		}
		if *batch != 0 {
			pk.Batch = *batch
		}
		g, err := compiler.Compile(m, compiler.CompileOptions{Batch: pk.Batch, Block: pk.Block, TokenBlock: pk.TokenBlock})
		if err != nil {
			return err
		}
		if c, err = circuit.Plan(g, p, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true}); err != nil {
			return err
		}
	} else if c, p, err = compiler.CompileFor(m, *preset, compiler.Options{Batch: *batch, AllowBootstrap: *allowBoot, AllowInsecure: *insecure}); err != nil {
		return err
	}
	res := Result{Command: fmt.Sprint(os.Args), Checkpoint: *ckpt, Config: m.Cfg, Workers: *workers,
		Extra: map[string]string{"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)), "go": runtime.Version()}}
	var in *pipeline.Inputs
	if m.Cfg.Task == model.TaskText {
		in, err = textInputs(c, *images, *textFile, &res)
	} else {
		in, err = mnistInputs(c, *images)
	}
	if err != nil {
		return err
	}
	res.Images, res.Ciphertexts = in.N, len(in.Vecs)
	if *dry {
		rep, err := circuit.NewReport(c, p)
		if err != nil {
			return err
		}
		if pe, err := circuit.PredictPrecision(c, p, in.Vecs[0]); err == nil {
			rep.PredictedLog2Err = pe
		}
		return rep.WriteTable(os.Stdout)
	}
	opt := pipeline.RunOptions{Workers: *workers, Chunk: *chunk, Trace: true, Model: m, SecretKeyBootstrap: *insecureBoot}
	t0 := time.Now()
	sk, evk, err := pipeline.GenerateKeys(c, p, opt)
	if err != nil {
		return err
	}
	res.KeygenSeconds = time.Since(t0).Seconds()
	r, err := pipeline.Run(c, p, evk, sk, in, opt)
	if err != nil {
		return err
	}
	res.Report, res.Trace = r.Report, r.Trace
	res.AgreeWithPoly, _ = r.PolyAgreement()
	res.MaxLogitErrPoly = r.MaxPolyError()
	if err := r.Report.WriteTable(os.Stdout); err != nil {
		return err
	}
	if m.Cfg.Task == model.TaskText {
		_, tokens := r.PolyAgreement()
		res.Extra["tokens"] = fmt.Sprint(tokens)
		fmt.Printf("%d sequences × %d tokens in %d ciphertexts: encrypted = poly-mode next-byte prediction on %d of %d tokens; max |logit - poly mode| %.3g (predicted 2^%.1f); keygen %.1fs\n",
			in.N, c.Layout.Tokens, len(in.Vecs), res.AgreeWithPoly, tokens, res.MaxLogitErrPoly, r.Report.PredictedLog2Err, res.KeygenSeconds)
		return writeResult(*out, res, r.Report)
	}
	exact, err := pipeline.ModelLogits(m, in.Batch, nn.ModeExact)
	if err != nil {
		return err
	}
	res.EncryptedCorrect, res.PolyCorrect, res.ExactCorrect = r.Correct(), pipeline.CountCorrect(r.Poly, in.Labels), pipeline.CountCorrect(exact, in.Labels)
	fmt.Printf("images %d in %d ciphertexts: encrypted = poly-mode prediction on %d; accuracy encrypted %d, poly %d, exact %d; max |logit - poly mode| %.3g; keygen %.1fs\n",
		in.N, len(in.Vecs), res.AgreeWithPoly, res.EncryptedCorrect, res.PolyCorrect, res.ExactCorrect, res.MaxLogitErrPoly, res.KeygenSeconds)
	return writeResult(*out, res, r.Report)
}

// mnistInputs encodes the first n MNIST test images (n <= 0: one
// ciphertext's worth).
func mnistInputs(c *circuit.Circuit, n int) (*pipeline.Inputs, error) {
	_, test, err := pipeline.LoadMNIST("")
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		n = c.Layout.Batch
	}
	return pipeline.EncodeMNIST(c, test, 0, min(n, test.N))
}

// textInputs encodes n windows (n <= 0: one ciphertext's worth) of the
// validation split of a text corpus (textFile, or 1 MB of the Go source)
// for a byte LM, and records the corpus in res.
func textInputs(c *circuit.Circuit, n int, textFile string, res *Result) (*pipeline.Inputs, error) {
	var corpus *data.Corpus
	var err error
	if textFile != "" {
		corpus, err = data.LoadTextFile(textFile, 0.5)
	} else {
		var root string
		if root, err = data.GoRoot(); err == nil {
			corpus, err = data.LoadGoSource(root, 1<<20)
		}
	}
	if err != nil {
		return nil, err
	}
	res.Extra["corpus"] = corpus.Name
	if n <= 0 {
		n = c.Layout.Batch
	}
	T := c.Layout.Tokens
	ins, _, err := corpus.SampleBatch(rand.New(rand.NewPCG(1, 2)), data.ValidSplit, n, T)
	if err != nil {
		return nil, err
	}
	ids := make([]int, 0, n*T)
	for _, row := range ins {
		ids = append(ids, row...)
	}
	return pipeline.EncodeBytes(c, ids, n)
}

// writeResult writes res as JSON (the report through its NaN-safe encoder).
func writeResult(path string, res Result, rep *circuit.Report) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	type alias Result
	r := alias(res)
	r.Report = nil
	var repBuf jsonRaw
	if err := rep.WriteJSON(&repBuf); err != nil {
		return err
	}
	return enc.Encode(struct {
		alias
		Report json.RawMessage `json:"report"`
	}{r, json.RawMessage(repBuf)})
}

type jsonRaw []byte

func (j *jsonRaw) Write(b []byte) (int, error) { *j = append(*j, b...); return len(b), nil }

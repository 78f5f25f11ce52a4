// Command compiler-bench compiles an MNIST or byte-LM checkpoint into a CKKS circuit
// (compiler, he/circuit), prints the dry-run report, and unless -dry-run generates
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
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/model/nn"
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
	insecureBoot := flag.Bool("insecure-sk-bootstrap", false, "INSECURE (tests only): bootstrap with the secret-key bootstrapper (for test-boot-n13)")
	flag.Parse()
	if *ckpt == "" {
		return errors.New("-ckpt is required")
	}
	m, err := checkpoint.Load(*ckpt)
	if err != nil {
		return err
	}
	var c *circuit.Circuit
	var p *he.Parameters
	if *insecureBoot {
		if p, err = he.ParametersFromPreset(*preset); err != nil {
			return err
		}
		b := *batch
		if b == 0 {
			if b, err = compiler.MaxBatch(m, p.Slots()); err != nil {
				return err
			}
		}
		g, err := compiler.Compile(m, compiler.CompileOptions{Batch: b})
		if err != nil {
			return err
		}
		if c, err = circuit.Plan(g, p, circuit.PlanOptions{AllowBootstrap: true, InsecureSecretKeyBootstrap: true}); err != nil {
			return err
		}
	} else if c, p, err = compiler.CompileFor(m, *preset, compiler.Options{Batch: *batch, AllowBootstrap: *allowBoot, AllowInsecure: *insecureBoot}); err != nil {
		return err
	}
	if m.Cfg.Task == model.TaskText {
		return runText(m, c, p, *images, *textFile, *dry, *out, *workers, *chunk, *insecureBoot)
	}
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return err
	}
	dir, err := data.MNISTDir()
	if err != nil {
		return err
	}
	_, test, err := data.LoadMNIST(dir)
	if err != nil {
		return err
	}
	n := *images
	if n <= 0 {
		n = c.Layout.Batch
	}
	test = test.Subset(n)
	vecs, err := c.EncodeImages(test.Pixels, test.N, test.Rows, test.Cols)
	if err != nil {
		return err
	}
	if pe, err := circuit.PredictPrecision(c, p, vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	if *dry {
		return rep.WriteTable(os.Stdout)
	}
	res := Result{Command: fmt.Sprint(os.Args), Checkpoint: *ckpt, Config: m.Cfg, Images: test.N, Ciphertexts: len(vecs), Workers: *workers}
	rep, dec, err := encryptedBench(c, p, vecs, *workers, *chunk, *insecureBoot, &res)
	if err != nil {
		return err
	}
	got, err := c.DecodeLogits(dec, test.N)
	if err != nil {
		return err
	}
	batchOf := model.Batch{B: test.N, Pixels: test.Pixels, Targets: test.Labels}
	polyLg, err := logits(m, batchOf, nn.ModePoly)
	if err != nil {
		return err
	}
	exactLg, err := logits(m, batchOf, nn.ModeExact)
	if err != nil {
		return err
	}
	for i := 0; i < test.N; i++ {
		e, pl, ex := argmax(got[i]), argmax(polyLg[i]), argmax(exactLg[i])
		if e == pl {
			res.AgreeWithPoly++
		}
		if e == test.Labels[i] {
			res.EncryptedCorrect++
		}
		if pl == test.Labels[i] {
			res.PolyCorrect++
		}
		if ex == test.Labels[i] {
			res.ExactCorrect++
		}
		for j := range got[i] {
			res.MaxLogitErrPoly = math.Max(res.MaxLogitErrPoly, math.Abs(got[i][j]-polyLg[i][j]))
		}
	}
	res.Report = rep
	res.Extra = map[string]string{"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)), "go": runtime.Version()}
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("images %d in %d ciphertexts: encrypted = poly-mode prediction on %d; accuracy encrypted %d, poly %d, exact %d; max |logit - poly mode| %.3g; keygen %.1fs\n",
		test.N, len(vecs), res.AgreeWithPoly, res.EncryptedCorrect, res.PolyCorrect, res.ExactCorrect, res.MaxLogitErrPoly, res.KeygenSeconds)
	return writeResult(*out, res, rep)
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

// runText benchmarks a byte LM on n validation windows.
func runText(m *model.Model, c *circuit.Circuit, p *he.Parameters, n int, textFile string, dry bool, out string, workers, chunk int, insecureBoot bool) error {
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return err
	}
	var corpus *data.Corpus
	if textFile != "" {
		corpus, err = data.LoadTextFile(textFile, 0.5)
	} else {
		var root string
		if root, err = data.GoRoot(); err == nil {
			corpus, err = data.LoadGoSource(root, 1<<20)
		}
	}
	if err != nil {
		return err
	}
	if n <= 0 {
		n = c.Layout.Batch
	}
	T := c.Layout.Tokens
	ins, _, err := corpus.SampleBatch(rand.New(rand.NewPCG(1, 2)), data.ValidSplit, n, T)
	if err != nil {
		return err
	}
	ids := make([]int, 0, n*T)
	for _, row := range ins {
		ids = append(ids, row...)
	}
	vecs, err := c.EncodeBytes(ids, n, T)
	if err != nil {
		return err
	}
	if pe, err := circuit.PredictPrecision(c, p, vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	if dry {
		return rep.WriteTable(os.Stdout)
	}
	res := Result{Command: fmt.Sprint(os.Args), Config: m.Cfg, Images: n, Ciphertexts: len(vecs), Workers: workers}
	rep, dec, err := encryptedBench(c, p, vecs, workers, chunk, insecureBoot, &res)
	if err != nil {
		return err
	}
	got, err := c.DecodeLogits(dec, n)
	if err != nil {
		return err
	}
	b := model.Batch{B: n, T: T, Inputs: ids, Targets: ids}
	polyLg, err := logits(m, b, nn.ModePoly)
	if err != nil {
		return err
	}
	V := c.Layout.Outputs
	tokens := 0
	for i := 0; i < n; i++ {
		for t := 0; t < T; t++ {
			e, pl := got[i][t*V:(t+1)*V], polyLg[i*T+t]
			tokens++
			if argmax(e) == argmax(pl) {
				res.AgreeWithPoly++
			}
			for j := range e {
				res.MaxLogitErrPoly = math.Max(res.MaxLogitErrPoly, math.Abs(e[j]-pl[j]))
			}
		}
	}
	res.Report = rep
	res.Extra = map[string]string{"tokens": fmt.Sprint(tokens), "corpus": corpus.Name, "gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0))}
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("%d sequences × %d tokens in %d ciphertexts: encrypted = poly-mode next-byte prediction on %d of %d tokens; max |logit - poly mode| %.3g (predicted 2^%.1f); keygen %.1fs\n",
		n, T, len(vecs), res.AgreeWithPoly, tokens, res.MaxLogitErrPoly, rep.PredictedLog2Err, res.KeygenSeconds)
	return writeResult(out, res, rep)
}

type jsonRaw []byte

func (j *jsonRaw) Write(b []byte) (int, error) { *j = append(*j, b...); return len(b), nil }

func logits(m *model.Model, b model.Batch, mode nn.Mode) ([][]float64, error) {
	if err := m.SetMode(mode); err != nil {
		return nil, err
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	lg, err := m.Logits(b)
	if err != nil {
		return nil, err
	}
	k := lg.Cols()
	out := make([][]float64, lg.Rows()) // [B] (images) or [B*T] (text) rows
	for i := range out {
		out[i] = lg.Data[i*k : (i+1)*k]
	}
	return out, nil
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// encryptedBench generates exactly the keys the circuit needs (no
// bootstrapping keys with the insecure secret-key bootstrapper), encrypts
// the inputs, evaluates the circuit with the traced executor and decrypts:
// the measured report and the decrypted slot vectors. It records the key
// generation time and the per-kind op statistics in res.
func encryptedBench(c *circuit.Circuit, p *he.Parameters, vecs [][]float64, workers, chunk int, insecureBoot bool, res *Result) (*circuit.Report, [][]float64, error) {
	t0 := time.Now()
	spec := c.Planned.Keys.KeySpec()
	spec.Bootstrapping = spec.Bootstrapping && !insecureBoot // the secret-key bootstrapper needs no keys
	sk, evk, err := he.GenerateKeys(p, spec)
	if err != nil {
		return nil, nil, err
	}
	res.KeygenSeconds = time.Since(t0).Seconds()
	client, err := he.NewClient(p, sk)
	if err != nil {
		return nil, nil, err
	}
	tr := he.NewTrace()
	eo := circuit.ExecOptions{Workers: workers, Trace: tr, Chunk: chunk}
	if insecureBoot {
		if eo.Bootstrapper, err = he.NewSecretKeyBootstrapper(p, sk); err != nil {
			return nil, nil, err
		}
	}
	rep, dec, err := circuit.Bench(c, p, evk, client, vecs, eo)
	if err != nil {
		return nil, nil, err
	}
	res.Trace = tr.ByKind()
	return rep, dec, nil
}

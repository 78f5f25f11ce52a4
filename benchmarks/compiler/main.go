// Command compiler-bench compiles an MNIST checkpoint into a CKKS circuit
// (he/compiler), prints the dry-run report, and unless -dry-run generates
// exactly the keys the circuit needs, encrypts -images test images, runs
// the circuit on 2 cores and reports: encrypted vs poly-mode predictions,
// encrypted, poly-mode and exact-mode accuracy, the largest logit error
// against the simulator, end-to-end and amortized per-image latency, and the
// per-layer breakdown (time, levels, rotations, key switches, bootstraps,
// log2 error against the simulator).
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
	"os"
	"runtime"
	"time"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/compiler"
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
	Images           int               `json:"images"`
	Ciphertexts      int               `json:"ciphertexts"`
	Workers          int               `json:"workers"`
	KeygenSeconds    float64           `json:"keygen_seconds"`
	AgreeWithPoly    int               `json:"encrypted_equals_poly_predictions"`
	EncryptedCorrect int               `json:"encrypted_correct"`
	PolyCorrect      int               `json:"poly_correct"`
	ExactCorrect     int               `json:"exact_correct"`
	MaxLogitErrPoly  float64           `json:"max_logit_err_vs_poly_mode"`
	Report           *compiler.Report  `json:"report"`
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
	flag.Parse()
	if *ckpt == "" {
		return errors.New("-ckpt is required")
	}
	m, err := checkpoint.Load(*ckpt)
	if err != nil {
		return err
	}
	if m.Cfg.Task != model.TaskMNIST {
		return fmt.Errorf("checkpoint task %q: this benchmark runs MNIST", m.Cfg.Task)
	}
	c, p, err := compiler.CompileFor(m, *preset, *batch, *allowBoot)
	if err != nil {
		return err
	}
	rep, err := compiler.NewReport(c, p)
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
	if pe, err := compiler.PredictPrecision(c, p, vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	if *dry {
		return rep.WriteTable(os.Stdout)
	}
	res := Result{Command: fmt.Sprint(os.Args), Checkpoint: *ckpt, Config: m.Cfg, Images: test.N, Ciphertexts: len(vecs), Workers: *workers}
	t0 := time.Now()
	sk, evk, err := he.GenerateKeys(p, c.Planned.Keys.KeySpec())
	if err != nil {
		return err
	}
	res.KeygenSeconds = time.Since(t0).Seconds()
	client, err := he.NewClient(p, sk)
	if err != nil {
		return err
	}
	tr := he.NewTrace()
	rep, dec, err := compiler.Bench(c, p, evk, client, vecs, compiler.ExecOptions{Workers: *workers, Trace: tr})
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
	res.Trace = tr.ByKind()
	res.Extra = map[string]string{"gomaxprocs": fmt.Sprint(runtime.GOMAXPROCS(0)), "go": runtime.Version()}
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	fmt.Printf("images %d in %d ciphertexts: encrypted = poly-mode prediction on %d; accuracy encrypted %d, poly %d, exact %d; max |logit - poly mode| %.3g; keygen %.1fs\n",
		test.N, len(vecs), res.AgreeWithPoly, res.EncryptedCorrect, res.PolyCorrect, res.ExactCorrect, res.MaxLogitErrPoly, res.KeygenSeconds)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		enc := json.NewEncoder(f)
		enc.SetIndent("", "  ")
		// NaN-safe: the report's own JSON handles NaN; the rest has none.
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
	return nil
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
	out := make([][]float64, b.B)
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

// Command normfree-ablation trains every normalization method of package
// normfree side by side with the same (reduced) budget, on the byte LM over
// Go source with Power-Softmax (validation bits per byte, exact and poly
// mode) and on the MNIST ViT (test accuracy, exact and poly mode), one
// training at a time, and records the results with the HE cost of each
// method's norms per block (norm.CostOf). For the Pre-LN run it also
// converts the trained model to Pre-RMSNorm (normfree/convert) and
// evaluates the converted model, and for every foldable method it folds the
// trained model and evaluates the folded one.
//
// Usage (from the repository root):
//
//	go run ./benchmarks/normfree -tasks text,mnist -text-steps 400 -mnist-steps 300 \
//	    -out benchmarks/normfree
//
// Results are appended to <out>/results.jsonl as each run finishes (so an
// interrupted ablation keeps what it measured) and the complete set is
// written to <out>/results.json and <out>/results.csv at the end.
package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/convert"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/model/train"
)

// variant is one method of the ablation.
type variant struct {
	Name string
	Kind string
	Opts norm.Options
}

func variants(steps int) []variant {
	decay := int(math.Max(1, math.Round(0.6*float64(steps))))
	return []variant{
		{"none", norm.MethodNone, norm.Options{}},
		{"layernorm", norm.MethodLayerNorm, norm.Options{}},
		{"rmsnorm", norm.MethodRMSNorm, norm.Options{}},
		{"batchnorm", norm.MethodBatchNorm, norm.Options{}},
		{"repbn", norm.MethodRepBN, norm.Options{}},
		{"prepbn", norm.MethodPRepBN, norm.Options{DecaySteps: decay}},
		{"powernorm", norm.MethodPowerNorm, norm.Options{}},
		{"powernorm-group1", norm.MethodPowerNorm, norm.Options{Groups: 1}},
		{"unified", norm.MethodUnified, norm.Options{}},
		{"fixedscale", norm.MethodFixedScale, norm.Options{}},
		{"sigmareparam", norm.MethodSigmaReparam, norm.Options{}},
		{"weightnorm", norm.MethodWeightNorm, norm.Options{}},
		{"scaledws", norm.MethodScaledWS, norm.Options{}},
		{"layernorm-post", norm.MethodLayerNorm, norm.Options{Placement: norm.PlacePost}},
		{"layernorm-peri", norm.MethodLayerNorm, norm.Options{Placement: norm.PlacePeri}},
		{"layernorm-mix", norm.MethodLayerNorm, norm.Options{Placement: norm.PlaceMix}},
		{"layernorm-lns", norm.MethodLayerNorm, norm.Options{Placement: norm.PlaceLNScaling}},
		{"layernorm-deepnorm", norm.MethodLayerNorm, norm.Options{Placement: norm.PlaceDeepNorm}},
	}
}

// Result is one row of the ablation.
type Result struct {
	Task      string `json:"task"`
	Method    string `json:"method"`
	Kind      string `json:"kind"`
	Placement string `json:"placement"`
	// Derived says how the row was obtained from another run (converted, folded); empty for a training run.
	Derived      string  `json:"derived,omitempty"`
	Steps        int     `json:"steps"`
	TrainSeconds float64 `json:"train_seconds"`
	// ExactBPB/PolyBPB (text) and ExactAcc/PolyAcc (mnist) are the held-out metrics.
	ExactBPB  float64 `json:"exact_bpb,omitempty"`
	PolyBPB   float64 `json:"poly_bpb,omitempty"`
	ExactAcc  float64 `json:"exact_acc,omitempty"`
	PolyAcc   float64 `json:"poly_acc,omitempty"`
	ExactLoss float64 `json:"exact_loss"`
	PolyLoss  float64 `json:"poly_loss,omitempty"`
	PolyError string  `json:"poly_error,omitempty"`
	// Outside counts poly-mode inputs outside their calibrated intervals.
	Outside int64 `json:"poly_outside"`
	// Cost is the HE cost of the method's norms (per norm and per block).
	Cost  norm.Cost `json:"he_cost"`
	Error string    `json:"error,omitempty"`
}

type runner struct {
	ctx       context.Context
	out, work string
	batch     int
	lr        float64
	finalEval map[string]int
	steps     map[string]int
	limit     map[string]time.Duration
	width     int
	results   []Result
	jsonl     *json.Encoder
	datasets  map[string]dataset.Dataset
	evalSets  map[string][]model.Batch
	log       io.Writer
}

func (r *runner) dataset(task string, cfg model.Config) (dataset.Dataset, error) {
	if ds, ok := r.datasets[task]; ok {
		return ds, nil
	}
	ds, err := dataset.Load(cfg)
	if err != nil {
		return nil, err
	}
	r.datasets[task] = ds
	ev, err := ds.EvalBatches(r.finalEval[task], r.batch)
	if err != nil {
		return nil, err
	}
	r.evalSets[task] = ev
	return ds, nil
}

func (r *runner) record(res Result) error {
	r.results = append(r.results, res)
	if err := r.jsonl.Encode(res); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	fmt.Fprintf(r.log, "%-6s %-34s exact bpb %.4f acc %.4f | poly bpb %.4f acc %.4f %s| %d steps %.0fs | block depth %d ct-mults %d rotations %d%s\n",
		res.Task, res.Method, res.ExactBPB, res.ExactAcc, res.PolyBPB, res.PolyAcc, res.PolyError, res.Steps, res.TrainSeconds,
		res.Cost.BlockDepth, res.Cost.BlockCtMults, res.Cost.BlockRotations, errSuffix(res.Error))
	return nil
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " ERROR " + e
}

// evaluate fills the metrics of m (exact, then poly when calibrated).
func (r *runner) evaluate(m *model.Model, task string, res *Result) error {
	ev := r.evalSets[task]
	er, err := m.Evaluate(ev)
	if err != nil {
		return err
	}
	res.ExactLoss, res.ExactBPB, res.ExactAcc = er.Loss, er.BitsPerByte, accIf(task, er.Accuracy)
	if m.Cfg.Poly == nil {
		return nil
	}
	m.ResetPolyStats()
	if err := m.SetMode(nn.ModePoly); err != nil {
		res.PolyError = err.Error()
		return nil
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	pr, err := m.Evaluate(ev)
	if err != nil {
		res.PolyError = err.Error()
		return nil
	}
	res.PolyLoss, res.PolyBPB, res.PolyAcc = pr.Loss, pr.BitsPerByte, accIf(task, pr.Accuracy)
	for _, s := range m.PolyStats() {
		res.Outside += s.Outside
	}
	return nil
}

func accIf(task string, a float64) float64 {
	if task == model.TaskMNIST {
		return a
	}
	return 0
}

func (r *runner) run(task string, v variant) error {
	cfg, err := model.DefaultConfig(task)
	if err != nil {
		return err
	}
	if r.width > 0 {
		cfg.Width = r.width
	}
	cfg.Norm = v.Kind
	o := v.Opts
	cfg.NormOptions = &o
	res := Result{Task: task, Method: v.Name, Kind: v.Kind, Placement: o.Defaults().Placement}
	if res.Cost, err = norm.CostOf(v.Kind, o, norm.CostOptions{Width: cfg.Width, Tokens: cfg.Tokens(), Depth: cfg.Depth}); err != nil {
		return err
	}
	ds, err := r.dataset(task, cfg)
	if err != nil {
		return err
	}
	opts := train.DefaultOptions()
	opts.OutDir = filepath.Join(r.work, task, v.Name)
	opts.Steps = r.steps[task]
	opts.Warmup = max(1, opts.Steps/10)
	opts.BatchSize = r.batch
	if r.lr > 0 {
		opts.LR = r.lr
	}
	opts.EvalEvery, opts.CheckpointEvery = 0, 0
	opts.FinalEvalLimit = r.finalEval[task]
	opts.TimeLimit = r.limit[task]
	opts.Dataset = ds
	tr, err := train.Run(r.ctx, cfg, opts, io.Discard)
	if err != nil {
		res.Error = err.Error()
		return r.record(res)
	}
	res.Steps, res.TrainSeconds = tr.Steps, tr.Elapsed
	res.ExactLoss, res.ExactBPB, res.ExactAcc = tr.Exact.Loss, tr.Exact.BitsPerByte, accIf(task, tr.Exact.Accuracy)
	if tr.Poly != nil {
		res.PolyLoss, res.PolyBPB, res.PolyAcc = tr.Poly.Loss, tr.Poly.BitsPerByte, accIf(task, tr.Poly.Accuracy)
		for _, s := range tr.PolyStats {
			res.Outside += s.Outside
		}
	}
	res.PolyError = tr.PolyError
	if err := r.record(res); err != nil {
		return err
	}
	// derived rows: exact conversion / folding of the trained model
	m, err := checkpoint.Load(opts.OutDir)
	if err != nil {
		return fmt.Errorf("reload %s: %w", opts.OutDir, err)
	}
	var derived *model.Model
	var how string
	switch {
	case v.Kind == norm.MethodLayerNorm && (o.Placement == "" || o.Placement == norm.PlacePre):
		derived, err = convert.PreLNToRMSNorm(m)
		how = "layernorm converted to rmsnorm (exact)"
	default:
		derived, err = convert.Fold(m)
		how = "norms folded into the adjacent linear layers"
		if errors.Is(err, convert.ErrNotFoldable) {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", how, err)
	}
	d := Result{Task: task, Method: v.Name + "+" + map[bool]string{true: "converted", false: "folded"}[v.Kind == norm.MethodLayerNorm],
		Kind: derived.Cfg.Norm, Placement: norm.PlacePre, Derived: how, Steps: res.Steps, TrainSeconds: res.TrainSeconds}
	if d.Cost, err = norm.CostOf(derived.Cfg.Norm, norm.Options{}, norm.CostOptions{Width: cfg.Width, Tokens: cfg.Tokens(), Depth: cfg.Depth}); err != nil {
		return err
	}
	if err := r.evaluate(derived, task, &d); err != nil {
		return err
	}
	if derived.Cfg.Poly == nil && res.PolyError != "" {
		d.PolyError = "not calibrated: " + res.PolyError
	}
	return r.record(d)
}

func (r *runner) writeTables() error {
	b, err := json.MarshalIndent(r.results, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(r.out, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	f, err := os.Create(filepath.Join(r.out, "results.csv"))
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	defer f.Close()
	w := csv.NewWriter(f)
	_ = w.Write([]string{"task", "method", "kind", "placement", "derived", "steps", "train_seconds", "exact_bpb", "poly_bpb", "exact_acc", "poly_acc",
		"poly_outside", "poly_error", "depth_per_norm", "ct_mults_per_norm", "rotations_per_norm", "folds_to_zero", "block_depth", "block_ct_mults", "block_rotations", "block_pt_mults", "final_norm", "error"})
	ff := func(x float64) string { return strconv.FormatFloat(x, 'f', 5, 64) }
	for _, x := range r.results {
		c := x.Cost
		_ = w.Write([]string{x.Task, x.Method, x.Kind, x.Placement, x.Derived, strconv.Itoa(x.Steps), ff(x.TrainSeconds), ff(x.ExactBPB), ff(x.PolyBPB),
			ff(x.ExactAcc), ff(x.PolyAcc), strconv.FormatInt(x.Outside, 10), x.PolyError, strconv.Itoa(c.Depth), strconv.Itoa(c.CtMults),
			strconv.Itoa(c.Rotations), strconv.FormatBool(c.FoldsToZero), strconv.Itoa(c.BlockDepth), strconv.Itoa(c.BlockCtMults),
			strconv.Itoa(c.BlockRotations), strconv.Itoa(c.BlockPtMults), strconv.FormatBool(c.FinalNorm), x.Error})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

func printCostMarkdown(w io.Writer, width, tokens int) error {
	costs, err := norm.CostTable(width, tokens)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "| method | placement | depth / norm | ct-mults / norm | rotations / norm | folds to zero | norms / block | block depth | block ct-mults | block rotations | block pt-mults | final norm |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range costs {
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %v | %d | %d | %d | %d | %d | %v |\n", c.Method, c.Placement, c.Depth, c.CtMults, c.Rotations,
			c.FoldsToZero, c.NormsPerBlock, c.BlockDepth, c.BlockCtMults, c.BlockRotations, c.BlockPtMults, c.FinalNorm)
	}
	return nil
}

// printSummary writes one markdown table per task from a results.json.
func printSummary(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("summarize: %w", err)
	}
	var rs []Result
	if err := json.Unmarshal(b, &rs); err != nil {
		return fmt.Errorf("summarize %s: %w", path, err)
	}
	for _, task := range []string{model.TaskText, model.TaskMNIST} {
		var rows []Result
		for _, r := range rs {
			if r.Task == task {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		metric := "bits/byte"
		if task == model.TaskMNIST {
			metric = "accuracy"
		}
		fmt.Fprintf(w, "\n**%s** (%s; lower bits/byte, higher accuracy is better)\n\n", task, metric)
		fmt.Fprintf(w, "| method | placement | steps | train s | exact %s | poly %s | block depth | block ct-mults | block rotations | folds |\n", metric, metric)
		fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rows {
			ex, po := r.ExactBPB, r.PolyBPB
			if task == model.TaskMNIST {
				ex, po = r.ExactAcc, r.PolyAcc
			}
			poly := fmt.Sprintf("%.4f", po)
			if r.PolyError != "" {
				poly = "failed: " + shorten(r.PolyError, 60)
			} else if r.Outside > 0 {
				poly += fmt.Sprintf(" (%d outside)", r.Outside)
			}
			exact := fmt.Sprintf("%.4f", ex)
			if r.Error != "" {
				exact, poly = "failed: "+shorten(r.Error, 60), "—"
			}
			fmt.Fprintf(w, "| %s | %s | %d | %.0f | %s | %s | %d | %d | %d | %v |\n", r.Method, r.Placement, r.Steps, r.TrainSeconds, exact, poly,
				r.Cost.BlockDepth, r.Cost.BlockCtMults, r.Cost.BlockRotations, r.Cost.FoldsToZero)
		}
	}
	return nil
}

func shorten(s string, n int) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "normfree-ablation:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	tasks := flag.String("tasks", "text,mnist", "tasks to run, in order")
	methods := flag.String("methods", "", "comma-separated method names (default: all)")
	textSteps := flag.Int("text-steps", 400, "optimizer steps per language-model run")
	mnistSteps := flag.Int("mnist-steps", 300, "optimizer steps per MNIST run")
	textLimit := flag.Duration("text-time-limit", 0, "wall-time cap per language-model run (0: none)")
	mnistLimit := flag.Duration("mnist-time-limit", 0, "wall-time cap per MNIST run (0: none)")
	batch := flag.Int("batch", 32, "batch size")
	lr := flag.Float64("lr", 0, "peak learning rate (0: train.DefaultOptions)")
	width := flag.Int("width", 0, "model width (0: model.DefaultConfig)")
	textEval := flag.Int("text-eval", 256, "validation windows of the final text evaluation")
	mnistEval := flag.Int("mnist-eval", 2000, "test images of the final MNIST evaluation")
	out := flag.String("out", "benchmarks/normfree", "directory for results.json, results.csv, results.jsonl")
	work := flag.String("work", filepath.Join(os.TempDir(), "normfree-ablation"), "directory for the checkpoints of the runs")
	costTable := flag.Bool("cost-table", false, "print the HE cost table (markdown) for -width (default 64) and -tokens and exit")
	tokens := flag.Int("tokens", 64, "tokens for -cost-table")
	summarize := flag.String("summarize", "", "print a markdown summary of this results.json and exit")
	flag.Parse()
	if *summarize != "" {
		return printSummary(os.Stdout, *summarize)
	}
	if *costTable {
		w := *width
		if w == 0 {
			w = 64
		}
		return printCostMarkdown(os.Stdout, w, *tokens)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	jf, err := os.Create(filepath.Join(*out, "results.jsonl"))
	if err != nil {
		return err
	}
	defer jf.Close()
	r := &runner{ctx: context.Background(), out: *out, work: *work, batch: *batch, lr: *lr, width: *width,
		finalEval: map[string]int{model.TaskText: *textEval, model.TaskMNIST: *mnistEval},
		steps:     map[string]int{model.TaskText: *textSteps, model.TaskMNIST: *mnistSteps},
		limit:     map[string]time.Duration{model.TaskText: *textLimit, model.TaskMNIST: *mnistLimit},
		jsonl:     json.NewEncoder(jf), datasets: map[string]dataset.Dataset{}, evalSets: map[string][]model.Batch{}, log: os.Stdout}
	want := map[string]bool{}
	for _, m := range strings.Split(*methods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			want[m] = true
		}
	}
	for _, task := range strings.Split(*tasks, ",") {
		task = strings.TrimSpace(task)
		for _, v := range variants(r.steps[task]) {
			if len(want) > 0 && !want[v.Name] {
				continue
			}
			if err := r.run(task, v); err != nil {
				return fmt.Errorf("%s %s: %w", task, v.Name, err)
			}
		}
	}
	return r.writeTables()
}

// Command frontier measures the quality / HE-cost frontier of trained
// checkpoints: for each run directory written by `polyformer train` it
// evaluates exact and poly mode on held-out data (bits per byte for the
// byte LM, accuracy for MNIST) and compiles the model with compiler (and he/circuit) to a
// planned CKKS circuit (no keys are made) to read its real HE cost: the
// multiplicative depth of the whole circuit, and per block the ciphertext
// multiplications (relinearizations), rotations, key switches and
// bootstraps, and the estimated seconds per ciphertext (circuit.EstimateLatency
// with the built-in timing table, or -op-timings). Checkpoints trained
// without calibration (e.g. a softmax + LayerNorm baseline) are calibrated
// here first, with the default fit options, on training batches.
//
// Usage (from the repository root):
//
//	go run ./benchmarks/frontier -out benchmarks/frontier/text \
//	    softmax-ln=RUNDIR power4=RUNDIR ...
//	go run ./benchmarks/frontier -out benchmarks/frontier/text -from benchmarks/frontier/text/frontier.json
//
// The second form re-renders a recorded frontier without its checkpoints:
// rows recorded without an estimate get one from their recorded key
// switches and bootstraps (circuit.EstimateFromCounts).
//
// It writes <out>/frontier.json, <out>/frontier.md and three plots,
// <out>/bpb-vs-depth.png, <out>/bpb-vs-keyswitches.png and
// <out>/bpb-vs-seconds.png (accuracy for MNIST runs).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/eval"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/train"
	"github.com/polyformer/polyformer/polyapprox"
)

// Point is one run of the frontier.
type Point struct {
	Label     string `json:"label"`
	Dir       string `json:"dir"`
	Task      string `json:"task"`
	Attention string `json:"attention"`
	P         int    `json:"p,omitempty"`
	Norm      string `json:"norm"`
	// Steps and TrainSeconds come from the run's summary.json.
	Steps        int     `json:"steps"`
	TrainSeconds float64 `json:"train_seconds"`
	// CalibratedHere says the checkpoint had no polynomials and this program
	// calibrated it; Recalibrated that its poly mode failed and this program
	// calibrated it again on more batches (RecalibError: that failed too).
	CalibratedHere bool   `json:"calibrated_here"`
	Recalibrated   bool   `json:"recalibrated,omitempty"`
	RecalibError   string `json:"recalibrate_error,omitempty"`
	// Exact and Poly are bits per byte (text) or accuracy (mnist).
	Exact float64 `json:"exact"`
	// Poly is NaN (0 in JSON, with PolyOK false) when poly mode failed.
	Poly      float64 `json:"poly"`
	PolyOK    bool    `json:"poly_ok"`
	PolyError string  `json:"poly_error,omitempty"`
	Outside   int64   `json:"outside"`
	Examples  int     `json:"examples"`
	// HE cost from the compiler's dry run (per ciphertext of Batch inputs).
	Preset           string `json:"preset"`
	Batch            int    `json:"batch"`
	Depth            int    `json:"depth"`
	BlockDepth       int    `json:"block_depth"`
	BlockRelins      int    `json:"block_ct_mults"`
	BlockRotations   int    `json:"block_rotations"`
	BlockKeySwitches int    `json:"block_key_switches"`
	Bootstraps       int    `json:"bootstraps"`
	KeySwitches      int    `json:"key_switches"`
	// SecondsPerCiphertext and SecondsPerInput are the dry run's latency
	// estimate on one thread (Batch inputs per ciphertext); SecondsFrom
	// says how: "dry run" (every planned op, circuit.EstimateLatency) or
	// "recorded counts" (key switches and bootstraps only,
	// circuit.EstimateFromCounts).
	SecondsPerCiphertext float64 `json:"seconds_per_ciphertext,omitempty"`
	SecondsPerInput      float64 `json:"seconds_per_input,omitempty"`
	SecondsFrom          string  `json:"seconds_from,omitempty"`
	// RecipIterations are the Goldschmidt iterations of each attention
	// reciprocal, in block order (the depth driver of power attention).
	RecipIterations []int  `json:"recip_iterations,omitempty"`
	CompileError    string `json:"compile_error,omitempty"`
}

func main() {
	out := flag.String("out", "", "output directory (required)")
	limit := flag.Int("eval", 2048, "held-out examples (text windows or test images) to evaluate")
	calib := flag.Int("calib", 16, "training batches to calibrate a checkpoint that has no polynomials")
	recalib := flag.Int("recalibrate", 0, "if > 0: recalibrate on this many training batches a run whose poly mode failed (out-of-range inputs), and evaluate again")
	preset := flag.String("preset", "n16-boot", "parameter preset of the cost dry run (\"\": the smallest that fits, bootstrapping allowed)")
	from := flag.String("from", "", "re-render this recorded frontier.json instead of measuring runs")
	timings := flag.String("op-timings", "", "price the latency estimate with this `bench ops --json` file (default: the built-in table)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: frontier -out DIR [flags] LABEL=RUNDIR...\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || (flag.NArg() == 0) == (*from == "") {
		flag.Usage()
		os.Exit(2)
	}
	t := circuit.DefaultOpTimings()
	if *timings != "" {
		var err error
		if t, err = circuit.ReadOpTimings(*timings); err != nil {
			fmt.Fprintln(os.Stderr, "frontier:", err)
			os.Exit(1)
		}
	}
	var err error
	if *from != "" {
		err = rerender(*out, *from, t, os.Stdout)
	} else {
		err = run(*out, flag.Args(), *limit, *calib, *recalib, *preset, t, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "frontier:", err)
		os.Exit(1)
	}
}

func run(outDir string, args []string, limit, calib, recalib int, preset string, t circuit.OpTimings, log io.Writer) error {
	datasets := map[string]dataset.Dataset{}
	var pts []Point
	for _, a := range args {
		label, dir, ok := strings.Cut(a, "=")
		if !ok {
			label, dir = filepath.Base(a), a
		}
		pt, err := measure(label, dir, limit, calib, recalib, preset, t, datasets)
		if err != nil {
			return fmt.Errorf("run %s: %w", label, err)
		}
		fmt.Fprintf(log, "%-28s exact %.4f poly %.4f depth %d block: ct-mults %d rotations %d key switches %d; bootstraps %d; %.1f s per ciphertext\n",
			pt.Label, pt.Exact, pt.Poly, pt.Depth, pt.BlockRelins, pt.BlockRotations, pt.BlockKeySwitches, pt.Bootstraps, pt.SecondsPerCiphertext)
		pts = append(pts, pt)
	}
	return render(outDir, pts, log)
}

// rerender reads a recorded frontier.json, adds the latency estimate from
// the recorded counts to compiled rows that have none, and renders it.
func rerender(outDir, from string, t circuit.OpTimings, log io.Writer) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	var pts []Point
	if err := json.Unmarshal(b, &pts); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	for i := range pts {
		p := &pts[i]
		if !p.PolyOK {
			p.Poly = math.NaN()
		}
		if p.CompileError != "" || p.SecondsFrom != "" {
			continue
		}
		params, err := he.ParametersFromPreset(p.Preset)
		if err != nil {
			return fmt.Errorf("%s: row %s: %w", from, p.Label, err)
		}
		lat, err := circuit.EstimateFromCounts(p.KeySwitches, p.Bootstraps, p.Batch, params, t)
		if err != nil {
			return fmt.Errorf("%s: row %s: %w", from, p.Label, err)
		}
		p.SecondsPerCiphertext, p.SecondsPerInput, p.SecondsFrom = lat.Serial, lat.PerInput, "recorded counts"
		fmt.Fprintf(log, "%-28s %d key switches, %d bootstraps at %s: %.1f s per ciphertext (from counts)\n",
			p.Label, p.KeySwitches, p.Bootstraps, p.Preset, lat.Serial)
	}
	return render(outDir, pts, log)
}

// render writes frontier.json, frontier.md and the plots of pts.
func render(outDir string, pts []Point, log io.Writer) error {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	out := make([]Point, len(pts))
	for i, p := range pts {
		out[i] = p
		out[i].PolyOK = !math.IsNaN(p.Poly)
		if !out[i].PolyOK {
			out[i].Poly = 0
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(outDir, "frontier.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	if err := writeTable(filepath.Join(outDir, "frontier.md"), pts); err != nil {
		return err
	}
	metric := metricName(pts)
	compiled := 0
	for _, p := range pts {
		if p.CompileError == "" {
			compiled++
		}
	}
	if compiled == 0 {
		fmt.Fprintln(log, "no run compiled: no plots")
		return nil
	}
	if err := plotFrontier(filepath.Join(outDir, "bpb-vs-depth.png"), pts, metric, "circuit depth (levels, no bootstrapping)", false,
		func(p Point) float64 { return float64(p.Depth) }); err != nil {
		return err
	}
	if err := plotFrontier(filepath.Join(outDir, "bpb-vs-keyswitches.png"), pts, metric, "key switches per block (per ciphertext)", false,
		func(p Point) float64 { return float64(p.BlockKeySwitches) }); err != nil {
		return err
	}
	return plotFrontier(filepath.Join(outDir, "bpb-vs-seconds.png"), pts, metric, "estimated seconds per ciphertext, one thread (log scale; "+secondsFrom(pts)+")", true,
		func(p Point) float64 { return p.SecondsPerCiphertext })
}

// logTicks125 labels 1, 2 and 5 times each power of ten in [lo, hi].
func logTicks125(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for d := math.Pow(10, math.Floor(math.Log10(lo))); d <= hi; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := m * d; v >= lo && v <= hi {
				ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
			}
		}
	}
	return ts
}

// secondsFrom names how the rows' estimates were made.
func secondsFrom(pts []Point) string {
	seen := map[string]bool{}
	var how []string
	for _, p := range pts {
		if p.SecondsFrom != "" && !seen[p.SecondsFrom] {
			seen[p.SecondsFrom] = true
			how = append(how, p.SecondsFrom)
		}
	}
	return "from " + strings.Join(how, " and ")
}

func metricName(pts []Point) string {
	if len(pts) > 0 && pts[0].Task == model.TaskMNIST {
		return "test accuracy"
	}
	return "validation bits per byte"
}

// summary is what the frontier reads of a run's summary.json.
type summary struct {
	Steps        int          `json:"steps"`
	TrainSeconds float64      `json:"train_seconds"`
	Exact        *summaryEval `json:"exact"`
	Poly         *summaryEval `json:"poly"`
	PolyError    string       `json:"poly_error"`
}

type summaryEval struct {
	Examples    int     `json:"examples"`
	Accuracy    float64 `json:"accuracy"`
	BitsPerByte float64 `json:"bits_per_byte"`
}

func (e summaryEval) metric(task string) float64 {
	if task == model.TaskText {
		return e.BitsPerByte
	}
	return e.Accuracy
}

func measure(label, dir string, limit, calib, recalib int, preset string, t circuit.OpTimings, datasets map[string]dataset.Dataset) (Point, error) {
	m, err := checkpoint.Load(dir)
	if err != nil {
		return Point{}, err
	}
	c := m.Cfg
	pt := Point{Label: label, Dir: dir, Task: c.Task, Attention: c.Attention.Kind, Norm: c.Norm, Preset: preset}
	if c.Attention.Kind != model.AttnSoftmax {
		pt.P = c.Attention.P
	}
	var sum summary
	if b, err := os.ReadFile(filepath.Join(dir, "summary.json")); err == nil {
		if err := json.Unmarshal(b, &sum); err != nil {
			return Point{}, fmt.Errorf("summary.json: %w", err)
		}
		pt.Steps, pt.TrainSeconds = sum.Steps, sum.TrainSeconds
	}
	switch {
	case sum.Exact != nil && sum.Exact.Examples >= limit && (sum.Poly != nil || sum.PolyError != ""):
		// the run's own final evaluation (at least limit examples, exact and poly)
		pt.Examples, pt.Exact = sum.Exact.Examples, sum.Exact.metric(c.Task)
		pt.Poly, pt.PolyError = math.NaN(), sum.PolyError
		if sum.Poly != nil {
			pt.Poly = sum.Poly.metric(c.Task)
		}
	default:
		if err := evaluate(&pt, m, limit, calib, datasets); err != nil {
			return Point{}, err
		}
	}
	if pt.PolyError != "" && recalib > 0 && c.Poly != nil {
		// calibrated on too few batches: inputs outside the fitted intervals
		if err := recalibrate(&pt, m, limit, recalib, datasets); err != nil {
			return Point{}, err
		}
	}
	if pt.PolyError != "" || c.Poly == nil && !pt.CalibratedHere {
		pt.CompileError = "no polynomial forms (poly mode failed), not compiled"
		return pt, nil
	}
	if err := heCost(&pt, m, preset, t); err != nil {
		pt.CompileError = err.Error()
	}
	return pt, nil
}

// evaluate measures exact and poly mode on held-out data, calibrating the
// model first when it has no polynomial forms (a failed calibration is
// recorded as the poly error).
func evaluate(pt *Point, m *model.Model, limit, calib int, datasets map[string]dataset.Dataset) error {
	return evaluateWith(pt, m, limit, calib, nn.DefaultFitOptions(), nil, datasets)
}

func evaluateWith(pt *Point, m *model.Model, limit, calib int, fit nn.FitOptions, targets map[string]model.Target, datasets map[string]dataset.Dataset) error {
	c := m.Cfg
	key := fmt.Sprintf("%s/%+v/%d", c.Task, c.Data, c.Tokens())
	ds, ok := datasets[key]
	if !ok {
		var err error
		if ds, err = dataset.Load(c); err != nil {
			return err
		}
		datasets[key] = ds
	}
	if c.Poly == nil {
		if err := train.CalibrateOn(m, ds, calib, 32, fit, targets); err != nil {
			pt.PolyError = err.Error()
		} else {
			pt.CalibratedHere = true
		}
	}
	rep, err := eval.EvaluateWith(m, ds, limit)
	if err != nil {
		return err
	}
	pt.Examples, pt.Outside = rep.Examples, rep.Outside
	if pt.PolyError == "" {
		pt.PolyError = rep.PolyError
	}
	if c.Task == model.TaskText {
		pt.Exact, pt.Poly = rep.BitsPerByte, rep.PolyBitsPerByte
	} else {
		pt.Exact, pt.Poly = rep.Accuracy, rep.PolyAccuracy
	}
	if pt.PolyError != "" || !rep.HasPoly {
		pt.Poly = math.NaN()
	}
	return nil
}

// recalibrate fits the model's sites again on n training batches, with its
// own fit options widened to the robust recipe of benchmarks/train (margin
// at least 0.5, reciprocal headroom factor at least 4) and every attention
// reciprocal fitted down to its hard floor eps (an even power's normalizer
// eps + sum x^p never goes below it; held-out rows can get there), and
// evaluates exact and poly mode again.
func recalibrate(pt *Point, m *model.Model, limit, n int, datasets map[string]dataset.Dataset) error {
	fit := m.Cfg.Poly.Fit
	fit.Margin, fit.UpperFactor = math.Max(fit.Margin, 0.5), math.Max(fit.UpperFactor, 4)
	first := pt.PolyError
	m.Cfg.Poly = nil
	saved := *pt
	if err := evaluateWith(pt, m, limit, n, fit, floorTargets(m), datasets); err != nil {
		return err
	}
	if pt.PolyError != "" {
		// keep the run's own result, note the second failure
		saved.RecalibError = pt.PolyError
		saved.PolyError = first
		*pt = saved
		return nil
	}
	pt.Recalibrated, pt.CalibratedHere = true, false
	return nil
}

// floorTargets returns, for every attention reciprocal whose input has the
// hard floor eps (Power-Softmax, and power-shifted with an even power), a
// calibration target starting at eps.
func floorTargets(m *model.Model) map[string]model.Target {
	t := map[string]model.Target{}
	for _, blk := range m.Blocks {
		var eps float64
		var site *nn.Site
		if sp, ok := nn.AsShiftedPower(blk.Attn.Kernel); ok && sp.P%2 == 0 {
			eps, site = sp.Eps, sp.Sites()[0]
		} else if ps, ok := blk.Attn.Kernel.(*nn.PowerSoftmax); ok && !ps.Scaled {
			eps, site = ps.Eps, ps.Sites()[0]
		}
		if site != nil && eps > 0 {
			t[site.Name] = model.Target{Lo: eps, Hi: eps, Floor: true}
		}
	}
	return t
}

// heCost compiles the model (norms folded where they fold) and reads the
// dry-run report and the latency estimate priced with t.
func heCost(pt *Point, m *model.Model, preset string, t circuit.OpTimings) error {
	m, err := compiler.FoldNorms(m)
	if err != nil {
		return err
	}
	for _, site := range m.Sites() {
		if sp := site.Spec(); sp != nil && sp.Kind == nn.FnRecip && sp.Method == polyapprox.PlanGoldschmidt {
			pt.RecipIterations = append(pt.RecipIterations, sp.Iterations)
		}
	}
	circ, params, err := compiler.CompileFor(m, preset, compiler.Options{AllowBootstrap: true})
	if err != nil {
		return err
	}
	rep, err := circuit.NewReport(circ, params)
	if err != nil {
		return err
	}
	pt.Batch, pt.Bootstraps, pt.KeySwitches = rep.InputsPerCiphertext, rep.Bootstraps, rep.KeySwitches
	pt.Preset = params.Name()
	lat, err := circuit.EstimateLatency(circ, params, t)
	if err != nil {
		return err
	}
	pt.SecondsPerCiphertext, pt.SecondsPerInput, pt.SecondsFrom = lat.Serial, lat.PerInput, "dry run"
	pt.Depth = rep.Depth
	lo, hi := math.MaxInt, math.MinInt
	for _, l := range rep.Layers {
		if !strings.HasPrefix(l.Layer, "blocks.0.") {
			continue
		}
		pt.BlockRelins += l.Relinearizations
		pt.BlockRotations += l.Rotations
		pt.BlockKeySwitches += l.KeySwitches
		lo, hi = min(lo, l.LevelOut), max(hi, l.LevelIn)
	}
	if hi >= lo && rep.Bootstraps == 0 {
		pt.BlockDepth = hi - lo
	}
	return nil
}

func writeTable(path string, pts []Point) error {
	var b strings.Builder
	metric := metricName(pts)
	fmt.Fprintf(&b, "%s (exact / poly mode) and HE cost per block from the compiler's dry run\n\n", metric)
	fmt.Fprintf(&b, "Seconds: the latency estimate on one thread (`circuit.EstimateLatency`, %s).\n\n", secondsFrom(pts))
	b.WriteString("| run | attention | p | norm | steps | train s | exact | poly | reciprocal iterations | preset | depth | block ct-mults | block rotations | block key switches | bootstraps | s / ciphertext (est.) | inputs / ciphertext | s / input (est.) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range pts {
		poly := fmt.Sprintf("%.4f", p.Poly)
		if math.IsNaN(p.Poly) {
			poly = "failed"
		}
		cost := fmt.Sprintf("%s | %d | %d | %d | %d | %d | %.0f | %d | %.3g", p.Preset, p.Depth, p.BlockRelins, p.BlockRotations, p.BlockKeySwitches, p.Bootstraps,
			p.SecondsPerCiphertext, p.Batch, p.SecondsPerInput)
		if p.CompileError != "" {
			cost = p.Preset + " | compile: " + p.CompileError + strings.Repeat(" |", 7)
		}
		iters := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(p.RecipIterations)), ", "), "[]")
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %d | %.0f | %.4f | %s | %s | %s |\n", p.Label, p.Attention, p.P, p.Norm, p.Steps, p.TrainSeconds, p.Exact, poly, iters, cost)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// plotFrontier draws the metric (exact and poly) against an HE cost, one
// labelled point per run.
func plotFrontier(path string, pts []Point, metric, xLabel string, logX bool, x func(Point) float64) error {
	var exact, poly plotter.XYs
	var labels []string
	sorted := append([]Point(nil), pts...)
	sort.SliceStable(sorted, func(i, j int) bool { return x(sorted[i]) < x(sorted[j]) })
	for _, p := range sorted {
		if p.CompileError != "" {
			continue
		}
		exact = append(exact, plotter.XY{X: x(p), Y: p.Exact})
		labels = append(labels, p.Label)
		if !math.IsNaN(p.Poly) && p.PolyError == "" {
			poly = append(poly, plotter.XY{X: x(p), Y: p.Poly})
		}
	}
	if len(exact) == 0 {
		return errors.New("plot: no run compiled")
	}
	pl := plot.New()
	pl.Title.Text = metric + " vs HE cost"
	pl.X.Label.Text = xLabel
	if lo, hi := exact[0].X, exact[len(exact)-1].X; logX && lo > 0 && hi >= 4*lo {
		pl.X.Scale, pl.X.Tick.Marker = plot.LogScale{}, plot.TickerFunc(logTicks125)
	} else {
		pl.X.Label.Text = strings.Replace(xLabel, "log scale; ", "", 1)
	}
	pl.Y.Label.Text = metric
	// away from the points: top right for bits per byte (lower is better),
	// bottom right for accuracy
	pl.Legend.Top = !strings.Contains(metric, "accuracy")
	se, err := plotter.NewScatter(exact)
	if err != nil {
		return err
	}
	pl.Add(se)
	pl.Legend.Add("exact", se)
	if len(poly) > 0 {
		sp, err := plotter.NewScatter(poly)
		if err != nil {
			return err
		}
		sp.GlyphStyle.Shape = draw.CrossGlyph{}
		pl.Add(sp)
		pl.Legend.Add("poly", sp)
	}
	// softmax baselines without a circuit (poly mode failed): their exact
	// metric as a dashed horizontal reference line
	for i, p := range pts {
		if p.CompileError == "" || p.Attention != model.AttnSoftmax {
			continue
		}
		ref := plotter.XYs{{X: exact[0].X, Y: p.Exact}, {X: exact[len(exact)-1].X, Y: p.Exact}}
		l, err := plotter.NewLine(ref)
		if err != nil {
			return err
		}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		l.Color = plotutil.Color(i + 2)
		pl.Add(l)
		pl.Legend.Add(p.Label+" (exact; no circuit)", l)
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: exact, Labels: labels})
	if err != nil {
		return err
	}
	pl.Add(lb)
	return pl.Save(9*vg.Inch, 6*vg.Inch, path)
}

// Package train runs training: AdamW with warmup and cosine decay, gradient
// clipping, seeded determinism (no global random state; batches depend only
// on the seed and the step), periodic evaluation, resumable checkpoints,
// a progress bar, JSON-lines metrics and PNG loss curves. At the end it
// calibrates every non-linearity on training batches, optionally fine-tunes
// in poly mode (gradients of the very polynomials the circuit evaluates),
// evaluates exact and poly mode side by side, and saves the calibrated
// checkpoint. Range regularization (Options.Range) keeps the inputs of every
// non-linearity inside target intervals fixed before training, so the
// polynomial forms are fitted on known, modest intervals (see
// AttachRangePenalties and Calibrate); Options.InitFrom fine-tunes an
// existing checkpoint. With a fixed GOMAXPROCS a run is bit-for-bit reproducible,
// including across a resume (parallel reductions are chunked by worker count).
package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/optim"
)

// Output file names written next to the checkpoint files.
const (
	MetricsFile = "metrics.jsonl"
	CurveFile   = "loss.png"
	SummaryFile = "summary.json"
)

// Options configure a training run (the model is configured by model.Config).
type Options struct {
	// OutDir receives the checkpoint, metrics and plots (required).
	OutDir string `json:"out_dir"`
	// Steps is the total number of optimizer steps (a resumed run continues up to it).
	Steps     int `json:"steps"`
	BatchSize int `json:"batch_size"`
	// LR is the peak learning rate reached after Warmup steps, decayed by a
	// cosine to MinLR at Steps.
	LR          float64 `json:"lr"`
	MinLR       float64 `json:"min_lr"`
	Warmup      int     `json:"warmup"`
	WeightDecay float64 `json:"weight_decay"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	// ClipNorm bounds the global gradient norm (0: no clipping).
	ClipNorm float64 `json:"clip_norm"`
	// EvalEvery evaluates on EvalLimit held-out examples every so many steps (0: only at the end).
	EvalEvery int `json:"eval_every"`
	EvalLimit int `json:"eval_limit"`
	// FinalEvalLimit bounds the final evaluation (0: the whole held-out set).
	FinalEvalLimit int `json:"final_eval_limit"`
	// CheckpointEvery saves a resumable checkpoint every so many steps (0: only at the end).
	CheckpointEvery int `json:"checkpoint_every"`
	// Resume continues from the checkpoint in OutDir when there is one.
	Resume bool `json:"resume"`
	// CalibBatches training batches calibrate the polynomial forms (0: skip
	// calibration and poly evaluation; < 0: one whole epoch of the training
	// set, for images).
	CalibBatches int           `json:"calib_batches"`
	Fit          nn.FitOptions `json:"fit"`
	// PolyFinetuneSteps, after calibration, trains that many further steps in
	// poly mode (gradients of the polynomial forms, constant learning rate
	// PolyFinetuneLR, default MinLR or LR/10), so the weights adapt to the
	// polynomials the encrypted circuit evaluates. Not resumable: a resumed
	// run repeats it at its end.
	PolyFinetuneSteps int     `json:"poly_finetune_steps,omitempty"`
	PolyFinetuneLR    float64 `json:"poly_finetune_lr,omitempty"`
	// TimeLimit stops training after this wall time (0: none); the run still evaluates and saves.
	TimeLimit time.Duration `json:"time_limit"`
	// StopAt ends this invocation after that many total steps without
	// changing the schedule (0: run to Steps); resume later to continue.
	StopAt int `json:"stop_at,omitempty"`
	// Progress receives the progress bar (nil: no bar), e.g. os.Stderr.
	Progress io.Writer `json:"-"`
	// Dataset overrides the data named by the config (tests, custom data).
	Dataset dataset.Dataset `json:"-"`
	// Range configures range regularization (penalties on non-linearity
	// inputs outside target intervals fixed in advance; calibration then
	// fits on the targets). It is active in training and poly fine-tuning.
	Range RangeOptions `json:"range,omitempty"`
	// InitFrom starts a new run (not a resume) from the weights and config
	// of the checkpoint in this directory instead of a fresh initialization
	// (the cfg argument of Run is then ignored and the checkpoint's
	// polynomial forms dropped); the optimizer state and schedule are new.
	// Used to fine-tune a trained model, e.g. with range regularization.
	InitFrom string `json:"init_from,omitempty"`
	// Distill trains the model as the student of a teacher checkpoint
	// (knowledge distillation; off unless Distill.Teacher is set). A
	// resumed run keeps the distillation options it was started with.
	// Poly fine-tuning is not distilled.
	Distill model.DistillOptions `json:"distill"`
}

// validateDistill checks the distillation options of a run: the loss
// weights when a teacher is set, else that nothing asks for one.
func validateDistill(d model.DistillOptions) error {
	if !d.Enabled() {
		if d.InitFromTeacher {
			return errors.New("distillation: initializing from the teacher needs a teacher checkpoint")
		}
		return nil
	}
	return d.Validate()
}

// DefaultOptions are reasonable defaults for small models.
func DefaultOptions() Options {
	return Options{Steps: 1000, BatchSize: 64, LR: 3e-3, MinLR: 1e-4, Warmup: 100, WeightDecay: 0.01,
		Beta1: 0.9, Beta2: 0.98, ClipNorm: 1, EvalEvery: 500, EvalLimit: 1000, CheckpointEvery: 1000,
		CalibBatches: 8, Fit: nn.DefaultFitOptions(),
		Distill: model.DistillOptions{Alpha: 0.5, Temp: 2}}
}

func (o Options) validate() error {
	var errs []error
	if o.OutDir == "" {
		errs = append(errs, errors.New("an output directory is required"))
	}
	if o.Steps <= 0 || o.BatchSize <= 0 {
		errs = append(errs, fmt.Errorf("steps %d and batch size %d must be positive", o.Steps, o.BatchSize))
	}
	if !(o.LR > 0) || o.MinLR < 0 || o.Warmup < 0 || o.WeightDecay < 0 || o.ClipNorm < 0 {
		errs = append(errs, fmt.Errorf("need lr > 0 and min_lr, warmup, weight_decay, clip_norm >= 0"))
	}
	if err := o.Range.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := validateDistill(o.Distill); err != nil {
		errs = append(errs, err)
	}
	if o.Distill.InitFromTeacher && o.InitFrom != "" {
		errs = append(errs, errors.New("initialize from a checkpoint or from the teacher, not both"))
	}
	if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
		errs = append(errs, fmt.Errorf("adam betas %g, %g must be in [0, 1)", o.Beta1, o.Beta2))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid training options: %w", errors.Join(errs...))
	}
	return nil
}

// Result summarizes a run.
type Result struct {
	Config       model.Config      `json:"config"`
	Options      Options           `json:"options"`
	Steps        int               `json:"steps"`
	Elapsed      float64           `json:"train_seconds"`
	TokensPerSec float64           `json:"tokens_per_sec"`
	Exact        model.EvalResult  `json:"exact"`
	Poly         *model.EvalResult `json:"poly,omitempty"`
	// PolyError says why poly-mode evaluation failed (e.g. non-finite
	// outputs from inputs outside the calibrated intervals).
	PolyError string            `json:"poly_error,omitempty"`
	PolyStats []model.SiteStats `json:"poly_stats,omitempty"`
	// ExactBeforeFinetune is the exact-mode result before poly fine-tuning (Exact is after).
	ExactBeforeFinetune *model.EvalResult `json:"exact_before_finetune,omitempty"`
	// PolyFinetuneSkipped counts poly fine-tuning steps whose update was
	// skipped because an input left its interval or the loss was not finite.
	PolyFinetuneSkipped int `json:"poly_finetune_skipped,omitempty"`
	// RangeStats are the range penalties' statistics on the last training batch.
	RangeStats []nn.RangeStats `json:"range_stats,omitempty"`
	Entropy    [][]float64     `json:"final_entropy,omitempty"`
	Params     int             `json:"params"`
	// TeacherInit lists the parameters copied from the teacher
	// (Options.Distill.InitFromTeacher, not on a resume).
	TeacherInit *model.TeacherInit `json:"teacher_init,omitempty"`
}

type metric struct {
	Step      int           `json:"step"`
	Kind      string        `json:"kind"`
	LR        float64       `json:"lr,omitempty"`
	Loss      float64       `json:"loss"`
	CE        float64       `json:"ce,omitempty"`
	EntLoss   float64       `json:"ent_loss,omitempty"`
	GradNorm  float64       `json:"grad_norm,omitempty"`
	TokPerSec float64       `json:"tokens_per_sec,omitempty"`
	Elapsed   float64       `json:"elapsed"`
	Accuracy  *float64      `json:"accuracy,omitempty"`
	BPB       float64       `json:"bits_per_byte,omitempty"`
	Entropy   entropyRecord `json:"entropy,omitempty"`
	// RangeLoss is the range penalty; RangeOutside counts the site inputs
	// outside their targets in the step's batch.
	RangeLoss    float64 `json:"range_loss,omitempty"`
	RangeOutside int     `json:"range_outside,omitempty"`
	// Skipped marks a poly fine-tuning step whose update was skipped.
	Skipped string `json:"skipped,omitempty"`
	// KD, AttnLoss and HiddenLoss are the unweighted distillation terms
	// (model.DistillResult); Loss is then the weighted total and CE the
	// plain cross-entropy.
	KD         float64 `json:"kd,omitempty"`
	AttnLoss   float64 `json:"attn_loss,omitempty"`
	HiddenLoss float64 `json:"hidden_loss,omitempty"`
}

// entropyRecord is the per-layer, per-head attention entropy of a metrics
// record. A non-finite value (a diagnostic, not the loss) is written as
// null instead of failing the whole record, and so the run.
type entropyRecord [][]float64

// MarshalJSON writes the entropies with null for non-finite values.
func (e entropyRecord) MarshalJSON() ([]byte, error) {
	out := make([][]*float64, len(e))
	for l, row := range e {
		out[l] = make([]*float64, len(row))
		for h, v := range row {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				v := v
				out[l][h] = &v
			}
		}
	}
	return json.Marshal(out)
}

// distillKey is the trainer.json Extra entry holding the distillation options.
const distillKey = "distill"

// savedDistill decodes the distillation options saved with a checkpoint
// (disabled when there are none).
func savedDistill(extra map[string]any) (model.DistillOptions, error) {
	v, ok := extra[distillKey]
	if !ok {
		return model.DistillOptions{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return model.DistillOptions{}, fmt.Errorf("saved distillation options: %w", err)
	}
	var d model.DistillOptions
	if err := json.Unmarshal(b, &d); err != nil {
		return model.DistillOptions{}, fmt.Errorf("saved distillation options: %w", err)
	}
	return d, nil
}

// loadTeacher loads the teacher checkpoint in exact mode and checks that it
// can guide student.
func loadTeacher(student model.Config, d model.DistillOptions) (*model.Model, error) {
	t, err := checkpoint.Load(d.Teacher)
	if err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if err := t.SetMode(nn.ModeExact); err != nil {
		return nil, fmt.Errorf("teacher: %w", err)
	}
	if err := model.CheckTeacher(student, t.Cfg, d); err != nil {
		return nil, fmt.Errorf("teacher %s: %w", d.Teacher, err)
	}
	return t, nil
}

// Run trains the model of cfg (or resumes the checkpoint in opts.OutDir when
// opts.Resume is set and one exists, in which case the checkpoint's config
// is used) and writes human-readable progress lines to out (may be nil).
func Run(ctx context.Context, cfg model.Config, opts Options, out io.Writer) (*Result, error) {
	if out == nil {
		out = io.Discard
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if opts.Distill.Enabled() {
		if abs, err := filepath.Abs(opts.Distill.Teacher); err == nil {
			opts.Distill.Teacher = abs
		}
	}
	var (
		m     *model.Model
		opt   *optim.AdamW
		start int
		err   error
		prior float64
	)
	resumed := false
	if opts.Resume {
		if _, statErr := os.Stat(filepath.Join(opts.OutDir, checkpoint.TrainerFile)); statErr == nil {
			var st *checkpoint.TrainState
			if m, opt, st, err = checkpoint.LoadResumable(opts.OutDir); err != nil {
				return nil, fmt.Errorf("train: resume: %w", err)
			}
			start = st.Step
			if v, ok := st.Extra["train_seconds"].(float64); ok {
				prior = v
			}
			saved, err := savedDistill(st.Extra)
			if err != nil {
				return nil, fmt.Errorf("train: resume: %w", err)
			}
			if opts.Distill.Enabled() && saved != opts.Distill {
				fmt.Fprintf(out, "note: a resumed run keeps its distillation options (%s); the new ones are ignored\n", describeDistill(saved))
			}
			opts.Distill = saved
			resumed = true
			fmt.Fprintf(out, "resuming %s at step %d (using its config.json)\n", opts.OutDir, start)
		}
	}
	if !resumed && opts.InitFrom != "" {
		if m, err = checkpoint.Load(opts.InitFrom); err != nil {
			return nil, fmt.Errorf("train: init from: %w", err)
		}
		m.Cfg.Poly = nil
		opt = optim.NewAdamW(m.Params(), opts.Beta1, opts.Beta2, 1e-8, opts.WeightDecay)
		fmt.Fprintf(out, "initialized from %s (using its config.json)\n", opts.InitFrom)
	} else if !resumed {
		if m, err = model.New(cfg); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		opt = optim.NewAdamW(m.Params(), opts.Beta1, opts.Beta2, 1e-8, opts.WeightDecay)
	}
	cfg = m.Cfg
	var teacher *model.Model
	var teacherInit *model.TeacherInit
	if opts.Distill.Enabled() {
		if teacher, err = loadTeacher(cfg, opts.Distill); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
		fmt.Fprintf(out, "distilling from %s (%s)\n", opts.Distill.Teacher, describeDistill(opts.Distill))
		if opts.Distill.InitFromTeacher && !resumed {
			ti, err := model.InitFromTeacher(m, teacher)
			if err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
			teacherInit = &ti
			fmt.Fprintf(out, "initialized from the teacher: copied %d parameters %v\n", len(ti.Copied), ti.Copied)
			if len(ti.Derived) > 0 {
				fmt.Fprintf(out, "  re-derived from copied weights: %v\n", ti.Derived)
			}
			fmt.Fprintf(out, "  left at initialization: %v\n", ti.Kept)
		}
	}
	pens, err := AttachRangePenalties(m, opts.Range)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer pens.Detach()
	ds := opts.Dataset
	if ds == nil {
		if ds, err = dataset.Load(cfg); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	if ds.Task() != cfg.Task {
		return nil, fmt.Errorf("train: dataset is for task %s, model for %s", ds.Task(), cfg.Task)
	}
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resumed {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	mf, err := os.OpenFile(filepath.Join(opts.OutDir, MetricsFile), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	defer mf.Close()
	enc := json.NewEncoder(mf)
	var evalBatches []model.Batch
	if opts.EvalEvery > 0 {
		if evalBatches, err = ds.EvalBatches(opts.EvalLimit, opts.BatchSize); err != nil {
			return nil, fmt.Errorf("train: %w", err)
		}
	}
	sched := optim.Schedule{Base: opts.LR, Min: opts.MinLR, Warmup: opts.Warmup, Total: opts.Steps}
	var bar *progressbar.ProgressBar
	if opts.Progress != nil {
		bar = progressbar.NewOptions(opts.Steps, progressbar.OptionSetWriter(opts.Progress),
			progressbar.OptionSetDescription("train"), progressbar.OptionShowCount(),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionSetPredictTime(true))
		_ = bar.Set(start)
	}
	fmt.Fprintf(out, "model: task %s, %d parameters, attention %s, norm %s, activation %s\n",
		cfg.Task, m.Reg.Count(), cfg.Attention.Kind, cfg.Norm, cfg.Activation)
	if c := cfg.PolyCaveat(); c != "" {
		fmt.Fprintf(out, "warning: %s\n", c)
	}
	t0 := time.Now()
	tokens := 0
	var last model.StepResult
	step := start
	save := func(s int) error {
		st := &checkpoint.TrainState{Step: s, Extra: map[string]any{"train_seconds": prior + time.Since(t0).Seconds()}}
		if opts.Distill.Enabled() {
			st.Extra[distillKey] = opts.Distill
		}
		return checkpoint.Save(opts.OutDir, m, opt, st)
	}
	for ; step < opts.Steps; step++ {
		if err := ctx.Err(); err != nil {
			fmt.Fprintf(out, "interrupted at step %d: %v\n", step, err)
			break
		}
		if opts.StopAt > 0 && step >= opts.StopAt {
			break
		}
		if opts.TimeLimit > 0 && time.Since(t0) >= opts.TimeLimit {
			fmt.Fprintf(out, "time limit %v reached at step %d\n", opts.TimeLimit, step)
			break
		}
		b, err := ds.TrainBatch(step, opts.BatchSize)
		if err != nil {
			return nil, fmt.Errorf("train step %d: %w", step, err)
		}
		m.Reg.ZeroGrad()
		var dres model.DistillResult
		if teacher != nil {
			to, err := teacher.TeacherForward(b)
			if err != nil {
				return nil, fmt.Errorf("train step %d: %w", step, err)
			}
			dres, err = m.DistillStep(b, to, opts.Distill)
			if err != nil {
				return nil, fmt.Errorf("train step %d: %w", step, err)
			}
		} else if dres.StepResult, err = m.Step(b); err != nil {
			return nil, fmt.Errorf("train step %d: %w", step, err)
		}
		res := dres.StepResult
		rangeLoss := pens.Value()
		res.Loss += rangeLoss
		last = res
		gn := optim.ClipGradNorm(m.Params(), opts.ClipNorm)
		lr := sched.LR(step)
		if err := opt.Update(m.Params(), lr); err != nil {
			return nil, fmt.Errorf("train step %d: %w", step, err)
		}
		tokens += b.B * cfg.Tokens()
		el := time.Since(t0).Seconds()
		tps := float64(tokens) / el
		rec := metric{Step: step + 1, Kind: "train", LR: lr, Loss: res.Loss, CE: res.CE, EntLoss: res.EntLoss, GradNorm: gn, TokPerSec: tps, Elapsed: prior + el,
			RangeLoss: rangeLoss, RangeOutside: pens.Outside(), KD: dres.KD, AttnLoss: dres.AttnLoss, HiddenLoss: dres.HiddenLoss}
		if (step+1)%50 == 0 || step == start {
			rec.Entropy = res.Entropy
		}
		if err := enc.Encode(rec); err != nil {
			return nil, fmt.Errorf("train: metrics: %w", err)
		}
		if bar != nil {
			bar.Describe(fmt.Sprintf("loss %.4f  %.0f tok/s", res.Loss, tps))
			_ = bar.Add(1)
		}
		if opts.EvalEvery > 0 && (step+1)%opts.EvalEvery == 0 && step+1 < opts.Steps {
			er, err := m.Evaluate(evalBatches)
			if err != nil {
				return nil, err
			}
			acc := er.Accuracy
			if err := enc.Encode(metric{Step: step + 1, Kind: "eval", Loss: er.Loss, Accuracy: &acc, BPB: er.BitsPerByte, Elapsed: prior + time.Since(t0).Seconds()}); err != nil {
				return nil, fmt.Errorf("train: metrics: %w", err)
			}
			fmt.Fprintf(out, "step %d: train loss %.4f, eval loss %.4f, accuracy %.4f%s, attention entropy per layer/head %s\n",
				step+1, res.Loss, er.Loss, er.Accuracy, bpbText(er), fmtEntropy(res.Entropy))
		}
		if opts.CheckpointEvery > 0 && (step+1)%opts.CheckpointEvery == 0 && step+1 < opts.Steps {
			if err := save(step + 1); err != nil {
				return nil, fmt.Errorf("train: %w", err)
			}
		}
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(opts.Progress)
	}
	elapsed := time.Since(t0).Seconds()
	res := &Result{Config: cfg, Options: opts, Steps: step, Elapsed: prior + elapsed, Params: m.Reg.Count(), Entropy: last.Entropy, RangeStats: pens.Stats(), TeacherInit: teacherInit}
	if elapsed > 0 {
		res.TokensPerSec = float64(tokens) / elapsed
	}
	final, err := ds.EvalBatches(opts.FinalEvalLimit, opts.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if res.Exact, err = m.Evaluate(final); err != nil {
		return nil, err
	}
	if opts.CalibBatches != 0 {
		err = CalibrateOn(m, ds, opts.CalibBatches, opts.BatchSize, opts.Fit, pens.Targets)
		var pr model.EvalResult
		if err == nil && opts.PolyFinetuneSteps > 0 {
			res.PolyFinetuneSkipped, err = polyFinetune(ctx, m, opt, ds, opts, pens, step, enc, out)
			if err == nil {
				before := res.Exact
				res.ExactBeforeFinetune = &before
				res.Exact, err = m.Evaluate(final)
			}
		}
		if err == nil {
			m.ResetPolyStats()
			if err = m.SetMode(nn.ModePoly); err == nil {
				pr, err = m.Evaluate(final)
				res.PolyStats = m.PolyStats()
			}
			if serr := m.SetMode(nn.ModeExact); serr != nil && err == nil {
				err = serr
			}
		}
		if err != nil {
			// not fatal: the exact model is fine, its polynomial form is not
			res.PolyError = err.Error()
			fmt.Fprintf(out, "poly mode failed: %v\n", err)
		} else {
			res.Poly = &pr
		}
		res.Config = m.Cfg
	}
	acc := res.Exact.Accuracy
	_ = enc.Encode(metric{Step: step, Kind: "final", Loss: res.Exact.Loss, Accuracy: &acc, BPB: res.Exact.BitsPerByte, Elapsed: res.Elapsed})
	if err := save(step); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if b, err := json.MarshalIndent(res, "", "  "); err == nil {
		if err := os.WriteFile(filepath.Join(opts.OutDir, SummaryFile), append(b, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("train: summary: %w", err)
		}
	}
	if err := mf.Sync(); err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	if err := PlotMetrics(filepath.Join(opts.OutDir, MetricsFile), filepath.Join(opts.OutDir, CurveFile)); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	fmt.Fprintf(out, "trained %d steps in %.1fs (%.0f tokens/s): exact loss %.4f accuracy %.4f%s\n",
		step, res.Elapsed, res.TokensPerSec, res.Exact.Loss, res.Exact.Accuracy, bpbText(res.Exact))
	if res.Poly != nil {
		var outside int64
		for _, s := range res.PolyStats {
			outside += s.Outside
		}
		fmt.Fprintf(out, "poly mode: loss %.4f accuracy %.4f%s, %d inputs outside their interval\n",
			res.Poly.Loss, res.Poly.Accuracy, bpbText(*res.Poly), outside)
	}
	return res, nil
}

// bpbText is ", bits/byte X" for text evaluations and "" for images.
func bpbText(e model.EvalResult) string {
	if e.BitsPerByte == 0 {
		return ""
	}
	return fmt.Sprintf(", bits/byte %.4f", e.BitsPerByte)
}

// describeDistill formats the distillation options for progress lines.
func describeDistill(d model.DistillOptions) string {
	if !d.Enabled() {
		return "no distillation"
	}
	return fmt.Sprintf("teacher %s, alpha %g, temperature %g, attention weight %g, hidden weight %g", d.Teacher, d.Alpha, d.Temp, d.Attn, d.Hidden)
}

func fmtEntropy(e [][]float64) string {
	s := ""
	for l, hs := range e {
		if l > 0 {
			s += " | "
		}
		for h, v := range hs {
			if h > 0 {
				s += " "
			}
			s += fmt.Sprintf("%.2f", v)
		}
	}
	return s
}

// polyFinetune trains opts.PolyFinetuneSteps steps in poly mode, using the
// training batches that follow step, with the range penalties attached, and
// returns the model to exact mode. A step whose batch sends any site input
// outside its interval, or whose loss is not finite, is detected, reported
// in the metrics and skipped (no update; inputs are never clamped); it
// returns the number of skipped steps. When more than a quarter of the
// steps are skipped, fine-tuning fails and the exact model's weights and
// optimizer state are restored.
func polyFinetune(ctx context.Context, m *model.Model, opt *optim.AdamW, ds dataset.Dataset, opts Options, pens *Penalties, step int, enc *json.Encoder, out io.Writer) (int, error) {
	lr := opts.PolyFinetuneLR
	if lr <= 0 {
		lr = opts.MinLR
	}
	if lr <= 0 {
		lr = opts.LR / 10
	}
	if err := m.SetMode(nn.ModePoly); err != nil {
		return 0, err
	}
	defer func() { _ = m.SetMode(nn.ModeExact) }()
	// on failure, restore the weights and optimizer state of the exact model
	saved := snapshot(m, opt)
	var failed error
	defer func() {
		if failed != nil {
			saved.restore(m, opt)
		}
	}()
	fail := func(err error) error { failed = err; return err }
	maxSkip := opts.PolyFinetuneSteps / 4
	skipped := 0
	t0 := time.Now()
	for i := 0; i < opts.PolyFinetuneSteps; i++ {
		if err := ctx.Err(); err != nil {
			return skipped, fail(fmt.Errorf("poly fine-tuning interrupted: %w", err))
		}
		b, err := ds.TrainBatch(step+i, opts.BatchSize)
		if err != nil {
			return skipped, fail(fmt.Errorf("poly fine-tuning step %d: %w", i, err))
		}
		m.Reg.ZeroGrad()
		m.ResetPolyStats()
		res, err := m.Step(b)
		reason := ""
		if err != nil {
			reason = err.Error() + outsideSummary(m)
		} else if n := totalOutside(m); n > 0 {
			reason = fmt.Sprintf("%d inputs outside their intervals%s", n, outsideSummary(m))
		}
		if reason != "" {
			skipped++
			if err := enc.Encode(metric{Step: step + i + 1, Kind: "poly_finetune", LR: lr, Loss: finiteOr0(res.Loss), CE: finiteOr0(res.CE), Skipped: reason, Elapsed: time.Since(t0).Seconds()}); err != nil {
				return skipped, fail(fmt.Errorf("metrics: %w", err))
			}
			if skipped > maxSkip {
				return skipped, fail(fmt.Errorf("poly fine-tuning: %d of %d steps skipped (at most %d allowed); last at step %d: %s", skipped, i+1, maxSkip, i, reason))
			}
			continue
		}
		rangeLoss := pens.Value()
		res.Loss += rangeLoss
		gn := optim.ClipGradNorm(m.Params(), opts.ClipNorm)
		if err := opt.Update(m.Params(), lr); err != nil {
			return skipped, fail(fmt.Errorf("poly fine-tuning step %d: %w", i, err))
		}
		if err := enc.Encode(metric{Step: step + i + 1, Kind: "poly_finetune", LR: lr, Loss: res.Loss, CE: res.CE, EntLoss: res.EntLoss, GradNorm: gn, Elapsed: time.Since(t0).Seconds(),
			RangeLoss: rangeLoss, RangeOutside: pens.Outside()}); err != nil {
			return skipped, fail(fmt.Errorf("metrics: %w", err))
		}
	}
	fmt.Fprintf(out, "poly fine-tuning: %d steps in %.1fs at lr %g, %d skipped (inputs outside their intervals or non-finite loss)\n",
		opts.PolyFinetuneSteps, time.Since(t0).Seconds(), lr, skipped)
	return skipped, nil
}

// finiteOr0 returns x, or 0 when it is not finite (JSON cannot encode it).
func finiteOr0(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

// totalOutside counts the poly-mode inputs outside their intervals since
// the last ResetPolyStats.
func totalOutside(m *model.Model) int64 {
	var n int64
	for _, st := range m.PolyStats() {
		n += st.Outside
	}
	return n
}

// outsideSummary lists the sites whose poly-mode inputs left their interval.
func outsideSummary(m *model.Model) string {
	s := ""
	for _, st := range m.PolyStats() {
		if st.Outside > 0 {
			s += fmt.Sprintf("; %s: %d of %d inputs outside [%.4g, %.4g] (by up to %.3g)", st.Site, st.Outside, st.Total, st.Interval[0], st.Interval[1], st.Worst)
		}
	}
	return s
}

type state struct {
	values, m, v map[string][]float64
	t            int
}

func snapshot(m *model.Model, opt *optim.AdamW) state {
	st := state{values: map[string][]float64{}, m: map[string][]float64{}, v: map[string][]float64{}, t: opt.T}
	for _, p := range m.Params() {
		st.values[p.Name] = append([]float64(nil), p.Value.Data...)
		st.m[p.Name] = append([]float64(nil), opt.M[p.Name]...)
		st.v[p.Name] = append([]float64(nil), opt.V[p.Name]...)
	}
	return st
}

func (st state) restore(m *model.Model, opt *optim.AdamW) {
	for _, p := range m.Params() {
		copy(p.Value.Data, st.values[p.Name])
		copy(opt.M[p.Name], st.m[p.Name])
		copy(opt.V[p.Name], st.v[p.Name])
	}
	opt.T = st.t
}

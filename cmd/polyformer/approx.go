package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/polyapprox"
)

// approxReport is the JSON form of `polyformer approx`: enough to re-evaluate
// the polynomial and check the claimed errors independently.
type approxReport struct {
	Function     string     `json:"function"`
	Interval     [2]float64 `json:"interval"`
	Degree       int        `json:"degree"`
	Method       string     `json:"method"`
	Basis        string     `json:"basis"`
	BasisNote    string     `json:"basis_note"`
	Coefficients []float64  `json:"coefficients"`
	MaxAbsError  float64    `json:"max_abs_error"`
	MaxRelError  float64    `json:"max_rel_error"`
	Depth        int        `json:"depth"`
	CtMults      int        `json:"ct_mults"`
}

func newApproxCommand() *cobra.Command {
	var (
		interval string
		degree   int
		method   string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "approx FUNC",
		Short: "Polynomial approximation of a non-linearity, with its error and HE cost",
		Long: "Computes a Chebyshev-basis polynomial approximation of FUNC on [A,B] and reports its\n" +
			"coefficients, max absolute and relative error on a dense grid, multiplicative depth\n" +
			"and ciphertext-ciphertext multiplications under CKKS.\n\n" +
			"FUNC is one of: " + strings.Join(polyapprox.Functions(), ", ") + " (and any powP, e.g. pow4).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, b, err := parseInterval(interval)
			if err != nil {
				return err
			}
			ap, err := polyapprox.Approximate(args[0], polyapprox.Interval{A: a, B: b}, degree, method)
			if err != nil {
				return err
			}
			rep := approxReport{
				Function:     ap.Function,
				Interval:     [2]float64{ap.Interval.A, ap.Interval.B},
				Degree:       ap.Degree,
				Method:       ap.Method,
				Basis:        "chebyshev",
				BasisNote:    "p(x) = sum_k coefficients[k] * T_k(u), u = (2x - a - b) / (b - a)",
				Coefficients: ap.Poly.Coeffs,
				MaxAbsError:  ap.MaxAbsError,
				MaxRelError:  ap.MaxRelError,
				Depth:        ap.Depth,
				CtMults:      ap.CtMults,
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rep)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "function\t%s\n", rep.Function)
			fmt.Fprintf(tw, "interval\t[%g, %g]\n", a, b)
			fmt.Fprintf(tw, "method\t%s\n", rep.Method)
			fmt.Fprintf(tw, "degree\t%d\n", rep.Degree)
			fmt.Fprintf(tw, "max abs error\t%.3e\n", rep.MaxAbsError)
			fmt.Fprintf(tw, "max rel error\t%.3e\n", rep.MaxRelError)
			fmt.Fprintf(tw, "depth (levels)\t%d\n", rep.Depth)
			fmt.Fprintf(tw, "ct-ct mults\t%d\n", rep.CtMults)
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "chebyshev coefficients (T_k on [%g, %g] mapped to [-1, 1]):\n", a, b)
			for k, c := range rep.Coefficients {
				fmt.Fprintf(out, "  c[%d] = %.17g\n", k, c)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&interval, "interval", "", "approximation interval A,B (required)")
	cmd.Flags().IntVar(&degree, "degree", 15, "polynomial degree (2^k-1 is depth-optimal)")
	cmd.Flags().StringVar(&method, "method", "chebyshev", "chebyshev (interpolation), remez (absolute minimax) or remez-rel (relative minimax)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object")
	_ = cmd.MarkFlagRequired("interval")
	return cmd
}

package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/model/norm"
)

func newNormsCommand() *cobra.Command {
	var (
		opts   norm.CostOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "norms",
		Short: "HE cost of every normalization method and placement",
		Long: "Prints the CKKS cost of each normalization method and block placement under the\n" +
			"row-major slot packing: depth, ciphertext multiplications, rotations and plaintext\n" +
			"multiplications per norm and per block, and whether the method folds into the\n" +
			"adjacent linear layer at zero cost.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Width <= 0 || opts.Tokens <= 0 {
				return fmt.Errorf("norms: --width and --tokens must be positive")
			}
			if opts.VarRange[0] <= 0 && opts.VarRange[1] != 0 {
				return fmt.Errorf("norms: variance range must be positive")
			}
			costs, err := norm.CostTableWith(opts)
			if err != nil {
				return fmt.Errorf("norms: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), costs)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "HE cost of normalization, width %d, %d tokens\n", opts.Width, opts.Tokens)
			return norm.FormatCostTable(cmd.OutOrStdout(), costs)
		},
	}
	var varRange string
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if varRange == "" {
			return nil
		}
		a, b, err := parseInterval(varRange)
		if err != nil {
			return fmt.Errorf("norms: --var-range: %w", err)
		}
		opts.VarRange = [2]float64{a, b}
		return nil
	}
	cmd.Flags().IntVar(&opts.Width, "width", 64, "model width D")
	cmd.Flags().IntVar(&opts.Tokens, "tokens", 16, "tokens T")
	cmd.Flags().IntVar(&opts.Slots, "slots", 1<<14, "slots per ciphertext")
	cmd.Flags().IntVar(&opts.Depth, "depth", 2, "blocks (for the mix placement)")
	cmd.Flags().StringVar(&varRange, "var-range", "", "calibrated range A,B of the inverse square root's input (default 0.1,10)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

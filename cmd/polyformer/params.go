package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/he"
)

func newParamsCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "params",
		Short: "List the CKKS parameter presets with their security estimate",
		Long: "Lists every named CKKS parameter preset: ring degree, slots, levels, scale, log QP and\n" +
			"the estimated classical security against the HomomorphicEncryption.org standard bound\n" +
			"for its secret distribution. Presets marked insecure exist for fast tests only; other\n" +
			"commands refuse them unless --insecure is given.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rows, err := he.PresetTable()
			if err != nil {
				return fmt.Errorf("params: %w", err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, rows)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "preset\tlogN\tslots\tlevels\tscale\tlogQP\tsecurity\tsecret\tbootstrap\t")
			for _, r := range rows {
				sec := fmt.Sprintf("%.0f bits", r.SecurityBits)
				if r.Insecure {
					sec += " INSECURE (tests only)"
				}
				boot := "no"
				if r.Bootstrapping {
					boot = fmt.Sprintf("yes (circuit logQP %.0f, %d levels after)", r.BootstrapLogQP, r.LevelsAfterBootstrap)
				}
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t2^%d\t%.1f\t%s\t%s\t%s\t\n",
					r.Name, r.LogN, r.Slots, r.Levels, r.LogScale, r.LogQP, sec, r.Secret, boot)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

package main

import "github.com/spf13/cobra"

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "polyformer",
		Short:         "Private inference of transformers under CKKS homomorphic encryption",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newParamsCommand(), newApproxCommand(), newBenchCommand(), newDemoCommand(), newTrainCommand(), newEvalCommand(), newNormsCommand(),
		newCompileCommand(), newKeygenCommand(), newInferCommand(), newServeCommand(), newClientCommand())
	return root
}

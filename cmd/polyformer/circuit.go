package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
)

// Key directory layout written by `polyformer keygen`.
const (
	secretKeyFile = "secret.key"      // client only, mode 0600
	evalKeysFile  = "evaluation.keys" // public: goes to the server
)

func newCompileCommand() *cobra.Command {
	var (
		out, preset, timings string
		batch                int
		allowBoot, asJSON    bool
		overwrite, insecure  bool
	)
	cmd := &cobra.Command{
		Use:   "compile CHECKPOINT --out CIRCUIT",
		Short: "Compile a trained, calibrated model into a CKKS circuit and print the dry-run report",
		Long: "Lowers a checkpoint (trained and calibrated by `polyformer train`) to a CKKS circuit:\n" +
			"packing, op graph, level plan, bootstrap placement and the exact rotation keys. With no\n" +
			"--preset the smallest secure preset whose levels suffice is chosen. Prints the dry-run\n" +
			"report (levels per layer, rotations, key switches, bootstraps, key sizes, memory,\n" +
			"predicted precision) before any key exists, and writes the circuit file the server loads.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("compile: --out CIRCUIT is required")
			}
			if preset != "" {
				if _, err := pipeline.ResolvePreset(preset, insecure); err != nil {
					return fmt.Errorf("compile: %w", err)
				}
			}
			m, err := pipeline.LoadForCompile(args[0])
			if err != nil {
				return fmt.Errorf("compile: %w", err)
			}
			c, p, err := compiler.CompileFor(m, preset, compiler.Options{Batch: batch, AllowBootstrap: allowBoot, AllowInsecure: insecure})
			if err != nil {
				var le *circuit.LevelError
				if !allowBoot && errors.As(err, &le) {
					return fmt.Errorf("%w (pass --allow-bootstrap to place bootstraps)", err)
				}
				return err
			}
			t := circuit.DefaultOpTimings()
			if timings != "" {
				if t, err = circuit.ReadOpTimings(timings); err != nil {
					return fmt.Errorf("compile: %w", err)
				}
			}
			rep, err := pipeline.DryRunTimed(m, c, p, "", t)
			if err != nil {
				return fmt.Errorf("compile: %w", err)
			}
			if rep.Margin != nil && rep.Margin.Warn() {
				fmt.Fprintln(cmd.ErrOrStderr(), rep.Margin.String())
			}
			if err := circuit.WriteCircuitFile(out, c, overwrite); err != nil {
				return fmt.Errorf("compile: %w", err)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				return rep.WriteJSON(w)
			}
			if err := rep.WriteTable(w); err != nil {
				return err
			}
			fmt.Fprintf(w, "circuit written to %s (preset %s, %d inputs per ciphertext)\n", out, p.Name(), c.Layout.Batch)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "circuit file to write (required)")
	cmd.Flags().StringVar(&preset, "preset", "", "parameter preset (default: the smallest secure one that fits)")
	cmd.Flags().IntVar(&batch, "batch", 0, "inputs per ciphertext (0: as many as the slots hold)")
	cmd.Flags().BoolVar(&allowBoot, "allow-bootstrap", false, "place bootstraps when the leveled budget runs out")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the dry-run report as JSON")
	cmd.Flags().BoolVar(&overwrite, "force", false, "overwrite an existing circuit file")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "allow presets below 128-bit security (tests only)")
	cmd.Flags().StringVar(&timings, "op-timings", "", "price the latency estimate with this `bench ops --json` file (default: the built-in n15 table)")
	return cmd
}

func newKeygenCommand() *cobra.Command {
	var (
		out               string
		overwrite, dryRun bool
		pol               clientPolicy
	)
	cmd := &cobra.Command{
		Use:   "keygen CIRCUIT --out KEYDIR",
		Short: "Generate the secret key and exactly the evaluation keys a circuit needs",
		Long: "Client side. Generates a fresh secret key for the circuit's parameters and exactly the\n" +
			"evaluation keys its plan uses (relinearization, its rotations, bootstrapping if placed).\n" +
			"Writes KEYDIR/" + client.SecretKeyFile + " (mode 0600; never give it to anyone) and\n" +
			"KEYDIR/" + client.EvalKeysFile + " (public; the server needs it).\n\n" +
			"The circuit is untrusted input: before any key exists, keygen computes the security of\n" +
			"the parameters the circuit carries (refused under 128 bits without --insecure),\n" +
			"recomputes the key spec from the circuit's ops (it must equal the file's), prints the\n" +
			"key count, key bytes and memory, and refuses keys above --max-key-bytes.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" && !dryRun {
				return errors.New("keygen: --out KEYDIR is required")
			}
			c, p, err := circuit.LoadCircuitFile(args[0])
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			budget, err := circuit.VerifyCircuit(c, p, pol.policy())
			if err != nil {
				return fmt.Errorf("keygen: %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keygen: parameters %s: %s\n", p, budget)
			if dryRun {
				return nil
			}
			t0 := time.Now()
			_, evk, err := pipeline.KeyDir(out).Generate(p, c.Planned.Keys.KeySpec(), overwrite)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keys for preset %s in %s (%.1f s): %s (secret, 0600), %s (%.1f MB, public)\n",
				p.Name(), out, time.Since(t0).Seconds(), client.SecretKeyFile, client.EvalKeysFile, float64(evk.SizeBytes())/1e6)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "key directory to write (required)")
	cmd.Flags().BoolVar(&overwrite, "force", false, "overwrite existing key files")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "verify the circuit and print the key budget without generating keys")
	pol.register(cmd)
	return cmd
}

// clientPolicy holds the flags of the commands that generate keys or
// encrypt for a circuit they did not make (keygen, infer, bench layers).
type clientPolicy struct {
	insecure    bool
	maxKeyBytes uint64
}

func (c *clientPolicy) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&c.insecure, "insecure", false, "accept circuit parameters below 128-bit security (tests only)")
	cmd.Flags().Uint64Var(&c.maxKeyBytes, "max-key-bytes", circuit.DefaultMaxKeyBytes,
		fmt.Sprintf("refuse circuits whose evaluation keys exceed this many bytes (the default is %s)", circuit.FormatBytes(circuit.DefaultMaxKeyBytes)))
}

func (c *clientPolicy) policy() circuit.ClientPolicy {
	return circuit.ClientPolicy{AllowInsecure: c.insecure, MaxKeyBytes: c.maxKeyBytes}
}

// inferInputs selects the inputs of `infer`, `bench layers` and `demo`.
type inferInputs struct {
	mnist, offset int
	dataDir, text string
	test          *data.Images // MNIST test set, once loaded
}

// loadImages loads and validates the MNIST test set (once), so that a
// missing or corrupt data directory is reported before any expensive work.
func (in *inferInputs) loadImages() (*data.Images, error) {
	if in.test == nil {
		_, test, err := pipeline.LoadMNIST(in.dataDir)
		if err != nil {
			return nil, err
		}
		in.test = test
	}
	return in.test, nil
}

func (in *inferInputs) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&in.mnist, "mnist", 0, "evaluate N MNIST test images (image task)")
	cmd.Flags().IntVar(&in.offset, "offset", 0, "first MNIST test image")
	cmd.Flags().StringVar(&in.dataDir, "data", "", "MNIST directory (default: the GoMNIST module)")
	cmd.Flags().StringVar(&in.text, "text", "", "text whose bytes are the LM's input (byte LM task)")
}

// encode checks that the flags fit the circuit's task and encodes the inputs.
func (in *inferInputs) encode(c *circuit.Circuit) (*pipeline.Inputs, error) {
	switch c.Task {
	case model.TaskMNIST:
		if in.text != "" {
			return nil, errors.New("--text given but the circuit is an image classifier (use --mnist N)")
		}
		test, err := in.loadImages()
		if err != nil {
			return nil, err
		}
		return pipeline.EncodeMNIST(c, test, in.offset, in.mnist)
	case model.TaskText:
		if in.mnist > 0 {
			return nil, errors.New("--mnist given but the circuit is a byte LM (use --text)")
		}
		if in.text == "" {
			return nil, errors.New("--text is required for a byte LM circuit")
		}
		return pipeline.EncodeText(c, in.text)
	}
	return nil, fmt.Errorf("circuit task %q", c.Task)
}

// runEncrypted runs pipeline.InferFile with the flags' inputs, adding
// the CLI's hints to a missing key directory.
func runEncrypted(circuitPath, keyDir string, in *inferInputs, workers int, pol circuit.ClientPolicy) (*pipeline.Result, error) {
	if keyDir == "" {
		return nil, errors.New("--keys KEYDIR is required (made by polyformer keygen)")
	}
	res, err := pipeline.InferFile(circuitPath, pipeline.KeyDir(keyDir), in.encode, pol, pipeline.RunOptions{Workers: workers})
	if errors.Is(err, pipeline.ErrMissingKeys) {
		return nil, fmt.Errorf("%w (make it with polyformer keygen %s --out %s)", err, circuitPath, keyDir)
	}
	return res, err
}

func newInferCommand() *cobra.Command {
	var (
		keys    string
		in      inferInputs
		workers int
		pol     clientPolicy
	)
	cmd := &cobra.Command{
		Use:   "infer CIRCUIT --keys KEYDIR (--mnist N | --text STRING)",
		Short: "Encrypt inputs, evaluate the circuit on ciphertexts, decrypt, and compare",
		Long: "Encodes and encrypts the inputs with the secret key, evaluates the circuit on the\n" +
			"ciphertexts with only the evaluation keys, decrypts, and prints each prediction beside\n" +
			"the plaintext one (the float64 simulation of the same circuit, i.e. the poly-mode model).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			run, err := runEncrypted(args[0], keys, &in, workers, pol.policy())
			if err != nil {
				return fmt.Errorf("infer: %w", err)
			}
			if err := printPredictions(cmd.OutOrStdout(), run); err != nil {
				return fmt.Errorf("infer: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keys, "keys", "", "key directory made by polyformer keygen (required)")
	registerThreads(cmd, &workers)
	in.register(cmd)
	pol.register(cmd)
	return cmd
}

// printPredictions prints each prediction beside the plaintext one, then
// the agreement (the line the CI greps), accuracy and timing; a result
// that fails its check (pipeline.Result.Check) is printed as FAILED and
// returned as an error.
func printPredictions(w io.Writer, run *pipeline.Result) error {
	mnist := run.Task == model.TaskMNIST
	preds := run.Predictions()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if mnist {
		fmt.Fprintln(tw, "input\tlabel\tencrypted\tplaintext\tmax |logit error|\t")
	} else {
		fmt.Fprintln(tw, "position\tencrypted next byte\tplaintext next byte\tmax |logit error|\t")
	}
	for i, p := range preds {
		if mnist {
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2e\t\n", i, run.Labels[i], p.Encrypted, p.Plaintext, p.MaxError)
		} else if i == len(preds)-1 || len(preds) <= 8 {
			fmt.Fprintf(tw, "%d\t%q\t%q\t%.2e\t\n", i, rune(p.Encrypted), rune(p.Plaintext), p.MaxError)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := run.Check(); err != nil {
		fmt.Fprintf(w, "FAILED: %v\n", err)
		return err
	}
	agree, total := run.Agreement()
	rep := run.Report
	fmt.Fprintf(w, "encrypted = plaintext prediction on %d of %d; max |logit error| %.3e (predicted log2 error %.1f)\n",
		agree, total, run.MaxError(), rep.PredictedLog2Err)
	if mnist && run.Labels != nil {
		fmt.Fprintf(w, "encrypted accuracy %d/%d\n", run.Correct(), total)
	}
	fmt.Fprintf(w, "evaluation %.2f s wall, %.3f s per input amortized\n", float64(rep.WallNs)/1e9, float64(rep.PerInputNs)/1e9)
	return nil
}

func newBenchLayersCommand() *cobra.Command {
	var (
		keys          string
		in            inferInputs
		workers       int
		asJSON, asCSV bool
		png           string
		pol           clientPolicy
	)
	cmd := &cobra.Command{
		Use:   "layers CIRCUIT --keys KEYDIR [--json|--csv] [--png FILE]",
		Short: "Per-layer and per-op latency and error of an encrypted circuit run",
		Long: "Evaluates the circuit on encrypted inputs and reports, per layer: time, levels in and\n" +
			"out, rotations, key switches, bootstraps and the log2 error against the float64\n" +
			"simulator; plus end-to-end and amortized per-input latency.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON && asCSV {
				return errors.New("bench layers: --json and --csv are exclusive")
			}
			run, err := runEncrypted(args[0], keys, &in, workers, pol.policy())
			if err != nil {
				return fmt.Errorf("bench layers: %w", err)
			}
			rep := run.Report
			if png != "" {
				if err := plotLayers(rep, png); err != nil {
					return fmt.Errorf("bench layers: %w", err)
				}
			}
			w := cmd.OutOrStdout()
			switch {
			case asJSON:
				err = rep.WriteJSON(w)
			case asCSV:
				err = rep.WriteCSV(w)
			default:
				err = rep.WriteTable(w)
			}
			if err != nil {
				return err
			}
			if err := run.Check(); err != nil {
				return fmt.Errorf("bench layers: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keys, "keys", "", "key directory made by polyformer keygen (required)")
	registerThreads(cmd, &workers)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&asCSV, "csv", false, "print CSV")
	cmd.Flags().StringVar(&png, "png", "", "also plot per-layer time to this PNG file")
	in.register(cmd)
	pol.register(cmd)
	return cmd
}

// registerThreads adds --threads (default: the number of cores): the
// goroutines that evaluate independent ciphertext work of one query (input
// ciphertexts, attention diagonals, heads), each on its own evaluator copy.
// --workers is its former name.
func registerThreads(cmd *cobra.Command, threads *int) {
	cmd.Flags().IntVar(threads, "threads", runtime.NumCPU(), "goroutines evaluating independent ciphertext work of a query (default: the number of cores)")
	cmd.Flags().IntVar(threads, "workers", runtime.NumCPU(), "former name of --threads")
	_ = cmd.Flags().MarkDeprecated("workers", "use --threads")
}

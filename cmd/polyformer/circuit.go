package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/normfree"
	"github.com/polyformer/polyformer/normfree/convert"
	"github.com/polyformer/polyformer/service/client"
)

// Key directory layout written by `polyformer keygen`.
const (
	secretKeyFile = "secret.key"      // client only, mode 0600
	evalKeysFile  = "evaluation.keys" // public: goes to the server
)

func newCompileCommand() *cobra.Command {
	var (
		out, preset         string
		batch               int
		allowBoot, asJSON   bool
		overwrite, insecure bool
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
				if _, err := resolvePreset(preset, insecure); err != nil {
					return fmt.Errorf("compile: %w", err)
				}
			}
			m, err := loadForCompile(args[0])
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
			if _, err := he.RequireSecure(p, insecure); err != nil {
				return fmt.Errorf("compile: %w", err)
			}
			rep, err := circuit.NewReport(c, p)
			if err != nil {
				return fmt.Errorf("compile: %w", err)
			}
			if vec, err := sampleInput(m, c); err == nil {
				if pe, err := circuit.PredictPrecision(c, p, vec); err == nil {
					rep.PredictedLog2Err = pe
				}
			}
			// precision margin: can the predicted logit error flip a
			// prediction? Poly-mode margins of calibration inputs (the first
			// training images; for an LM, windows of the sample text).
			calib := func() (model.Batch, error) {
				if m.Cfg.Task == model.TaskMNIST {
					train, _, err := loadMNIST(m.Cfg.Data.Dir)
					if err != nil {
						return model.Batch{}, err
					}
					train = train.Subset(256)
					return model.Batch{B: train.N, Pixels: train.Pixels, Targets: train.Labels}, nil
				}
				T := m.Cfg.Context
				text := []byte("package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, encrypted world\")\n}\n")
				const n = 16
				b := model.Batch{B: n, T: T, Inputs: make([]int, n*T), Targets: make([]int, n*T)}
				for i := 0; i < n; i++ {
					for t := 0; t < T; t++ {
						b.Inputs[i*T+t] = int(text[(5*i+t)%len(text)])
						b.Targets[i*T+t] = int(text[(5*i+t+1)%len(text)])
					}
				}
				return b, nil
			}
			if b, err := calib(); err == nil && !math.IsNaN(rep.PredictedLog2Err) {
				if margins, err := compiler.PolyMargins(m, b); err == nil {
					if mc, err := circuit.CheckMargins(margins, rep.PredictedLog2Err); err == nil {
						rep.Margin = &mc
						if mc.Warn() {
							fmt.Fprintln(cmd.ErrOrStderr(), mc.String())
						}
					}
				}
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
	return cmd
}

// loadForCompile loads a checkpoint and folds its normalization into the
// adjacent linear layers when that is exact (BatchNorm, RepBN, fixed scale,
// weight-side reparametrizations...), so the circuit pays nothing for it.
// Norms that do not fold (LayerNorm, RMSNorm) are left to the compiler,
// which evaluates their inverse square root.
func loadForCompile(dir string) (*model.Model, error) {
	m, err := checkpoint.Load(dir)
	if err != nil {
		return nil, err
	}
	switch m.Cfg.Norm {
	case normfree.KindNone, normfree.KindLayerNorm, normfree.KindRMSNorm:
		return m, nil
	}
	folded, err := convert.Fold(m)
	if err != nil {
		return nil, fmt.Errorf("fold normalization %q into the weights: %w", m.Cfg.Norm, err)
	}
	return folded, nil
}

// sampleInput returns one encoded input of the right shape for precision
// prediction: a test image, or the first bytes of the Go corpus.
func sampleInput(m *model.Model, c *circuit.Circuit) ([]float64, error) {
	n := c.Layout.Batch
	if m.Cfg.Task == model.TaskMNIST {
		_, test, err := loadMNIST(m.Cfg.Data.Dir)
		if err != nil {
			return nil, err
		}
		test = test.Subset(n)
		vecs, err := c.EncodeImages(test.Pixels, test.N, test.Rows, test.Cols)
		if err != nil || len(vecs) == 0 {
			return nil, errors.Join(err, errors.New("no input"))
		}
		return vecs[0], nil
	}
	T := c.Layout.Tokens
	ids := make([]int, n*T)
	text := []byte("package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, encrypted world\")\n}\n")
	for i := range ids {
		ids[i] = int(text[i%len(text)])
	}
	vecs, err := c.EncodeBytes(ids, n, T)
	if err != nil || len(vecs) == 0 {
		return nil, errors.Join(err, errors.New("no input"))
	}
	return vecs[0], nil
}

func loadMNIST(dir string) (*data.Images, *data.Images, error) {
	if dir == "" {
		d, err := data.MNISTDir()
		if err != nil {
			return nil, nil, err
		}
		dir = d
	}
	return data.LoadMNIST(dir)
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
			"Writes KEYDIR/" + secretKeyFile + " (mode 0600; never give it to anyone) and\n" +
			"KEYDIR/" + evalKeysFile + " (public; the server needs it).\n\n" +
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
			if err := os.MkdirAll(out, 0o700); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			spec := c.Planned.Keys.KeySpec()
			t0 := time.Now()
			sk, evk, err := he.GenerateKeys(p, spec)
			if err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := he.WriteSecretKeyFile(filepath.Join(out, secretKeyFile), sk, overwrite); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			if err := he.WriteEvaluationKeysFile(filepath.Join(out, evalKeysFile), evk, overwrite); err != nil {
				return fmt.Errorf("keygen: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "keys for preset %s in %s (%.1f s): %s (secret, 0600), %s (%.1f MB, public)\n",
				p.Name(), out, time.Since(t0).Seconds(), secretKeyFile, evalKeysFile, float64(evk.SizeBytes())/1e6)
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
		_, test, err := loadMNIST(in.dataDir)
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

// encode returns the encoded inputs, their count and the MNIST labels (nil for text).
func (in *inferInputs) encode(c *circuit.Circuit) ([][]float64, int, []int, error) {
	switch c.Task {
	case model.TaskMNIST:
		if in.text != "" {
			return nil, 0, nil, errors.New("--text given but the circuit is an image classifier (use --mnist N)")
		}
		if in.mnist <= 0 {
			in.mnist = c.Layout.Batch
		}
		test, err := in.loadImages()
		if err != nil {
			return nil, 0, nil, err
		}
		if in.offset < 0 || in.offset+in.mnist > test.N {
			return nil, 0, nil, fmt.Errorf("images %d..%d outside the %d test images", in.offset, in.offset+in.mnist-1, test.N)
		}
		size := test.Rows * test.Cols
		sub := &data.Images{N: in.mnist, Rows: test.Rows, Cols: test.Cols,
			Pixels: test.Pixels[in.offset*size : (in.offset+in.mnist)*size], Labels: test.Labels[in.offset : in.offset+in.mnist]}
		vecs, err := c.EncodeImages(sub.Pixels, sub.N, sub.Rows, sub.Cols)
		return vecs, sub.N, sub.Labels, err
	case model.TaskText:
		if in.mnist > 0 {
			return nil, 0, nil, errors.New("--mnist given but the circuit is a byte LM (use --text)")
		}
		if in.text == "" {
			return nil, 0, nil, errors.New("--text is required for a byte LM circuit")
		}
		vecs, err := client.EncodeText(c, in.text)
		return vecs, 1, nil, err
	}
	return nil, 0, nil, fmt.Errorf("circuit task %q", c.Task)
}

// loadKeys reads the key directory for the circuit's parameters.
func loadKeys(dir string, p *he.Parameters, maxKeyBytes uint64) (*he.SecretKey, *he.EvaluationKeys, error) {
	if dir == "" {
		return nil, nil, errors.New("--keys KEYDIR is required (made by polyformer keygen)")
	}
	sk, err := he.ReadSecretKeyFile(filepath.Join(dir, secretKeyFile), p)
	if err != nil {
		return nil, nil, err
	}
	evk, err := he.ReadEvaluationKeysFileMax(filepath.Join(dir, evalKeysFile), p, maxKeyBytes)
	if err != nil {
		return nil, nil, err
	}
	return sk, evk, nil
}

// encryptedRun is the outcome of one encrypted evaluation: the circuit, the
// measured report, the decrypted logits beside the plaintext ones (the
// float64 simulation of the same circuit), and the MNIST labels (nil for text).
type encryptedRun struct {
	circuit   *circuit.Circuit
	report    *circuit.Report
	got, want [][]float64
	labels    []int
}

// runEncrypted loads the circuit and verifies it (VerifyCircuit with pol),
// encodes the inputs (loading and validating their data before the keys,
// which are large), loads the keys, encrypts, evaluates (with the per-layer
// breakdown) and decrypts.
func runEncrypted(circuitPath, keyDir string, in *inferInputs, workers int, pol circuit.ClientPolicy) (*encryptedRun, error) {
	c, p, err := circuit.LoadCircuitFile(circuitPath)
	if err != nil {
		return nil, err
	}
	budget, err := circuit.VerifyCircuit(c, p, pol)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", circuitPath, err)
	}
	if keyDir == "" {
		return nil, errors.New("--keys KEYDIR is required (made by polyformer keygen)")
	}
	for _, name := range []string{secretKeyFile, evalKeysFile} {
		if _, err := os.Stat(filepath.Join(keyDir, name)); err != nil {
			return nil, fmt.Errorf("key directory: %w (make it with polyformer keygen %s --out %s)", err, circuitPath, keyDir)
		}
	}
	vecs, n, labels, err := in.encode(c)
	if err != nil {
		return nil, err
	}
	sk, evk, err := loadKeys(keyDir, p, budget.MaxKeyBytes)
	if err != nil {
		return nil, err
	}
	if err := evk.CheckCovers(c.Planned.Keys.KeySpec()); err != nil {
		return nil, fmt.Errorf("keys in %s do not cover circuit %s: %w", keyDir, circuitPath, err)
	}
	client, err := he.NewClient(p, sk)
	if err != nil {
		return nil, err
	}
	rep, dec, err := circuit.Bench(c, p, evk, client, vecs, circuit.ExecOptions{Workers: workers})
	if err != nil {
		return nil, err
	}
	got, err := c.DecodeLogits(dec, n)
	if err != nil {
		return nil, err
	}
	sims := make([][]float64, len(vecs))
	for i, v := range vecs {
		if sims[i], _, err = c.Simulate(v, circuit.SimOptions{}); err != nil {
			return nil, fmt.Errorf("simulate: %w", err)
		}
	}
	want, err := c.DecodeLogits(sims, n)
	if err != nil {
		return nil, err
	}
	return &encryptedRun{circuit: c, report: rep, got: got, want: want, labels: labels}, nil
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

// perPosition splits each input's logits (positions × outputs) into one row
// per position.
func perPosition(rows [][]float64, outputs int) [][]float64 {
	var out [][]float64
	for _, r := range rows {
		for i := 0; i+outputs <= len(r); i += outputs {
			out = append(out, r[i:i+outputs])
		}
	}
	return out
}

// agreement counts the predictions (per input, or per position for a byte
// LM) on which the decrypted logits and the plaintext ones pick the same
// class.
func (r *encryptedRun) agreement() (agree, total int) {
	got, want := r.got, r.want
	if r.circuit.Task != model.TaskMNIST {
		got, want = perPosition(got, r.circuit.Layout.Outputs), perPosition(want, r.circuit.Layout.Outputs)
	}
	for i := range got {
		if argmax(got[i]) == argmax(want[i]) {
			agree++
		}
	}
	return agree, len(got)
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func printPredictions(w io.Writer, run *encryptedRun) error {
	c, rep, got, want, labels := run.circuit, run.report, run.got, run.want, run.labels
	if c.Task != model.TaskMNIST { // one row of next-byte logits per position
		got, want = perPosition(got, c.Layout.Outputs), perPosition(want, c.Layout.Outputs)
	}
	var agree, correct int
	var maxErr float64
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if c.Task == model.TaskMNIST {
		fmt.Fprintln(tw, "input\tlabel\tencrypted\tplaintext\tmax |logit error|\t")
	} else {
		fmt.Fprintln(tw, "position\tencrypted next byte\tplaintext next byte\tmax |logit error|\t")
	}
	for i := range got {
		e, p := argmax(got[i]), argmax(want[i])
		var err float64
		for j := range got[i] {
			err = math.Max(err, math.Abs(got[i][j]-want[i][j]))
		}
		maxErr = math.Max(maxErr, err)
		if e == p {
			agree++
		}
		if c.Task == model.TaskMNIST {
			if labels != nil && e == labels[i] {
				correct++
			}
			fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%.2e\t\n", i, labels[i], e, p, err)
		} else if i == len(got)-1 || len(got) <= 8 {
			fmt.Fprintf(tw, "%d\t%q\t%q\t%.2e\t\n", i, rune(e), rune(p), err)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := checkOutputs(run); err != nil {
		fmt.Fprintf(w, "FAILED: %v\n", err)
		return err
	}
	fmt.Fprintf(w, "encrypted = plaintext prediction on %d of %d; max |logit error| %.3e (predicted log2 error %.1f)\n",
		agree, len(got), maxErr, rep.PredictedLog2Err)
	if c.Task == model.TaskMNIST && labels != nil {
		fmt.Fprintf(w, "encrypted accuracy %d/%d\n", correct, len(got))
	}
	fmt.Fprintf(w, "evaluation %.2f s wall, %.3f s per input amortized\n", float64(rep.WallNs)/1e9, float64(rep.PerInputNs)/1e9)
	return nil
}

// outputErrorMarginBits is how far (in bits) the measured logit error may
// exceed the dry run's predicted error before the run counts as failed (the
// recorded runs are within one bit of the prediction).
const outputErrorMarginBits = 6

// checkOutputs reports a failure when a decrypted or plaintext logit is NaN
// or infinite, or when the largest |encrypted - plaintext| logit error is
// beyond the predicted error bound (2^(predicted log2 error + 6); 1 when the
// dry run made no prediction): such a run never counts as agreement.
func checkOutputs(run *encryptedRun) error {
	bad, where := 0, ""
	maxErr := 0.0
	for i := range run.got {
		for j := range run.got[i] {
			g, w := run.got[i][j], run.want[i][j]
			if math.IsNaN(g) || math.IsInf(g, 0) || math.IsNaN(w) || math.IsInf(w, 0) {
				if bad == 0 {
					where = fmt.Sprintf("input %d logit %d: encrypted %g, plaintext %g", i, j, g, w)
				}
				bad++
				continue
			}
			maxErr = math.Max(maxErr, math.Abs(g-w))
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d decrypted or plaintext logits are NaN or infinite (first: %s): the encrypted result is invalid", bad, where)
	}
	pred := run.report.PredictedLog2Err
	bound, what := 1.0, "1 (no predicted error)"
	if !math.IsNaN(pred) && !math.IsInf(pred, 0) {
		bound = math.Exp2(pred + outputErrorMarginBits)
		what = fmt.Sprintf("2^%.1f (predicted 2^%.1f + %d bits)", pred+outputErrorMarginBits, pred, outputErrorMarginBits)
	}
	if maxErr > bound {
		return fmt.Errorf("max |encrypted - plaintext logit| %.3e exceeds the error bound %s: the encrypted result is wrong", maxErr, what)
	}
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
			rep := run.report
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
			if err := checkOutputs(run); err != nil {
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

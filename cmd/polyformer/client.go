package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
)

type clientFlags struct {
	server, circuit, keys, input string
	tokenFile, caCert            string
	in                           inferInputs
	asJSON, insecure             bool
	maxKeyBytes                  uint64
	chunk                        int64
}

func newClientCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "client --server URL [--circuit ID] --keys DIR (--mnist N | --text S | --input FILE) [--json] [--insecure]",
		Short: "Private inference against a polyformer server: keys stay here, only ciphertexts travel",
		Long: "Reads the circuit's public description from the server and checks it (security computed\n" +
			"from the parameters, key spec recomputed from the op graph, key budget), generates keys\n" +
			"in --keys when it has none (the secret key never leaves this machine), uploads the\n" +
			"evaluation keys once (skipped when the server has them; resumable), encrypts the inputs,\n" +
			"sends them, decrypts the answers and prints the predictions. --input FILE is JSON:\n" +
			"{\"images\": [[pixels...]], \"rows\": R, \"cols\": C} or {\"text\": \"...\"}.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runClient(cmd.OutOrStdout(), cmd.ErrOrStderr(), &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.server, "server", "", "server URL, e.g. https://host:8443 (required)")
	fl.StringVar(&f.circuit, "circuit", "", "circuit id (default: the only circuit served)")
	fl.StringVar(&f.keys, "keys", "", "key directory: used if it holds keys for the circuit, else keys are generated there (required)")
	fl.StringVar(&f.input, "input", "", "JSON input file (images or text)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the server's bearer token")
	fl.StringVar(&f.caCert, "ca-cert", "", "PEM certificate(s) to verify the server with (default: system roots)")
	fl.BoolVar(&f.asJSON, "json", false, "print JSON")
	fl.BoolVar(&f.insecure, "insecure", false, "accept circuits on parameters below 128-bit security (tests only)")
	fl.Uint64Var(&f.maxKeyBytes, "max-key-bytes", circuit.DefaultMaxKeyBytes, "refuse circuits whose evaluation keys exceed this")
	fl.Int64Var(&f.chunk, "chunk-bytes", 64<<20, "key upload chunk size (resumable)")
	f.in.register(cmd)
	return cmd
}

func runClient(out, errw io.Writer, f *clientFlags) error {
	if f.server == "" || f.keys == "" {
		return errors.New("client: --server URL and --keys DIR are required")
	}
	opt := client.Options{ChunkSize: f.chunk, Logf: func(format string, args ...any) { fmt.Fprintf(errw, "client: "+format+"\n", args...) }}
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		opt.Token = strings.TrimSpace(string(b))
	}
	if f.caCert != "" {
		pem, err := os.ReadFile(f.caCert)
		if err != nil {
			return fmt.Errorf("client: %w", err)
		}
		opt.RootCAs = x509.NewCertPool()
		if !opt.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client: no certificate in %s", f.caCert)
		}
	}
	res, err := clientSession(f, opt, errw, !f.asJSON)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return res.print(out)
}

// encode turns the flags into encoded inputs for the verified circuit's skeleton.
func (f *clientFlags) encode(c *circuit.Circuit) (*pipeline.Inputs, error) {
	if f.input == "" {
		return f.in.encode(c)
	}
	if f.in.mnist > 0 || f.in.text != "" {
		return nil, errors.New("--input and --mnist/--text are exclusive")
	}
	return pipeline.ReadInputFile(f.input, c)
}

// clientResult is what `polyformer client` prints.
type clientResult struct {
	Server        string             `json:"server"`
	Circuit       string             `json:"circuit"`
	Preset        string             `json:"preset"`
	Task          string             `json:"task"`
	KeyBudget     circuit.KeyBudget  `json:"key_budget"`
	KeysGenerated bool               `json:"keys_generated"`
	KeygenSec     float64            `json:"keygen_seconds"`
	KeySet        string             `json:"key_set"`
	KeyBytes      int64              `json:"key_bytes"`
	Uploaded      int64              `json:"key_bytes_uploaded"`
	UploadSec     float64            `json:"upload_seconds"`
	Predictions   []clientPrediction `json:"predictions"`
	Stats         clientStats        `json:"stats"`
}

type clientPrediction struct {
	Input      int       `json:"input"`
	Label      *int      `json:"label,omitempty"`
	Prediction int       `json:"prediction"`
	Outputs    []float64 `json:"outputs"`
}

type clientStats struct {
	EncryptSec    float64 `json:"encrypt_seconds"`
	RequestSec    float64 `json:"request_seconds"`
	ServerEvalSec float64 `json:"server_eval_seconds"`
	DecryptSec    float64 `json:"decrypt_seconds"`
	BytesSent     int64   `json:"bytes_sent"`
	BytesReceived int64   `json:"bytes_received"`
	Requests      int     `json:"requests"`
}

func (r *clientResult) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if r.Task == model.TaskMNIST {
		fmt.Fprintln(tw, "input\tlabel\tprediction\t")
	} else {
		fmt.Fprintln(tw, "position\tnext byte\t")
	}
	for _, p := range r.Predictions {
		if r.Task == model.TaskMNIST {
			label := "-"
			if p.Label != nil {
				label = fmt.Sprint(*p.Label)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t\n", p.Input, label, p.Prediction)
		} else {
			fmt.Fprintf(tw, "%d\t%q\t\n", p.Input, rune(p.Prediction))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.Stats
	fmt.Fprintf(w, "circuit %.16s (%s): keys %s (%.2f MB, %.2f MB uploaded in %.2f s); %d request(s): encrypt %.2f s, round trip %.2f s (server evaluation %.2f s), decrypt %.2f s; sent %.2f MB, received %.2f MB\n",
		r.Circuit, r.Preset, r.KeySet[:16], float64(r.KeyBytes)/1e6, float64(r.Uploaded)/1e6, r.UploadSec, s.Requests,
		s.EncryptSec, s.RequestSec, s.ServerEvalSec, s.DecryptSec, float64(s.BytesSent)/1e6, float64(s.BytesReceived)/1e6)
	return nil
}

// clientSession runs the client protocol (pipeline.RunRemote) with the
// flags' inputs and policy. With progress, key generation and upload show
// progress bars on errw.
func clientSession(f *clientFlags, opt client.Options, errw io.Writer, progress bool) (*clientResult, error) {
	var spinner, bar *progressbar.ProgressBar
	ro := pipeline.RemoteOptions{
		Client: opt, Policy: client.Policy{AllowInsecure: f.insecure, MaxKeyBytes: f.maxKeyBytes},
		CircuitID: f.circuit, KeyDir: pipeline.KeyDir(f.keys), Encode: f.encode,
		BeforeKeygen: func(v *client.Verified) {
			fmt.Fprintf(errw, "client: generating keys for circuit %.16s (%s): %s\n", v.Info.ID, v.Params.Name(), v.Budget)
			if !progress {
				return
			}
			spinner = progressbar.NewOptions(-1, progressbar.OptionSetWriter(errw), progressbar.OptionSetDescription("keygen"),
				progressbar.OptionSpinnerType(14), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
			go func() {
				for spinner != nil && !spinner.IsFinished() {
					_ = spinner.Add(1)
					time.Sleep(100 * time.Millisecond)
				}
			}()
		},
		KeysReady: func(*client.Keys) {
			if spinner != nil {
				_ = spinner.Finish()
			}
		},
		UploadProgress: func(done, total int64) {
			if !progress {
				return
			}
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(errw), progressbar.OptionSetDescription("upload keys"),
					progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish())
			}
			_ = bar.Set64(done)
		},
	}
	r, err := pipeline.RunRemote(context.Background(), f.server, ro)
	if spinner != nil {
		_ = spinner.Finish()
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return nil, err
	}
	v, keys, up, st := r.Verified, r.Keys, r.Upload, r.Stats
	res := &clientResult{Server: r.Server, Circuit: v.Info.ID, Preset: v.Params.Name(), Task: v.Info.Task, KeyBudget: v.Budget,
		KeysGenerated: keys.Generated, KeygenSec: keys.KeygenDur.Seconds(), KeySet: keys.ID, KeyBytes: keys.Size,
		Uploaded: up.Sent, UploadSec: up.Duration.Seconds(),
		Stats: clientStats{EncryptSec: st.Encrypt.Seconds(), RequestSec: st.Request.Seconds(), ServerEvalSec: st.ServerEval.Seconds(),
			DecryptSec: st.Decrypt.Seconds(), BytesSent: st.BytesSent, BytesReceived: st.BytesReceived, Requests: st.Requests}}
	labels := r.Inputs.Labels
	for i, row := range r.Rows() {
		p := clientPrediction{Input: i, Prediction: pipeline.Argmax(row), Outputs: row}
		if labels != nil && i < len(labels) {
			l := labels[i]
			p.Label = &l
		}
		res.Predictions = append(res.Predictions, p)
	}
	return res, nil
}

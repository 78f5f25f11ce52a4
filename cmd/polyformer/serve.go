package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// serveFlags are the flags of `polyformer serve`.
type serveFlags struct {
	circuits, store, addr              string
	tlsCert, tlsKey, tokenFile         string
	s3Endpoint, s3Bucket, s3Prefix     string
	s3Region, logFormat                string
	insecurePlaintext, insecure, s3TLS bool
	maxConcurrent, maxQueue, workers   int
	maxCiphertexts                     int
	keyCacheBytes, maxKeyBytes         int64
	maxInferBytes                      int64
	evalTimeout, bodyIdle, readHeader  time.Duration
	idle, shutdown, uploadExpiry       time.Duration
}

func newServeCommand() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve --circuits DIR --store DIR --addr HOST:PORT [flags]",
		Short: "Serve encrypted inference over HTTP (circuits, key uploads, inference on ciphertexts)",
		Long: "Serves every *.circuit file of --circuits over the protocol of docs/protocol.md: clients\n" +
			"read the circuits' public descriptions (no weights), upload evaluation keys (content-\n" +
			"addressed, resumable) to the key store, and send ciphertexts to evaluate. The server\n" +
			"never sees a secret key or a plaintext. HTTPS with HTTP/2 given --tls-cert and --tls-key;\n" +
			"plain HTTP only on a loopback address or with --insecure-plaintext. The key store is a\n" +
			"directory (--store) or an S3-compatible bucket (--s3-endpoint, --s3-bucket; credentials\n" +
			"from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) shared by several replicas.\n" +
			"SIGTERM or SIGINT stops accepting requests and finishes those in flight.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runServe(ctx, &f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.circuits, "circuits", "", "directory of *.circuit files to serve (required)")
	fl.StringVar(&f.store, "store", "", "key store directory (content-addressed; or use --s3-*)")
	fl.StringVar(&f.addr, "addr", "127.0.0.1:8443", "listen address HOST:PORT")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key (PEM)")
	fl.BoolVar(&f.insecurePlaintext, "insecure-plaintext", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating proxy only)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token clients must send (none: no authentication)")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", "", "S3-compatible endpoint host:port (key store in a bucket)")
	fl.StringVar(&f.s3Bucket, "s3-bucket", "", "S3 bucket")
	fl.StringVar(&f.s3Prefix, "s3-prefix", "polyformer", "S3 object key prefix")
	fl.StringVar(&f.s3Region, "s3-region", "", "S3 region")
	fl.BoolVar(&f.s3TLS, "s3-tls", true, "use TLS to the S3 endpoint")
	fl.IntVar(&f.maxConcurrent, "max-concurrent", 0, "evaluations at once (0: the number of cores)")
	fl.IntVar(&f.maxQueue, "max-queue", 0, "admitted requests waiting beyond --max-concurrent before 503 (0: 4x --max-concurrent)")
	fl.IntVar(&f.workers, "workers", 0, "goroutines per evaluation (0: cores / --max-concurrent)")
	fl.IntVar(&f.maxCiphertexts, "max-ciphertexts", 64, "ciphertexts per infer request")
	fl.Int64Var(&f.keyCacheBytes, "key-cache-bytes", 8<<30, "memory for loaded key sets (LRU)")
	fl.Int64Var(&f.maxKeyBytes, "max-key-bytes", 16<<30, "largest key set accepted")
	fl.Int64Var(&f.maxInferBytes, "max-infer-bytes", 1<<30, "largest infer request body")
	fl.DurationVar(&f.evalTimeout, "eval-timeout", 10*time.Minute, "per-request evaluation deadline")
	fl.DurationVar(&f.bodyIdle, "body-idle-timeout", 30*time.Second, "fail a request body that sends nothing for this long")
	fl.DurationVar(&f.readHeader, "read-header-timeout", 10*time.Second, "time to read request headers")
	fl.DurationVar(&f.idle, "idle-timeout", 2*time.Minute, "keep-alive idle timeout")
	fl.DurationVar(&f.shutdown, "shutdown-timeout", 15*time.Minute, "on SIGTERM, wait this long for in-flight requests")
	fl.DurationVar(&f.uploadExpiry, "upload-expiry", 24*time.Hour, "abort staged key uploads with no chunk for this long (0: never)")
	fl.BoolVar(&f.insecure, "insecure", false, "serve circuits on presets below 128-bit security (tests only)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json (stderr)")
	return cmd
}

// serveReadyKey is the context key of a func(net.Addr) that `serve` calls
// once it listens (tests serve on 127.0.0.1:0 and need the port).
type serveReadyKey struct{}

// runServe serves until ctx is done; the log goes to logw.
func runServe(ctx context.Context, f *serveFlags, logw io.Writer) error {
	var h slog.Handler
	switch f.logFormat {
	case "json":
		h = slog.NewJSONHandler(logw, nil)
	case "text":
		h = slog.NewTextHandler(logw, nil)
	default:
		return fmt.Errorf("serve: --log-format %q: want text or json", f.logFormat)
	}
	log := slog.New(h)
	if f.circuits == "" {
		return errors.New("serve: --circuits DIR is required")
	}
	// Flag errors before anything is loaded or opened.
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("serve: --tls-cert and --tls-key go together")
	}
	if f.tlsCert == "" {
		if err := server.CheckPlaintext(f.addr, f.insecurePlaintext); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	if f.uploadExpiry < 0 {
		return fmt.Errorf("serve: --upload-expiry %s is negative (0 disables the expiry)", f.uploadExpiry)
	}
	ready, _ := ctx.Value(serveReadyKey{}).(func(net.Addr))
	store, err := openStore(ctx, f)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	circuits, err := server.LoadCircuits(f.circuits, f.insecure, f.maxCiphertexts)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	for _, c := range circuits {
		log.Info("circuit", "id", c.ID, "task", c.Circuit.Task, "preset", c.Params.Name(), "inputs_per_ciphertext", c.Circuit.Layout.Batch)
	}
	var token string
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return fmt.Errorf("serve: token file %s is empty", f.tokenFile)
		}
	}
	expiry := f.uploadExpiry
	if expiry == 0 {
		expiry = -1 // never
	}
	s, err := server.New(server.Config{
		Circuits: circuits, Store: store, Cache: server.NewKeyCache(f.keyCacheBytes),
		MaxConcurrent: f.maxConcurrent, MaxQueue: f.maxQueue, Workers: f.workers,
		MaxKeyBytes: f.maxKeyBytes, MaxInferBytes: f.maxInferBytes, MaxCiphertexts: f.maxCiphertexts,
		EvalTimeout: f.evalTimeout, BodyIdleTimeout: f.bodyIdle, Token: token, Logger: log, UploadExpiry: expiry,
	})
	if err != nil {
		return err
	}
	return s.ListenAndServe(ctx, server.ListenConfig{
		Addr: f.addr, TLSCert: f.tlsCert, TLSKey: f.tlsKey, InsecurePlaintext: f.insecurePlaintext,
		ReadHeaderTimeout: f.readHeader, IdleTimeout: f.idle, ShutdownTimeout: f.shutdown, Ready: ready,
	})
}

func openStore(ctx context.Context, f *serveFlags) (keystore.Store, error) {
	switch {
	case f.store != "" && f.s3Bucket != "":
		return nil, errors.New("--store and --s3-bucket are exclusive")
	case f.store != "":
		return keystore.NewDir(f.store)
	case f.s3Bucket != "":
		return keystore.NewS3(ctx, keystore.S3Config{Endpoint: f.s3Endpoint, Bucket: f.s3Bucket, Prefix: f.s3Prefix,
			AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"), Region: f.s3Region, UseTLS: f.s3TLS})
	}
	return nil, errors.New("a key store is required: --store DIR or --s3-endpoint/--s3-bucket")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/internal/testcircuit"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
)

// toyCircuit writes testcircuit.Toy (seed 7) to path and returns it.
func toyCircuit(t *testing.T, path string) *circuit.Circuit {
	t.Helper()
	pc, _, err := testcircuit.Toy(7)
	require.NoError(t, err)
	require.NoError(t, circuit.WriteCircuitFile(path, pc, false))
	return pc
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServeCLI runs `polyformer serve ARGS` in process until the test
// ends; it returns the server's URL (the address is 127.0.0.1:0 unless args
// say otherwise) and its log.
func startServeCLI(t *testing.T, args ...string) (string, *syncBuffer, func() error) {
	t.Helper()
	root := newRootCommand()
	logs := &syncBuffer{}
	root.SetOut(logs)
	root.SetErr(logs)
	root.SetArgs(append([]string{"serve", "--addr", "127.0.0.1:0"}, args...))
	addr := make(chan net.Addr, 1)
	ctx, cancel := context.WithCancel(context.Background())
	ctx = context.WithValue(ctx, serveReadyKey{}, func(a net.Addr) { addr <- a })
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	stop := sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = stop() })
	select {
	case a := <-addr:
		return "http://" + a.String(), logs, stop
	case err := <-done:
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(time.Minute):
		t.Fatalf("serve did not listen within a minute\n%s", logs)
	}
	return "", nil, nil
}

// TestServeClientCLI: `serve` on 127.0.0.1 with a test-preset circuit, then
// `client` against it (text and JSON): the predictions are the plaintext
// circuit's; the second run reuses the keys and uploads nothing.
func TestServeClientCLI(t *testing.T) {
	dir := t.TempDir()
	circuits, store := filepath.Join(dir, "circuits"), filepath.Join(dir, "store")
	require.NoError(t, os.Mkdir(circuits, 0o755))
	c := toyCircuit(t, filepath.Join(circuits, "toy.circuit"))
	url, logs, stop := startServeCLI(t, "--circuits", circuits, "--store", store, "--insecure", "--log-format", "json")

	// Three 4x4 images and their plaintext predictions (float64 simulator).
	r := mrand.New(mrand.NewPCG(3, 4))
	images := make([][]float64, 3)
	var px []float64
	for i := range images {
		images[i] = make([]float64, 16)
		for j := range images[i] {
			images[i][j] = r.Float64()
		}
		px = append(px, images[i]...)
	}
	vecs, err := c.EncodeImages(px, 3, 4, 4)
	require.NoError(t, err)
	sims := make([][]float64, len(vecs))
	for i, v := range vecs {
		sims[i], _, err = c.Simulate(v, circuit.SimOptions{})
		require.NoError(t, err)
	}
	want, err := c.DecodeLogits(sims, 3)
	require.NoError(t, err)
	input := filepath.Join(dir, "input.json")
	b, err := json.Marshal(pipeline.InputFile{Images: images, Rows: 4, Cols: 4})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(input, b, 0o644))

	keys := filepath.Join(dir, "keys")
	out, err := runCLI(t, "client", "--server", url, "--keys", keys, "--input", input, "--insecure")
	require.NoError(t, err, out)
	for i := range want {
		require.Regexp(t, regexp.MustCompile(`(?m)^`+strconv.Itoa(i)+` +- +`+strconv.Itoa(pipeline.Argmax(want[i]))+` *$`), out, "input %d", i)
	}
	// a non-zero upload (seeded, leveled keys of this tiny circuit are under 1 MB)
	require.Regexp(t, `circuit [0-9a-f]{16} \(test-n12\): keys [0-9a-f]{16} \([\d.]+ MB, (?:[1-9][\d.]*|0\.\d*[1-9]\d*) MB uploaded in [\d.]+ s\); 1 request\(s\)`, out)
	st, err := os.Stat(filepath.Join(keys, client.SecretKeyFile))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	out, err = runCLI(t, "client", "--server", url, "--keys", keys, "--input", input, "--insecure", "--json")
	require.NoError(t, err, out)
	var res clientResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.False(t, res.KeysGenerated, "the keys of the first run are reused")
	require.Zero(t, res.Uploaded, "the server already holds them")
	require.Len(t, res.Predictions, 3)
	for i, p := range res.Predictions {
		require.Equal(t, pipeline.Argmax(want[i]), p.Prediction, "input %d", i)
		for j := range want[i] {
			require.InDelta(t, want[i][j], p.Outputs[j], 1e-4)
		}
	}

	// The client refuses a test preset without --insecure; --input and --mnist are exclusive.
	_, err = runCLI(t, "client", "--server", url, "--keys", filepath.Join(dir, "k2"), "--input", input)
	require.ErrorContains(t, err, "secur")
	_, err = os.Stat(filepath.Join(dir, "k2", client.SecretKeyFile))
	require.True(t, os.IsNotExist(err), "no key generated for a refused circuit")
	_, err = runCLI(t, "client", "--server", url, "--keys", keys, "--input", input, "--mnist", "2", "--insecure")
	require.ErrorContains(t, err, "exclusive")

	require.NoError(t, stop(), "SIGTERM-like shutdown is clean")
	require.Contains(t, logs.String(), `"msg":"listening"`)
	require.Contains(t, logs.String(), `"msg":"stopped"`)
}

// TestServeTokenCLI: with --token-file the client needs the same token.
func TestServeTokenCLI(t *testing.T) {
	dir := t.TempDir()
	circuits := filepath.Join(dir, "circuits")
	require.NoError(t, os.Mkdir(circuits, 0o755))
	toyCircuit(t, filepath.Join(circuits, "toy.circuit"))
	tok := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tok, []byte("s3cret-token\n"), 0o600))
	url, _, _ := startServeCLI(t, "--circuits", circuits, "--store", filepath.Join(dir, "store"), "--insecure", "--token-file", tok)
	input := filepath.Join(dir, "input.json")
	require.NoError(t, os.WriteFile(input, []byte(`{"images": [[0,1,0,1,0,1,0,1,0,1,0,1,0,1,0,1]], "rows": 4, "cols": 4}`), 0o644))

	_, err := runCLI(t, "client", "--server", url, "--keys", filepath.Join(dir, "keys"), "--input", input, "--insecure")
	require.ErrorContains(t, err, "bearer token")
	out, err := runCLI(t, "client", "--server", url, "--keys", filepath.Join(dir, "keys"), "--input", input, "--insecure", "--token-file", tok)
	require.NoError(t, err, out)
	require.Regexp(t, `(?m)^0 +- +\d`, out)
}

// TestServeFlagErrors: flag errors are one-line errors reached before
// anything listens.
func TestServeFlagErrors(t *testing.T) {
	dir := t.TempDir()
	circuits, store := filepath.Join(dir, "circuits"), filepath.Join(dir, "store")
	require.NoError(t, os.Mkdir(circuits, 0o755))
	toyCircuit(t, filepath.Join(circuits, "toy.circuit"))
	serve := func(args ...string) error {
		t.Helper()
		out, err := runCLI(t, append([]string{"serve"}, args...)...)
		require.Error(t, err, out)
		require.NotContains(t, err.Error(), "\n")
		require.NotContains(t, out, "listening")
		return err
	}
	base := []string{"--circuits", circuits, "--store", store, "--insecure"}
	for _, addr := range []string{"0.0.0.0:0", "192.0.2.1:8443", ":8443"} {
		err := serve(append(base, "--addr", addr)...)
		require.ErrorContains(t, err, "--insecure-plaintext", addr)
		require.ErrorContains(t, err, "not a loopback address", addr)
	}
	require.ErrorContains(t, serve(append(base, "--tls-cert", filepath.Join(dir, "cert.pem"))...), "--tls-cert and --tls-key go together")
	require.ErrorContains(t, serve(append(base, "--tls-key", filepath.Join(dir, "key.pem"))...), "--tls-cert and --tls-key go together")
	require.ErrorContains(t, serve(append(base, "--addr", "127.0.0.1:0", "--tls-cert", filepath.Join(dir, "no.pem"), "--tls-key", filepath.Join(dir, "no.pem"))...), "no.pem")
	require.ErrorContains(t, serve("--store", store), "--circuits DIR is required")
	require.ErrorContains(t, serve("--circuits", circuits, "--insecure"), "a key store is required")
	require.ErrorContains(t, serve(append(base, "--s3-bucket", "b")...), "exclusive")
	require.ErrorContains(t, serve("--circuits", circuits, "--store", store), "--insecure")
	require.ErrorContains(t, serve("--circuits", dir, "--store", store, "--insecure"), "no .circuit files")
	require.ErrorContains(t, serve(append(base, "--log-format", "xml")...), "--log-format")
	require.ErrorContains(t, serve(append(base, "--upload-expiry", "-1h")...), "--upload-expiry")
	require.ErrorContains(t, serve(append(base, "--token-file", filepath.Join(dir, "none"))...), "none")

	client := func(args ...string) error {
		t.Helper()
		out, err := runCLI(t, append([]string{"client"}, args...)...)
		require.Error(t, err, out)
		require.NotContains(t, err.Error(), "\n")
		return err
	}
	require.ErrorContains(t, client("--keys", dir), "--server URL and --keys DIR are required")
	require.ErrorContains(t, client("--server", "http://127.0.0.1:1"), "--server URL and --keys DIR are required")
	require.ErrorContains(t, client("--server", "ftp://127.0.0.1:1", "--keys", dir), "want http(s)://HOST:PORT")
	require.ErrorContains(t, client("--server", "https://127.0.0.1:1", "--keys", dir, "--ca-cert", filepath.Join(dir, "none.pem")), "none.pem")
}

package main

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/pipeline"
	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// demoCheckpoint is a small MNIST classifier trained by this toolkit:
//
//	polyformer train --task mnist --width 32 --heads 2 --hidden 64 --depth 1 \
//	  --attention power-fixed --p 2 --activation quad --steps 3000 --out demo
//
// (95.27% test accuracy, exact = poly mode; train-summary.json).
//
//go:embed demodata/config.json demodata/model.safetensors
var demoCheckpoint embed.FS

// extractDemoCheckpoint writes the embedded checkpoint to a fresh directory.
func extractDemoCheckpoint() (string, error) {
	dir, err := os.MkdirTemp("", "polyformer-demo-")
	if err != nil {
		return "", err
	}
	for _, name := range []string{checkpoint.ConfigFile, "model.safetensors"} {
		b, err := demoCheckpoint.ReadFile("demodata/" + name)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// runPipelineDemo runs the real client/server split on the embedded model:
// the server (service/server) listens on a loopback port of this process
// with a temporary key store; the client (service/client) talks to it over
// HTTP: it fetches the circuit description, verifies it, generates keys
// locally (the secret key never leaves the client; the evaluation keys are
// written to a file and dropped from memory), uploads the evaluation keys,
// encrypts, asks for the inference, decrypts, and compares with the
// plaintext (float64 simulator = poly-mode) predictions. After the HTTP run
// the server stops and the same circuit is evaluated in this process with
// the same keys, for the per-layer breakdown (which needs the secret key to
// decrypt intermediate values) and to measure the service's overhead.
//
// The MNIST test images are loaded and validated first: a missing or
// corrupt data directory is reported before anything is compiled or any key
// is generated. The demo fails unless every encrypted prediction equals the
// plaintext one.
func runPipelineDemo(out io.Writer, preset string, insecure bool, images int, dataDir string) error {
	start := time.Now()
	if preset != "" {
		if _, err := pipeline.ResolvePreset(preset, insecure); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	// Client and server share this process: the live heap is mostly the
	// evaluation keys (pointer-free, cheap to mark), so a tighter GC target
	// bounds the peak at little cost.
	defer debug.SetGCPercent(debug.SetGCPercent(demoGCPercent))
	in := inferInputs{mnist: images, dataDir: dataDir}
	if _, err := in.loadImages(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dir, err := extractDemoCheckpoint()
	if err != nil {
		return fmt.Errorf("demo: embedded checkpoint: %w", err)
	}
	defer os.RemoveAll(dir)
	m, err := pipeline.LoadForCompile(dir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "== model: MNIST ViT, width %d, %d block(s), %d heads, attention %s (p=%d), activation %s, norm %s\n",
		m.Cfg.Width, m.Cfg.Depth, m.Cfg.Heads, m.Cfg.Attention.Kind, m.Cfg.Attention.P, m.Cfg.Activation, m.Cfg.Norm)

	// Server side, before any key exists: compile and plan.
	var st demoStages
	t0 := time.Now()
	c, p, err := compiler.CompileFor(m, preset, compiler.Options{AllowInsecure: insecure})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var circuitFile bytes.Buffer
	if err := circuit.WriteCircuit(&circuitFile, c); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	st.compile = time.Since(t0)
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "\n== compile (dry run): preset %s, %d levels used of %d, %d key switches per ciphertext, %d rotation keys, keys %.2f GB\n",
		p.Name(), rep.Depth, rep.MaxLevel, rep.KeySwitches, rep.RotationKeys, float64(rep.KeyBytes.Total)/1e9)

	work, err := os.MkdirTemp("", "polyformer-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(work)
	srv, err := startDemoServer(circuitFile.Bytes(), insecure, filepath.Join(work, "server-store"))
	if err != nil {
		return fmt.Errorf("demo: server: %w", err)
	}
	defer srv.stop()
	fmt.Fprintf(out, "== server: listening on %s (in this process; key store %s)\n", srv.url, filepath.Join(work, "server-store"))

	// Client side: everything in RunRemote goes through HTTP.
	r, err := pipeline.RunRemote(context.Background(), srv.url, pipeline.RemoteOptions{
		Policy: client.Policy{AllowInsecure: insecure}, KeyDir: pipeline.KeyDir(filepath.Join(work, "client-keys")), Encode: in.encode,
		// The client's evaluation keys are on disk only now; give their
		// memory back before the server loads its own copy.
		KeysReady: func(*client.Keys) { debug.FreeOSMemory() },
	})
	if err != nil {
		return fmt.Errorf("demo: client: %w", err)
	}
	v, keys, up, ps := r.Verified, r.Keys, r.Upload, r.Stats
	fmt.Fprintf(out, "== client: circuit %.16s fetched and verified (security from the parameters, levels and key spec recomputed from the op graph): %s\n",
		v.Info.ID, v.Budget)
	st.keygen = keys.KeygenDur
	fmt.Fprintf(out, "== client keygen: %.1f s; secret key kept by the client (mode 0600), %.2f GB of evaluation keys written to a file\n",
		st.keygen.Seconds(), float64(keys.Size)/1e9)
	st.upload = up.Duration
	fmt.Fprintf(out, "== upload: %d bytes of evaluation keys sent in %.2f s (%.0f MB/s); key set %.16s\n",
		up.Sent, up.Duration.Seconds(), float64(up.Sent)/1e6/max(up.Duration.Seconds(), 1e-9), keys.ID)

	fmt.Fprintf(out, "== encrypted inference over HTTP on MNIST test images (%d per ciphertext)...\n", c.Layout.Batch)
	st.encrypt, st.request, st.serverEval, st.keyLoad, st.decrypt = ps.Encrypt, ps.Request, ps.ServerEval, ps.KeyLoad, ps.Decrypt
	st.sent, st.received = ps.BytesSent, ps.BytesReceived
	// The plaintext predictions: the float64 simulation of the same circuit.
	want, err := pipeline.Simulate(c, r.Inputs)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if pe, err := circuit.PredictPrecision(c, p, r.Inputs.Vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	rep.WallNs = st.serverEval.Nanoseconds()
	rep.PerInputNs = st.serverEval.Nanoseconds() / int64(max(r.Inputs.N, 1))
	run := pipeline.NewResult(c, rep, r.Logits, want, r.Inputs.Labels)
	if err := printPredictions(out, run); err != nil {
		return err
	}
	agree, total := run.Agreement()

	// In process, after the HTTP run: the same circuit with the same keys
	// (the server's copy, taken from its cache once it has stopped).
	if err := srv.stop(); err != nil {
		return fmt.Errorf("demo: server: %w", err)
	}
	evk, err := srv.cachedKeys(keys.ID)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	debug.FreeOSMemory() // the HTTP run's garbage: the re-run starts from the keys alone
	local, err := pipeline.Run(c, p, evk, keys.Secret, r.Inputs, pipeline.RunOptions{Workers: demoWorkers})
	if err != nil {
		return fmt.Errorf("demo: in-process evaluation: %w", err)
	}
	st.inProcess = time.Duration(local.Report.WallNs)
	st.write(out)
	fmt.Fprintln(out, "\n== per-layer breakdown (in-process re-run after the HTTP run, same circuit and keys; time summed over ciphertexts; error vs the float64 simulator)")
	if err := local.Report.WriteTable(out); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
	if agree != total {
		return fmt.Errorf("demo: encrypted and plaintext predictions differ on %d of %d inputs", total-agree, total)
	}
	return nil
}

// demoGCPercent is the demo's GOGC (see runPipelineDemo).
const demoGCPercent = 25

// demoWorkers is the evaluation parallelism of the demo, on the server and
// in process alike.
const demoWorkers = 2

// demoStages are the demo's measurements.
type demoStages struct {
	compile, keygen, upload, encrypt, request, serverEval, keyLoad, decrypt, inProcess time.Duration
	sent, received                                                                     int64
}

func (s *demoStages) write(w io.Writer) {
	fmt.Fprintf(w, "\n== time per stage: compile %.2f s, keygen %.2f s, upload %.2f s, encrypt %.2f s, evaluate %.2f s (server; HTTP round trip %.2f s), decrypt %.2f s\n",
		s.compile.Seconds(), s.keygen.Seconds(), s.upload.Seconds(), s.encrypt.Seconds(), s.serverEval.Seconds(), s.request.Seconds(), s.decrypt.Seconds())
	transport := s.request - s.serverEval - s.keyLoad
	fmt.Fprintf(w, "== inference request: %.2f MB of ciphertexts sent, %.2f MB received; round trip %.2f s = server evaluation %.2f s + key set loaded from the store %.2f s (first use) + %.2f s transfer and (de)serialization (%.1f%% of the evaluation)\n",
		float64(s.sent)/1e6, float64(s.received)/1e6, s.request.Seconds(), s.serverEval.Seconds(), s.keyLoad.Seconds(), transport.Seconds(),
		100*transport.Seconds()/s.serverEval.Seconds())
	overhead := s.request - s.keyLoad - s.inProcess
	fmt.Fprintf(w, "== service overhead: in-process evaluation of the same circuit with the same keys %.2f s; round trip without the key load %.2f s: %+.2f s (%+.1f%% of the in-process evaluation)\n",
		s.inProcess.Seconds(), (s.request - s.keyLoad).Seconds(), overhead.Seconds(), 100*overhead.Seconds()/s.inProcess.Seconds())
}

// demoServer is the demo's in-process server on a loopback port.
type demoServer struct {
	url   string
	cache *server.KeyCache
	stop  func() error
}

// startDemoServer serves the circuit on 127.0.0.1 (a free port) with a key
// store in storeDir.
func startDemoServer(circuitFile []byte, insecure bool, storeDir string) (*demoServer, error) {
	sc, err := server.NewCircuit(circuitFile, insecure, 0)
	if err != nil {
		return nil, err
	}
	store, err := keystore.NewDir(storeDir)
	if err != nil {
		return nil, err
	}
	cache := server.NewKeyCache(64 << 30)
	s, err := server.New(server.Config{Circuits: []*server.Circuit{sc}, Store: store, Cache: cache, MaxConcurrent: 1, Workers: demoWorkers})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- s.ListenAndServe(ctx, server.ListenConfig{Addr: "127.0.0.1:0", Ready: func(a net.Addr) { addr <- a }})
	}()
	select {
	case a := <-addr:
		return &demoServer{url: "http://" + a.String(), cache: cache,
			stop: sync.OnceValue(func() error { cancel(); return <-done })}, nil
	case err := <-done:
		cancel()
		return nil, err
	}
}

// cachedKeys returns the key set the server loaded (its cache), or loads it
// from the store.
func (d *demoServer) cachedKeys(id string) (*he.EvaluationKeys, error) {
	return d.cache.Get(context.Background(), id, func(ctx context.Context) (*he.EvaluationKeys, int64, error) {
		return nil, 0, fmt.Errorf("key set %.16s is not loaded on the server", id)
	})
}

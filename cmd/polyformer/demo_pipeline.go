package main

import (
	"embed"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/compiler"
	"github.com/polyformer/polyformer/model/checkpoint"
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

// runPipelineDemo compiles the embedded model, generates keys, and runs
// encrypted inference on MNIST test images, printing each stage.
//
// The MNIST test images are loaded and validated first: a missing or
// corrupt data directory is reported before anything is compiled or any key
// is generated. The demo fails unless every encrypted prediction equals the
// plaintext one.
func runPipelineDemo(out io.Writer, preset string, insecure bool, images int, dataDir string) error {
	start := time.Now()
	if preset != "" {
		if _, err := resolvePreset(preset, insecure); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	in := inferInputs{mnist: images, dataDir: dataDir}
	if _, err := in.loadImages(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dir, err := extractDemoCheckpoint()
	if err != nil {
		return fmt.Errorf("demo: embedded checkpoint: %w", err)
	}
	defer os.RemoveAll(dir)
	m, err := checkpoint.Load(dir)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "== model: MNIST ViT, width %d, %d block(s), %d heads, attention %s (p=%d), activation %s, norm %s\n",
		m.Cfg.Width, m.Cfg.Depth, m.Cfg.Heads, m.Cfg.Attention.Kind, m.Cfg.Attention.P, m.Cfg.Activation, m.Cfg.Norm)

	// Server side, before any key exists: compile and plan.
	c, p, err := compiler.CompileFor(m, preset, 0, false)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	rep, err := compiler.NewReport(c, p)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "\n== compile (dry run): preset %s, %d levels used of %d, %d key switches per ciphertext, %d rotation keys, keys %.2f GB\n",
		p.Name(), rep.Depth, rep.MaxLevel, rep.KeySwitches, rep.RotationKeys, float64(rep.KeyBytes.Total)/1e9)

	// Client side: keys. The secret key stays here; the evaluation keys go to the server.
	circuitDir, err := os.MkdirTemp("", "polyformer-demo-keys-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(circuitDir)
	circuitPath := filepath.Join(circuitDir, "model.circuit")
	if err := compiler.WriteCircuitFile(circuitPath, c, false); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	pol := compiler.ClientPolicy{AllowInsecure: insecure}
	budget, err := compiler.VerifyCircuit(c, p, pol)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "== keygen: %s\n", budget)
	t0 := time.Now()
	sk, evk, err := he.GenerateKeys(p, c.Planned.Keys.KeySpec())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	keyDir := filepath.Join(circuitDir, "keys")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := he.WriteSecretKeyFile(filepath.Join(keyDir, secretKeyFile), sk, false); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := he.WriteEvaluationKeysFile(filepath.Join(keyDir, evalKeysFile), evk, false); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	fmt.Fprintf(out, "== keygen: %.1f s; secret key (mode 0600) and %.2f GB of evaluation keys written\n",
		time.Since(t0).Seconds(), float64(evk.SizeBytes())/1e9)

	// Encrypt, evaluate (server: circuit file + evaluation keys), decrypt.
	fmt.Fprintf(out, "== encrypted inference on MNIST test images (%d per ciphertext)...\n", c.Layout.Batch)
	run, err := runEncrypted(circuitPath, keyDir, &in, 2, pol)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := printPredictions(out, run); err != nil {
		return err
	}
	fmt.Fprintln(out, "\n== per-layer breakdown (time summed over ciphertexts; error vs the float64 simulator)")
	if err := run.report.WriteTable(out); err != nil {
		return err
	}
	fmt.Fprintf(out, "\ndemo finished in %s\n", time.Since(start).Round(time.Millisecond))
	if agree, total := run.agreement(); agree != total {
		return fmt.Errorf("demo: encrypted and plaintext predictions differ on %d of %d inputs", total-agree, total)
	}
	return nil
}

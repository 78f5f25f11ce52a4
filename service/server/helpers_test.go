package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/internal/testcircuit"
	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// tinyModel is a calibrated random MNIST-style model (8x8 images, 4 tokens,
// width 8, 2 heads) shallow enough for test-n13 without bootstrapping.
func tinyModel(t testing.TB) (*model.Model, model.Batch) {
	t.Helper()
	c, err := model.DefaultConfig(model.TaskMNIST)
	require.NoError(t, err)
	c.Width, c.Depth, c.Heads, c.Hidden = 8, 1, 2, 16
	c.ImageRows, c.ImageCols, c.Patch, c.Classes = 8, 8, 4, 3
	c.Attention.P = 2
	c.Attention.Eps = 0.5
	c.Activation = nn.ActQuad
	m, err := model.New(c)
	require.NoError(t, err)
	fit := nn.DefaultFitOptions()
	fit.Degree, fit.InitDegree, fit.RelTol, fit.UpperFactor = 7, 3, 2e-2, 1
	require.NoError(t, m.Calibrate([]model.Batch{synthImages(c, 16, 1), synthImages(c, 16, 2)}, fit, nil))
	return m, synthImages(c, 6, 3)
}

// synthImages: the shared synthetic images (internal/testcircuit).
var synthImages = testcircuit.SynthImages

// polyLogits are the plaintext model's poly-mode logits.
func polyLogits(t testing.TB, m *model.Model, b model.Batch) [][]float64 {
	t.Helper()
	require.NoError(t, m.SetMode(nn.ModePoly))
	defer func() { require.NoError(t, m.SetMode(nn.ModeExact)) }()
	lg, err := m.Logits(b)
	require.NoError(t, err)
	k := lg.Cols()
	out := make([][]float64, b.B)
	for i := range out {
		out[i] = append([]float64(nil), lg.Data[i*k:(i+1)*k]...)
	}
	return out
}

var (
	modelOnce    sync.Once
	modelCircuit []byte
	modelM       *model.Model
	modelBatch   model.Batch
)

// modelCircuitFile is the tiny model compiled and planned for test-n13
// (2 images per ciphertext), as circuit file bytes.
func modelCircuitFile(t testing.TB) ([]byte, *model.Model, model.Batch) {
	modelOnce.Do(func() {
		m, b := tinyModel(t)
		c, err := compiler.Compile(m, compiler.CompileOptions{Batch: 2})
		require.NoError(t, err)
		p, err := he.ParametersFromPreset(he.PresetTestN13)
		require.NoError(t, err)
		pc, err := circuit.Plan(c, p, circuit.PlanOptions{})
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, circuit.WriteCircuit(&buf, pc))
		modelCircuit, modelM, modelBatch = buf.Bytes(), m, b
	})
	require.NotNil(t, modelCircuit)
	return modelCircuit, modelM, modelBatch
}

// toyCircuitFile is testcircuit.Toy(seed) as circuit-file bytes.
func toyCircuitFile(t testing.TB, seed uint64) []byte {
	t.Helper()
	pc, _, err := testcircuit.Toy(seed)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, circuit.WriteCircuit(&buf, pc))
	return buf.Bytes()
}

type testServer struct {
	URL    string
	Server *server.Server
	Store  *keystore.Dir
	stop   func() error
	CAPool *x509.CertPool
}

// Stop shuts the server down gracefully and waits for it.
func (ts *testServer) Stop(t testing.TB) { require.NoError(t, ts.stop()) }

// startServer serves the circuits on 127.0.0.1 (TLS with a fresh
// self-signed certificate when tls), with cfg's limits.
func startServer(t testing.TB, circuits [][]byte, tls bool, cfg server.Config) *testServer {
	t.Helper()
	for _, data := range circuits {
		c, err := server.NewCircuit(data, true, cfg.MaxCiphertexts)
		require.NoError(t, err)
		cfg.Circuits = append(cfg.Circuits, c)
	}
	st := cfg.Store
	var dir *keystore.Dir
	if st == nil {
		d, err := keystore.NewDir(t.TempDir())
		require.NoError(t, err)
		dir, cfg.Store = d, d
	}
	if cfg.Cache == nil {
		cfg.Cache = server.NewKeyCache(1 << 30)
	}
	s, err := server.New(cfg)
	require.NoError(t, err)
	lc := server.ListenConfig{Addr: "127.0.0.1:0"}
	ts := &testServer{Server: s, Store: dir}
	done := make(chan error, 1)
	scheme := "http"
	if tls {
		lc.TLSCert, lc.TLSKey, ts.CAPool = selfSigned(t)
		scheme = "https"
	}
	addr := make(chan net.Addr, 1)
	lc.Ready = func(a net.Addr) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- s.ListenAndServe(ctx, lc) }()
	select {
	case a := <-addr:
		ts.URL = scheme + "://" + a.String()
	case err := <-done:
		cancel()
		t.Fatalf("server: %v", err)
	}
	ts.stop = sync.OnceValue(func() error { cancel(); return <-done })
	t.Cleanup(func() { _ = ts.stop() })
	return ts
}

// selfSigned writes a fresh self-signed certificate for 127.0.0.1.
func selfSigned(t testing.TB) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "polyformer test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

// Package server is the HTTP service behind `polyformer serve`: it
// publishes circuits, stores evaluation keys uploaded by clients, and
// evaluates circuits on ciphertexts. It never holds a secret key and never
// decrypts anything (a test checks the package graph for it).
package server

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/keystore"
)

// KeyCache holds loaded key sets, bounded in bytes.
type KeyCache = keystore.Cache[*he.EvaluationKeys]

// NewKeyCache returns a key cache of at most maxBytes of loaded keys.
func NewKeyCache(maxBytes int64) *KeyCache { return keystore.NewCache[*he.EvaluationKeys](maxBytes) }

// Config configures a Server.
type Config struct {
	Circuits []*Circuit
	Store    keystore.Store
	Cache    *KeyCache
	// MaxConcurrent evaluations at once (0: runtime.NumCPU()); MaxQueue
	// requests waiting beyond those (0: 4*MaxConcurrent, <0: none) before
	// 503 with Retry-After.
	MaxConcurrent, MaxQueue int
	// Workers per evaluation (0: 1 when MaxConcurrent > 1, else NumCPU).
	Workers int
	// MaxKeyBytes caps an uploaded key set (0: 16 GiB); MaxInferBytes an
	// infer request body (0: 1 GiB).
	MaxKeyBytes, MaxInferBytes int64
	// MaxCiphertexts per infer request (0: 64).
	MaxCiphertexts int
	// EvalTimeout is the per-request evaluation deadline (0: 10 min).
	EvalTimeout time.Duration
	// BodyIdleTimeout fails a request whose body sends nothing for this
	// long (0: 30 s): slow clients cannot hold a slot.
	BodyIdleTimeout time.Duration
	// RetryAfter is the Retry-After of 503 answers (0: 1 s).
	RetryAfter time.Duration
	// UploadExpiry: staged (unfinished) key uploads whose last chunk is
	// older than this are aborted, when the store lists its uploads
	// (keystore.UploadLister) (0: 24 h; <0: never). ListenAndServe checks
	// every UploadSweep (0: UploadExpiry/4, at most 1 h).
	UploadExpiry, UploadSweep time.Duration
	// Token, when set, is the bearer token every /v1 and /metrics request needs.
	Token  string
	Logger *slog.Logger
	// Registry receives the metrics (nil: a new registry).
	Registry *prometheus.Registry
}

// Server serves the protocol of package api.
type Server struct {
	cfg      Config
	circuits map[string]*Circuit
	list     api.CircuitList
	byFP     map[he.Fingerprint]*he.Parameters
	adm      *admission
	m        *metrics
	log      *slog.Logger
	mux      *http.ServeMux
	draining atomic.Bool
}

// New builds a server.
func New(cfg Config) (*Server, error) {
	if len(cfg.Circuits) == 0 {
		return nil, errors.New("server: no circuits to serve")
	}
	if cfg.Store == nil || cfg.Cache == nil {
		return nil, errors.New("server: a key store and a key cache are required")
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = runtime.NumCPU()
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 4 * cfg.MaxConcurrent
	} else if cfg.MaxQueue < 0 {
		cfg.MaxQueue = 0
	}
	if cfg.Workers <= 0 {
		cfg.Workers = max(1, runtime.NumCPU()/cfg.MaxConcurrent)
	}
	if cfg.MaxKeyBytes <= 0 {
		cfg.MaxKeyBytes = 16 << 30
	}
	if cfg.MaxInferBytes <= 0 {
		cfg.MaxInferBytes = 1 << 30
	}
	if cfg.MaxCiphertexts <= 0 {
		cfg.MaxCiphertexts = 64
	}
	if cfg.EvalTimeout <= 0 {
		cfg.EvalTimeout = 10 * time.Minute
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = 30 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.UploadExpiry == 0 {
		cfg.UploadExpiry = 24 * time.Hour
	}
	if cfg.UploadSweep <= 0 {
		cfg.UploadSweep = min(max(cfg.UploadExpiry/4, time.Millisecond), time.Hour)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg, circuits: map[string]*Circuit{}, byFP: map[he.Fingerprint]*he.Parameters{}, log: cfg.Logger}
	for _, c := range cfg.Circuits {
		if _, dup := s.circuits[c.ID]; dup {
			continue
		}
		c.Info.MaxCiphertexts = cfg.MaxCiphertexts
		s.circuits[c.ID] = c
		s.list.Circuits = append(s.list.Circuits, c.Summary)
		s.byFP[c.Params.Fingerprint()] = c.Params
	}
	s.adm = newAdmission(cfg.MaxConcurrent, cfg.MaxQueue)
	s.m = newMetrics(cfg.Registry, s)
	s.mux = http.NewServeMux()
	handlers := map[string]http.HandlerFunc{
		"GET " + api.PathHealthz:  s.healthz,
		"GET " + api.PathReadyz:   s.readyz,
		"GET " + api.PathMetrics:  promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}).ServeHTTP,
		"GET " + api.PathCircuits: s.listCircuits,
		"GET " + api.PathCircuit:  s.getCircuit,
		"POST " + api.PathInfer:   s.infer,
		"GET " + api.PathKey:      s.keyStatus,
		"PUT " + api.PathKey:      s.putKeys,
	}
	for _, r := range api.Routes {
		h, ok := handlers[r.Pattern()]
		if !ok {
			return nil, fmt.Errorf("server: no handler for %s", r.Pattern())
		}
		s.mux.Handle(r.Pattern(), s.wrap(r, h))
	}
	if len(handlers) != len(api.Routes) {
		return nil, errors.New("server: handlers and api.Routes differ")
	}
	return s, nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Patterns returns the registered route patterns (for the OpenAPI test).
func (s *Server) Patterns() []string {
	var out []string
	for _, r := range api.Routes {
		out = append(out, r.Pattern())
	}
	return out
}

// SetDraining marks the server as shutting down (readyz fails).
func (s *Server) SetDraining() { s.draining.Store(true) }

// --- middleware ---------------------------------------------------------------

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	kind   string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type countingReader struct {
	r io.ReadCloser
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
func (c *countingReader) Close() error { return c.r.Close() }

func (s *Server) wrap(route api.Route, h http.HandlerFunc) http.Handler {
	public := route.Path == api.PathHealthz || route.Path == api.PathReadyz
	label := route.Pattern()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		body := &countingReader{r: r.Body}
		r.Body = body
		if !public && s.cfg.Token != "" && !s.authorized(r) {
			sw.Header().Set("WWW-Authenticate", `Bearer realm="polyformer"`)
			s.fail(sw, http.StatusUnauthorized, api.KindUnauthorized, "missing or wrong bearer token")
		} else {
			h(sw, r)
		}
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.m.observe(label, sw.status, sw.kind, body.n, sw.bytes)
		lvl := slog.LevelInfo
		if sw.status >= 500 {
			lvl = slog.LevelWarn
		}
		attrs := []slog.Attr{slog.String("method", r.Method), slog.String("route", label), slog.Int("status", sw.status),
			slog.Duration("duration", time.Since(start)), slog.Int64("bytes_in", body.n), slog.Int64("bytes_out", sw.bytes),
			slog.String("remote", r.RemoteAddr), slog.String("proto", r.Proto)}
		if id := r.PathValue("id"); id != "" {
			attrs = append(attrs, slog.String("circuit", logID(id)))
		}
		if id := r.PathValue("sha256"); id != "" {
			attrs = append(attrs, slog.String("key_set", logID(id)))
		}
		if sw.kind != "" {
			attrs = append(attrs, slog.String("error_kind", sw.kind))
		}
		s.log.LogAttrs(r.Context(), lvl, "request", attrs...)
	})
}

// logID keeps ids short and printable in logs (they come from clients).
func logID(s string) string {
	if api.ValidID(s) != nil {
		return "invalid"
	}
	return s[:16]
}

func (s *Server) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1
}

func (s *Server) fail(w http.ResponseWriter, status int, kind, msg string) {
	if sw, ok := w.(*statusWriter); ok {
		sw.kind = kind
	}
	w.Header().Set("Content-Type", api.MediaJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(api.Error{Kind: kind, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", api.MediaJSON)
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// idleBody fails reads that wait longer than idle for the next bytes, by
// moving the connection's read deadline forward before each read.
type idleBody struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	n, err := b.r.Read(p)
	if err != nil && errors.Is(err, errDeadline) {
		return n, fmt.Errorf("%w: no request bytes for %s", errSlowClient, b.idle)
	}
	return n, err
}

var errSlowClient = errors.New("client too slow")

func (s *Server) body(w http.ResponseWriter, r *http.Request) io.Reader {
	return &idleBody{r: r.Body, rc: http.NewResponseController(w), idle: s.cfg.BodyIdleTimeout}
}

func (s *Server) clearDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// --- handlers -------------------------------------------------------------------

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.fail(w, http.StatusServiceUnavailable, api.KindOverloaded, "shutting down")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.cfg.Store.Stat(ctx, strings.Repeat("0", 64)); err != nil && !errors.Is(err, keystore.ErrNotFound) {
		s.log.Warn("readyz: key store unreachable", "err", err)
		s.fail(w, http.StatusServiceUnavailable, api.KindInternal, "key store unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "circuits": len(s.circuits)})
}

func (s *Server) listCircuits(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.list)
}

func (s *Server) circuit(w http.ResponseWriter, r *http.Request) *Circuit {
	id := r.PathValue("id")
	if err := api.ValidID(id); err != nil {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, "circuit "+err.Error())
		return nil
	}
	c, ok := s.circuits[id]
	if !ok {
		s.fail(w, http.StatusNotFound, api.KindNotFound, fmt.Sprintf("unknown circuit %s (GET %s lists the circuits served)", id, api.PathCircuits))
		return nil
	}
	return c
}

func (s *Server) getCircuit(w http.ResponseWriter, r *http.Request) {
	if c := s.circuit(w, r); c != nil {
		writeJSON(w, http.StatusOK, c.Info)
	}
}

// --- inference ---------------------------------------------------------------------

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	c := s.circuit(w, r)
	if c == nil {
		return
	}
	keyID := r.URL.Query().Get("keys")
	if keyID == "" {
		keyID = r.Header.Get(api.HeaderKeySet)
	}
	if err := api.ValidID(keyID); err != nil {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, "key set (?keys= or "+api.HeaderKeySet+"): "+err.Error())
		return
	}
	ctx := r.Context()
	if _, err := s.cfg.Store.Stat(ctx, keyID); err != nil {
		if errors.Is(err, keystore.ErrNotFound) {
			s.fail(w, http.StatusNotFound, api.KindUnknownKeys, fmt.Sprintf("key set %s is not stored: upload it with PUT /v1/keys/%s", keyID, keyID))
			return
		}
		s.internal(w, "stat key set", err)
		return
	}
	// Admission: a bounded number of requests in the system.
	if !s.adm.enter() {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, s.cfg.RetryAfter.Round(time.Second)/time.Second))))
		s.fail(w, http.StatusServiceUnavailable, api.KindOverloaded, fmt.Sprintf("server busy (%d evaluations running, queue full): retry later", s.cfg.MaxConcurrent))
		return
	}
	defer s.adm.leave()

	br := bufio.NewReaderSize(s.body(w, r), 1<<20)
	cts, err := he.ReadFreshCiphertexts(br, c.Params, c.Circuit.Planned.InputLevel, s.cfg.MaxCiphertexts, s.cfg.MaxInferBytes)
	if err == nil {
		if _, e := br.ReadByte(); e == nil {
			err = fmt.Errorf("%w after the ciphertexts envelope", he.ErrTrailingData)
		}
	}
	if err != nil {
		s.bodyError(w, "ciphertexts", api.KindBadCiphertext, err)
		return
	}
	s.clearDeadline(w)

	tk := time.Now()
	keys, loaded, err := s.loadKeys(ctx, keyID, c)
	keyLoad := time.Since(tk)
	if !loaded {
		keyLoad = 0
	}
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		s.fail(w, http.StatusUnprocessableEntity, api.KindBadKeys, fmt.Sprintf("key set %s: %v", keyID, err))
		return
	}
	if err := keys.CheckCovers(c.Spec); err != nil {
		s.fail(w, http.StatusUnprocessableEntity, api.KindKeysMissing, fmt.Sprintf("key set %s does not cover circuit %.16s: %v", keyID, c.ID, err))
		return
	}

	if err := s.adm.acquire(ctx); err != nil {
		return // client gone while queued
	}
	ectx, cancel := context.WithTimeout(ctx, s.cfg.EvalTimeout)
	t0 := time.Now()
	x, err := circuit.NewExecutor(c.Circuit, c.Params, keys, circuit.ExecOptions{Workers: s.cfg.Workers, Context: ectx})
	var outs = cts[:0:0]
	if err == nil {
		outs, err = x.Run(cts)
	}
	elapsed := time.Since(t0)
	cancel()
	s.adm.release()
	if err != nil {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			s.fail(w, http.StatusGatewayTimeout, api.KindTimeout, fmt.Sprintf("evaluation exceeded the deadline of %s", s.cfg.EvalTimeout))
		case errors.Is(err, context.Canceled):
			s.log.Info("evaluation canceled: client disconnected", "circuit", c.ID[:16])
		default:
			s.internal(w, "evaluate", err)
		}
		return
	}
	s.m.evalSeconds.WithLabelValues(c.ID[:16]).Observe(elapsed.Seconds())
	w.Header().Set("Content-Type", api.MediaEnvelope)
	w.Header().Set(api.HeaderEvalNanos, strconv.FormatInt(elapsed.Nanoseconds(), 10))
	w.Header().Set(api.HeaderKeyLoadNanos, strconv.FormatInt(keyLoad.Nanoseconds(), 10))
	if err := he.WriteCiphertexts(w, c.Params, outs); err != nil {
		s.log.Warn("write response", "err", err)
	}
}

func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	s.fail(w, http.StatusInternalServerError, api.KindInternal, what+" failed (see the server log)")
}

// bodyError answers a request whose body could not be decoded.
func (s *Server) bodyError(w http.ResponseWriter, what, kind string, err error) {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, errSlowClient) || errors.Is(err, errDeadline):
		s.fail(w, http.StatusRequestTimeout, api.KindTimeout, fmt.Sprintf("%s: %v", what, err))
	case errors.Is(err, he.ErrTooLarge) || errors.As(err, &mbe) || errors.Is(err, keystore.ErrTooLarge):
		s.fail(w, http.StatusRequestEntityTooLarge, api.KindTooLarge, fmt.Sprintf("%s: %v", what, err))
	default:
		s.fail(w, http.StatusBadRequest, kind, fmt.Sprintf("%s: %v", what, err))
	}
}

// loadKeys returns the key set id for circuit c from the cache, loading it
// from the store on a miss (loaded: this request waited for a load).
func (s *Server) loadKeys(ctx context.Context, id string, c *Circuit) (*he.EvaluationKeys, bool, error) {
	var missed atomic.Bool // set by the load, which runs in the cache's goroutine
	keys, err := s.cfg.Cache.Get(ctx, id, func(ctx context.Context) (*he.EvaluationKeys, int64, error) {
		missed.Store(true)
		s.m.cacheMisses.Inc()
		rc, _, err := s.cfg.Store.Open(ctx, id)
		if err != nil {
			return nil, 0, err
		}
		defer rc.Close()
		k, err := he.ReadEvaluationKeys(bufio.NewReaderSize(rc, 1<<20), c.Params)
		if err != nil {
			return nil, 0, err
		}
		return k, int64(k.SizeBytes()), nil
	})
	loaded := missed.Load()
	if err != nil {
		return nil, loaded, err
	}
	if keys.Parameters().Fingerprint() != c.Params.Fingerprint() {
		return nil, loaded, fmt.Errorf("%w: keys made for %s, circuit uses %s", he.ErrFingerprintMismatch, keys.Parameters().Name(), c.Params.Name())
	}
	return keys, loaded, nil
}

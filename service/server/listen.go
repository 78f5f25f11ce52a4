package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"
)

// ListenConfig says how to serve.
type ListenConfig struct {
	Addr string
	// TLSCert and TLSKey are PEM files; with both, the server speaks
	// HTTPS with HTTP/2.
	TLSCert, TLSKey string
	// InsecurePlaintext allows plain HTTP on a non-loopback address.
	InsecurePlaintext bool
	// ReadHeaderTimeout (0: 10 s), IdleTimeout (0: 2 min); ShutdownTimeout
	// bounds the wait for in-flight requests on shutdown (0: 15 min).
	ReadHeaderTimeout, IdleTimeout, ShutdownTimeout time.Duration
	// Ready, if set, receives the bound address once listening.
	Ready func(addr net.Addr)
}

// CheckPlaintext refuses plain HTTP on an address that is not loopback
// unless insecure is set.
func CheckPlaintext(addr string, insecure bool) error {
	if insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("plain HTTP on %q (not a loopback address) would expose ciphertexts, keys and tokens to the network: pass --tls-cert and --tls-key, or --insecure-plaintext behind a TLS-terminating proxy", addr)
}

// ListenAndServe serves until ctx is done, then shuts down gracefully:
// readyz fails at once, listeners close, and in-flight requests finish
// (within ShutdownTimeout).
func (s *Server) ListenAndServe(ctx context.Context, lc ListenConfig) error {
	useTLS := lc.TLSCert != "" || lc.TLSKey != ""
	if useTLS && (lc.TLSCert == "" || lc.TLSKey == "") {
		return errors.New("serve: --tls-cert and --tls-key go together")
	}
	if !useTLS {
		if err := CheckPlaintext(lc.Addr, lc.InsecurePlaintext); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	if lc.ReadHeaderTimeout <= 0 {
		lc.ReadHeaderTimeout = 10 * time.Second
	}
	if lc.IdleTimeout <= 0 {
		lc.IdleTimeout = 2 * time.Minute
	}
	if lc.ShutdownTimeout <= 0 {
		lc.ShutdownTimeout = 15 * time.Minute
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: lc.ReadHeaderTimeout,
		IdleTimeout:       lc.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if useTLS {
		cert, err := tls.LoadX509KeyPair(lc.TLSCert, lc.TLSKey)
		if err != nil {
			return fmt.Errorf("serve: TLS: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	ln, err := net.Listen("tcp", lc.Addr)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if lc.Ready != nil {
		lc.Ready(ln.Addr())
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", useTLS, "circuits", len(s.circuits),
		"max_concurrent", s.cfg.MaxConcurrent, "max_queue", s.cfg.MaxQueue)
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	go s.sweepUploads(sweepCtx)
	errc := make(chan error, 1)
	go func() {
		if useTLS {
			errc <- hs.ServeTLS(ln, "", "")
		} else {
			errc <- hs.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.SetDraining()
	s.log.Info("shutting down: finishing in-flight requests", "timeout", lc.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), lc.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

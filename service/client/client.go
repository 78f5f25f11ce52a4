// Package client is the client side of `polyformer serve`: it reads a
// circuit's public description, checks it (trusting nothing the server
// says), keeps the secret key local, uploads evaluation keys once
// (resumably), encrypts inputs, sends them, and decrypts the answers.
// Nothing derived from a decryption is ever sent to the server.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/polyformer/polyformer/service/api"
)

// Options configure a Client.
type Options struct {
	// Token is sent as a bearer token when set.
	Token string
	// RootCAs verifies the server's certificate (nil: the system pool).
	RootCAs *x509.CertPool
	// HTTPClient replaces the default client (then RootCAs is ignored).
	HTTPClient *http.Client
	// MaxRetries of a request answered 503 or failing in transit (0: 8);
	// the wait starts at RetryBase (0: 250 ms), doubles up to RetryMax
	// (0: 15 s), with jitter, and honours Retry-After.
	MaxRetries          int
	RetryBase, RetryMax time.Duration
	// ChunkSize of resumable key uploads (0: 64 MiB). Key sets no larger
	// than one chunk go in a single request.
	ChunkSize int64
	// Logf receives retry notices (nil: none).
	Logf func(format string, args ...any)
}

// Client talks to one server.
type Client struct {
	base *url.URL
	http *http.Client
	opt  Options
}

// New returns a client for the server at rawURL (http:// or https://).
func New(rawURL string, opt Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http(s)://HOST:PORT", rawURL)
	}
	if opt.MaxRetries == 0 {
		opt.MaxRetries = 8
	}
	if opt.RetryBase <= 0 {
		opt.RetryBase = 250 * time.Millisecond
	}
	if opt.RetryMax <= 0 {
		opt.RetryMax = 15 * time.Second
	}
	if opt.ChunkSize <= 0 {
		opt.ChunkSize = 64 << 20
	}
	hc := opt.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: opt.RootCAs, MinVersion: tls.VersionTLS12}
		tr.ForceAttemptHTTP2 = true
		tr.ExpectContinueTimeout = 2 * time.Second
		hc = &http.Client{Transport: tr}
	}
	return &Client{base: u, http: hc, opt: opt}, nil
}

func (c *Client) logf(format string, args ...any) {
	if c.opt.Logf != nil {
		c.opt.Logf(format, args...)
	}
}

func (c *Client) url(path string) string { return c.base.String() + path }

// do sends one request built by mk (called again for each retry), retrying
// on 503 and transport errors with backoff. The caller closes the body of
// the 2xx response it gets; any other status is returned as *api.StatusError.
func (c *Client) do(ctx context.Context, mk func() (*http.Request, error), ok ...int) (*http.Response, error) {
	delay := c.opt.RetryBase
	for attempt := 0; ; attempt++ {
		req, err := mk()
		if err != nil {
			return nil, err
		}
		req = req.WithContext(ctx)
		if c.opt.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.opt.Token)
		}
		resp, err := c.http.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil || attempt >= c.opt.MaxRetries {
				return nil, err
			}
			c.logf("request %s %s failed (%v): retrying", req.Method, req.URL.Path, err)
		case resp.StatusCode == http.StatusServiceUnavailable && attempt < c.opt.MaxRetries:
			se := statusError(resp)
			if se.RetryAfter > 0 {
				wait = time.Duration(se.RetryAfter) * time.Second
			}
			c.logf("server busy (%s): retry %d of %d", se.Message, attempt+1, c.opt.MaxRetries)
		default:
			for _, code := range append(ok, http.StatusOK) {
				if resp.StatusCode == code {
					return resp, nil
				}
			}
			return resp, statusError(resp)
		}
		if wait == 0 {
			wait = delay/2 + rand.N(delay/2+1)
		}
		delay = min(2*delay, c.opt.RetryMax)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(min(wait, c.opt.RetryMax)):
		}
	}
}

// statusError reads and closes an error response.
func statusError(resp *http.Response) *api.StatusError {
	defer resp.Body.Close()
	e := api.DecodeError(resp.Body)
	se := &api.StatusError{Status: resp.StatusCode, Kind: e.Kind, Message: e.Message}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 && ra < 3600 {
		se.RetryAfter = ra
	}
	return se
}

func get(path string, c *Client) func() (*http.Request, error) {
	return func() (*http.Request, error) { return http.NewRequest(http.MethodGet, c.url(path), nil) }
}

// Circuits lists the circuits served.
func (c *Client) Circuits(ctx context.Context) (*api.CircuitList, error) {
	resp, err := c.do(ctx, get(api.PathCircuits, c))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return api.DecodeCircuitList(resp.Body)
}

// Circuit fetches one circuit's public description; an empty id picks
// the only circuit served (an error when there are several).
func (c *Client) Circuit(ctx context.Context, id string) (*api.CircuitInfo, error) {
	if id == "" {
		l, err := c.Circuits(ctx)
		if err != nil {
			return nil, err
		}
		if len(l.Circuits) != 1 {
			var ids []string
			for _, s := range l.Circuits {
				ids = append(ids, s.ID[:16]+"… ("+s.Task+", "+s.Preset+")")
			}
			return nil, fmt.Errorf("the server serves %d circuits; choose one with --circuit: %s", len(l.Circuits), strings.Join(ids, ", "))
		}
		id = l.Circuits[0].ID
	}
	if err := api.ValidID(id); err != nil {
		return nil, fmt.Errorf("circuit %w", err)
	}
	resp, err := c.do(ctx, get("/v1/circuits/"+id, c))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	info, err := api.DecodeCircuitInfo(resp.Body)
	if err != nil {
		return nil, err
	}
	if info.ID != id {
		return nil, fmt.Errorf("asked for circuit %s, the server described %s", id, info.ID)
	}
	return info, nil
}

// KeyStatus asks whether the server holds key set id (complete, or how
// many bytes of a partial upload).
func (c *Client) KeyStatus(ctx context.Context, id string) (*api.KeyStatus, error) {
	resp, err := c.do(ctx, get("/v1/keys/"+id, c))
	if err != nil {
		var se *api.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound && resp != nil {
			off, perr := strconv.ParseInt(resp.Header.Get(api.HeaderUploadOffset), 10, 64)
			if perr == nil && off >= 0 {
				return &api.KeyStatus{ID: id, Offset: off}, nil
			}
		}
		return nil, err
	}
	defer resp.Body.Close()
	return api.DecodeKeyStatus(resp.Body)
}

// UploadResult says what UploadKeys did.
type UploadResult struct {
	ID string
	// Existed: the server already held the key set (nothing was sent).
	Existed bool
	// Sent is the number of key bytes sent (resumed uploads send less than Size).
	Sent, Size int64
	Duration   time.Duration
}

// UploadKeys uploads the evaluation-key file at path under its SHA-256
// (id), unless the server already has it; an interrupted upload resumes
// from the offset the server holds. progress, if set, gets the bytes
// acknowledged so far.
func (c *Client) UploadKeys(ctx context.Context, path, id string, progress func(done, total int64)) (*UploadResult, error) {
	t0 := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := st.Size()
	res := &UploadResult{ID: id, Size: size}
	report := func(n int64) {
		if progress != nil {
			progress(n, size)
		}
	}
	for attempt := 0; ; attempt++ {
		ks, err := c.KeyStatus(ctx, id)
		if err != nil {
			return nil, err
		}
		if ks.Complete {
			res.Existed = res.Sent == 0
			report(size)
			res.Duration = time.Since(t0)
			return res, nil
		}
		off := ks.Offset
		if off > size {
			return nil, fmt.Errorf("server holds %d bytes of key set %s, the file has %d", off, id, size)
		}
		report(off)
		err = c.uploadFrom(ctx, f, id, off, size, res, report)
		if err == nil {
			res.Duration = time.Since(t0)
			report(size)
			return res, nil
		}
		var se *api.StatusError
		retryable := !errors.As(err, &se) || se.Status == http.StatusConflict || se.Status >= 500
		if !retryable || ctx.Err() != nil || attempt >= c.opt.MaxRetries {
			return nil, fmt.Errorf("upload key set %s: %w", id, err)
		}
		c.logf("upload interrupted (%v): resuming", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(c.opt.RetryBase):
		}
	}
}

// uploadFrom sends the file from off: in one request when it fits one
// chunk and starts at 0, else as Content-Range chunks.
func (c *Client) uploadFrom(ctx context.Context, f *os.File, id string, off, size int64, res *UploadResult, report func(int64)) error {
	path := "/v1/keys/" + id
	if off == 0 && size <= c.opt.ChunkSize {
		resp, err := c.do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPut, c.url(path), io.NewSectionReader(f, 0, size))
			if err != nil {
				return nil, err
			}
			req.ContentLength = size
			req.Header.Set("Content-Type", api.MediaEnvelope)
			return req, nil
		}, http.StatusCreated)
		if err != nil {
			return err
		}
		resp.Body.Close()
		res.Sent += size
		return nil
	}
	for off < size {
		end := min(off+c.opt.ChunkSize, size) - 1
		cr := api.ContentRange{Start: off, End: end, Total: size}
		resp, err := c.do(ctx, func() (*http.Request, error) {
			req, err := http.NewRequest(http.MethodPut, c.url(path), io.NewSectionReader(f, off, cr.Len()))
			if err != nil {
				return nil, err
			}
			req.ContentLength = cr.Len()
			req.Header.Set("Content-Type", api.MediaEnvelope)
			req.Header.Set("Content-Range", cr.String())
			return req, nil
		}, http.StatusCreated, http.StatusAccepted)
		if err != nil {
			return err
		}
		resp.Body.Close()
		res.Sent += cr.Len()
		off = end + 1
		report(off)
	}
	return nil
}

// InferResult is the raw answer of one infer request.
type InferResult struct {
	Body []byte
	// ServerEval is the server's evaluation time, KeyLoad the time it spent
	// loading the key set from its store (0 when it was in memory).
	ServerEval, KeyLoad time.Duration
	Sent                int64
}

// maxResponseBytes bounds an infer response a client reads.
const maxResponseBytes = 4 << 30

// Infer sends a ciphertexts envelope to the circuit with key set keyID and
// returns the ciphertexts envelope of the answer (retrying on 503).
func (c *Client) Infer(ctx context.Context, circuitID, keyID string, body []byte) (*InferResult, error) {
	path := "/v1/circuits/" + circuitID + "/infer?keys=" + keyID
	resp, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, c.url(path), bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", api.MediaEnvelope)
		return req, nil
	})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(out) > maxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", maxResponseBytes)
	}
	ns, _ := strconv.ParseInt(resp.Header.Get(api.HeaderEvalNanos), 10, 64)
	kl, _ := strconv.ParseInt(resp.Header.Get(api.HeaderKeyLoadNanos), 10, 64)
	return &InferResult{Body: out, ServerEval: time.Duration(max(ns, 0)), KeyLoad: time.Duration(max(kl, 0)), Sent: int64(len(body))}, nil
}

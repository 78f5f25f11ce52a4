// Package api is the wire protocol of `polyformer serve` (version 1): the
// routes, the JSON resources, the headers, and bounded decoders for every
// request and response. Binary bodies are he envelopes (evaluation keys,
// ciphertexts). docs/protocol.md describes the protocol and
// docs/openapi.yaml is its OpenAPI 3 description; a test keeps both in step
// with Routes.
package api

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
)

// Version is the protocol version (the /v1/ prefix).
const Version = 1

// Paths and patterns (net/http ServeMux syntax).
const (
	PathHealthz  = "/healthz"
	PathReadyz   = "/readyz"
	PathMetrics  = "/metrics"
	PathCircuits = "/v1/circuits"
	PathCircuit  = "/v1/circuits/{id}"
	PathInfer    = "/v1/circuits/{id}/infer"
	PathKey      = "/v1/keys/{sha256}"
)

// Route is one method and path of the protocol.
type Route struct {
	Method, Path, Summary string
}

// Pattern is the ServeMux pattern of the route.
func (r Route) Pattern() string { return r.Method + " " + r.Path }

// Routes are all routes the server serves.
var Routes = []Route{
	{"GET", PathHealthz, "liveness"},
	{"GET", PathReadyz, "readiness (circuits loaded, key store reachable, not shutting down)"},
	{"GET", PathMetrics, "Prometheus metrics"},
	{"GET", PathCircuits, "the circuits served"},
	{"GET", PathCircuit, "one circuit's public description"},
	{"POST", PathInfer, "evaluate the circuit on ciphertexts with a stored key set"},
	{"GET", PathKey, "status of a key set: complete, or the offset of a partial upload"},
	{"PUT", PathKey, "upload an evaluation-key set (whole, or one Content-Range chunk)"},
}

// Headers and media types.
const (
	// HeaderUploadOffset carries the number of bytes of a partial upload
	// the server holds (responses to GET and to a mismatched PUT chunk).
	HeaderUploadOffset = "Upload-Offset"
	// HeaderKeySet names the key set of an infer request (or query ?keys=).
	HeaderKeySet = "Polyformer-Key-Set"
	// HeaderEvalNanos is the server-side evaluation time of an infer request.
	HeaderEvalNanos = "Polyformer-Eval-Ns"
	// HeaderKeyLoadNanos is the time an infer request spent loading its
	// key set from the key store (0 when it was already in memory).
	HeaderKeyLoadNanos = "Polyformer-Key-Load-Ns"
	// MediaEnvelope is the media type of binary bodies (he envelopes).
	MediaEnvelope = "application/vnd.polyformer.envelope"
	MediaJSON     = "application/json"
)

// Limits of what a client accepts from a server.
const (
	MaxCircuitInfoBytes = circuit.MaxPublicCircuitBytes + 4<<20
	MaxCircuitListBytes = 4 << 20
	MaxErrorBytes       = 64 << 10
	MaxKeyStatusBytes   = 64 << 10
	maxCircuits         = 4096
)

// CircuitSummary is an entry of GET /v1/circuits.
type CircuitSummary struct {
	ID                  string `json:"id"`
	Task                string `json:"task"`
	Preset              string `json:"preset"`
	Fingerprint         string `json:"fingerprint"`
	InputsPerCiphertext int    `json:"inputs_per_ciphertext"`
	KeyBytes            int64  `json:"key_bytes"`
}

// CircuitList is the body of GET /v1/circuits.
type CircuitList struct {
	Circuits []CircuitSummary `json:"circuits"`
}

// CircuitInfo is the body of GET /v1/circuits/{id}: everything a client
// needs to generate keys and encode inputs, without the model's weights.
type CircuitInfo struct {
	// ID is the SHA-256 of the server's circuit file (content address).
	ID          string `json:"id"`
	Task        string `json:"task"`
	Preset      string `json:"preset"`
	Fingerprint string `json:"fingerprint"`
	// Params is the parameters' summary (for people); Parameters the
	// parameters themselves (he.MarshalParametersJSON), from which a
	// client recomputes security and the fingerprint.
	Params     he.ParamsInfo    `json:"params"`
	Parameters json.RawMessage  `json:"parameters"`
	KeySpec    circuit.KeyNeeds `json:"key_spec"`
	Layout     circuit.Layout   `json:"layout"`
	InputLevel int              `json:"input_level"`
	LogScale   int              `json:"log_scale"`
	// MaxCiphertexts is the most ciphertexts one infer request may carry.
	MaxCiphertexts int `json:"max_ciphertexts"`
	// DryRun is the compiler's dry-run report (cost before any key exists).
	DryRun json.RawMessage `json:"dry_run"`
	// Circuit is the public description (op graph, plan, no weights).
	Circuit *circuit.PublicCircuit `json:"circuit"`
}

// KeyStatus is the body of GET and PUT /v1/keys/{sha256}.
type KeyStatus struct {
	ID       string `json:"id"`
	Complete bool   `json:"complete"`
	// Size is the stored size of a complete key set.
	Size int64 `json:"size,omitempty"`
	// Offset is the number of bytes of a partial upload held by the server.
	Offset int64 `json:"offset"`
	// Existed is true when a PUT found the key set already stored.
	Existed bool   `json:"existed,omitempty"`
	Preset  string `json:"preset,omitempty"`
}

// Error is the body of every 4xx and 5xx response.
type Error struct {
	// Kind is a stable machine-readable class (see docs/protocol.md).
	Kind    string `json:"kind"`
	Message string `json:"error"`
}

func (e *Error) Error() string { return e.Message }

// Error kinds.
const (
	KindBadRequest    = "bad_request"
	KindUnauthorized  = "unauthorized"
	KindNotFound      = "not_found"
	KindUnknownKeys   = "unknown_key_set"
	KindConflict      = "offset_mismatch"
	KindHashMismatch  = "hash_mismatch"
	KindBadKeys       = "bad_keys"
	KindKeysMissing   = "keys_incomplete"
	KindBadCiphertext = "bad_ciphertexts"
	KindTooLarge      = "too_large"
	KindOverloaded    = "overloaded"
	KindTimeout       = "timeout"
	KindInternal      = "internal"
)

// StatusError is a non-2xx response as seen by a client.
type StatusError struct {
	Status     int
	Kind       string
	Message    string
	RetryAfter int // seconds, from Retry-After on 503
}

func (e *StatusError) Error() string {
	if e.Kind == "" {
		return fmt.Sprintf("server answered %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("server answered %d (%s): %s", e.Status, e.Kind, e.Message)
}

// ValidID checks a content address: 64 lowercase hexadecimal digits.
func ValidID(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("id %q is not a SHA-256 (64 hex digits)", truncate(s, 80))
	}
	if _, err := hex.DecodeString(s); err != nil || strings.ToLower(s) != s {
		return fmt.Errorf("id %q is not a SHA-256 (64 lowercase hex digits)", truncate(s, 80))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// ContentRange is a parsed "bytes START-END/TOTAL" header.
type ContentRange struct{ Start, End, Total int64 }

// Len is the chunk length.
func (c ContentRange) Len() int64 { return c.End - c.Start + 1 }

// String formats the header value.
func (c ContentRange) String() string { return fmt.Sprintf("bytes %d-%d/%d", c.Start, c.End, c.Total) }

// ParseContentRange parses "bytes START-END/TOTAL" with 0 <= START <= END < TOTAL.
func ParseContentRange(s string) (ContentRange, error) {
	var c ContentRange
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return c, fmt.Errorf("Content-Range %q: want \"bytes START-END/TOTAL\"", truncate(s, 80))
	}
	rng, total, ok := strings.Cut(rest, "/")
	if !ok {
		return c, fmt.Errorf("Content-Range %q: no total", truncate(s, 80))
	}
	a, b, ok := strings.Cut(rng, "-")
	if !ok {
		return c, fmt.Errorf("Content-Range %q: no range", truncate(s, 80))
	}
	var err error
	num := func(x string) int64 {
		if err != nil {
			return 0
		}
		var v int64
		if v, err = strconv.ParseInt(x, 10, 64); err == nil && (v < 0 || x[0] == '+') {
			err = errors.New("negative")
		}
		return v
	}
	c.Start, c.End, c.Total = num(a), num(b), num(total)
	if err != nil {
		return ContentRange{}, fmt.Errorf("Content-Range %q: %v", truncate(s, 80), err)
	}
	if c.Start > c.End || c.End >= c.Total {
		return ContentRange{}, fmt.Errorf("Content-Range %q: want START <= END < TOTAL", truncate(s, 80))
	}
	return c, nil
}

// decodeJSON decodes one JSON value of at most max bytes, refusing unknown
// fields and trailing data.
func decodeJSON(r io.Reader, max int64, v any, what string) error {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(data)) > max {
		return fmt.Errorf("%s: larger than %d bytes", what, max)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: malformed JSON: %v", what, err)
	}
	if dec.More() {
		return fmt.Errorf("%s: data after the JSON value", what)
	}
	return nil
}

// DecodeCircuitList decodes and checks GET /v1/circuits.
func DecodeCircuitList(r io.Reader) (*CircuitList, error) {
	var l CircuitList
	if err := decodeJSON(r, MaxCircuitListBytes, &l, "circuit list"); err != nil {
		return nil, err
	}
	if len(l.Circuits) > maxCircuits {
		return nil, fmt.Errorf("circuit list: %d circuits > %d", len(l.Circuits), maxCircuits)
	}
	for _, c := range l.Circuits {
		if err := ValidID(c.ID); err != nil {
			return nil, fmt.Errorf("circuit list: %w", err)
		}
	}
	return &l, nil
}

// DecodeCircuitInfo decodes GET /v1/circuits/{id} and checks its internal
// consistency (the public description validates, and agrees with the
// announced preset, fingerprint, layout, input level and key spec). It does
// not decide whether to trust the parameters: see client.VerifyCircuit.
func DecodeCircuitInfo(r io.Reader) (*CircuitInfo, error) {
	var ci CircuitInfo
	if err := decodeJSON(r, MaxCircuitInfoBytes, &ci, "circuit description"); err != nil {
		return nil, err
	}
	if err := ValidID(ci.ID); err != nil {
		return nil, fmt.Errorf("circuit description: %w", err)
	}
	if ci.Circuit == nil {
		return nil, errors.New("circuit description: no public circuit")
	}
	if _, err := ci.Circuit.Skeleton(); err != nil {
		return nil, fmt.Errorf("circuit description: %w", err)
	}
	pl := ci.Circuit.Planned
	switch {
	case pl.Preset != ci.Preset || pl.Fingerprint != ci.Fingerprint:
		return nil, fmt.Errorf("circuit description: announces %s (%.16s) but its plan is for %s (%.16s)", ci.Preset, ci.Fingerprint, pl.Preset, pl.Fingerprint)
	case ci.Layout != ci.Circuit.Layout:
		return nil, errors.New("circuit description: layout differs from the circuit's")
	case ci.InputLevel != pl.InputLevel:
		return nil, fmt.Errorf("circuit description: input level %d, plan says %d", ci.InputLevel, pl.InputLevel)
	case ci.Task != ci.Circuit.Task:
		return nil, errors.New("circuit description: task differs from the circuit's")
	case ci.MaxCiphertexts < 1 || ci.MaxCiphertexts > 1<<20:
		return nil, fmt.Errorf("circuit description: max ciphertexts %d", ci.MaxCiphertexts)
	}
	return &ci, nil
}

// DecodeKeyStatus decodes the body of GET/PUT /v1/keys/{sha256}.
func DecodeKeyStatus(r io.Reader) (*KeyStatus, error) {
	var ks KeyStatus
	if err := decodeJSON(r, MaxKeyStatusBytes, &ks, "key status"); err != nil {
		return nil, err
	}
	if err := ValidID(ks.ID); err != nil {
		return nil, fmt.Errorf("key status: %w", err)
	}
	if ks.Offset < 0 || ks.Size < 0 {
		return nil, errors.New("key status: negative size or offset")
	}
	return &ks, nil
}

// DecodeError decodes an error body; a body that is not one gives an Error
// holding its first bytes as text.
func DecodeError(r io.Reader) Error {
	data, _ := io.ReadAll(io.LimitReader(r, MaxErrorBytes))
	var e Error
	if err := json.Unmarshal(data, &e); err != nil || e.Message == "" {
		return Error{Message: strings.TrimSpace(truncate(strings.ToValidUTF8(string(data), "?"), 200))}
	}
	e.Message = truncate(strings.ToValidUTF8(e.Message, "?"), 1000)
	e.Kind = truncate(strings.ToValidUTF8(e.Kind, "?"), 64)
	return e
}

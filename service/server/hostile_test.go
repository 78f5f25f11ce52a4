package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/server"
)

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

type hostileEnv struct {
	ts   *testServer
	cl   *client.Client
	v    *client.Verified
	keys *client.Keys
	evk  []byte
	ctx  context.Context
}

func newHostileEnv(t *testing.T, cfg server.Config) *hostileEnv {
	t.Helper()
	ts := startServer(t, [][]byte{toyCircuitFile(t, 2)}, false, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cl, err := client.New(ts.URL, client.Options{Token: cfg.Token, MaxRetries: -1})
	require.NoError(t, err)
	info, err := cl.Circuit(ctx, "")
	require.NoError(t, err)
	v, err := client.VerifyCircuit(info, client.Policy{AllowInsecure: true})
	require.NoError(t, err)
	keys, err := client.EnsureKeys(t.TempDir(), v, nil)
	require.NoError(t, err)
	evk, err := readFile(keys.EvalPath)
	require.NoError(t, err)
	return &hostileEnv{ts: ts, cl: cl, v: v, keys: keys, evk: evk, ctx: ctx}
}

func (e *hostileEnv) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (int, api.Error, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, e.ts.URL+path, body)
	require.NoError(t, err)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return resp.StatusCode, api.DecodeError(resp.Body), resp.Header
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, api.Error{}, resp.Header
}

// stillServing checks a well-behaved client is served correctly.
func (e *hostileEnv) stillServing(t *testing.T) {
	t.Helper()
	_, err := e.cl.UploadKeys(e.ctx, e.keys.EvalPath, e.keys.ID, nil)
	require.NoError(t, err)
	vecs, err := e.v.Skeleton.EncodeImages(make([]float64, 16), 1, 4, 4)
	require.NoError(t, err)
	_, _, err = e.cl.Predict(e.ctx, e.v, e.keys, vecs, 1)
	require.NoError(t, err)
}

func (e *hostileEnv) notStored(t *testing.T, id string) {
	t.Helper()
	_, err := e.ts.Store.Stat(e.ctx, id)
	require.Error(t, err, "nothing stored under %s", id)
}

func TestHostileKeyUploads(t *testing.T) {
	e := newHostileEnv(t, server.Config{MaxKeyBytes: 256 << 20})
	put := func(id string, body []byte, hdr map[string]string) (int, api.Error) {
		code, msg, _ := e.do(t, "PUT", "/v1/keys/"+id, bytes.NewReader(body), hdr)
		return code, msg
	}
	// truncated
	half := e.evk[:len(e.evk)/2]
	code, msg := put(sha(half), half, nil)
	require.Equal(t, 422, code, msg.Message)
	require.Contains(t, msg.Message, "truncated")
	e.notStored(t, sha(half))
	// hash does not match
	code, msg = put(strings.Repeat("ab", 32), e.evk, nil)
	require.Equal(t, 422, code)
	require.Equal(t, api.KindHashMismatch, msg.Kind)
	e.notStored(t, strings.Repeat("ab", 32))
	// corrupted coefficient (checksum)
	bad := append([]byte(nil), e.evk...)
	bad[len(bad)/2] ^= 0x40
	code, msg = put(sha(bad), bad, nil)
	require.Equal(t, 422, code, msg.Message)
	e.notStored(t, sha(bad))
	// keys for other parameters
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	_, evk13, err := he.GenerateKeys(p13, he.KeySpec{Rotations: []int{1}})
	require.NoError(t, err)
	var b13 bytes.Buffer
	require.NoError(t, he.WriteEvaluationKeys(&b13, evk13))
	code, msg = put(sha(b13.Bytes()), b13.Bytes(), nil)
	require.Equal(t, 422, code)
	require.Contains(t, msg.Message, "no circuit served here uses")
	e.notStored(t, sha(b13.Bytes()))
	// not keys at all
	junk := []byte("hello, this is certainly not an evaluation-key file")
	code, msg = put(sha(junk), junk, nil)
	require.Equal(t, 422, code)
	require.Contains(t, msg.Message, "not a polyformer file")
	// trailing data
	trail := append(append([]byte(nil), e.evk...), 1, 2, 3)
	code, msg = put(sha(trail), trail, nil)
	require.Equal(t, 422, code)
	require.Contains(t, msg.Message, "trailing")
	// invalid id
	code, _ = put("NOTAHASH", e.evk, nil)
	require.Equal(t, 400, code)
	// bad Content-Range, wrong offset (409 with the offset to resume from)
	code, _ = put(e.keys.ID, e.evk[:10], map[string]string{"Content-Range": "bytes 5-1/10"})
	require.Equal(t, 400, code)
	code, msg, hdr := e.do(t, "PUT", "/v1/keys/"+e.keys.ID, bytes.NewReader(e.evk[100:200]),
		map[string]string{"Content-Range": fmt.Sprintf("bytes 100-199/%d", len(e.evk))})
	require.Equal(t, 409, code, msg.Message)
	require.Equal(t, "0", hdr.Get(api.HeaderUploadOffset))
	// a chunk whose declared total disagrees with the envelope
	code, msg = put(e.keys.ID, e.evk[:1000], map[string]string{"Content-Range": fmt.Sprintf("bytes 0-999/%d", len(e.evk)+5)})
	require.Equal(t, 422, code)
	require.Contains(t, msg.Message, "envelope declares")
	e.stillServing(t)
}

// A chunked upload that breaks resumes where the server's bytes end, and a
// complete chunked set with a bad hash or a bad shape is not kept.
func TestResumableUpload(t *testing.T) {
	e := newHostileEnv(t, server.Config{})
	n := int64(len(e.evk))
	chunk := n/3 + 1
	code, _, _ := e.do(t, "PUT", "/v1/keys/"+e.keys.ID, bytes.NewReader(e.evk[:chunk]),
		map[string]string{"Content-Range": api.ContentRange{Start: 0, End: chunk - 1, Total: n}.String()})
	require.Equal(t, http.StatusAccepted, code)
	ks, err := e.cl.KeyStatus(e.ctx, e.keys.ID)
	require.NoError(t, err)
	require.False(t, ks.Complete)
	require.Equal(t, chunk, ks.Offset)
	// a client whose connection drops in the middle of the second chunk
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	require.NoError(t, err)
	fmt.Fprintf(conn, "PUT /v1/keys/%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Range: %s\r\n\r\n", e.keys.ID, chunk,
		api.ContentRange{Start: chunk, End: 2*chunk - 1, Total: n})
	_, _ = conn.Write(e.evk[chunk : chunk+chunk/2])
	conn.Close()
	time.Sleep(200 * time.Millisecond)
	ks, err = e.cl.KeyStatus(e.ctx, e.keys.ID)
	require.NoError(t, err)
	require.Equal(t, chunk, ks.Offset, "a broken chunk leaves the staged bytes as they were")
	// resume with the client library
	cl, err := client.New(e.ts.URL, client.Options{ChunkSize: chunk})
	require.NoError(t, err)
	up, err := cl.UploadKeys(e.ctx, e.keys.EvalPath, e.keys.ID, nil)
	require.NoError(t, err)
	require.Equal(t, n-chunk, up.Sent, "only the missing bytes are sent")
	ks, err = e.cl.KeyStatus(e.ctx, e.keys.ID)
	require.NoError(t, err)
	require.True(t, ks.Complete)
	e.stillServing(t)
}

// reseal recomputes an envelope's checksum after an edit.
func reseal(b []byte) []byte {
	s := sha256.Sum256(b[:len(b)-32])
	copy(b[len(b)-32:], s[:])
	return b
}

func TestHostileInfer(t *testing.T) {
	e := newHostileEnv(t, server.Config{MaxInferBytes: 4 << 20, MaxCiphertexts: 4, BodyIdleTimeout: 300 * time.Millisecond})
	_, err := e.cl.UploadKeys(e.ctx, e.keys.EvalPath, e.keys.ID, nil)
	require.NoError(t, err)
	path := "/v1/circuits/" + e.v.Info.ID + "/infer?keys=" + e.keys.ID
	infer := func(body []byte) (int, api.Error) {
		code, msg, _ := e.do(t, "POST", path, bytes.NewReader(body), nil)
		return code, msg
	}
	p := e.v.Params
	hc, err := he.NewClient(p, e.keys.Secret)
	require.NoError(t, err)
	vec := make([]float64, 16)
	encrypt := func(level int) []byte {
		ct, err := hc.EncryptReal(vec, level)
		require.NoError(t, err)
		var b bytes.Buffer
		require.NoError(t, he.WriteCiphertext(&b, p, ct))
		return b.Bytes()
	}
	good := encrypt(e.v.Skeleton.Planned.InputLevel)
	code, msg := infer(good)
	require.Equal(t, 200, code, msg.Message)
	// wrong level
	code, msg = infer(encrypt(e.v.Skeleton.Planned.InputLevel - 1))
	require.Equal(t, 400, code)
	require.Contains(t, msg.Message, "level")
	// wrong scale: the scale of the first ciphertext set to 2^41
	scaled := append([]byte(nil), good...)
	hdrLen := 53 + len(p.Name())
	off := hdrLen + 4 + 5
	sl := int(binary.LittleEndian.Uint32(scaled[off:]))
	var f big.Float
	require.NoError(t, f.GobDecode(scaled[off+4:off+4+sl]))
	f.SetMantExp(&f, 1)
	nb, err := f.GobEncode()
	require.NoError(t, err)
	require.Len(t, nb, sl)
	copy(scaled[off+4:], nb)
	code, msg = infer(reseal(scaled))
	require.Equal(t, 400, code, msg.Message)
	require.Contains(t, msg.Message, "scale")
	// wrong ring degree (ciphertexts for test-n13)
	p13, err := he.ParametersFromPreset(he.PresetTestN13)
	require.NoError(t, err)
	sk13, _, err := he.GenerateKeys(p13, he.KeySpec{})
	require.NoError(t, err)
	c13, err := he.NewClient(p13, sk13)
	require.NoError(t, err)
	ct13, err := c13.EncryptReal(vec, 1)
	require.NoError(t, err)
	var b13 bytes.Buffer
	require.NoError(t, he.WriteCiphertext(&b13, p13, ct13))
	code, msg = infer(b13.Bytes())
	require.Equal(t, 400, code)
	require.Contains(t, msg.Message, "fingerprint")
	// truncated, garbage, trailing, too many ciphertexts, oversize
	code, _ = infer(good[:len(good)/2])
	require.Equal(t, 400, code)
	code, _ = infer([]byte("garbage"))
	require.Equal(t, 400, code)
	code, msg = infer(append(append([]byte(nil), good...), 0))
	require.Equal(t, 400, code)
	require.Contains(t, msg.Message, "trailing")
	vecs := make([][]float64, 5)
	for i := range vecs {
		vecs[i] = make([]float64, 16)
	}
	cts, err := circuit.EncryptInputs(hc, e.v.Skeleton, vecs)
	require.NoError(t, err)
	var five bytes.Buffer
	require.NoError(t, he.WriteCiphertexts(&five, p, cts))
	code, msg = infer(five.Bytes())
	require.Equal(t, 400, code)
	require.Contains(t, msg.Message, "5 ciphertexts")
	code, msg = infer(make([]byte, 5<<20))
	require.Contains(t, []int{400, 413}, code, msg.Message)
	// unknown circuit, unknown key set, bad ids
	code, msg, _ = e.do(t, "POST", "/v1/circuits/"+strings.Repeat("0", 64)+"/infer?keys="+e.keys.ID, bytes.NewReader(good), nil)
	require.Equal(t, 404, code)
	require.Contains(t, msg.Message, "unknown circuit")
	code, msg, _ = e.do(t, "POST", "/v1/circuits/"+e.v.Info.ID+"/infer?keys="+strings.Repeat("1", 64), bytes.NewReader(good), nil)
	require.Equal(t, 404, code)
	require.Equal(t, api.KindUnknownKeys, msg.Kind)
	code, _, _ = e.do(t, "GET", "/v1/circuits/xyz", nil, nil)
	require.Equal(t, 400, code)
	// keys missing a rotation the circuit needs: valid keys, refused at infer
	spec := e.v.Skeleton.Planned.Keys.KeySpec()
	require.NotEmpty(t, spec.Rotations)
	spec.Rotations = spec.Rotations[1:]
	spec.Levels.Rotations = spec.Levels.Rotations[1:] // levels parallel the rotations
	_, part, err := he.GenerateKeys(p, spec)
	require.NoError(t, err)
	var pb bytes.Buffer
	require.NoError(t, he.WriteEvaluationKeys(&pb, part))
	code, msg, _ = e.do(t, "PUT", "/v1/keys/"+sha(pb.Bytes()), bytes.NewReader(pb.Bytes()), nil)
	require.Equal(t, 201, code, msg.Message)
	code, msg, _ = e.do(t, "POST", "/v1/circuits/"+e.v.Info.ID+"/infer?keys="+sha(pb.Bytes()), bytes.NewReader(good), nil)
	require.Equal(t, 422, code)
	require.Equal(t, api.KindKeysMissing, msg.Kind)
	require.Contains(t, msg.Message, "Galois keys")
	// a slow client (sends half its body, then nothing) gets 408 while others are served
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.ts.URL, "http://"))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", path, len(good))
	_, _ = conn.Write(good[:len(good)/2])
	e.stillServing(t)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, _ := io.ReadAll(conn)
	require.Contains(t, string(reply), "408", "slow client answered 408")
	e.stillServing(t)
}

func TestBearerToken(t *testing.T) {
	e := newHostileEnv(t, server.Config{Token: "s3cret"})
	code, msg, _ := e.do(t, "GET", "/v1/circuits", nil, nil)
	require.Equal(t, 401, code)
	require.Equal(t, api.KindUnauthorized, msg.Kind)
	code, _, _ = e.do(t, "GET", "/v1/circuits", nil, map[string]string{"Authorization": "Bearer wrong"})
	require.Equal(t, 401, code)
	code, _, _ = e.do(t, "GET", "/healthz", nil, nil)
	require.Equal(t, 200, code)
	e.stillServing(t) // the client library sends the token
	code, _, _ = e.do(t, "GET", "/metrics", nil, map[string]string{"Authorization": "Bearer s3cret"})
	require.Equal(t, 200, code)
}

func TestPlaintextOnlyOnLoopback(t *testing.T) {
	require.NoError(t, server.CheckPlaintext("127.0.0.1:80", false))
	require.NoError(t, server.CheckPlaintext("[::1]:80", false))
	require.NoError(t, server.CheckPlaintext("localhost:80", false))
	require.ErrorContains(t, server.CheckPlaintext("0.0.0.0:80", false), "--tls-cert")
	require.ErrorContains(t, server.CheckPlaintext(":80", false), "--tls-cert")
	require.NoError(t, server.CheckPlaintext("0.0.0.0:80", true))
}

var _ = httptest.NewRecorder

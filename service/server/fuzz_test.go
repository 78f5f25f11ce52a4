package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// fuzzServer is one in-process server (no listener) with the toy circuit,
// a stored key set, and a valid key file and ciphertext body as seeds.
type fuzzServer struct {
	h        http.Handler
	store    *keystore.Dir
	circuit  string
	keyID    string
	evk, cts []byte
}

var (
	fuzzOnce sync.Once
	fuzzSrv  *fuzzServer
)

func getFuzzServer(t testing.TB) *fuzzServer {
	fuzzOnce.Do(func() {
		data := toyCircuitFile(t, 3)
		c, err := server.NewCircuit(data, true, 4)
		require.NoError(t, err)
		st, err := keystore.NewDir(t.TempDir())
		require.NoError(t, err)
		s, err := server.New(server.Config{Circuits: []*server.Circuit{c}, Store: st, Cache: server.NewKeyCache(1 << 28),
			MaxKeyBytes: 64 << 20, MaxInferBytes: 8 << 20, MaxConcurrent: 1})
		require.NoError(t, err)
		sk, evk, err := he.GenerateKeys(c.Params, c.Spec)
		require.NoError(t, err)
		var kb, cb bytes.Buffer
		require.NoError(t, he.WriteEvaluationKeys(&kb, evk))
		id := sha(kb.Bytes())
		_, err = st.Put(context.Background(), id, bytes.NewReader(kb.Bytes()), 0)
		require.NoError(t, err)
		hc, err := he.NewClient(c.Params, sk)
		require.NoError(t, err)
		ct, err := hc.EncryptReal(make([]float64, 16), c.Circuit.Planned.InputLevel)
		require.NoError(t, err)
		require.NoError(t, he.WriteCiphertext(&cb, c.Params, ct))
		fuzzSrv = &fuzzServer{h: s.Handler(), store: st, circuit: c.ID, keyID: id, evk: kb.Bytes(), cts: cb.Bytes()}
	})
	require.NotNil(t, fuzzSrv)
	return fuzzSrv
}

func serve(h http.Handler, method, path string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// FuzzPutKeys: any upload body gets a 2xx or a 4xx with an error message,
// and is stored only if it is a valid key set under its own hash.
func FuzzPutKeys(f *testing.F) {
	fs := getFuzzServer(f)
	f.Add(fs.evk[:200], false)
	f.Add(append([]byte(nil), fs.evk[:4096]...), true)
	f.Add([]byte("\x89PLYFMR\n\x01\x00\x03\x00"), false)
	f.Fuzz(func(t *testing.T, body []byte, chunked bool) {
		id := sha(body)
		hdr := map[string]string{}
		if chunked && len(body) > 0 {
			hdr["Content-Range"] = api.ContentRange{Start: 0, End: int64(len(body)) - 1, Total: int64(len(body))}.String()
		}
		w := serve(fs.h, "PUT", "/v1/keys/"+id, body, hdr)
		if w.Code >= 500 {
			t.Fatalf("PUT answered %d: %s", w.Code, w.Body.String())
		}
		if w.Code >= 400 {
			if api.DecodeError(w.Body).Message == "" {
				t.Fatalf("error %d without a message", w.Code)
			}
			if _, err := fs.store.Stat(context.Background(), id); err == nil {
				t.Fatalf("a refused upload was stored")
			}
		}
	})
}

// FuzzInfer: any infer body gets a 4xx naming the problem (or a 200 for a
// valid request), never a crash or a 5xx.
func FuzzInfer(f *testing.F) {
	fs := getFuzzServer(f)
	f.Add(fs.cts)
	f.Add(fs.cts[:100])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, body []byte) {
		w := serve(fs.h, "POST", "/v1/circuits/"+fs.circuit+"/infer?keys="+fs.keyID, body, nil)
		if w.Code >= 500 || (w.Code >= 400 && api.DecodeError(w.Body).Message == "") {
			t.Fatalf("infer answered %d: %s", w.Code, w.Body.String())
		}
	})
}

// FuzzRoutes: arbitrary paths, ids and headers are answered with 4xx, not 5xx.
func FuzzRoutes(f *testing.F) {
	fs := getFuzzServer(f)
	f.Add("GET", "/v1/circuits/"+fs.circuit, "")
	f.Add("PUT", "/v1/keys/"+fs.keyID, "bytes 0-1/2")
	f.Add("GET", "/v1/keys/zz", "")
	f.Fuzz(func(t *testing.T, method, path, cr string) {
		req, err := http.NewRequest(method, "http://x"+path, bytes.NewReader(nil))
		if err != nil || req.URL.Path == "" {
			return
		}
		req.Header.Set("Content-Range", cr)
		w := httptest.NewRecorder()
		fs.h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", method, path, w.Code, w.Body.String())
		}
	})
}

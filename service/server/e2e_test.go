package server_test

import (
	"context"
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/server"
)

func argmax(v []float64) int {
	b := 0
	for i, x := range v {
		if x > v[b] {
			b = i
		}
	}
	return b
}

// End to end over loopback, plain and TLS (HTTP/2): the client reads the
// circuit, checks it, generates keys, uploads them (once), encrypts,
// infers, decrypts; every prediction equals the plaintext model's
// poly-mode prediction.
func TestEndToEnd(t *testing.T) {
	data, m, batch := modelCircuitFile(t)
	want := polyLogits(t, m, batch)
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "plain", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, [][]byte{data}, useTLS, server.Config{MaxConcurrent: 1})
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cl, err := client.New(ts.URL, client.Options{RootCAs: ts.CAPool})
			require.NoError(t, err)
			if useTLS { // HTTP/2 over TLS
				hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.CAPool}, ForceAttemptHTTP2: true}}
				resp, err := hc.Get(ts.URL + "/healthz")
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, "HTTP/2.0", resp.Proto)
			}
			info, err := cl.Circuit(ctx, "") // the only circuit
			require.NoError(t, err)
			v, err := client.VerifyCircuit(info, client.Policy{AllowInsecure: true})
			require.NoError(t, err)
			_, err = client.VerifyCircuit(info, client.Policy{})
			require.ErrorContains(t, err, "secur", "test presets are refused without AllowInsecure")
			keys, err := client.EnsureKeys(t.TempDir(), v, nil)
			require.NoError(t, err)
			require.True(t, keys.Generated)
			up, err := cl.UploadKeys(ctx, keys.EvalPath, keys.ID, nil)
			require.NoError(t, err)
			require.False(t, up.Existed)
			require.Equal(t, keys.Size, up.Sent)
			up, err = cl.UploadKeys(ctx, keys.EvalPath, keys.ID, nil)
			require.NoError(t, err)
			require.True(t, up.Existed, "the same hash again returns at once")
			require.Zero(t, up.Sent)

			vecs, err := v.Skeleton.EncodeImages(batch.Pixels, batch.B, m.Cfg.ImageRows, m.Cfg.ImageCols)
			require.NoError(t, err)
			got, st, err := cl.Predict(ctx, v, keys, vecs, batch.B)
			require.NoError(t, err)
			require.Len(t, got, batch.B)
			for i := range got {
				require.Equal(t, argmax(want[i]), argmax(got[i]), "input %d: encrypted %v, plaintext %v", i, got[i], want[i])
				for j := range got[i] {
					require.InDelta(t, want[i][j], got[i][j], 1e-4)
				}
			}
			t.Logf("%s: %d requests, sent %d B, received %d B, server eval %s, request %s", name, st.Requests, st.BytesSent, st.BytesReceived, st.ServerEval, st.Request)
			require.Greater(t, st.ServerEval, time.Duration(0))
		})
	}
}

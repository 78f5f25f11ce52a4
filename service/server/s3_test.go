package server_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/keystore"
	"github.com/polyformer/polyformer/service/server"
)

// fakeS3 starts an in-process S3 server (gofakes3) on 127.0.0.1 with an
// empty bucket and returns its URL.
func fakeS3(t *testing.T) string {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("polyformer"))
	srv := httptest.NewServer(gofakes3.New(backend).Server()) // 127.0.0.1
	t.Cleanup(srv.Close)
	return srv.URL
}

// newS3Store opens the shared bucket (each replica has its own client).
func newS3Store(t *testing.T, endpoint string) *keystore.S3 {
	t.Helper()
	s, err := keystore.NewS3(context.Background(), keystore.S3Config{Endpoint: endpoint, Bucket: "polyformer", Prefix: "replicas",
		AccessKey: "test", SecretKey: "test-secret", Region: "us-east-1", PartSize: 5 << 20})
	require.NoError(t, err)
	return s
}

// Two replicas share one S3 key store (docs/deployment.md): a key set
// uploaded through one is used by the other; a resumable upload started on
// one is finished through the other; both answer correctly; an abandoned
// staged upload in the bucket is expired.
func TestS3Replicas(t *testing.T) {
	data := toyCircuitFile(t, 5)
	full, err := circuit.DecodeCircuit(data, nil)
	require.NoError(t, err)
	endpoint := fakeS3(t)
	a := startServer(t, [][]byte{data}, false, server.Config{Store: newS3Store(t, endpoint), MaxConcurrent: 1})
	b := startServer(t, [][]byte{data}, false, server.Config{Store: newS3Store(t, endpoint), MaxConcurrent: 1, UploadExpiry: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ca, err := client.New(a.URL, client.Options{})
	require.NoError(t, err)
	cb, err := client.New(b.URL, client.Options{})
	require.NoError(t, err)
	infoA, err := ca.Circuit(ctx, "")
	require.NoError(t, err)
	infoB, err := cb.Circuit(ctx, "")
	require.NoError(t, err)
	require.Equal(t, infoA.ID, infoB.ID, "replicas serve the same circuit under the same id")
	v, err := client.VerifyCircuit(infoA, client.Policy{AllowInsecure: true})
	require.NoError(t, err)

	// Upload on A, infer on B (and on A).
	k1, err := client.EnsureKeys(t.TempDir(), v, nil)
	require.NoError(t, err)
	up, err := ca.UploadKeys(ctx, k1.EvalPath, k1.ID, nil)
	require.NoError(t, err)
	require.Equal(t, k1.Size, up.Sent)
	up, err = cb.UploadKeys(ctx, k1.EvalPath, k1.ID, nil)
	require.NoError(t, err)
	require.True(t, up.Existed, "B sees the key set uploaded through A")
	predictOK(t, ctx, cb, v, k1, full, 11)
	predictOK(t, ctx, ca, v, k1, full, 12)

	// A resumable upload: the first chunk through A, the rest through B.
	k2, err := client.EnsureKeys(t.TempDir(), v, nil)
	require.NoError(t, err)
	ev, err := os.ReadFile(k2.EvalPath)
	require.NoError(t, err)
	first := int64(len(ev) / 3)
	req, err := http.NewRequest(http.MethodPut, a.URL+"/v1/keys/"+k2.ID, bytes.NewReader(ev[:first]))
	require.NoError(t, err)
	req.Header.Set("Content-Range", api.ContentRange{Start: 0, End: first - 1, Total: int64(len(ev))}.String())
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	st, err := cb.KeyStatus(ctx, k2.ID)
	require.NoError(t, err)
	require.Equal(t, first, st.Offset, "B sees the bytes staged through A")
	cbChunked, err := client.New(b.URL, client.Options{ChunkSize: first})
	require.NoError(t, err)
	up, err = cbChunked.UploadKeys(ctx, k2.EvalPath, k2.ID, nil)
	require.NoError(t, err)
	require.Equal(t, int64(len(ev))-first, up.Sent, "B resumes where A stopped")
	predictOK(t, ctx, ca, v, k2, full, 13)
	predictOK(t, ctx, cb, v, k2, full, 14)

	// An abandoned staged upload in the bucket is expired by a replica.
	k3, err := client.EnsureKeys(t.TempDir(), v, nil)
	require.NoError(t, err)
	ev3, err := os.ReadFile(k3.EvalPath)
	require.NoError(t, err)
	req, err = http.NewRequest(http.MethodPut, a.URL+"/v1/keys/"+k3.ID, bytes.NewReader(ev3[:4096]))
	require.NoError(t, err)
	req.Header.Set("Content-Range", api.ContentRange{Start: 0, End: 4095, Total: int64(len(ev3))}.String())
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	expired, err := b.Server.ExpireUploads(ctx, time.Now())
	require.NoError(t, err)
	require.Empty(t, expired)
	expired, err = b.Server.ExpireUploads(ctx, time.Now().Add(2*time.Hour))
	require.NoError(t, err)
	require.Equal(t, []string{k3.ID}, expired)
	st, err = ca.KeyStatus(ctx, k3.ID)
	require.NoError(t, err)
	require.Zero(t, st.Offset)
	for _, k := range []*client.Keys{k1, k2} {
		st, err := ca.KeyStatus(ctx, k.ID)
		require.NoError(t, err)
		require.True(t, st.Complete, "complete key sets are kept")
	}
}

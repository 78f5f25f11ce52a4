package server_test

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/server"
)

// stageChunk uploads the first n bytes of the key set as the first chunk
// of a resumable upload.
func (e *hostileEnv) stageChunk(t *testing.T, n int) {
	t.Helper()
	code, msg, _ := e.do(t, http.MethodPut, "/v1/keys/"+e.keys.ID, bytes.NewReader(e.evk[:n]),
		map[string]string{"Content-Range": api.ContentRange{Start: 0, End: int64(n) - 1, Total: int64(len(e.evk))}.String()})
	require.Equal(t, http.StatusAccepted, code, msg)
	ks, err := e.cl.KeyStatus(e.ctx, e.keys.ID)
	require.NoError(t, err)
	require.Equal(t, int64(n), ks.Offset)
}

// Abandoned staged uploads are aborted once their last chunk is older than
// UploadExpiry; younger ones and complete key sets are kept.
func TestExpireUploads(t *testing.T) {
	e := newHostileEnv(t, server.Config{UploadExpiry: time.Hour})
	e.stageChunk(t, 4096)

	expired, err := e.ts.Server.ExpireUploads(e.ctx, time.Now())
	require.NoError(t, err)
	require.Empty(t, expired, "a chunk staged just now is not abandoned")
	expired, err = e.ts.Server.ExpireUploads(e.ctx, time.Now().Add(59*time.Minute))
	require.NoError(t, err)
	require.Empty(t, expired)

	expired, err = e.ts.Server.ExpireUploads(e.ctx, time.Now().Add(61*time.Minute))
	require.NoError(t, err)
	require.Equal(t, []string{e.keys.ID}, expired)
	ks, err := e.cl.KeyStatus(e.ctx, e.keys.ID)
	require.NoError(t, err)
	require.Zero(t, ks.Offset, "the staged bytes are gone")
	require.False(t, ks.Complete)

	// A complete key set is never touched; the client uploads from 0 again.
	up, err := e.cl.UploadKeys(e.ctx, e.keys.EvalPath, e.keys.ID, nil)
	require.NoError(t, err)
	require.Equal(t, up.Size, up.Sent)
	expired, err = e.ts.Server.ExpireUploads(e.ctx, time.Now().Add(1000*time.Hour))
	require.NoError(t, err)
	require.Empty(t, expired)
	e.stillServing(t)

	// Disabled: nothing expires.
	off := newHostileEnv(t, server.Config{UploadExpiry: -1})
	off.stageChunk(t, 4096)
	expired, err = off.ts.Server.ExpireUploads(off.ctx, time.Now().Add(1000*time.Hour))
	require.NoError(t, err)
	require.Empty(t, expired)
}

// The running server sweeps on its own (UploadSweep).
func TestExpireUploadsSweeper(t *testing.T) {
	e := newHostileEnv(t, server.Config{UploadExpiry: 300 * time.Millisecond, UploadSweep: 50 * time.Millisecond})
	e.stageChunk(t, 4096)
	require.Eventually(t, func() bool {
		ks, err := e.cl.KeyStatus(e.ctx, e.keys.ID)
		return err == nil && ks.Offset == 0
	}, 10*time.Second, 50*time.Millisecond, "the abandoned upload is aborted by the sweeper")
	e.stillServing(t)
}

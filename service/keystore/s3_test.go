package keystore

import (
	"bytes"
	"context"
	"net/http/httptest"
	"sort"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// objectKeys lists every object in the store's bucket.
func objectKeys(t *testing.T, s *S3) []string {
	t.Helper()
	var keys []string
	for oi := range s.client.ListObjects(context.Background(), s.bucket, minio.ListObjectsOptions{Recursive: true}) {
		require.NoError(t, oi.Err)
		keys = append(keys, oi.Key)
	}
	sort.Strings(keys)
	return keys
}

func incompleteUploads(t *testing.T, s *S3) int {
	t.Helper()
	n := 0
	for u := range s.client.ListIncompleteUploads(context.Background(), s.bucket, "", true) {
		require.NoError(t, u.Err)
		n++
	}
	return n
}

func TestS3ObjectLayout(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "tenant") // a "/" is appended to the prefix
	a := blob("layout-a", 100)
	_, err := s.Put(ctx, IDOf(a), bytes.NewReader(a), 0)
	require.NoError(t, err)
	b := blob("layout-b", 3000)
	idB := IDOf(b)
	_, err = s.AppendUpload(ctx, idB, 0, bytes.NewReader(b[:1000]), 0)
	require.NoError(t, err)
	_, err = s.AppendUpload(ctx, idB, 1000, bytes.NewReader(b[1000:2500]), 0)
	require.NoError(t, err)
	assert.Equal(t, []string{
		"tenant/keys/" + IDOf(a),
		"tenant/uploads/" + idB + "/00000000000000000000",
		"tenant/uploads/" + idB + "/00000000000000001000",
	}, objectKeys(t, s))

	_, err = s.AppendUpload(ctx, idB, 2500, bytes.NewReader(b[2500:]), 0)
	require.NoError(t, err)
	_, err = s.CompleteUpload(ctx, idB)
	require.NoError(t, err)
	assert.Equal(t, []string{"tenant/keys/" + IDOf(a), "tenant/keys/" + idB}, objectKeys(t, s))
}

func TestS3FailedMultipartUploadsAreAborted(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "")
	data := blob("multipart", 5*testPartSize+3)
	wrong := IDOf([]byte("not this"))
	_, err := s.Put(ctx, wrong, bytes.NewReader(data), 0)
	require.ErrorIs(t, err, ErrHashMismatch)
	_, err = s.Put(ctx, wrong, bytes.NewReader(data), 2*testPartSize)
	require.ErrorIs(t, err, ErrTooLarge)
	assert.Empty(t, objectKeys(t, s))
	assert.Zero(t, incompleteUploads(t, s), "multipart uploads aborted")

	_, err = s.Put(ctx, IDOf(data), bytes.NewReader(data), 0)
	require.NoError(t, err)
	assert.Equal(t, []string{"keys/" + IDOf(data)}, objectKeys(t, s))
	assert.Zero(t, incompleteUploads(t, s))
}

func TestS3StrayStagedPartsAreIgnoredAndDropped(t *testing.T) {
	ctx := context.Background()
	s := newTestS3(t, "")
	data := blob("stray", 3000)
	id := IDOf(data)
	_, err := s.AppendUpload(ctx, id, 0, bytes.NewReader(data[:1000]), 0)
	require.NoError(t, err)
	// A part past a gap (as a racing writer in another process could leave)
	// and a key that is no offset.
	for _, k := range []string{s.partKey(id, 2000), s.stagingPrefix(id) + "junk"} {
		_, err = s.client.PutObject(ctx, s.bucket, k, bytes.NewReader([]byte("garbage")), 7, minio.PutObjectOptions{})
		require.NoError(t, err)
	}
	off, err := s.UploadOffset(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int64(1000), off)
	_, err = s.AppendUpload(ctx, id, 1000, bytes.NewReader(data[1000:]), 0)
	require.NoError(t, err)
	_, err = s.CompleteUpload(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, data, readAll(t, s, id))
	assert.Equal(t, []string{"keys/" + id}, objectKeys(t, s))
}

func TestNewS3RequiresAnExistingBucket(t *testing.T) {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer srv.Close()
	_, err := NewS3(context.Background(), S3Config{Endpoint: srv.URL, Bucket: "missing", AccessKey: "a", SecretKey: "b", Region: "us-east-1"})
	assert.ErrorContains(t, err, "does not exist")
	_, err = NewS3(context.Background(), S3Config{Endpoint: srv.URL})
	assert.Error(t, err)
}

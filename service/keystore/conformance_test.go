package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testPartSize is the S3 part size in tests: small, so that blobs of a few
// hundred KiB exercise multipart uploads.
const testPartSize = 64 << 10

// blob returns n deterministic pseudo-random bytes (a SHA-256 counter
// stream) that differ per seed.
func blob(seed string, n int) []byte {
	out := make([]byte, 0, n+sha256.Size)
	for i := 0; len(out) < n; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s/%d", seed, i)))
		out = append(out, s[:]...)
	}
	return out[:n]
}

// backends are the stores the conformance table runs against: each returns
// a new, empty store.
var backends = []struct {
	name string
	open func(t *testing.T) Store
}{
	{"Dir", func(t *testing.T) Store {
		d, err := NewDir(t.TempDir())
		require.NoError(t, err)
		return d
	}},
	{"S3", func(t *testing.T) Store { return newTestS3(t, "pf") }},
}

// newTestS3 serves an in-memory S3 (gofakes3) on 127.0.0.1 and connects an
// S3 store to it.
func newTestS3(t *testing.T, prefix string) *S3 {
	t.Helper()
	backend := s3mem.New()
	require.NoError(t, backend.CreateBucket("polyformer"))
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	s, err := NewS3(context.Background(), S3Config{
		Endpoint:  srv.URL,
		Bucket:    "polyformer",
		Prefix:    prefix,
		AccessKey: "test",
		SecretKey: "test-secret",
		Region:    "us-east-1",
		PartSize:  testPartSize,
	})
	require.NoError(t, err)
	return s
}

// failReader fails the test if read: it checks that a method drains nothing.
type failReader struct{ t *testing.T }

func (f failReader) Read([]byte) (int, error) {
	f.t.Error("reader was read")
	return 0, errors.New("must not be read")
}

// brokenReader returns data, then err.
func brokenReader(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), errReader{err})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func readAll(t *testing.T, s Store, id string) []byte {
	t.Helper()
	rc, info, err := s.Open(context.Background(), id)
	require.NoError(t, err)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, info.Size, int64(len(b)))
	return b
}

func assertAbsent(t *testing.T, s Store, id string) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Stat(ctx, id)
	assert.ErrorIs(t, err, ErrNotFound)
	_, _, err = s.Open(ctx, id)
	assert.ErrorIs(t, err, ErrNotFound)
	infos, err := s.List(ctx)
	require.NoError(t, err)
	for _, i := range infos {
		assert.NotEqual(t, id, i.ID, "listed")
	}
}

// appendAll uploads data in chunks of the given size and returns the staged
// length.
func appendAll(t *testing.T, s Store, id string, data []byte, chunk int) int64 {
	t.Helper()
	ctx := context.Background()
	var off int64
	for off < int64(len(data)) || off == 0 {
		end := min(off+int64(chunk), int64(len(data)))
		n, err := s.AppendUpload(ctx, id, off, bytes.NewReader(data[off:end]), 0)
		require.NoError(t, err)
		require.Equal(t, end, n)
		got, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		require.Equal(t, end, got)
		off = n
		if len(data) == 0 {
			break
		}
	}
	return off
}

// conformance is the table of behaviours every Store must have.
var conformance = []struct {
	name string
	run  func(t *testing.T, s Store)
}{
	{"InvalidIDsAreRejectedByEveryMethod", func(t *testing.T, s Store) {
		ctx := context.Background()
		good := IDOf([]byte("x"))
		for _, id := range []string{
			"", "abc", strings.ToUpper(good), good + "0", good[:63],
			"../" + good[3:], good[:30] + "/" + good[31:], good[:63] + "\x00",
			"..", strings.Repeat(".", 64), good[:63] + "g",
		} {
			_, err := s.Stat(ctx, id)
			assert.ErrorIs(t, err, ErrInvalidID, "Stat %q", id)
			_, _, err = s.Open(ctx, id)
			assert.ErrorIs(t, err, ErrInvalidID, "Open %q", id)
			_, err = s.Put(ctx, id, failReader{t}, 0)
			assert.ErrorIs(t, err, ErrInvalidID, "Put %q", id)
			_, err = s.UploadOffset(ctx, id)
			assert.ErrorIs(t, err, ErrInvalidID, "UploadOffset %q", id)
			_, err = s.AppendUpload(ctx, id, 0, failReader{t}, 0)
			assert.ErrorIs(t, err, ErrInvalidID, "AppendUpload %q", id)
			_, err = s.CompleteUpload(ctx, id)
			assert.ErrorIs(t, err, ErrInvalidID, "CompleteUpload %q", id)
			assert.ErrorIs(t, s.AbortUpload(ctx, id), ErrInvalidID, "AbortUpload %q", id)
			assert.ErrorIs(t, s.Delete(ctx, id), ErrInvalidID, "Delete %q", id)
		}
	}},
	{"PutRoundTripsBlobsOfEverySize", func(t *testing.T, s Store) {
		ctx := context.Background()
		var total int64
		for _, n := range []int{0, 1, testPartSize - 1, testPartSize, testPartSize + 1, 3*testPartSize + 7} {
			data := blob(fmt.Sprint("put", n), n)
			id := IDOf(data)
			info, err := s.Put(ctx, id, bytes.NewReader(data), int64(n))
			require.NoError(t, err, "size %d", n)
			assert.Equal(t, id, info.ID)
			assert.Equal(t, int64(n), info.Size)
			assert.False(t, info.Modified.IsZero())
			st, err := s.Stat(ctx, id)
			require.NoError(t, err)
			assert.Equal(t, info.Size, st.Size)
			assert.Equal(t, data, readAll(t, s, id), "size %d", n)
			total += int64(n)
		}
		infos, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, infos, 6)
		for i := 1; i < len(infos); i++ {
			assert.Less(t, infos[i-1].ID, infos[i].ID, "List is sorted")
		}
		tb, err := s.TotalBytes(ctx)
		require.NoError(t, err)
		assert.Equal(t, total, tb)
	}},
	{"PutOfAnExistingIDDrainsNothing", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("idem", 1000)
		id := IDOf(data)
		first, err := s.Put(ctx, id, bytes.NewReader(data), 0)
		require.NoError(t, err)
		again, err := s.Put(ctx, id, failReader{t}, 0)
		require.NoError(t, err)
		assert.Equal(t, first.Size, again.Size)
		assert.Equal(t, id, again.ID)
	}},
	{"PutWithWrongHashPublishesNothing", func(t *testing.T, s Store) {
		ctx := context.Background()
		for _, n := range []int{10, 2*testPartSize + 5} {
			data := blob("mismatch", n)
			id := IDOf(blob("other", n))
			_, err := s.Put(ctx, id, bytes.NewReader(data), 0)
			require.ErrorIs(t, err, ErrHashMismatch)
			assertAbsent(t, s, id)
			assertAbsent(t, s, IDOf(data))
		}
		tb, err := s.TotalBytes(ctx)
		require.NoError(t, err)
		assert.Zero(t, tb)
	}},
	{"PutEnforcesMaxBytesWhileStreaming", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("big", 2*testPartSize+1)
		id := IDOf(data)
		// The reader would go on for ever: the limit must stop it.
		endless := io.MultiReader(bytes.NewReader(data), neverEnding{})
		_, err := s.Put(ctx, id, endless, int64(len(data)))
		require.ErrorIs(t, err, ErrTooLarge)
		assertAbsent(t, s, id)
		_, err = s.Put(ctx, id, bytes.NewReader(data), int64(len(data))-1)
		require.ErrorIs(t, err, ErrTooLarge)
		assertAbsent(t, s, id)
		_, err = s.Put(ctx, id, bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"PutFailingMidStreamPublishesNothing", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("broken", 3*testPartSize)
		id := IDOf(data)
		boom := errors.New("connection reset")
		_, err := s.Put(ctx, id, brokenReader(data[:2*testPartSize+3], boom), 0)
		require.ErrorIs(t, err, boom)
		assertAbsent(t, s, id)

		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err = s.Put(cctx, id, bytes.NewReader(data), 0)
		require.ErrorIs(t, err, context.Canceled)
		assertAbsent(t, s, id)
	}},
	{"ConcurrentPutsOfOneIDAgree", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("concurrent-put", 2*testPartSize+100)
		id := IDOf(data)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				info, err := s.Put(ctx, id, bytes.NewReader(data), 0)
				assert.NoError(t, err)
				assert.Equal(t, int64(len(data)), info.Size)
			})
		}
		wg.Wait()
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"ResumableUploadIsInvisibleUntilComplete", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("resumable", 3*testPartSize+11)
		id := IDOf(data)
		off, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, off)

		n := appendAll(t, s, id, data, 50_000)
		assert.Equal(t, int64(len(data)), n)
		assertAbsent(t, s, id)
		tb, err := s.TotalBytes(ctx)
		require.NoError(t, err)
		assert.Zero(t, tb, "staged bytes are not counted")

		info, err := s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(len(data)), info.Size)
		assert.Equal(t, data, readAll(t, s, id))
		assert.ErrorIs(t, s.AbortUpload(ctx, id), ErrNotFound, "staging removed")
		tb, err = s.TotalBytes(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(len(data)), tb)
	}},
	{"AppendAtTheWrongOffsetFails", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("offset", 1000)
		id := IDOf(data)
		_, err := s.AppendUpload(ctx, id, 10, failReader{t}, 0)
		require.ErrorIs(t, err, ErrOffsetMismatch)
		_, err = s.AppendUpload(ctx, id, -1, failReader{t}, 0)
		require.ErrorIs(t, err, ErrOffsetMismatch)
		n, err := s.AppendUpload(ctx, id, 0, bytes.NewReader(data[:400]), 0)
		require.NoError(t, err)
		require.Equal(t, int64(400), n)
		for _, off := range []int64{0, 399, 401} {
			got, err := s.AppendUpload(ctx, id, off, failReader{t}, 0)
			require.ErrorIs(t, err, ErrOffsetMismatch)
			assert.Equal(t, int64(400), got, "returns the staged length")
		}
		_, err = s.AppendUpload(ctx, id, 400, bytes.NewReader(data[400:]), 0)
		require.NoError(t, err)
		_, err = s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"FailedAppendLeavesTheStagedLengthUnchanged", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("failed-append", 3*testPartSize)
		id := IDOf(data)
		max := int64(len(data))
		_, err := s.AppendUpload(ctx, id, 0, bytes.NewReader(data[:1000]), max)
		require.NoError(t, err)

		boom := errors.New("client went away")
		got, err := s.AppendUpload(ctx, id, 1000, brokenReader(data[1000:2*testPartSize], boom), max)
		require.ErrorIs(t, err, boom)
		assert.Equal(t, int64(1000), got)
		off, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(1000), off)

		// A first append that fails leaves no upload behind.
		other := IDOf([]byte("other"))
		_, err = s.AppendUpload(ctx, other, 0, brokenReader(data[:10], boom), 0)
		require.ErrorIs(t, err, boom)
		ups, err := s.(UploadLister).Uploads(ctx)
		require.NoError(t, err)
		require.Len(t, ups, 1)
		assert.Equal(t, id, ups[0].ID)

		got, err = s.AppendUpload(ctx, id, 1000, io.MultiReader(bytes.NewReader(data[1000:]), neverEnding{}), max)
		require.ErrorIs(t, err, ErrTooLarge)
		assert.Equal(t, int64(1000), got)
		off, err = s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(1000), off)

		_, err = s.AppendUpload(ctx, id, 1000, bytes.NewReader(data[1000:]), max)
		require.NoError(t, err)
		_, err = s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"CompleteWithWrongHashDiscardsTheStaging", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("complete-mismatch", 2*testPartSize+9)
		id := IDOf(blob("something else", 10))
		appendAll(t, s, id, data, 40_000)
		_, err := s.CompleteUpload(ctx, id)
		require.ErrorIs(t, err, ErrHashMismatch)
		assertAbsent(t, s, id)
		off, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, off)
		assert.ErrorIs(t, s.AbortUpload(ctx, id), ErrNotFound)
	}},
	{"CompleteOrAbortWithoutUploadIsNotFound", func(t *testing.T, s Store) {
		ctx := context.Background()
		id := IDOf([]byte("never uploaded"))
		_, err := s.CompleteUpload(ctx, id)
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorIs(t, s.AbortUpload(ctx, id), ErrNotFound)
	}},
	{"AbortDiscardsTheStaging", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("abort", 5000)
		id := IDOf(data)
		appendAll(t, s, id, data[:3000], 1000)
		require.NoError(t, s.AbortUpload(ctx, id))
		off, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, off)
		_, err = s.CompleteUpload(ctx, id)
		assert.ErrorIs(t, err, ErrNotFound)
		assertAbsent(t, s, id)
		// A new upload starts from 0.
		appendAll(t, s, id, data, 2000)
		_, err = s.CompleteUpload(ctx, id)
		require.NoError(t, err)
	}},
	{"EmptyBlobUploadsResumably", func(t *testing.T, s Store) {
		ctx := context.Background()
		id := IDOf(nil)
		n, err := s.AppendUpload(ctx, id, 0, bytes.NewReader(nil), 0)
		require.NoError(t, err)
		assert.Zero(t, n)
		info, err := s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Zero(t, info.Size)
	}},
	{"CompleteBlobLooksLikeAFinishedUpload", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("finished", 777)
		id := IDOf(data)
		_, err := s.Put(ctx, id, bytes.NewReader(data), 0)
		require.NoError(t, err)
		off, err := s.UploadOffset(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(777), off)
		n, err := s.AppendUpload(ctx, id, 777, failReader{t}, 0)
		require.NoError(t, err)
		assert.Equal(t, int64(777), n)
		_, err = s.AppendUpload(ctx, id, 0, failReader{t}, 0)
		assert.ErrorIs(t, err, ErrOffsetMismatch)
		info, err := s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(777), info.Size)
	}},
	{"CompleteAfterAPutOfTheSameIDDropsTheStaging", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("raced", 3000)
		id := IDOf(data)
		appendAll(t, s, id, data[:1000], 1000)
		_, err := s.Put(ctx, id, bytes.NewReader(data), 0)
		require.NoError(t, err)
		info, err := s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, int64(3000), info.Size)
		assert.ErrorIs(t, s.AbortUpload(ctx, id), ErrNotFound)
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"ConcurrentAppendsOfOneIDDoNotCorrupt", func(t *testing.T, s Store) {
		ctx := context.Background()
		data := blob("concurrent-append", 40_000)
		id := IDOf(data)
		const chunk = 1000
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					off, err := s.UploadOffset(ctx, id)
					if !assert.NoError(t, err) || off == int64(len(data)) {
						return
					}
					end := min(off+chunk, int64(len(data)))
					_, err = s.AppendUpload(ctx, id, off, bytes.NewReader(data[off:end]), 0)
					if err != nil && !errors.Is(err, ErrOffsetMismatch) {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		_, err := s.CompleteUpload(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, data, readAll(t, s, id))
	}},
	{"UploadsListsStagedUploads", func(t *testing.T, s Store) {
		ctx := context.Background()
		ul, ok := s.(UploadLister)
		require.True(t, ok, "implements UploadLister")
		ups, err := ul.Uploads(ctx)
		require.NoError(t, err)
		assert.Empty(t, ups)
		a, b := blob("up-a", 3000), blob("up-b", 500)
		appendAll(t, s, IDOf(a), a[:2000], 1000)
		appendAll(t, s, IDOf(b), b[:100], 1000)
		ups, err = ul.Uploads(ctx)
		require.NoError(t, err)
		require.Len(t, ups, 2)
		want := map[string]int64{IDOf(a): 2000, IDOf(b): 100}
		assert.Less(t, ups[0].ID, ups[1].ID)
		for _, u := range ups {
			assert.Equal(t, want[u.ID], u.Size, u.ID)
			assert.False(t, u.Modified.IsZero())
		}
		require.NoError(t, s.AbortUpload(ctx, IDOf(b)))
		ups, err = ul.Uploads(ctx)
		require.NoError(t, err)
		require.Len(t, ups, 1)
		assert.Equal(t, IDOf(a), ups[0].ID)
	}},
	{"DeleteRemovesACompleteBlob", func(t *testing.T, s Store) {
		ctx := context.Background()
		a, b := blob("a", 100), blob("b", 200)
		for _, d := range [][]byte{a, b} {
			_, err := s.Put(ctx, IDOf(d), bytes.NewReader(d), 0)
			require.NoError(t, err)
		}
		require.NoError(t, s.Delete(ctx, IDOf(a)))
		assertAbsent(t, s, IDOf(a))
		assert.ErrorIs(t, s.Delete(ctx, IDOf(a)), ErrNotFound)
		infos, err := s.List(ctx)
		require.NoError(t, err)
		require.Len(t, infos, 1)
		assert.Equal(t, IDOf(b), infos[0].ID)
		tb, err := s.TotalBytes(ctx)
		require.NoError(t, err)
		assert.Equal(t, int64(200), tb)
		// A deleted blob can be stored again.
		_, err = s.Put(ctx, IDOf(a), bytes.NewReader(a), 0)
		require.NoError(t, err)
		assert.Equal(t, a, readAll(t, s, IDOf(a)))
	}},
}

// neverEnding is an endless stream of 'x'.
type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestConformance(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) { c.run(t, b.open(t)) })
			}
		})
	}
}

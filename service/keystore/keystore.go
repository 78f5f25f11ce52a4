package keystore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"time"
)

// Errors returned by stores, always wrapped with context: test with errors.Is.
var (
	// ErrNotFound: no complete blob (or, for CompleteUpload and AbortUpload,
	// no staged upload) exists under the ID.
	ErrNotFound = errors.New("keystore: not found")
	// ErrHashMismatch: the SHA-256 of the uploaded bytes is not the ID.
	// Nothing was published and the bytes were discarded.
	ErrHashMismatch = errors.New("keystore: SHA-256 of the content does not match the ID")
	// ErrOffsetMismatch: AppendUpload's offset is not the staged length.
	ErrOffsetMismatch = errors.New("keystore: offset does not match the staged length")
	// ErrInvalidID: the ID is not 64 lower-case hex characters.
	ErrInvalidID = errors.New("keystore: invalid ID")
	// ErrTooLarge: the blob would exceed the caller's maxBytes.
	ErrTooLarge = errors.New("keystore: blob too large")
)

// IDLen is the length of an ID: the hex encoding of a SHA-256 digest.
const IDLen = 2 * sha256.Size

// Info describes a complete blob.
type Info struct {
	ID       string
	Size     int64
	Modified time.Time
}

// Store is a content-addressed blob store: an ID is the lower-case hex
// SHA-256 of the blob.
//
// Every method validates the ID (ValidateID) before touching any path or
// object key. A blob is visible (Stat, Open, List) only once it is complete
// and its SHA-256 has been checked against its ID.
//
// maxBytes caps the size of the whole blob; maxBytes <= 0 means no limit.
// The limit is enforced while streaming: at most maxBytes+1 bytes are read
// from r before ErrTooLarge.
//
// Resumable uploads stage bytes under the ID until CompleteUpload. An
// AppendUpload that fails (read error, cancelled context, ErrTooLarge) leaves
// the staged length unchanged, so a client resumes at UploadOffset. A
// complete blob looks like a finished upload: UploadOffset returns its size,
// AppendUpload at that offset reads nothing and returns it, and
// CompleteUpload returns its Info (discarding any staging), so a client that
// lost the answer to CompleteUpload, or uploads a blob someone else already
// stored, finishes without sending the bytes again.
type Store interface {
	// Stat describes a complete blob: ErrNotFound if absent or incomplete.
	Stat(ctx context.Context, id string) (Info, error)
	// Open returns a reader of a complete blob. The bytes are not hashed
	// again on reading.
	Open(ctx context.Context, id string) (io.ReadCloser, Info, error)
	// Put streams r in one go; the blob becomes visible under id only after
	// the SHA-256 of all bytes equals id (else ErrHashMismatch and nothing
	// visible). Put of an existing id drains nothing and returns its Info at
	// once (idempotent).
	Put(ctx context.Context, id string, r io.Reader, maxBytes int64) (Info, error)
	// UploadOffset returns the bytes staged so far for an unfinished upload
	// of id (0 if none; the blob's size if it is complete). While an
	// AppendUpload of id runs, it may report any length between the old and
	// the new one.
	UploadOffset(ctx context.Context, id string) (int64, error)
	// AppendUpload appends r at offset, which must equal the staged length
	// (else ErrOffsetMismatch); it returns the new staged length. On error
	// the staged length is unchanged and is returned with the error
	// (except for ErrInvalidID).
	AppendUpload(ctx context.Context, id string, offset int64, r io.Reader, maxBytes int64) (int64, error)
	// CompleteUpload verifies the SHA-256 of the staged bytes, publishes the
	// blob atomically and removes the staging; ErrHashMismatch discards the
	// staging. ErrNotFound if nothing is staged and no blob exists.
	CompleteUpload(ctx context.Context, id string) (Info, error)
	// AbortUpload discards the staging of id; ErrNotFound if there is none.
	AbortUpload(ctx context.Context, id string) error
	// Delete removes a complete blob; ErrNotFound if there is none.
	// Staged uploads of the same id are not touched.
	Delete(ctx context.Context, id string) error
	// List describes every complete blob, sorted by ID.
	List(ctx context.Context) ([]Info, error)
	// TotalBytes is the summed size of the complete blobs (staged uploads
	// are not counted).
	TotalBytes(ctx context.Context) (int64, error)
}

// UploadLister is implemented by Dir and S3: Uploads describes the staged
// (unfinished) uploads, sorted by ID, with Size the bytes staged and
// Modified the time of the last append, so that a server can expire
// abandoned ones with AbortUpload.
type UploadLister interface {
	Uploads(ctx context.Context) ([]Info, error)
}

// ValidateID returns nil if id is exactly 64 lower-case hex characters, and
// an error wrapping ErrInvalidID otherwise. A valid ID contains no path
// separator, dot or other character with a meaning in a path or object key.
func ValidateID(id string) error {
	if len(id) != IDLen {
		return fmt.Errorf("%w: length %d, want %d lower-case hex characters", ErrInvalidID, len(id), IDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return fmt.Errorf("%w: byte %d is %q, want lower-case hex", ErrInvalidID, i, c)
		}
	}
	return nil
}

// ParseID lowers upper-case hex digits in s and validates the result. Use it on IDs typed by people; stores take
// only the canonical lower-case form.
func ParseID(s string) (string, error) {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	id := string(b)
	if err := ValidateID(id); err != nil {
		return "", err
	}
	return id, nil
}

// IDOf returns the ID of data: the lower-case hex SHA-256.
func IDOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// meter is the reader every store streams an upload through: it stops at
// the first read after ctx is done, hashes what it passes on (if h is set),
// counts it, and fails with ErrTooLarge as soon as base+n would exceed max
// (max <= 0: no limit), reading at most one byte past the limit.
type meter struct {
	ctx  context.Context
	r    io.Reader
	h    hash.Hash
	base int64 // bytes before this stream (the append offset)
	n    int64
	max  int64
}

func (m *meter) Read(p []byte) (int, error) {
	if err := m.ctx.Err(); err != nil {
		return 0, err
	}
	if m.max > 0 && m.max < math.MaxInt64 {
		room := m.max - m.base - m.n + 1
		if room <= 0 {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.max)
		}
		if int64(len(p)) > room {
			p = p[:room]
		}
	}
	k, err := m.r.Read(p)
	m.n += int64(k)
	if m.max > 0 && m.base+m.n > m.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, m.max)
	}
	if m.h != nil {
		m.h.Write(p[:k])
	}
	return k, err
}

// checkSum returns nil if the hash m has computed is id.
func (m *meter) checkSum(id string) error {
	got := hex.EncodeToString(m.h.Sum(nil))
	if got != id {
		return fmt.Errorf("%w: %d bytes hash to %s, want %s", ErrHashMismatch, m.n, got, id)
	}
	return nil
}

func newMeter(ctx context.Context, r io.Reader, base, max int64, hashing bool) *meter {
	m := &meter{ctx: ctx, r: r, base: base, max: max}
	if hashing {
		m.h = sha256.New()
	}
	return m
}

// checkRoom fails with ErrTooLarge if offset alone already exceeds max.
func checkRoom(offset, max int64) error {
	if max > 0 && offset > max {
		return fmt.Errorf("%w: staged %d bytes, limit %d", ErrTooLarge, offset, max)
	}
	return nil
}

// totalBytes sums the sizes of the complete blobs of st.
func totalBytes(ctx context.Context, st Store) (int64, error) {
	infos, err := st.List(ctx)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, i := range infos {
		n += i.Size
	}
	return n, nil
}

package keystore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config locates an S3-compatible bucket.
type S3Config struct {
	// Endpoint is host:port; a leading "http://" or "https://" is accepted
	// and then decides TLS instead of UseTLS.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every object key; a "/" is appended if it is
	// missing, so Prefix "pf" stores blobs under "pf/keys/{id}".
	Prefix    string
	AccessKey string
	SecretKey string
	Region    string
	UseTLS    bool
	// PartSize is the size of the parts of multipart uploads and of the
	// in-memory buffer each upload uses; 0 means DefaultS3PartSize. S3
	// requires at least 5 MiB (except for the last part) and allows 10,000
	// parts per object, so PartSize bounds the blob size to 10,000 ×
	// PartSize (160 GB by default).
	PartSize int64
}

// DefaultS3PartSize is the default S3Config.PartSize.
const DefaultS3PartSize = 16 << 20

// maxParts is S3's limit on the parts of one multipart upload.
const maxParts = 10000

// S3 is a Store in an S3-compatible bucket:
//
//	{Prefix}keys/{id}                complete blobs, each verified against its ID
//	{Prefix}uploads/{id}/{offset}    staged parts of a resumable upload; offset
//	                                 is zero-padded to 20 digits
//
// Publication: nothing is ever written under keys/{id} before the SHA-256 of
// the whole blob has been checked. A blob that fits in one part is hashed in
// memory and then written with a single PUT. A larger one is streamed as the
// parts of a multipart upload to keys/{id}, hashing as it goes; S3 makes a
// multipart upload's object visible only at CompleteMultipartUpload, which is
// called only when the hash matches (otherwise, and on any error, the upload
// is aborted). A crash mid-upload leaves only an invisible incomplete
// multipart upload, which a bucket lifecycle rule
// (AbortIncompleteMultipartUpload) should expire. There is no temporary
// object and no server-side copy.
//
// Resumable uploads: each AppendUpload stores one part object (the same
// hashed-nothing, publish-at-end upload as above, so a failed append stores
// nothing); CompleteUpload streams the parts in order through SHA-256 into a
// new upload of keys/{id}, then deletes them. Completion thus copies the
// bytes through this process once (S3's UploadPartCopy cannot be used: the
// hash must be computed here, and clients' chunks may be smaller than S3's
// minimum part).
//
// Allocation: every Put, AppendUpload and CompleteUpload holds one PartSize
// buffer (pooled) for its duration.
//
// Concurrency: safe for concurrent use; uploads of one ID are serialized by
// a per-ID lock within this process. Several processes appending to the same
// upload at once may interleave parts; the hash check at completion then
// fails rather than publishing wrong bytes.
type S3 struct {
	client  *minio.Client
	core    minio.Core
	bucket  string
	prefix  string
	part    int64
	secure  bool
	bufs    sync.Pool
	locks   idLocks
	putOpts minio.PutObjectOptions
}

var (
	_ Store        = (*S3)(nil)
	_ UploadLister = (*S3)(nil)
)

// NewS3 connects to the bucket of cfg, which must exist.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("keystore: S3 bucket is empty")
	}
	endpoint, secure := cfg.Endpoint, cfg.UseTLS
	if rest, ok := strings.CutPrefix(endpoint, "https://"); ok {
		endpoint, secure = rest, true
	} else if rest, ok := strings.CutPrefix(endpoint, "http://"); ok {
		endpoint, secure = rest, false
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	client, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("keystore: S3 client: %w", err)
	}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("keystore: S3 bucket %q: %w", cfg.Bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("keystore: S3 bucket %q does not exist", cfg.Bucket)
	}
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	part := cfg.PartSize
	if part <= 0 {
		part = DefaultS3PartSize
	}
	s := &S3{
		client:  client,
		core:    minio.Core{Client: client},
		bucket:  cfg.Bucket,
		prefix:  prefix,
		part:    part,
		secure:  secure,
		putOpts: minio.PutObjectOptions{ContentType: "application/octet-stream"},
	}
	s.bufs.New = func() any { b := make([]byte, part); return &b }
	return s, nil
}

func (s *S3) blobKey(id string) string       { return s.prefix + "keys/" + id }
func (s *S3) stagingPrefix(id string) string { return s.prefix + "uploads/" + id + "/" }
func (s *S3) partKey(id string, off int64) string {
	return fmt.Sprintf("%s%020d", s.stagingPrefix(id), off)
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.StatusCode == http.StatusNotFound
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, id string) (Info, error) {
	if err := ValidateID(id); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.blobKey(id), minio.StatObjectOptions{})
	if isNotFound(err) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Info{}, fmt.Errorf("keystore: stat %s: %w", id, err)
	}
	return Info{ID: id, Size: oi.Size, Modified: oi.LastModified}, nil
}

// Open implements Store; the reader is a *minio.Object (it also seeks).
func (s *S3) Open(ctx context.Context, id string) (io.ReadCloser, Info, error) {
	if err := ValidateID(id); err != nil {
		return nil, Info{}, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.blobKey(id), minio.GetObjectOptions{})
	if err == nil {
		var oi minio.ObjectInfo
		if oi, err = obj.Stat(); err == nil {
			return obj, Info{ID: id, Size: oi.Size, Modified: oi.LastModified}, nil
		}
		obj.Close()
	}
	if isNotFound(err) {
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil, Info{}, fmt.Errorf("keystore: open %s: %w", id, err)
}

// payloadSHA256 returns the hex SHA-256 that signs a request body over plain
// HTTP (where the payload must be signed), and "" over TLS (where minio-go
// then sends UNSIGNED-PAYLOAD). Signing the payload instead of minio-go's
// default streaming (aws-chunked) signature costs one more pass over each
// part buffer, and works with every S3 implementation, including those that
// do not decode aws-chunked bodies in UploadPart.
func (s *S3) payloadSHA256(b []byte) string {
	if s.secure {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// upload streams r into the object key. Once r reaches EOF, verify decides:
// the object is written (single PUT) or its multipart upload completed only
// if verify returns nil; on any error nothing is visible under key.
func (s *S3) upload(ctx context.Context, key string, r io.Reader, verify func() error) (err error) {
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp

	n, err := io.ReadFull(r, buf)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if err := verify(); err != nil {
			return err
		}
		opts := s.putOpts
		opts.DisableContentSha256 = true
		_, err = s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(buf[:n]), int64(n), "", s.payloadSHA256(buf[:n]), opts)
		return err
	}
	if err != nil {
		return err
	}

	uploadID, err := s.core.NewMultipartUpload(ctx, s.bucket, key, s.putOpts)
	if err != nil {
		return err
	}
	completed := false
	defer func() {
		if completed {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if aerr := s.core.AbortMultipartUpload(actx, s.bucket, key, uploadID); aerr != nil {
			err = errors.Join(err, fmt.Errorf("abort multipart upload: %w", aerr))
		}
	}()
	var parts []minio.CompletePart
	for {
		if len(parts) == maxParts {
			return fmt.Errorf("%w: more than %d parts of %d bytes", ErrTooLarge, maxParts, s.part)
		}
		p, err := s.core.PutObjectPart(ctx, s.bucket, key, uploadID, len(parts)+1,
			bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{
				Sha256Hex: s.payloadSHA256(buf[:n]), DisableContentSha256: true,
			})
		if err != nil {
			return err
		}
		parts = append(parts, minio.CompletePart{PartNumber: len(parts) + 1, ETag: p.ETag})
		n, err = io.ReadFull(r, buf)
		if err == io.EOF {
			break
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
	}
	if err := verify(); err != nil {
		return err
	}
	if _, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, uploadID, parts, s.putOpts); err != nil {
		return err
	}
	completed = true
	return nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, id string, r io.Reader, maxBytes int64) (Info, error) {
	if info, err := s.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		return info, err
	}
	m := newMeter(ctx, r, 0, maxBytes, true)
	if err := s.upload(ctx, s.blobKey(id), m, func() error { return m.checkSum(id) }); err != nil {
		return Info{}, fmt.Errorf("keystore: put %s after %d bytes: %w", id, m.n, err)
	}
	return s.Stat(ctx, id)
}

type stagedPart struct {
	off, size int64
	key       string
}

// staged lists the part objects of id's upload: first those with an offset,
// sorted by it, then any stray key. The first run of them are contiguous from
// offset 0, and length is where that run ends: the staged length.
func (s *S3) staged(ctx context.Context, id string) (parts []stagedPart, run int, length int64, err error) {
	pre := s.stagingPrefix(id)
	var stray []stagedPart
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if oi.Err != nil {
			return nil, 0, 0, fmt.Errorf("keystore: list upload %s: %w", id, oi.Err)
		}
		p := stagedPart{size: oi.Size, key: oi.Key}
		p.off, err = strconv.ParseInt(strings.TrimPrefix(oi.Key, pre), 10, 64)
		if err != nil || p.off < 0 {
			stray = append(stray, p)
			continue
		}
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].off < parts[j].off })
	for _, p := range parts {
		if p.off != length {
			break
		}
		length += p.size
		run++
	}
	return append(parts, stray...), run, length, nil
}

// UploadOffset implements Store.
func (s *S3) UploadOffset(ctx context.Context, id string) (int64, error) {
	if info, err := s.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		return info.Size, err
	}
	_, _, n, err := s.staged(ctx, id)
	return n, err
}

func (s *S3) removeKeys(ctx context.Context, parts []stagedPart) error {
	for _, p := range parts {
		if err := s.client.RemoveObject(ctx, s.bucket, p.key, minio.RemoveObjectOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("keystore: remove %s: %w", p.key, err)
		}
	}
	return nil
}

// AppendUpload implements Store.
func (s *S3) AppendUpload(ctx context.Context, id string, offset int64, r io.Reader, maxBytes int64) (int64, error) {
	if err := ValidateID(id); err != nil {
		return 0, err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("keystore: append %s: %w", id, err)
	}
	defer unlock()

	if info, err := s.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		if err == nil && offset != info.Size {
			err = fmt.Errorf("%w: append %s at %d, complete blob has %d", ErrOffsetMismatch, id, offset, info.Size)
		}
		return info.Size, err
	}
	parts, run, staged, err := s.staged(ctx, id)
	if err != nil {
		return 0, err
	}
	if offset != staged {
		return staged, fmt.Errorf("%w: append %s at %d, staged %d", ErrOffsetMismatch, id, offset, staged)
	}
	if err := checkRoom(offset, maxBytes); err != nil {
		return staged, err
	}
	// Parts past the contiguous run are leftovers of racing writers: drop
	// them so that they cannot join the run later.
	if err := s.removeKeys(ctx, parts[run:]); err != nil {
		return staged, err
	}
	m := newMeter(ctx, r, offset, maxBytes, false)
	var wrote bool
	err = s.upload(ctx, s.partKey(id, offset), m, func() error {
		// An empty append stores nothing, except at 0, where the empty
		// part marks that an upload exists.
		wrote = m.n > 0 || offset == 0
		if !wrote {
			return errSkip
		}
		return nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return staged, fmt.Errorf("keystore: append %s at %d after %d bytes: %w", id, offset, m.n, err)
	}
	return offset + m.n, nil
}

var errSkip = errors.New("keystore: nothing to write")

// partsReader reads the part objects one after the other.
type partsReader struct {
	ctx   context.Context
	s     *S3
	parts []stagedPart
	cur   io.ReadCloser
}

func (p *partsReader) Read(b []byte) (int, error) {
	for {
		if p.cur == nil {
			if len(p.parts) == 0 {
				return 0, io.EOF
			}
			obj, err := p.s.client.GetObject(p.ctx, p.s.bucket, p.parts[0].key, minio.GetObjectOptions{})
			if err != nil {
				return 0, err
			}
			p.cur, p.parts = obj, p.parts[1:]
		}
		n, err := p.cur.Read(b)
		if err == io.EOF {
			p.cur.Close()
			p.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (p *partsReader) Close() error {
	if p.cur != nil {
		return p.cur.Close()
	}
	return nil
}

// CompleteUpload implements Store.
func (s *S3) CompleteUpload(ctx context.Context, id string) (Info, error) {
	if err := ValidateID(id); err != nil {
		return Info{}, err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return Info{}, fmt.Errorf("keystore: complete %s: %w", id, err)
	}
	defer unlock()

	parts, run, _, err := s.staged(ctx, id)
	if err != nil {
		return Info{}, err
	}
	if info, err := s.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		if err == nil {
			err = s.removeKeys(ctx, parts)
		}
		return info, err
	}
	if len(parts) == 0 {
		return Info{}, fmt.Errorf("%w: no upload of %s", ErrNotFound, id)
	}
	pr := &partsReader{ctx: ctx, s: s, parts: parts[:run]}
	defer pr.Close()
	m := newMeter(ctx, pr, 0, 0, true)
	err = s.upload(ctx, s.blobKey(id), m, func() error { return m.checkSum(id) })
	if errors.Is(err, ErrHashMismatch) {
		return Info{}, errors.Join(err, s.removeKeys(ctx, parts))
	}
	if err != nil {
		return Info{}, fmt.Errorf("keystore: complete %s after %d bytes: %w", id, m.n, err)
	}
	if err := s.removeKeys(ctx, parts); err != nil {
		return Info{}, err
	}
	return s.Stat(ctx, id)
}

// AbortUpload implements Store.
func (s *S3) AbortUpload(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return fmt.Errorf("keystore: abort %s: %w", id, err)
	}
	defer unlock()
	parts, _, _, err := s.staged(ctx, id)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return fmt.Errorf("%w: no upload of %s", ErrNotFound, id)
	}
	return s.removeKeys(ctx, parts)
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, id string) error {
	if _, err := s.Stat(ctx, id); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, s.blobKey(id), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("keystore: delete %s: %w", id, err)
	}
	return nil
}

// List implements Store.
func (s *S3) List(ctx context.Context) ([]Info, error) {
	pre := s.prefix + "keys/"
	var out []Info
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("keystore: list: %w", oi.Err)
		}
		id := strings.TrimPrefix(oi.Key, pre)
		if ValidateID(id) != nil {
			continue
		}
		out = append(out, Info{ID: id, Size: oi.Size, Modified: oi.LastModified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Uploads implements UploadLister; Size sums the staged part objects.
func (s *S3) Uploads(ctx context.Context) ([]Info, error) {
	pre := s.prefix + "uploads/"
	byID := map[string]*Info{}
	for oi := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: pre, Recursive: true}) {
		if oi.Err != nil {
			return nil, fmt.Errorf("keystore: list uploads: %w", oi.Err)
		}
		id, _, ok := strings.Cut(strings.TrimPrefix(oi.Key, pre), "/")
		if !ok || ValidateID(id) != nil {
			continue
		}
		in := byID[id]
		if in == nil {
			in = &Info{ID: id}
			byID[id] = in
		}
		in.Size += oi.Size
		if oi.LastModified.After(in.Modified) {
			in.Modified = oi.LastModified
		}
	}
	out := make([]Info, 0, len(byID))
	for _, in := range byID {
		out = append(out, *in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// TotalBytes implements Store.
func (s *S3) TotalBytes(ctx context.Context) (int64, error) { return totalBytes(ctx, s) }

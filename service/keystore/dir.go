package keystore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Dir is a Store in a local directory:
//
//	root/keys/{id}           complete blobs, each verified against its ID
//	root/keys/.put-*.tmp     Put in progress (never a valid ID, never listed)
//	root/uploads/{id}        staged bytes of a resumable upload
//
// Durability: Put writes a temporary file in root/keys, fsyncs it, renames
// it to its ID and fsyncs the directory, so after a crash (of the process or
// the machine) an ID names either nothing or the whole verified blob.
// AppendUpload fsyncs the staged file before returning its new length, so an
// acknowledged offset survives a crash; a crash during an append may leave
// more bytes staged than were acknowledged (the bytes the client had sent, in
// order), which UploadOffset then reports. CompleteUpload hashes the staged
// file by streaming it and renames it into root/keys (root must be on one
// file system), then fsyncs both directories.
//
// Allocation: Put, AppendUpload and CompleteUpload each use one pooled 1 MiB
// copy buffer; no method holds a blob in memory.
//
// Concurrency: a Dir is safe for concurrent use. Uploads of the same ID are
// serialized by a per-ID lock (Put needs none: each Put writes its own
// temporary file and the renames of identical content are atomic). One
// process should own a root: the per-ID locks are not shared between
// processes.
type Dir struct {
	root    string
	keys    string
	uploads string
	locks   idLocks
}

var (
	_ Store        = (*Dir)(nil)
	_ UploadLister = (*Dir)(nil)
)

const (
	putTempPrefix = ".put-"
	putTempSuffix = ".tmp"
	// staleTempAge is the age past which NewDir deletes the temporary file
	// of a Put (one left by a crash: a live Put writes at least every few
	// seconds).
	staleTempAge = time.Hour
	copyBufSize  = 1 << 20
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// NewDir opens (creating if needed, mode 0700) a Dir at root and deletes
// the temporary files of Puts that a crash left behind more than an hour
// ago. Staged uploads are kept so that clients can resume them.
func NewDir(root string) (*Dir, error) {
	d := &Dir{
		root:    root,
		keys:    filepath.Join(root, "keys"),
		uploads: filepath.Join(root, "uploads"),
	}
	for _, p := range []string{root, d.keys, d.uploads} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			return nil, fmt.Errorf("keystore: %w", err)
		}
	}
	ents, err := os.ReadDir(d.keys)
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, putTempPrefix) || !strings.HasSuffix(name, putTempSuffix) {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleTempAge {
			_ = os.Remove(filepath.Join(d.keys, name))
		}
	}
	return d, nil
}

// Root returns the directory the Dir was opened at.
func (d *Dir) Root() string { return d.root }

func (d *Dir) blobPath(id string) string   { return filepath.Join(d.keys, id) }
func (d *Dir) stagedPath(id string) string { return filepath.Join(d.uploads, id) }

func infoOf(id string, fi fs.FileInfo) Info {
	return Info{ID: id, Size: fi.Size(), Modified: fi.ModTime()}
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, id string) (Info, error) {
	if err := ValidateID(id); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(d.blobPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("keystore: %s is not a regular file", id)
	}
	return infoOf(id, fi), nil
}

// Open implements Store; the reader is an *os.File.
func (d *Dir) Open(ctx context.Context, id string) (io.ReadCloser, Info, error) {
	if err := ValidateID(id); err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(d.blobPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("keystore: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("keystore: %w", err)
	}
	return f, infoOf(id, fi), nil
}

// copyTo streams src into f through the pooled buffer (hiding f's ReadFrom,
// which would allocate its own).
func copyTo(f *os.File, src io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{f}, src, *bp)
	return err
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, id string, r io.Reader, maxBytes int64) (Info, error) {
	if info, err := d.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		return info, err
	}
	f, err := os.CreateTemp(d.keys, putTempPrefix+id[:16]+"-*"+putTempSuffix)
	if err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	tmp := f.Name()
	published := false
	defer func() {
		if !published {
			f.Close()
			os.Remove(tmp)
		}
	}()
	m := newMeter(ctx, r, 0, maxBytes, true)
	if err := copyTo(f, m); err != nil {
		return Info{}, fmt.Errorf("keystore: put %s after %d bytes: %w", id, m.n, err)
	}
	if err := m.checkSum(id); err != nil {
		return Info{}, err
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	if err := os.Rename(tmp, d.blobPath(id)); err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	published = true
	if err := syncDir(d.keys); err != nil {
		return Info{}, err
	}
	return d.Stat(ctx, id)
}

// UploadOffset implements Store.
func (d *Dir) UploadOffset(ctx context.Context, id string) (int64, error) {
	if info, err := d.Stat(ctx, id); err == nil || !errors.Is(err, ErrNotFound) {
		return info.Size, err
	}
	fi, err := os.Stat(d.stagedPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("keystore: %w", err)
	}
	return fi.Size(), nil
}

// AppendUpload implements Store. The staged file is fsynced before the new
// length is returned; on error it is truncated back to offset.
func (d *Dir) AppendUpload(ctx context.Context, id string, offset int64, r io.Reader, maxBytes int64) (int64, error) {
	if err := ValidateID(id); err != nil {
		return 0, err
	}
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return 0, fmt.Errorf("keystore: append %s: %w", id, err)
	}
	defer unlock()

	staged, err := d.UploadOffset(ctx, id)
	if err != nil {
		return 0, err
	}
	if offset != staged {
		return staged, fmt.Errorf("%w: append %s at %d, staged %d", ErrOffsetMismatch, id, offset, staged)
	}
	if info, err := d.Stat(ctx, id); err == nil {
		return info.Size, nil // complete: nothing to append
	}
	if err := checkRoom(offset, maxBytes); err != nil {
		return staged, err
	}
	path := d.stagedPath(id)
	created := false
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		created = true
	}
	if err != nil {
		return staged, fmt.Errorf("keystore: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return staged, fmt.Errorf("keystore: %w", err)
	}
	m := newMeter(ctx, r, offset, maxBytes, false)
	if err := copyTo(f, m); err != nil {
		if created {
			// Leave no empty staging behind: S3 stores nothing either.
			f.Close()
			err = errors.Join(err, os.Remove(path))
		} else if terr := f.Truncate(offset); terr != nil {
			err = errors.Join(err, terr)
		}
		return staged, fmt.Errorf("keystore: append %s at %d after %d bytes: %w", id, offset, m.n, err)
	}
	if err := f.Sync(); err != nil {
		return staged, fmt.Errorf("keystore: %w", err)
	}
	if created {
		if err := syncDir(d.uploads); err != nil {
			return staged, err
		}
	}
	return offset + m.n, nil
}

// CompleteUpload implements Store.
func (d *Dir) CompleteUpload(ctx context.Context, id string) (Info, error) {
	if err := ValidateID(id); err != nil {
		return Info{}, err
	}
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return Info{}, fmt.Errorf("keystore: complete %s: %w", id, err)
	}
	defer unlock()

	path := d.stagedPath(id)
	if info, err := d.Stat(ctx, id); err == nil {
		if err := d.removeStaged(id); err != nil && !errors.Is(err, ErrNotFound) {
			return Info{}, err
		}
		return info, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: no upload of %s", ErrNotFound, id)
	}
	if err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	m := newMeter(ctx, f, 0, 0, true)
	bp := copyBufs.Get().(*[]byte)
	_, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{m}, *bp)
	copyBufs.Put(bp)
	f.Close()
	if err != nil {
		return Info{}, fmt.Errorf("keystore: complete %s: %w", id, err)
	}
	if err := m.checkSum(id); err != nil {
		if rerr := d.removeStaged(id); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return Info{}, err
	}
	if err := os.Rename(path, d.blobPath(id)); err != nil {
		return Info{}, fmt.Errorf("keystore: %w", err)
	}
	if err := syncDir(d.keys); err != nil {
		return Info{}, err
	}
	if err := syncDir(d.uploads); err != nil {
		return Info{}, err
	}
	return d.Stat(ctx, id)
}

func (d *Dir) removeStaged(id string) error {
	err := os.Remove(d.stagedPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: no upload of %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return syncDir(d.uploads)
}

// AbortUpload implements Store.
func (d *Dir) AbortUpload(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	unlock, err := d.locks.lock(ctx, id)
	if err != nil {
		return fmt.Errorf("keystore: abort %s: %w", id, err)
	}
	defer unlock()
	return d.removeStaged(id)
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	err := os.Remove(d.blobPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	return syncDir(d.keys)
}

// List implements Store.
func (d *Dir) List(ctx context.Context) ([]Info, error) { return listBlobs(d.keys) }

// Uploads implements UploadLister.
func (d *Dir) Uploads(ctx context.Context) ([]Info, error) { return listBlobs(d.uploads) }

// listBlobs lists the regular files of dir whose names are IDs, sorted by
// ID; files deleted while listing are skipped.
func listBlobs(dir string) ([]Info, error) {
	ents, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("keystore: %w", err)
	}
	var out []Info
	for _, e := range ents {
		if ValidateID(e.Name()) != nil || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("keystore: %w", err)
		}
		out = append(out, infoOf(e.Name(), fi))
	}
	return out, nil
}

// TotalBytes implements Store.
func (d *Dir) TotalBytes(ctx context.Context) (int64, error) { return totalBytes(ctx, d) }

// syncDir fsyncs a directory so that a rename or removal in it is durable.
func syncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("keystore: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("keystore: fsync %s: %w", path, err)
	}
	return nil
}

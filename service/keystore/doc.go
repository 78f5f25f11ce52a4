// Package keystore stores the clients' CKKS evaluation-key sets for
// `polyformer serve`, and caches the loaded ones in memory.
//
// Key sets are opaque blobs here (this package imports neither Lattigo nor
// he/; the server checks the envelope while streaming). They are
// content-addressed: a blob's ID is the lower-case hex SHA-256 of its bytes,
// so a client names its key set by hashing the file it uploads, the same key
// set uploaded twice is stored once, and a blob is published under its ID
// only after its hash has been checked.
//
// # Stores
//
// Store is implemented by Dir (a local directory) and S3 (an S3-compatible
// bucket through minio-go). Both offer:
//
//   - Put: one streaming upload, verified and published atomically.
//   - Resumable uploads for multi-gigabyte key sets: UploadOffset,
//     AppendUpload (at the staged length), CompleteUpload (verify and
//     publish), AbortUpload. Staged bytes persist across server restarts.
//   - Stat, Open, List, Delete, TotalBytes over complete blobs only.
//
// Every ID is validated (ValidateID: exactly 64 lower-case hex characters)
// before it touches a path or an object key. Size limits (maxBytes) are
// enforced while streaming. No method holds a blob in memory: Dir copies
// through one pooled 1 MiB buffer per call, S3 through one PartSize buffer
// (16 MiB by default). See Dir and S3 for what each guarantees after a
// crash.
//
// # Cache
//
// Cache keeps loaded values (deserialized evaluation keys) in memory,
// bounded by the byte sizes their loaders report, evicting the least
// recently used, and loading each ID once for all the requests that want it
// at the same time.
//
// # Errors
//
// Methods return errors wrapping ErrNotFound, ErrHashMismatch,
// ErrOffsetMismatch, ErrInvalidID and ErrTooLarge (test with errors.Is), or
// the reader's or context's error, or an I/O error of the backend.
package keystore

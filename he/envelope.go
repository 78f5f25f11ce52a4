package he

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
)

// File envelope.
//
// Every file polyformer writes is one envelope:
//
//	offset  size  field
//	0       8     magic "\x89PLYFMR\n"
//	8       2     format version (little endian): 2 for evaluation keys
//	              (per-key levels, seeded random halves; version 1 still
//	              loads), 1 for every other kind
//	10      2     kind (FileKind)
//	12      32    parameter fingerprint (all zero for kind-independent files)
//	44      1     label length L (<= 64)
//	45      L     label: the parameter preset name, for error messages only
//	45+L    8     payload length
//	53+L    n     payload
//	53+L+n  32    SHA-256 of every preceding byte (header and payload)
//
// Readers check magic, version, kind, fingerprint and the length cap before
// reading the payload, never allocate more than the bytes actually present,
// and verify the checksum before any decoded object is returned.

// EnvelopeMagic starts every polyformer file.
var EnvelopeMagic = [8]byte{0x89, 'P', 'L', 'Y', 'F', 'M', 'R', '\n'}

// EnvelopeVersion is the current format version of every kind but
// evaluation keys.
const EnvelopeVersion uint16 = 1

// EvaluationKeysVersion is the current format version of evaluation-key
// files: version 2 records each key's own level and carries the seed of
// each key's random half instead of the half itself; version 3 does the same
// for the bootstrapping keys (each at the level the bootstrapping circuit
// uses it). Version 1 files (every key at the top level, in full) and
// version 2 files (bootstrapping keys at the top level, in full) still load.
const EvaluationKeysVersion uint16 = 3

// versionFor returns the format version this build writes for kind (and the
// highest it reads; every kind reads from version 1 up).
func versionFor(kind FileKind) uint16 {
	if kind == FileEvaluationKeys {
		return EvaluationKeysVersion
	}
	return EnvelopeVersion
}

const (
	maxLabelLen = 64
	checksumLen = sha256.Size
	// MaxEnvelopePayload caps every payload length (64 GiB); the n16-boot
	// evaluation keys are about 8.4 GB.
	MaxEnvelopePayload uint64 = 1 << 36
)

// FileKind identifies what an envelope (a file) holds.
type FileKind uint16

// File kinds: what an envelope holds.
const (
	FileParameters     FileKind = 1
	FileSecretKey      FileKind = 2
	FileEvaluationKeys FileKind = 3
	FileCiphertexts    FileKind = 4
	FileCircuit        FileKind = 5
)

// String returns the kind's name.
func (k FileKind) String() string {
	switch k {
	case FileParameters:
		return "parameters"
	case FileSecretKey:
		return "secret key"
	case FileEvaluationKeys:
		return "evaluation keys"
	case FileCiphertexts:
		return "ciphertexts"
	case FileCircuit:
		return "circuit"
	default:
		return fmt.Sprintf("kind(%d)", uint16(k))
	}
}

// Errors returned by envelope readers; test with errors.Is. The returned
// errors wrap them with details.
var (
	ErrBadMagic            = errors.New("not a polyformer file (bad magic bytes)")
	ErrUnsupportedVersion  = errors.New("unsupported file format version")
	ErrWrongKind           = errors.New("wrong file kind")
	ErrFingerprintMismatch = errors.New("parameter fingerprint mismatch")
	ErrTruncated           = errors.New("file truncated")
	ErrChecksum            = errors.New("checksum mismatch (file corrupted)")
	ErrTooLarge            = errors.New("declared length exceeds limit")
	ErrMalformed           = errors.New("malformed payload")
	ErrTrailingData        = errors.New("trailing data after envelope")
)

// EnvelopeHeader is the decoded header of an envelope.
type EnvelopeHeader struct {
	Version     uint16
	Kind        FileKind
	Fingerprint Fingerprint
	Label       string
	PayloadLen  uint64
}

// HeaderSize returns the encoded size of the header.
func (h EnvelopeHeader) HeaderSize() int { return 53 + len(h.Label) }

// EnvelopeExpect says what a reader accepts.
type EnvelopeExpect struct {
	Kind FileKind
	// Fingerprint, when non-zero, must equal the file's fingerprint.
	Fingerprint Fingerprint
	// Label names the expected parameters in error messages.
	Label string
	// MaxPayload caps the payload length; 0 means MaxEnvelopePayload.
	MaxPayload uint64
}

// ExpectFor returns the expectation "kind made for params" (params may be
// nil to accept any fingerprint).
func ExpectFor(kind FileKind, params *Parameters) EnvelopeExpect {
	e := EnvelopeExpect{Kind: kind}
	if params != nil {
		e.Fingerprint = params.Fingerprint()
		e.Label = params.Name()
	}
	return e
}

// EnvelopeWriter streams one envelope whose payload length is known in advance.
type EnvelopeWriter struct {
	w         io.Writer
	h         hash.Hash
	remaining uint64
	closed    bool
}

// NewEnvelopeWriter writes the header and returns a writer for exactly
// payloadLen payload bytes. Close writes the checksum.
func NewEnvelopeWriter(w io.Writer, kind FileKind, fp Fingerprint, label string, payloadLen uint64) (*EnvelopeWriter, error) {
	if len(label) > maxLabelLen {
		label = label[:maxLabelLen]
	}
	if payloadLen > MaxEnvelopePayload {
		return nil, fmt.Errorf("%w: payload of %d bytes > %d", ErrTooLarge, payloadLen, MaxEnvelopePayload)
	}
	var hdr bytes.Buffer
	hdr.Write(EnvelopeMagic[:])
	_ = binary.Write(&hdr, binary.LittleEndian, versionFor(kind))
	_ = binary.Write(&hdr, binary.LittleEndian, uint16(kind))
	hdr.Write(fp[:])
	hdr.WriteByte(byte(len(label)))
	hdr.WriteString(label)
	_ = binary.Write(&hdr, binary.LittleEndian, payloadLen)
	ew := &EnvelopeWriter{w: w, h: sha256.New(), remaining: payloadLen}
	ew.h.Write(hdr.Bytes())
	if _, err := w.Write(hdr.Bytes()); err != nil {
		return nil, fmt.Errorf("write envelope header: %w", err)
	}
	return ew, nil
}

// Write writes payload bytes; writing more than the declared length fails.
func (e *EnvelopeWriter) Write(p []byte) (int, error) {
	if e.closed {
		return 0, errors.New("envelope writer closed")
	}
	if uint64(len(p)) > e.remaining {
		return 0, fmt.Errorf("envelope payload overflow: %d bytes written beyond the declared length", uint64(len(p))-e.remaining)
	}
	n, err := e.w.Write(p)
	e.h.Write(p[:n])
	e.remaining -= uint64(n)
	if err != nil {
		return n, fmt.Errorf("write envelope payload: %w", err)
	}
	return n, nil
}

// Close checks that the whole payload was written and appends the checksum.
func (e *EnvelopeWriter) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	if e.remaining != 0 {
		return fmt.Errorf("envelope payload short by %d bytes (declared length not reached)", e.remaining)
	}
	if _, err := e.w.Write(e.h.Sum(nil)); err != nil {
		return fmt.Errorf("write envelope checksum: %w", err)
	}
	return nil
}

// WriteEnvelope writes a complete envelope around payload.
func WriteEnvelope(w io.Writer, kind FileKind, fp Fingerprint, label string, payload []byte) error {
	ew, err := NewEnvelopeWriter(w, kind, fp, label, uint64(len(payload)))
	if err != nil {
		return err
	}
	if _, err := ew.Write(payload); err != nil {
		return err
	}
	return ew.Close()
}

// EnvelopeReader reads one envelope's payload as a stream. Obtain it with
// OpenEnvelope, read the payload (Read returns io.EOF at its end), then call
// Finish, which verifies the checksum: data decoded from the payload must
// not be used before Finish returned nil.
type EnvelopeReader struct {
	hdr       EnvelopeHeader
	r         io.Reader
	h         hash.Hash
	remaining uint64
}

// readFullTrunc reads exactly len(p) bytes, mapping EOFs to ErrTruncated.
func readFullTrunc(r io.Reader, p []byte, what string) error {
	if _, err := io.ReadFull(r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: reading %s", ErrTruncated, what)
		}
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// OpenEnvelope reads and validates an envelope header from r.
func OpenEnvelope(r io.Reader, want EnvelopeExpect) (*EnvelopeReader, error) {
	h := sha256.New()
	var fixed [45]byte
	if err := readFullTrunc(r, fixed[:8], "magic"); err != nil {
		return nil, err
	}
	if !bytes.Equal(fixed[:8], EnvelopeMagic[:]) {
		return nil, fmt.Errorf("%w: got %q, want %q", ErrBadMagic, fixed[:8], EnvelopeMagic[:])
	}
	if err := readFullTrunc(r, fixed[8:45], "header"); err != nil {
		return nil, err
	}
	h.Write(fixed[:])
	var hdr EnvelopeHeader
	hdr.Version = binary.LittleEndian.Uint16(fixed[8:10])
	hdr.Kind = FileKind(binary.LittleEndian.Uint16(fixed[10:12]))
	copy(hdr.Fingerprint[:], fixed[12:44])
	if want.Kind != 0 && hdr.Kind != want.Kind {
		if hdr.Version < 1 || hdr.Version > versionFor(hdr.Kind) {
			return nil, fmt.Errorf("%w: file has version %d, this build reads version %d", ErrUnsupportedVersion, hdr.Version, versionFor(want.Kind))
		}
		return nil, fmt.Errorf("%w: file holds %s, expected %s", ErrWrongKind, hdr.Kind, want.Kind)
	}
	if top := versionFor(hdr.Kind); hdr.Version < 1 || hdr.Version > top {
		if top == 1 {
			return nil, fmt.Errorf("%w: file has version %d, this build reads version 1", ErrUnsupportedVersion, hdr.Version)
		}
		return nil, fmt.Errorf("%w: %s file has version %d, this build reads versions 1 to %d", ErrUnsupportedVersion, hdr.Kind, hdr.Version, top)
	}
	labelLen := int(fixed[44])
	if labelLen > maxLabelLen {
		return nil, fmt.Errorf("%w: label length %d > %d", ErrMalformed, labelLen, maxLabelLen)
	}
	rest := make([]byte, labelLen+8)
	if err := readFullTrunc(r, rest, "header"); err != nil {
		return nil, err
	}
	h.Write(rest)
	hdr.Label = string(rest[:labelLen])
	hdr.PayloadLen = binary.LittleEndian.Uint64(rest[labelLen:])
	if !want.Fingerprint.IsZero() && hdr.Fingerprint != want.Fingerprint {
		return nil, fmt.Errorf("%w: file was made for parameters %q (fingerprint %s), expected %q (fingerprint %s)",
			ErrFingerprintMismatch, hdr.Label, hdr.Fingerprint.Short(), want.Label, want.Fingerprint.Short())
	}
	limit := want.MaxPayload
	if limit == 0 || limit > MaxEnvelopePayload {
		limit = MaxEnvelopePayload
	}
	if hdr.PayloadLen > limit {
		return nil, fmt.Errorf("%w: %s payload declares %d bytes, limit %d", ErrTooLarge, hdr.Kind, hdr.PayloadLen, limit)
	}
	return &EnvelopeReader{hdr: hdr, r: r, h: h, remaining: hdr.PayloadLen}, nil
}

// Header returns the validated header.
func (e *EnvelopeReader) Header() EnvelopeHeader { return e.hdr }

// Remaining returns the number of payload bytes not read yet.
func (e *EnvelopeReader) Remaining() uint64 { return e.remaining }

// Read reads payload bytes. At the end of the payload it returns io.EOF; if
// the underlying stream ends early it returns an error wrapping ErrTruncated.
func (e *EnvelopeReader) Read(p []byte) (int, error) {
	if e.remaining == 0 {
		return 0, io.EOF
	}
	if uint64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.h.Write(p[:n])
	e.remaining -= uint64(n)
	if err != nil {
		if errors.Is(err, io.EOF) {
			if e.remaining == 0 {
				return n, nil
			}
			return n, fmt.Errorf("%w: payload ends %d bytes early", ErrTruncated, e.remaining)
		}
		return n, fmt.Errorf("read payload: %w", err)
	}
	return n, nil
}

// Finish checks that the whole payload was consumed and verifies the checksum.
func (e *EnvelopeReader) Finish() error {
	if e.remaining != 0 {
		return fmt.Errorf("%w: %d payload bytes left unread", ErrMalformed, e.remaining)
	}
	var sum [checksumLen]byte
	if err := readFullTrunc(e.r, sum[:], "checksum"); err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(sum[:], e.h.Sum(nil)) != 1 {
		return fmt.Errorf("%w: %s file", ErrChecksum, e.hdr.Kind)
	}
	return nil
}

// ReadEnvelope reads one complete envelope from r and returns its header and
// payload after verifying everything. Memory grows with the bytes actually
// read, never with the declared length alone.
func ReadEnvelope(r io.Reader, want EnvelopeExpect) (EnvelopeHeader, []byte, error) {
	er, err := OpenEnvelope(r, want)
	if err != nil {
		return EnvelopeHeader{}, nil, err
	}
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, er); err != nil {
		return EnvelopeHeader{}, nil, err
	}
	if err := er.Finish(); err != nil {
		return EnvelopeHeader{}, nil, err
	}
	return er.Header(), buf.Bytes(), nil
}

// DecodeEnvelope is ReadEnvelope on a byte slice that must hold exactly one
// envelope (extra bytes are an error).
func DecodeEnvelope(data []byte, want EnvelopeExpect) (EnvelopeHeader, []byte, error) {
	r := bytes.NewReader(data)
	h, p, err := ReadEnvelope(r, want)
	if err != nil {
		return h, nil, err
	}
	if r.Len() != 0 {
		return h, nil, fmt.Errorf("%w: %d bytes", ErrTrailingData, r.Len())
	}
	return h, p, nil
}

// readEnvelopeStream opens an envelope, runs decode on its payload, requires
// decode to consume the whole payload, and verifies the checksum, in that
// order. decode must not expose its results before this function returns nil.
func readEnvelopeStream(r io.Reader, want EnvelopeExpect, decode func(er *EnvelopeReader, pr *payloadReader) error) (EnvelopeHeader, error) {
	er, err := OpenEnvelope(r, want)
	if err != nil {
		return EnvelopeHeader{}, err
	}
	return er.Header(), decodeEnvelopePayload(er, newPayloadReader(er), want.Kind, decode)
}

// decodeEnvelopePayload runs decode on an opened envelope's payload, then
// refuses payload bytes decode left unread and checks the checksum.
func decodeEnvelopePayload(er *EnvelopeReader, pr *payloadReader, kind FileKind, decode func(er *EnvelopeReader, pr *payloadReader) error) error {
	if err := decode(er, pr); err != nil {
		return err
	}
	if er.Remaining() != 0 {
		return fmt.Errorf("%w: %d unexpected payload bytes after the %s", ErrMalformed, er.Remaining(), kind)
	}
	return er.Finish()
}

// readEnvelopeFile runs fn on the opened file and rejects trailing bytes.
func readEnvelopeFile(path string, fn func(r io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	if err := fn(br); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if _, err := br.ReadByte(); err == nil {
		return fmt.Errorf("%s: %w", path, ErrTrailingData)
	}
	return nil
}

// writeFileAtomic writes a file through a temporary file in the same
// directory, created with the given permission bits, then moves it into
// place. Without overwrite, an existing destination is an error (the
// final step uses link(2), which never replaces a file).
func writeFileAtomic(path string, perm os.FileMode, overwrite bool, fn func(w io.Writer) error) (err error) {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s already exists (refusing to overwrite)", path)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmpName)
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return fmt.Errorf("chmod %s: %w", tmpName, err)
	}
	bw := bufio.NewWriterSize(tmp, 1<<20)
	if err = fn(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if overwrite {
		if err = os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("rename to %s: %w", path, err)
		}
		return nil
	}
	if err = os.Link(tmpName, path); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	_ = os.Remove(tmpName)
	return nil
}

// payloadWriter writes little-endian integers and remembers the first error.
type payloadWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newPayloadWriter(w io.Writer) *payloadWriter {
	return &payloadWriter{w: w, buf: make([]byte, 1<<16)}
}

func (p *payloadWriter) write(b []byte) {
	if p.err == nil {
		_, p.err = p.w.Write(b)
	}
}

func (p *payloadWriter) u8(v uint8) { p.write([]byte{v}) }
func (p *payloadWriter) u32(v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	p.write(b[:])
}
func (p *payloadWriter) u64(v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	p.write(b[:])
}

// u64s writes a slice of uint64 in chunks.
func (p *payloadWriter) u64s(xs []uint64) {
	for len(xs) > 0 && p.err == nil {
		n := len(p.buf) / 8
		if n > len(xs) {
			n = len(xs)
		}
		for i := 0; i < n; i++ {
			binary.LittleEndian.PutUint64(p.buf[8*i:], xs[i])
		}
		p.write(p.buf[:8*n])
		xs = xs[n:]
	}
}

// u64sPacked writes each value of xs in its w low bytes (little endian).
func (p *payloadWriter) u64sPacked(xs []uint64, w int) {
	if w == 8 {
		p.u64s(xs)
		return
	}
	for len(xs) > 0 && p.err == nil {
		n := len(p.buf) / w
		if n > len(xs) {
			n = len(xs)
		}
		for i := 0; i < n; i++ {
			v := xs[i]
			b := p.buf[w*i : w*i+w]
			for k := range b {
				b[k] = byte(v >> (8 * k))
			}
		}
		p.write(p.buf[:w*n])
		xs = xs[n:]
	}
}

// lenBytes writes a u32 length then the bytes.
func (p *payloadWriter) lenBytes(b []byte) {
	p.u32(uint32(len(b)))
	p.write(b)
}

// payloadReader reads little-endian integers; every read error is sticky
// and EOFs map to ErrTruncated.
type payloadReader struct {
	r   io.Reader
	buf []byte
	err error
}

func newPayloadReader(r io.Reader) *payloadReader {
	return &payloadReader{r: r, buf: make([]byte, 1<<16)}
}

func (p *payloadReader) read(b []byte) {
	if p.err == nil {
		p.err = readFullTrunc(p.r, b, "payload")
	}
}

func (p *payloadReader) u8() uint8 {
	var b [1]byte
	p.read(b[:])
	return b[0]
}

func (p *payloadReader) u32() uint32 {
	var b [4]byte
	p.read(b[:])
	return binary.LittleEndian.Uint32(b[:])
}

func (p *payloadReader) u64() uint64 {
	var b [8]byte
	p.read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// u64sBelow fills xs and checks every value is < bound (a modulus).
func (p *payloadReader) u64sBelow(xs []uint64, bound uint64, what string) {
	for len(xs) > 0 && p.err == nil {
		n := len(p.buf) / 8
		if n > len(xs) {
			n = len(xs)
		}
		p.read(p.buf[:8*n])
		if p.err != nil {
			return
		}
		for i := 0; i < n; i++ {
			v := binary.LittleEndian.Uint64(p.buf[8*i:])
			if v >= bound {
				p.err = fmt.Errorf("%w: %s coefficient %d >= modulus %d", ErrMalformed, what, v, bound)
				return
			}
			xs[i] = v
		}
		xs = xs[n:]
	}
}

// u64sBelowPacked is u64sBelow for values stored in w bytes each.
func (p *payloadReader) u64sBelowPacked(xs []uint64, bound uint64, w int, what string) {
	if w == 8 {
		p.u64sBelow(xs, bound, what)
		return
	}
	for len(xs) > 0 && p.err == nil {
		n := len(p.buf) / w
		if n > len(xs) {
			n = len(xs)
		}
		p.read(p.buf[:w*n])
		if p.err != nil {
			return
		}
		for i := 0; i < n; i++ {
			var v uint64
			b := p.buf[w*i : w*i+w]
			for k := len(b) - 1; k >= 0; k-- {
				v = v<<8 | uint64(b[k])
			}
			if v >= bound {
				p.err = fmt.Errorf("%w: %s coefficient %d >= modulus %d", ErrMalformed, what, v, bound)
				return
			}
			xs[i] = v
		}
		xs = xs[n:]
	}
}

// lenBytes reads a u32 length (at most max) then that many bytes.
func (p *payloadReader) lenBytes(max int, what string) []byte {
	n := p.u32()
	if p.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		p.err = fmt.Errorf("%w: %s length %d > %d", ErrTooLarge, what, n, max)
		return nil
	}
	b := make([]byte, n)
	p.read(b)
	return b
}

func (p *payloadReader) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/service/api"
	"github.com/polyformer/polyformer/service/keystore"
)

var errDeadline = os.ErrDeadlineExceeded

// paramsFor maps an evaluation-key envelope's fingerprint to the parameters
// of a served circuit.
func (s *Server) paramsFor(fp he.Fingerprint, label string) (*he.Parameters, error) {
	if p, ok := s.byFP[fp]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("%w: keys made for parameters %q (%s), which no circuit served here uses", he.ErrFingerprintMismatch, label, fp.Short())
}

func (s *Server) keyStatus(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("sha256")
	if err := api.ValidID(id); err != nil {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, "key set "+err.Error())
		return
	}
	ctx := r.Context()
	info, err := s.cfg.Store.Stat(ctx, id)
	if err == nil {
		writeJSON(w, http.StatusOK, api.KeyStatus{ID: id, Complete: true, Size: info.Size, Offset: info.Size})
		return
	}
	if !errors.Is(err, keystore.ErrNotFound) {
		s.internal(w, "stat key set", err)
		return
	}
	off, err := s.cfg.Store.UploadOffset(ctx, id)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		s.internal(w, "upload offset", err)
		return
	}
	w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(off, 10))
	w.Header().Set("Content-Type", api.MediaJSON)
	w.WriteHeader(http.StatusNotFound)
	writeBody(w, api.KeyStatus{ID: id, Offset: off})
}

func writeBody(w http.ResponseWriter, v any) {
	b, _ := jsonMarshal(v)
	_, _ = w.Write(b)
}

// putKeys stores an evaluation-key set under its SHA-256. A body without
// Content-Range is the whole set: its hash, parameter fingerprint and shape
// are checked while it streams to the store, and nothing is stored unless
// all pass. With Content-Range it is one chunk of a resumable upload.
func (s *Server) putKeys(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("sha256")
	if err := api.ValidID(id); err != nil {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, "key set "+err.Error())
		return
	}
	ctx := r.Context()
	if info, err := s.cfg.Store.Stat(ctx, id); err == nil {
		writeJSON(w, http.StatusOK, api.KeyStatus{ID: id, Complete: true, Size: info.Size, Offset: info.Size, Existed: true})
		return
	} else if !errors.Is(err, keystore.ErrNotFound) {
		s.internal(w, "stat key set", err)
		return
	}
	if r.ContentLength > s.cfg.MaxKeyBytes {
		s.fail(w, http.StatusRequestEntityTooLarge, api.KindTooLarge, fmt.Sprintf("key set of %d bytes exceeds the limit of %d", r.ContentLength, s.cfg.MaxKeyBytes))
		return
	}
	if cr := r.Header.Get("Content-Range"); cr != "" {
		s.putChunk(w, r, id, cr)
		return
	}
	body := http.MaxBytesReader(w, r.Body, s.cfg.MaxKeyBytes)
	r.Body = body
	vr := newVerifyingReader(s.body(w, r), s.paramsFor, uint64(s.cfg.MaxKeyBytes))
	info, err := s.cfg.Store.Put(ctx, id, vr, s.cfg.MaxKeyBytes)
	vres := vr.finish(err)
	if vres.err != nil {
		if err == nil { // the store stopped reading early and committed: undo
			_ = s.cfg.Store.Delete(context.WithoutCancel(ctx), id)
		}
		s.keyError(w, id, vres.err)
		return
	}
	if err != nil {
		s.keyError(w, id, err)
		return
	}
	s.log.Info("key set stored", "key_set", id[:16], "bytes", info.Size, "preset", vres.info.Params.Name())
	writeJSON(w, http.StatusCreated, api.KeyStatus{ID: id, Complete: true, Size: info.Size, Offset: info.Size, Preset: vres.info.Params.Name()})
}

func (s *Server) keyError(w http.ResponseWriter, id string, err error) {
	switch {
	case errors.Is(err, keystore.ErrHashMismatch):
		s.fail(w, http.StatusUnprocessableEntity, api.KindHashMismatch, fmt.Sprintf("key set %s: the body's SHA-256 differs from the id in the path (nothing stored)", id))
	case errors.Is(err, keystore.ErrOffsetMismatch):
		s.fail(w, http.StatusConflict, api.KindConflict, fmt.Sprintf("key set %s: %v", id, err))
	case errors.Is(err, he.ErrFingerprintMismatch):
		s.fail(w, http.StatusUnprocessableEntity, api.KindBadKeys, fmt.Sprintf("key set %s: %v", id, err))
	case errors.Is(err, errSlowClient) || errors.Is(err, errDeadline) || errors.Is(err, he.ErrTooLarge) || errors.Is(err, keystore.ErrTooLarge):
		s.bodyError(w, "key set "+id, api.KindBadKeys, err)
	case errors.Is(err, he.ErrMalformed) || errors.Is(err, he.ErrTruncated) || errors.Is(err, he.ErrChecksum) ||
		errors.Is(err, he.ErrBadMagic) || errors.Is(err, he.ErrWrongKind) || errors.Is(err, he.ErrUnsupportedVersion) ||
		errors.Is(err, he.ErrTrailingData) || errors.Is(err, io.ErrUnexpectedEOF):
		s.fail(w, http.StatusUnprocessableEntity, api.KindBadKeys, fmt.Sprintf("key set %s: %v (nothing stored)", id, err))
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.bodyError(w, "key set "+id, api.KindBadKeys, err)
			return
		}
		if errors.Is(err, context.Canceled) {
			s.fail(w, http.StatusBadRequest, api.KindBadRequest, "upload interrupted")
			return
		}
		s.internal(w, "store key set", err)
	}
}

// putChunk appends one Content-Range chunk of a resumable upload. The first
// chunk's envelope header is checked (kind, fingerprint of a served
// circuit, declared length equal to the total); the completed set is
// verified as a whole by streaming it back from the store, and deleted if
// it fails.
func (s *Server) putChunk(w http.ResponseWriter, r *http.Request, id, header string) {
	ctx := r.Context()
	cr, err := api.ParseContentRange(header)
	if err != nil {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, err.Error())
		return
	}
	if cr.Total > s.cfg.MaxKeyBytes {
		s.fail(w, http.StatusRequestEntityTooLarge, api.KindTooLarge, fmt.Sprintf("key set of %d bytes exceeds the limit of %d", cr.Total, s.cfg.MaxKeyBytes))
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != cr.Len() {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, fmt.Sprintf("Content-Length %d differs from the Content-Range length %d", r.ContentLength, cr.Len()))
		return
	}
	off, err := s.cfg.Store.UploadOffset(ctx, id)
	if err != nil && !errors.Is(err, keystore.ErrNotFound) {
		s.internal(w, "upload offset", err)
		return
	}
	if cr.Start != off {
		w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(off, 10))
		s.fail(w, http.StatusConflict, api.KindConflict, fmt.Sprintf("chunk starts at byte %d but the server holds %d bytes of key set %s: resume from %d", cr.Start, off, id, off))
		return
	}
	body := io.LimitReader(s.body(w, r), cr.Len())
	if cr.Start == 0 {
		br := bufio.NewReaderSize(body, 256)
		hdr, _ := br.Peek(53 + 64)
		er, err := he.OpenEnvelope(bytesReader(hdr), he.EnvelopeExpect{Kind: he.FileEvaluationKeys, MaxPayload: uint64(s.cfg.MaxKeyBytes)})
		if err != nil && !errors.Is(err, he.ErrTruncated) {
			s.keyError(w, id, err)
			return
		}
		if err == nil {
			h := er.Header()
			if _, err := s.paramsFor(h.Fingerprint, h.Label); err != nil {
				s.keyError(w, id, err)
				return
			}
			if want := int64(h.HeaderSize()) + int64(h.PayloadLen) + 32; want != cr.Total {
				s.fail(w, http.StatusUnprocessableEntity, api.KindBadKeys, fmt.Sprintf("key set %s: the envelope declares %d bytes, Content-Range says %d", id, want, cr.Total))
				return
			}
		}
		body = br
	}
	n, err := s.cfg.Store.AppendUpload(ctx, id, cr.Start, body, cr.Total)
	if err != nil {
		s.keyError(w, id, err)
		return
	}
	w.Header().Set(api.HeaderUploadOffset, strconv.FormatInt(n, 10))
	if n != cr.End+1 {
		s.fail(w, http.StatusBadRequest, api.KindBadRequest, fmt.Sprintf("chunk ended at byte %d, Content-Range promised %d: resume from %d", n, cr.End+1, n))
		return
	}
	if n < cr.Total {
		writeJSON(w, http.StatusAccepted, api.KeyStatus{ID: id, Offset: n})
		return
	}
	s.clearDeadline(w)
	info, err := s.cfg.Store.CompleteUpload(ctx, id)
	if err != nil {
		if errors.Is(err, keystore.ErrHashMismatch) {
			_ = s.cfg.Store.AbortUpload(context.WithoutCancel(ctx), id)
		}
		s.keyError(w, id, err)
		return
	}
	vinfo, err := s.verifyStored(ctx, id)
	if err != nil {
		_ = s.cfg.Store.Delete(context.WithoutCancel(ctx), id)
		s.keyError(w, id, err)
		return
	}
	s.log.Info("key set stored (chunked)", "key_set", id[:16], "bytes", info.Size, "preset", vinfo.Params.Name())
	writeJSON(w, http.StatusCreated, api.KeyStatus{ID: id, Complete: true, Size: info.Size, Offset: info.Size, Preset: vinfo.Params.Name()})
}

// verifyStored streams a stored key set through the validator.
func (s *Server) verifyStored(ctx context.Context, id string) (*he.EvaluationKeysInfo, error) {
	rc, _, err := s.cfg.Store.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	info, err := he.VerifyEvaluationKeysStream(br, s.paramsFor, uint64(s.cfg.MaxKeyBytes))
	if err != nil {
		return nil, err
	}
	if _, err := br.ReadByte(); err == nil {
		return nil, fmt.Errorf("%w after the evaluation keys", he.ErrTrailingData)
	}
	return info, nil
}

// verifyingReader passes a body through to the store while a goroutine
// validates the same bytes; the store sees EOF only once the validation
// succeeded, so a body that fails it is never committed.
type verifyingReader struct {
	src  io.Reader
	pw   *io.PipeWriter
	done chan verifyResult
	once sync.Once
	res  verifyResult
	err  error
}

type verifyResult struct {
	info *he.EvaluationKeysInfo
	err  error
}

func newVerifyingReader(src io.Reader, params func(he.Fingerprint, string) (*he.Parameters, error), max uint64) *verifyingReader {
	pr, pw := io.Pipe()
	v := &verifyingReader{src: src, pw: pw, done: make(chan verifyResult, 1)}
	go func() {
		br := bufio.NewReaderSize(pr, 1<<20)
		info, err := he.VerifyEvaluationKeysStream(br, params, max)
		if err == nil {
			if _, e := br.ReadByte(); e == nil {
				err = fmt.Errorf("%w after the evaluation keys", he.ErrTrailingData)
			}
		}
		if err != nil {
			pr.CloseWithError(err)
		} else {
			_, _ = io.Copy(io.Discard, pr)
		}
		v.done <- verifyResult{info, err}
	}()
	return v
}

func (v *verifyingReader) wait() verifyResult {
	v.once.Do(func() { v.res = <-v.done })
	return v.res
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.src.Read(p)
	if n > 0 {
		if _, werr := v.pw.Write(p[:n]); werr != nil {
			res := v.wait()
			v.err = res.err
			if v.err == nil {
				v.err = werr
			}
			return 0, v.err
		}
	}
	if err == io.EOF {
		v.pw.Close()
		if res := v.wait(); res.err != nil {
			v.err = res.err
			return n, v.err
		}
		return n, io.EOF
	}
	if err != nil {
		v.err = err
		v.pw.CloseWithError(err)
	}
	return n, err
}

// finish ends the validation after the store returned storeErr and returns
// its result. A validator error that only reports the store giving up is
// dropped (the store's error names the problem).
func (v *verifyingReader) finish(storeErr error) verifyResult {
	if storeErr != nil {
		v.pw.CloseWithError(storeErr)
	} else {
		v.pw.Close()
	}
	res := v.wait()
	if res.err != nil && storeErr != nil && errors.Is(res.err, storeErr) {
		return verifyResult{}
	}
	return res
}

package server

import (
	"context"
	"errors"
	"time"

	"github.com/polyformer/polyformer/service/keystore"
)

// ExpireUploads aborts the staged key uploads whose last chunk came before
// now minus Config.UploadExpiry and returns their ids. It does nothing
// when the expiry is disabled or the store does not list its uploads.
func (s *Server) ExpireUploads(ctx context.Context, now time.Time) ([]string, error) {
	ul, ok := s.cfg.Store.(keystore.UploadLister)
	if !ok || s.cfg.UploadExpiry < 0 {
		return nil, nil
	}
	ups, err := ul.Uploads(ctx)
	if err != nil {
		return nil, err
	}
	cutoff := now.Add(-s.cfg.UploadExpiry)
	var expired []string
	var errs []error
	for _, u := range ups {
		if !u.Modified.Before(cutoff) {
			continue
		}
		if err := s.cfg.Store.AbortUpload(ctx, u.ID); err != nil && !errors.Is(err, keystore.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		s.log.Info("expired an abandoned key upload", "key_set", u.ID[:16], "bytes_staged", u.Size,
			"last_chunk", u.Modified.UTC().Format(time.RFC3339), "expiry", s.cfg.UploadExpiry)
		expired = append(expired, u.ID)
	}
	return expired, errors.Join(errs...)
}

// sweepUploads runs ExpireUploads every UploadSweep until ctx is done.
func (s *Server) sweepUploads(ctx context.Context) {
	if _, ok := s.cfg.Store.(keystore.UploadLister); !ok || s.cfg.UploadExpiry < 0 {
		return
	}
	t := time.NewTicker(s.cfg.UploadSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if _, err := s.ExpireUploads(ctx, now); err != nil && ctx.Err() == nil {
				s.log.Warn("expire abandoned key uploads", "err", err)
			}
		}
	}
}

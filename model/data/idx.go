package data

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// IDX format limits and magic numbers.
const (
	// IDXImagesMagic is the magic number of an IDX file of unsigned-byte
	// 3-dimensional data (images): 0x00000803.
	IDXImagesMagic = 0x00000803
	// IDXLabelsMagic is the magic number of an IDX file of unsigned-byte
	// 1-dimensional data (labels): 0x00000801.
	IDXLabelsMagic = 0x00000801
	// MaxIDXCount is the largest item count accepted in an IDX header.
	MaxIDXCount = 10_000_000
	// MaxIDXSide is the largest number of rows or columns accepted in an
	// IDX image header.
	MaxIDXSide = 1024
	// MaxIDXPixels is the largest total pixel count (count*rows*cols)
	// accepted in an IDX image file: 2^28 bytes of payload, 2 GiB as
	// float64. MNIST's training set has 47,040,000. The limit keeps a small
	// gzip "bomb" with a large header from exhausting memory.
	MaxIDXPixels = 1 << 28
	// NumClasses is the number of MNIST classes; labels must lie in
	// [0, NumClasses).
	NumClasses = 10
)

// gzipMagic is the first two bytes of every gzip stream.
var gzipMagic = [2]byte{0x1f, 0x8b}

// maybeGunzip returns a reader of the decompressed content of r if r starts
// with the gzip magic bytes, and of r itself otherwise. The returned close
// function releases the gzip reader (a no-op for plain input).
func maybeGunzip(r io.Reader) (io.Reader, func() error, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("reading header: %w", err)
	}
	if len(head) == 2 && head[0] == gzipMagic[0] && head[1] == gzipMagic[1] {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("opening gzip stream: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() error { return nil }, nil
}

// readHeader reads the big-endian magic number and nDims dimensions of an IDX
// file, checking the magic.
func readHeader(r io.Reader, wantMagic uint32, nDims int) ([]uint32, error) {
	buf := make([]byte, 4*(1+nDims))
	if n, err := io.ReadFull(r, buf); err != nil {
		return nil, fmt.Errorf("truncated header: got %d of %d bytes: %w", n, len(buf), err)
	}
	magic := binary.BigEndian.Uint32(buf)
	if magic != wantMagic {
		return nil, fmt.Errorf("bad magic number 0x%08x, want 0x%08x", magic, wantMagic)
	}
	dims := make([]uint32, nDims)
	for i := range dims {
		dims[i] = binary.BigEndian.Uint32(buf[4*(i+1):])
	}
	return dims, nil
}

// readBody reads exactly want bytes of payload from r and checks that no
// bytes follow. For gzip input, reading to the end of the stream also
// verifies its CRC-32 and size trailer. Memory grows with the data actually present, never with the
// size claimed by the header, so a corrupted header cannot force a huge
// allocation.
func readBody(r io.Reader, want int64) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r, want+1))
	if err != nil {
		return nil, fmt.Errorf("reading data: %w", err)
	}
	switch {
	case int64(len(body)) < want:
		return nil, fmt.Errorf("truncated data: header promises %d bytes, file holds %d", want, len(body))
	case int64(len(body)) > want:
		return nil, fmt.Errorf("trailing data: file is longer than the %d data bytes the header promises", want)
	}
	return body, nil
}

// ReadIDXImages parses an IDX3 unsigned-byte image file (magic 0x00000803,
// then big-endian count, rows, cols, then count*rows*cols pixel bytes) from r,
// which may be gzip-compressed (detected from its first bytes). It checks the
// magic, that 1 <= rows, cols <= MaxIDXSide, count <= MaxIDXCount and
// count*rows*cols <= MaxIDXPixels, and that
// the data length is exactly count*rows*cols with no trailing bytes. Pixels
// are scaled to [0,1] by dividing by 255; Labels of the result is nil.
func ReadIDXImages(r io.Reader) (*Images, error) {
	rd, closeFn, err := maybeGunzip(r)
	if err != nil {
		return nil, fmt.Errorf("idx images: %w", err)
	}
	defer func() { _ = closeFn() }()
	dims, err := readHeader(rd, IDXImagesMagic, 3)
	if err != nil {
		return nil, fmt.Errorf("idx images: %w", err)
	}
	count, rows, cols := dims[0], dims[1], dims[2]
	if count > MaxIDXCount {
		return nil, fmt.Errorf("idx images: image count %d exceeds limit %d", count, MaxIDXCount)
	}
	if rows < 1 || rows > MaxIDXSide || cols < 1 || cols > MaxIDXSide {
		return nil, fmt.Errorf("idx images: image size %dx%d outside 1..%d", rows, cols, MaxIDXSide)
	}
	want := int64(count) * int64(rows) * int64(cols)
	if want > MaxIDXPixels {
		return nil, fmt.Errorf("idx images: %d images of %dx%d = %d pixels exceed limit %d",
			count, rows, cols, want, MaxIDXPixels)
	}
	body, err := readBody(rd, want)
	if err != nil {
		return nil, fmt.Errorf("idx images (%d images of %dx%d): %w", count, rows, cols, err)
	}
	pixels := make([]float64, len(body))
	for i, b := range body {
		pixels[i] = float64(b) / 255
	}
	return &Images{N: int(count), Rows: int(rows), Cols: int(cols), Pixels: pixels}, nil
}

// ReadIDXLabels parses an IDX1 unsigned-byte label file (magic 0x00000801,
// then big-endian count, then count label bytes) from r, which may be
// gzip-compressed (detected from its first bytes). It checks the magic, that
// count <= MaxIDXCount, that exactly count bytes follow, and that every label
// lies in [0, NumClasses).
func ReadIDXLabels(r io.Reader) ([]int, error) {
	rd, closeFn, err := maybeGunzip(r)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	defer func() { _ = closeFn() }()
	dims, err := readHeader(rd, IDXLabelsMagic, 1)
	if err != nil {
		return nil, fmt.Errorf("idx labels: %w", err)
	}
	count := dims[0]
	if count > MaxIDXCount {
		return nil, fmt.Errorf("idx labels: label count %d exceeds limit %d", count, MaxIDXCount)
	}
	body, err := readBody(rd, int64(count))
	if err != nil {
		return nil, fmt.Errorf("idx labels (%d labels): %w", count, err)
	}
	labels := make([]int, len(body))
	for i, b := range body {
		if int(b) >= NumClasses {
			return nil, fmt.Errorf("idx labels: label %d at index %d outside 0..%d", b, i, NumClasses-1)
		}
		labels[i] = int(b)
	}
	return labels, nil
}

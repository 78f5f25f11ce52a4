package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// encodeIDXImages writes an IDX3 image file with the given header values and
// raw pixel bytes (which need not match the header, to build corrupt files).
func encodeIDXImages(magic, count, rows, cols uint32, pix []byte) []byte {
	var b bytes.Buffer
	for _, v := range []uint32{magic, count, rows, cols} {
		_ = binary.Write(&b, binary.BigEndian, v)
	}
	b.Write(pix)
	return b.Bytes()
}

// encodeIDXLabels writes an IDX1 label file with the given header values and
// raw label bytes.
func encodeIDXLabels(magic, count uint32, labels []byte) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.BigEndian, magic)
	_ = binary.Write(&b, binary.BigEndian, count)
	b.Write(labels)
	return b.Bytes()
}

// gzipBytes compresses p.
func gzipBytes(t testing.TB, p []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, err := zw.Write(p)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	return b.Bytes()
}

// pattern returns n deterministic bytes covering 0..255.
func pattern(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i * 37)
	}
	return p
}

// imagesToIDX re-encodes parsed images as an IDX3 file.
func imagesToIDX(im *Images) []byte {
	pix := make([]byte, len(im.Pixels))
	for i, v := range im.Pixels {
		pix[i] = byte(v*255 + 0.5)
	}
	return encodeIDXImages(IDXImagesMagic, uint32(im.N), uint32(im.Rows), uint32(im.Cols), pix)
}

func TestReadIDXImagesRoundTrip(t *testing.T) {
	const n, rows, cols = 3, 4, 5
	pix := pattern(n * rows * cols)
	raw := encodeIDXImages(IDXImagesMagic, n, rows, cols, pix)
	for name, in := range map[string][]byte{"plain": raw, "gzip": gzipBytes(t, raw)} {
		t.Run(name, func(t *testing.T) {
			im, err := ReadIDXImages(bytes.NewReader(in))
			require.NoError(t, err)
			require.Equal(t, n, im.N)
			require.Equal(t, rows, im.Rows)
			require.Equal(t, cols, im.Cols)
			require.Nil(t, im.Labels)
			require.Len(t, im.Pixels, n*rows*cols)
			for i, b := range pix {
				require.Equal(t, float64(b)/255, im.Pixels[i], "pixel %d", i)
			}
			// Row-major: image 1, row 2, col 3.
			require.Equal(t, float64(pix[1*rows*cols+2*cols+3])/255, im.Image(1)[2*cols+3])
			require.Equal(t, raw, imagesToIDX(im))
		})
	}
}

func TestReadIDXLabelsRoundTrip(t *testing.T) {
	lb := []byte{0, 9, 3, 3, 7, 1}
	raw := encodeIDXLabels(IDXLabelsMagic, uint32(len(lb)), lb)
	for name, in := range map[string][]byte{"plain": raw, "gzip": gzipBytes(t, raw)} {
		t.Run(name, func(t *testing.T) {
			got, err := ReadIDXLabels(bytes.NewReader(in))
			require.NoError(t, err)
			require.Equal(t, []int{0, 9, 3, 3, 7, 1}, got)
		})
	}
}

func TestReadIDXImagesZeroCount(t *testing.T) {
	im, err := ReadIDXImages(bytes.NewReader(encodeIDXImages(IDXImagesMagic, 0, 28, 28, nil)))
	require.NoError(t, err)
	require.Equal(t, 0, im.N)
	require.Empty(t, im.Pixels)
}

func TestReadIDXImagesCorrupt(t *testing.T) {
	good := encodeIDXImages(IDXImagesMagic, 2, 3, 3, pattern(18))
	badCRC := gzipBytes(t, good)
	badCRC[len(badCRC)-8] ^= 0xff // flip a byte of the CRC-32 trailer
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "truncated header"},
		{"short header", string(good[:10]), "truncated header"},
		{"labels magic", string(encodeIDXImages(IDXLabelsMagic, 2, 3, 3, pattern(18))), "bad magic"},
		{"wrong type byte", string(encodeIDXImages(0x00000903, 2, 3, 3, pattern(18))), "bad magic"},
		{"zero rows", string(encodeIDXImages(IDXImagesMagic, 2, 0, 3, nil)), "image size"},
		{"zero cols", string(encodeIDXImages(IDXImagesMagic, 2, 3, 0, nil)), "image size"},
		{"too many rows", string(encodeIDXImages(IDXImagesMagic, 1, MaxIDXSide+1, 1, pattern(MaxIDXSide+1))), "image size"},
		{"huge cols", string(encodeIDXImages(IDXImagesMagic, 1, 1, 0xffffffff, nil)), "image size"},
		{"too many images", string(encodeIDXImages(IDXImagesMagic, MaxIDXCount+1, 1, 1, nil)), "exceeds limit"},
		{"too many pixels", string(encodeIDXImages(IDXImagesMagic, MaxIDXPixels/(1024*1024)+1, 1024, 1024, nil)), "exceed limit"},
		{"truncated data", string(good[:len(good)-1]), "truncated data"},
		{"no data", string(good[:16]), "truncated data"},
		{"trailing byte", string(append(append([]byte(nil), good...), 0)), "trailing data"},
		{"broken gzip header", string([]byte{0x1f, 0x8b, 0, 0}), "gzip"},
		{"bad gzip checksum", string(badCRC), "checksum"},
		{"truncated gzip", string(gzipBytes(t, good)[:20]), "EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			im, err := ReadIDXImages(bytes.NewReader([]byte(tc.in)))
			require.Error(t, err)
			require.Nil(t, im)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestReadIDXLabelsCorrupt(t *testing.T) {
	good := encodeIDXLabels(IDXLabelsMagic, 3, []byte{1, 2, 3})
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "truncated header"},
		{"short header", string(good[:6]), "truncated header"},
		{"images magic", string(encodeIDXLabels(IDXImagesMagic, 3, []byte{1, 2, 3})), "bad magic"},
		{"too many", string(encodeIDXLabels(IDXLabelsMagic, MaxIDXCount+1, nil)), "exceeds limit"},
		{"truncated data", string(good[:len(good)-1]), "truncated data"},
		{"trailing byte", string(append(append([]byte(nil), good...), 4)), "trailing data"},
		{"label 10", string(encodeIDXLabels(IDXLabelsMagic, 3, []byte{1, 10, 3})), "label 10 at index 1"},
		{"label 255", string(encodeIDXLabels(IDXLabelsMagic, 1, []byte{255})), "outside 0..9"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lb, err := ReadIDXLabels(bytes.NewReader([]byte(tc.in)))
			require.Error(t, err)
			require.Nil(t, lb)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

// A header that claims the maximum size must not make the reader allocate
// anywhere near that size when the data is absent.
func TestReadIDXImagesHugeHeaderNoHugeAlloc(t *testing.T) {
	in := encodeIDXImages(IDXImagesMagic, MaxIDXPixels/(MaxIDXSide*MaxIDXSide), MaxIDXSide, MaxIDXSide, pattern(1000))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadIDXImages(bytes.NewReader(in))
	runtime.ReadMemStats(&after)
	require.ErrorContains(t, err, "truncated data")
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20))
}

// addIDXSeeds adds valid, truncated, gzipped and corrupted seeds to f.
func addIDXSeeds(f *testing.F, valid [][]byte) {
	for _, v := range valid {
		for n := 0; n <= len(v); n++ {
			f.Add(v[:n])
		}
		f.Add(append(append([]byte(nil), v...), 0))
		f.Add(gzipBytes(f, v))
		bad := append([]byte(nil), v...)
		bad[3] ^= 0x02
		f.Add(bad)
	}
}

func FuzzReadIDXImages(f *testing.F) {
	addIDXSeeds(f, [][]byte{
		encodeIDXImages(IDXImagesMagic, 2, 3, 4, pattern(24)),
		encodeIDXImages(IDXImagesMagic, 1, 1, 1, []byte{255}),
		encodeIDXImages(IDXImagesMagic, 0, 28, 28, nil),
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		im, err := ReadIDXImages(bytes.NewReader(in))
		if err != nil {
			require.Nil(t, im)
			return
		}
		require.GreaterOrEqual(t, im.N, 0)
		require.LessOrEqual(t, im.N, MaxIDXCount)
		require.LessOrEqual(t, im.N*im.Rows*im.Cols, MaxIDXPixels)
		require.True(t, im.Rows >= 1 && im.Rows <= MaxIDXSide && im.Cols >= 1 && im.Cols <= MaxIDXSide)
		require.Len(t, im.Pixels, im.N*im.Rows*im.Cols)
		for _, p := range im.Pixels {
			require.True(t, p >= 0 && p <= 1, "pixel %v outside [0,1]", p)
		}
		if len(in) < 2 || in[0] != 0x1f || in[1] != 0x8b {
			// Plain input is accepted only if it is exactly the canonical encoding.
			require.Equal(t, in, imagesToIDX(im))
		}
	})
}

func FuzzReadIDXLabels(f *testing.F) {
	addIDXSeeds(f, [][]byte{
		encodeIDXLabels(IDXLabelsMagic, 4, []byte{0, 9, 5, 1}),
		encodeIDXLabels(IDXLabelsMagic, 0, nil),
	})
	f.Fuzz(func(t *testing.T, in []byte) {
		lb, err := ReadIDXLabels(bytes.NewReader(in))
		if err != nil {
			require.Nil(t, lb)
			return
		}
		raw := make([]byte, len(lb))
		for i, l := range lb {
			require.True(t, l >= 0 && l < NumClasses, "label %d", l)
			raw[i] = byte(l)
		}
		if len(in) < 2 || in[0] != 0x1f || in[1] != 0x8b {
			require.Equal(t, in, encodeIDXLabels(IDXLabelsMagic, uint32(len(lb)), raw))
		}
	})
}

package safetensors

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	in := map[string]Tensor{
		"a.weight": {DType: "F64", Shape: []int{2, 3}, Data: []float64{1, 2, 3, 4, 5, 6.5}},
		"b":        {DType: "F32", Shape: []int{2}, Data: []float64{0.25, -1}},
		"scalar":   {DType: "F64", Shape: []int{}, Data: []float64{7}},
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	require.NoError(t, WriteFile(path, in, map[string]string{"format": "pt"}))
	out, meta, err := ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "pt", meta["format"])
	require.Equal(t, in, out)
}

func TestLayout(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, map[string]Tensor{"x": {DType: "F64", Shape: []int{1}, Data: []float64{1}}}, nil))
	b := buf.Bytes()
	n := binary.LittleEndian.Uint64(b[:8])
	require.Zero(t, (8+n)%8)
	require.Contains(t, string(b[8:8+n]), `"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}`)
	require.Equal(t, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f}, b[8+n:])
}

func TestRejectsBadFiles(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, map[string]Tensor{"x": {DType: "F64", Shape: []int{2}, Data: []float64{1, 2}}}, nil))
	good := buf.Bytes()

	_, _, err := Decode(good[:5])
	require.ErrorContains(t, err, "shorter")
	huge := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(huge, MaxHeaderSize+1)
	_, _, err = Decode(huge)
	require.ErrorContains(t, err, "limit")
	past := append([]byte(nil), good...)
	binary.LittleEndian.PutUint64(past, uint64(len(good)))
	_, _, err = Decode(past)
	require.ErrorContains(t, err, "exceeds the file")
	_, _, err = Decode(good[:len(good)-1])
	require.ErrorContains(t, err, "outside")
	bad := bytes.Replace(good, []byte(`"shape":[2]`), []byte(`"shape":[3]`), 1)
	_, _, err = Decode(bad)
	require.ErrorContains(t, err, "bytes for shape")
	bad = bytes.Replace(good, []byte(`"F64"`), []byte(`"I64"`), 1)
	_, _, err = Decode(bad)
	require.ErrorContains(t, err, "unsupported dtype")
	require.Error(t, Write(&buf, map[string]Tensor{"x": {DType: "F64", Shape: []int{3}, Data: []float64{1}}}, nil))
}

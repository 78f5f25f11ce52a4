package he

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
)

// Fuzz targets for every reader. Each takes (data, wrap): with wrap=false,
// data is a whole file; with wrap=true, data is a payload that the harness
// seals into a valid envelope (right kind, fingerprint and checksum), so the
// fuzzer can reach the payload decoders past the SHA-256 check. Seeds are
// valid files made from tiny insecure parameters, plus truncations, so they
// run under plain `go test`. Properties: no panic, and any accepted input
// re-encodes to exactly the same bytes (parameters: same fingerprint).

// fuzzExecs counts fuzz-function calls in this process. Go's fuzz
// coordinator only counts executions when a worker reports back, which on
// this machine happened rarely (it printed 33 execs for a worker that had run
// 100k); with POLYFORMER_FUZZ_STATS=<prefix> each worker writes its own count
// to <prefix>.<pid> every 2000 executions, for docs/fuzzing.md.
var fuzzExecs atomic.Int64

func countExec() {
	n := fuzzExecs.Add(1)
	if prefix := os.Getenv("POLYFORMER_FUZZ_STATS"); prefix != "" && n%2000 == 0 {
		_ = os.WriteFile(fmt.Sprintf("%s.%d", prefix, os.Getpid()), []byte(fmt.Sprint(n)), 0o644)
	}
}

type fuzzFixture struct {
	p      *Parameters
	skFile []byte
	evk    []byte
	cts    []byte
	params []byte
}

var (
	fuzzOnce sync.Once
	fuzzFix  fuzzFixture
	fuzzErr  error
)

func fixture(t testing.TB) fuzzFixture {
	fuzzOnce.Do(func() {
		p, err := NewParameters(tinyPreset("tiny10", 10))
		if err != nil {
			fuzzErr = err
			return
		}
		sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true, Rotations: []int{1}})
		if err != nil {
			fuzzErr = err
			return
		}
		client, err := NewClient(p, sk)
		if err != nil {
			fuzzErr = err
			return
		}
		a, err := client.EncryptReal([]float64{1, -2, 3}, -1)
		if err != nil {
			fuzzErr = err
			return
		}
		b, err := client.EncryptReal([]float64{0.5}, 0)
		if err != nil {
			fuzzErr = err
			return
		}
		var skb, evb, ctb, pb bytes.Buffer
		for _, e := range []error{WriteSecretKey(&skb, sk), WriteEvaluationKeys(&evb, evk), WriteCiphertexts(&ctb, p, []*rlwe.Ciphertext{a, b}), WriteParameters(&pb, p)} {
			if e != nil {
				fuzzErr = e
				return
			}
		}
		fuzzFix = fuzzFixture{p: p, skFile: skb.Bytes(), evk: evb.Bytes(), cts: ctb.Bytes(), params: pb.Bytes()}
	})
	require.NoError(t, fuzzErr)
	return fuzzFix
}

func payloadOf(file []byte) []byte {
	h := 53 + int(file[44])
	return file[h : len(file)-checksumLen]
}

func seal(kind FileKind, p *Parameters, payload []byte) []byte {
	var buf bytes.Buffer
	fp, name := Fingerprint{}, ""
	if p != nil {
		fp, name = p.Fingerprint(), p.Name()
	}
	_ = WriteEnvelope(&buf, kind, fp, name, payload)
	return buf.Bytes()
}

func addSeeds(f *testing.F, file []byte) {
	f.Add(file, false)
	f.Add(payloadOf(file), true)
	for _, n := range []int{0, 7, 8, 44, 60, len(file) / 2, len(file) - 33, len(file) - 1} {
		if n >= 0 && n < len(file) {
			f.Add(file[:n], false)
		}
	}
	pl := payloadOf(file)
	for _, n := range []int{0, 1, 3, 5, 9, len(pl) / 3} {
		if n < len(pl) {
			f.Add(pl[:n], true)
		}
	}
}

func FuzzReadEnvelope(f *testing.F) {
	fx := fixture(f)
	addSeeds(f, fx.skFile)
	addSeeds(f, fx.params)
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		countExec()
		if wrap {
			data = seal(FileCircuit, fx.p, data)
		}
		h, payload, err := DecodeEnvelope(data, EnvelopeExpect{MaxPayload: 1 << 20})
		if err != nil {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteEnvelope(&buf, h.Kind, h.Fingerprint, h.Label, payload))
		require.Equal(t, data, buf.Bytes(), "accepted envelope must re-encode identically")
	})
}

func FuzzReadParameters(f *testing.F) {
	fx := fixture(f)
	addSeeds(f, fx.params)
	for _, name := range []string{PresetTestBootN13, PresetN14} {
		p, err := ParametersFromPreset(name)
		require.NoError(f, err)
		var buf bytes.Buffer
		require.NoError(f, WriteParameters(&buf, p))
		f.Add(buf.Bytes(), false)
		f.Add(payloadOf(buf.Bytes()), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		countExec()
		if wrap {
			// The header fingerprint cannot be known in advance; use the
			// tiny fixture's, so only that payload (and equivalents) pass.
			data = seal(FileParameters, fx.p, data)
		}
		p, err := DecodeParameters(data)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteParameters(&buf, p))
		q, err := DecodeParameters(buf.Bytes())
		require.NoError(t, err)
		require.Equal(t, p.Fingerprint(), q.Fingerprint())
	})
}

func FuzzReadSecretKey(f *testing.F) {
	fx := fixture(f)
	addSeeds(f, fx.skFile)
	f.Add([]byte{10, 2, 1}, true)
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		countExec()
		if wrap {
			data = seal(FileSecretKey, fx.p, data)
		}
		sk, err := ReadSecretKey(bytes.NewReader(data), fx.p)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteSecretKey(&buf, sk))
		require.Equal(t, data, buf.Bytes())
	})
}

func FuzzReadEvaluationKeys(f *testing.F) {
	fx := fixture(f)
	addSeeds(f, fx.evk)
	// Small payload seeds so that mutations reach the record decoders.
	f.Add([]byte{0, 0, 0, 0, 0}, true)                                     // no keys
	f.Add([]byte{1, 0, 0, 0, 0, 1, 1, 2, 0}, true)                         // relin record header only
	f.Add([]byte{0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 0}, true) // one Galois key header
	f.Add([]byte{2, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0}, true)                // bootstrapping section for non-bootstrapping params
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		countExec()
		if wrap {
			data = seal(FileEvaluationKeys, fx.p, data)
		}
		evk, err := ReadEvaluationKeys(bytes.NewReader(data), fx.p)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteEvaluationKeys(&buf, evk))
		require.Equal(t, data, buf.Bytes())
	})
}

func FuzzReadCiphertext(f *testing.F) {
	fx := fixture(f)
	addSeeds(f, fx.cts)
	f.Add([]byte{0, 0, 0, 0}, true)                                        // zero ciphertexts
	f.Add([]byte{1, 0, 0, 0, 1, 1, 1, 0, 9, 0, 0, 0, 0}, true)             // header, empty scale
	f.Add([]byte{1, 0, 0, 0, 1, 0, 5, 0, 9, 4, 0, 0, 0, 1, 2, 3, 4}, true) // header, bad scale bytes
	f.Fuzz(func(t *testing.T, data []byte, wrap bool) {
		countExec()
		if wrap {
			data = seal(FileCiphertexts, fx.p, data)
		}
		cts, err := ReadCiphertexts(bytes.NewReader(data), fx.p)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		require.NoError(t, WriteCiphertexts(&buf, fx.p, cts))
		require.Equal(t, data, buf.Bytes())
	})
}

package he

import (
	"bytes"
	"math/bits"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// leveledKeys generates test-n12 keys (8 levels): relinearization at level
// 3, rotation 1 at level 4, rotation 2 at level 2, rotation 3 at the top.
func leveledKeys(t *testing.T) (*Parameters, *SecretKey, *EvaluationKeys) {
	t.Helper()
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	spec := KeySpec{Relinearization: true, Rotations: []int{1, 2, 3},
		Levels: &KeyLevels{Relinearization: 3, Rotations: []int{4, 2, p.MaxLevel()}}}
	sk, evk, err := GenerateKeys(p, spec)
	require.NoError(t, err)
	return p, sk, evk
}

func TestKeysAtTheirLevels(t *testing.T) {
	p, sk, evk := leveledKeys(t)
	hp := p.HE()
	lvl := func(k int) int {
		l, ok := evk.GaloisKeyLevel(hp.GaloisElement(k))
		require.True(t, ok)
		return l
	}
	rl, ok := evk.RelinearizationKeyLevel()
	require.True(t, ok)
	require.Equal(t, 3, rl)
	require.Equal(t, 4, lvl(1))
	require.Equal(t, 2, lvl(2))
	require.Equal(t, p.MaxLevel(), lvl(3))
	for _, g := range evk.GaloisElements() {
		gk := evk.galois[g]
		require.Equal(t, hp.MaxLevelP(), gk.LevelP())
		require.NoError(t, checkEvaluationKeyShape(hp.Parameters.Parameters, &gk.EvaluationKey, gk.LevelQ(), gk.LevelP(), "key"))
	}
	require.True(t, evk.Seeded())

	client, err := NewClient(p, sk)
	require.NoError(t, err)
	vals := make([]float64, p.Slots())
	for i := range vals {
		vals[i] = float64(i%11)/11 - 0.5
	}
	ev := NewEvaluator(p, evk, nil)
	// At the key's level and below it (the key's extra moduli are unused), the
	// rotations and products are exact to CKKS noise.
	for _, level := range []int{4, 2, 1} {
		ct, err := client.EncryptReal(vals, level)
		require.NoError(t, err)
		rot, err := ev.Rotate(ct, 1)
		require.NoError(t, err, "level %d", level)
		got, err := client.DecryptReal(rot)
		require.NoError(t, err)
		for i := range vals {
			require.InDelta(t, vals[(i+1)%len(vals)], got[i], 1e-6, "level %d slot %d", level, i)
		}
		if level <= 3 {
			sq, err := ev.MulRelinRescale(ct, ct)
			require.NoError(t, err)
			got, err = client.DecryptReal(sq)
			require.NoError(t, err)
			for i := range vals {
				require.InDelta(t, vals[i]*vals[i], got[i], 1e-6, "level %d slot %d", level, i)
			}
		}
	}
}

// TestKeyBelowCiphertextLevelRefused: Lattigo v5.0.7 silently returns
// garbage when a key is below the ciphertext's level; the evaluator refuses,
// naming the key and both levels.
func TestKeyBelowCiphertextLevelRefused(t *testing.T) {
	p, sk, evk := leveledKeys(t)
	hp := p.HE()
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	ct, err := client.EncryptReal([]float64{1, 2, 3}, 5)
	require.NoError(t, err)

	// What the check prevents: Lattigo itself gives garbage without an error.
	raw := hefloat.NewEvaluator(hp, evk.KeySet())
	bad, err := raw.RotateNew(ct, 1)
	require.NoError(t, err)
	got, err := client.DecryptReal(bad)
	require.NoError(t, err)
	require.Greater(t, maxAbsDiff(got[:2], []float64{2, 3}), 1.0)

	ev := NewEvaluator(p, evk, nil)
	_, err = ev.Rotate(ct, 1)
	require.ErrorIs(t, err, ErrKeyLevel)
	require.EqualError(t, err, "rotate: key below the ciphertext's level: the Galois key for rotation 1 (element 5) is at level 4, the ciphertext at level 5")
	_, err = ev.RotateHoisted(ct, []int{2, 3})
	require.ErrorIs(t, err, ErrKeyLevel)
	require.ErrorContains(t, err, "rotation 2 (element 25) is at level 2, the ciphertext at level 5")
	_, err = ev.MulRelin(ct, ct)
	require.ErrorIs(t, err, ErrKeyLevel)
	require.EqualError(t, err, "mul relin: key below the ciphertext's level: the relinearization key is at level 3, the ciphertext at level 5")
	_, err = ev.Power(ct, 2)
	require.ErrorIs(t, err, ErrKeyLevel)
	lt, err := NewDenseTransform(p, [][]float64{ones(4), ones(4), ones(4), ones(4)})
	require.NoError(t, err)
	enc, err := ev.EncodeLinearTransform(lt, 5)
	require.NoError(t, err)
	_, err = ev.LinearTransform(ct, enc)
	require.ErrorIs(t, err, ErrKeyLevel)
}

func ones(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func maxAbsDiff(a, b []float64) float64 {
	m := 0.0
	for i := range a {
		d := a[i] - b[i]
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}

// TestSeededKeysRoundTrip: a version-2 file carries each key's level and
// seed; the loader expands the random halves to exactly the generated keys.
// The file is about half the size of the keys in memory.
func TestSeededKeysRoundTrip(t *testing.T) {
	p, sk, evk := leveledKeys(t)
	rp := p.HE().Parameters.Parameters
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	require.Equal(t, int(evk.SizeBytes())+53+len(p.Name())+32, buf.Len())
	require.Equal(t, EvaluationKeysVersion, uint16(buf.Bytes()[8])|uint16(buf.Bytes()[9])<<8)

	evk2, err := ReadEvaluationKeys(bytes.NewReader(buf.Bytes()), p)
	require.NoError(t, err)
	require.True(t, evk2.Seeded())
	require.True(t, evk.relin.Equal(evk2.relin))
	require.Equal(t, evk.GaloisElements(), evk2.GaloisElements())
	var full uint64
	for g, gk := range evk.galois {
		require.True(t, gk.EvaluationKey.Equal(&evk2.galois[g].EvaluationKey), "Galois key %d", g)
		mem, file := EvaluationKeyBytes(p, gk.LevelQ(), gk.LevelP())
		require.Equal(t, evkRecordSize(rp, gk.LevelQ(), gk.LevelP(), 1, false)-4, mem)
		require.Less(t, file, mem/2+64)
		width := 0 // bytes per coefficient of b over all limbs: those of each modulus
		for i := 0; i <= gk.LevelQ(); i++ {
			width += (bits.Len64(rp.Q()[i]-1) + 7) / 8
		}
		for i := 0; i <= gk.LevelP(); i++ {
			width += (bits.Len64(rp.P()[i]-1) + 7) / 8
		}
		require.Less(t, width, 8*(gk.LevelQ()+gk.LevelP()+2))
		require.Equal(t, uint64(5+32+len(gk.Value)*p.N()*width), file)
		full += mem
	}
	mem, _ := EvaluationKeyBytes(p, evk.relin.LevelQ(), evk.relin.LevelP())
	full += mem
	require.Less(t, evk.SizeBytes(), full/2+1024) // seeds, levels and elements: under 1 kB

	// A re-write of the loaded keys is identical (seeds kept).
	var buf2 bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf2, evk2))
	require.Equal(t, buf.Bytes(), buf2.Bytes())

	// The streaming validator reports levels and seeds without expanding.
	info, err := VerifyEvaluationKeysStream(bytes.NewReader(buf.Bytes()), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
	require.NoError(t, err)
	require.Equal(t, EvaluationKeysVersion, info.Version)
	require.Equal(t, 3, info.RelinearizationLevel)
	require.Equal(t, 4, info.SeededKeys)
	for g, gk := range evk.galois {
		require.Equal(t, gk.LevelQ(), info.GaloisLevels[g])
	}

	// The reloaded keys work.
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	ct, err := client.EncryptReal([]float64{1, 2, 3}, 2)
	require.NoError(t, err)
	ev := NewEvaluator(p, evk2, nil)
	rot, err := ev.Rotate(ct, 2)
	require.NoError(t, err)
	got, err := client.DecryptReal(rot)
	require.NoError(t, err)
	require.InDelta(t, 3, got[0], 1e-6)
}

// TestSeededKeyRecordErrors: a declared shape that does not match the
// declared levels, an unknown record form, and a truncated seed are refused
// by the loader and the streaming validator alike.
func TestSeededKeyRecordErrors(t *testing.T) {
	p, _, evk := leveledKeys(t)
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	data := buf.Bytes()
	hdr := 53 + len(p.Name())
	rec := hdr + 5 // relinearization record: levelQ, levelP+1, rows (2), form
	require.Equal(t, byte(3), data[rec])
	require.Equal(t, byte(formSeeded), data[rec+4])
	verify := func(d []byte) error {
		_, err := VerifyEvaluationKeysStream(bytes.NewReader(d), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
		return err
	}
	for _, c := range []struct {
		name string
		edit func(d []byte)
		want string
	}{
		{"level", func(d []byte) { d[rec] = 5 }, "declares 4 gadget rows, parameters need 6 at levels (Q 5, P 0)"},
		{"form", func(d []byte) { d[rec+4] = 7 }, "unknown record form 7"},
		{"coefficient", func(d []byte) {
			for i := 0; i < 8; i++ {
				d[rec+5+32+i] = 0xff
			}
		}, ">= modulus"},
	} {
		d := append([]byte{}, data...)
		c.edit(d)
		d = reseal(d)
		_, err := ReadEvaluationKeys(bytes.NewReader(d), p)
		require.ErrorIs(t, err, ErrMalformed, c.name)
		require.ErrorContains(t, err, c.want, c.name)
		err = verify(d)
		require.ErrorIs(t, err, ErrMalformed, c.name)
		require.ErrorContains(t, err, c.want, c.name)
	}
	_, err := ReadEvaluationKeys(bytes.NewReader(data[:rec+20]), p)
	require.ErrorIs(t, err, ErrTruncated)
	require.ErrorIs(t, verify(data[:rec+20]), ErrTruncated)
}

// TestKeyLevelsSpec: levels must match the request and the parameters.
func TestKeyLevelsSpec(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	_, _, err = KeySpec{Rotations: []int{1}, Levels: &KeyLevels{}}.ResolveKeyLevels(p)
	require.ErrorContains(t, err, "0 rotation levels for 1 rotations")
	_, _, err = KeySpec{Rotations: []int{1}, Levels: &KeyLevels{Rotations: []int{9}}}.ResolveKeyLevels(p)
	require.ErrorContains(t, err, "key levels: rotation key 1 at level 9, parameters test-n12")
	require.ErrorContains(t, err, "have levels 0 to 8")
	hp := p.HE()
	rl, gal, err := KeySpec{Relinearization: true, Rotations: []int{1, 1}, GaloisElements: []uint64{hp.GaloisElement(1)}, Conjugation: true,
		Levels: &KeyLevels{Relinearization: 2, Rotations: []int{3, 1}, GaloisElements: []int{5}}}.ResolveKeyLevels(p)
	require.NoError(t, err)
	require.Equal(t, 2, rl)
	require.Equal(t, map[uint64]int{hp.GaloisElement(1): 5, hp.GaloisElementForComplexConjugation(): 8}, gal)
}

// TestVerifiedKeysCoverLevels: the streaming validator's summary refuses
// keys below the levels a spec asks for.
func TestVerifiedKeysCoverLevels(t *testing.T) {
	p, _, evk := leveledKeys(t)
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	info, err := VerifyEvaluationKeysStream(bytes.NewReader(buf.Bytes()), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
	require.NoError(t, err)
	spec := KeySpec{Relinearization: true, Rotations: []int{1, 2, 3}, Levels: &KeyLevels{Relinearization: 3, Rotations: []int{4, 2, 1}}}
	require.NoError(t, info.Covers(spec))
	spec.Levels.Rotations[1] = 3
	err = info.Covers(spec)
	require.ErrorIs(t, err, ErrKeyLevel)
	require.ErrorContains(t, err, "the Galois key 25 is at level 2, the circuit uses it at level 3")
	spec.Levels.Rotations[1] = 2
	spec.Levels.Relinearization = 4
	require.ErrorContains(t, info.Covers(spec), "the relinearization key is at level 3, the circuit uses it at level 4")
	spec.Levels = nil // top level: a key set of leveled keys does not cover it
	require.ErrorIs(t, info.Covers(spec), ErrKeyLevel)
}

// TestKeyWithFewerSpecialPrimesRefused: keys must keep every special prime
// (Lattigo's hoisted rotations decompose with MaxLevelP).
func TestKeyWithFewerSpecialPrimesRefused(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestN13) // 3 special primes
	require.NoError(t, err)
	rp := p.HE().Parameters.Parameters
	sk, evk, err := GenerateKeys(p, KeySpec{Rotations: []int{1}, Levels: &KeyLevels{Rotations: []int{4}}})
	require.NoError(t, err)
	g := p.HE().GaloisElement(1)
	low, seed, err := newSeededKeyGen(rp).galois(sk.sk, g, 4, 1)
	require.NoError(t, err)
	evk.galois[g] = low
	evk.seeds[g] = seed
	evk.set = rlwe.NewMemEvaluationKeySet(nil, low)
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	_, err = ReadEvaluationKeys(bytes.NewReader(buf.Bytes()), p)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, "Galois key 5 at levels (Q 4, P 1), expected P 2 (every special prime)")
}

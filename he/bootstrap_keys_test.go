package he

import (
	"bytes"
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
)

// bootstrapError bootstraps a level-0 encryption of values with b and
// returns the largest absolute error after decryption.
func bootstrapError(t *testing.T, b *Bootstrapper, client *Client, values []float64) float64 {
	t.Helper()
	ct, err := client.EncryptReal(values, 0)
	require.NoError(t, err)
	out, err := b.Bootstrap(ct)
	require.NoError(t, err)
	return decryptError(t, client, out, values)
}

func decryptError(t *testing.T, client *Client, ct *rlwe.Ciphertext, values []float64) float64 {
	t.Helper()
	got, err := client.DecryptReal(ct)
	require.NoError(t, err)
	maxErr := 0.0
	for i := range values {
		maxErr = math.Max(maxErr, math.Abs(got[i]-values[i]))
	}
	return maxErr
}

// topLevelBootstrappingKeys returns bootstrapping keys for sk as the build
// before per-key levels made them: Lattigo's generator (every key at the
// top level, in full) with the leak fix.
func topLevelBootstrappingKeys(t *testing.T, p *Parameters, sk *SecretKey) *EvaluationKeys {
	t.Helper()
	raw, skN2, err := generateBootstrappingKeysUnfixed(p, sk)
	require.NoError(t, err)
	require.NoError(t, regenerateEncapsulationKeys(p.BootstrappingParameters(), raw, skN2))
	return newEvaluationKeys(p, nil, nil, raw)
}

// withBootstrapGaloisKey returns a copy of evk whose bootstrapping Galois key
// for g is gk.
func withBootstrapGaloisKey(evk *EvaluationKeys, gk *rlwe.GaloisKey) *EvaluationKeys {
	b := *evk.btp
	rl, gks := memSetKeys(b.MemEvaluationKeySet)
	for i := range gks {
		if gks[i].GaloisElement == gk.GaloisElement {
			gks[i] = gk
		}
	}
	b.MemEvaluationKeySet = rlwe.NewMemEvaluationKeySet(rl, gks...)
	out := newEvaluationKeys(evk.params, evk.relin, nil, &b)
	return out
}

// TestBootstrappingKeysAtTheirLevels, at test-boot-n13:
//   - the seeded keys at their levels are a fraction of the top-level keys
//     and round-trip through a file (identical keys, seeds kept);
//   - bootstrapping with the loaded keys gives the precision of the
//     top-level keys of the same secret (same bound, within one bit).
//
// Measured on the shared 2-core machine (with the checks now in
// TestBootstrapKeyBelowUseLevelAndOldFormat): keys 140.7 MB at their levels
// against 417.1 MB at the top level in full, errors 1.49e-7 against 1.33e-7.
func TestBootstrappingKeysAtTheirLevels(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestBootN13)
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p, KeySpec{Bootstrapping: true})
	require.NoError(t, err)
	full := topLevelBootstrappingKeys(t, p, sk)
	t.Logf("bootstrapping keys: %d bytes seeded at their levels, %d at the top level in full (%.3f)",
		evk.SizeBytes(), full.SizeBytes(), float64(evk.SizeBytes())/float64(full.SizeBytes()))
	require.Less(t, evk.SizeBytes(), full.SizeBytes()/2)
	_, fileBytes, topMem := BootstrappingKeyBytes(p)
	require.Equal(t, evk.SizeBytes(), 5+fileBytes, "BootstrappingKeyBytes is the size of the keys' section")
	require.Greater(t, topMem, full.SizeBytes())
	btp := p.BootstrappingParameters()
	lv := bootstrappingKeyLevels(btp)

	// Round trip: identical keys, seeded records, same bytes when re-written.
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	require.Equal(t, int(evk.SizeBytes())+53+len(p.Name())+32, buf.Len())
	loaded, err := ReadEvaluationKeys(bytes.NewReader(buf.Bytes()), p)
	require.NoError(t, err)
	rl, gks := memSetKeys(evk.btp.MemEvaluationKeySet)
	rl2, gks2 := memSetKeys(loaded.btp.MemEvaluationKeySet)
	require.True(t, rl.Equal(rl2))
	require.Equal(t, lv.relin, rl2.LevelQ())
	require.Len(t, gks2, len(gks))
	for i := range gks {
		require.True(t, gks[i].Equal(gks2[i]), "Galois key %d", gks[i].GaloisElement)
		require.Equal(t, lv.galois[gks[i].GaloisElement], gks2[i].LevelQ())
	}
	for i, c := range btpComponents(evk.btp) {
		if *c != nil {
			require.True(t, (*c).Equal(*btpComponents(loaded.btp)[i]), btpComponentNames[i])
			require.NotNil(t, loaded.btpSeeds.components[i], btpComponentNames[i])
		}
	}
	var buf2 bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf2, loaded))
	require.Equal(t, buf.Bytes(), buf2.Bytes())

	// Same precision as the top-level keys.
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(3))
	values := make([]float64, p.Slots())
	for i := range values {
		values[i] = 2*rng.Float64() - 1
	}
	bLoaded, err := NewBootstrapper(p, loaded)
	require.NoError(t, err)
	eLoaded := bootstrapError(t, bLoaded, client, values)
	bFull, err := NewBootstrapper(p, full)
	require.NoError(t, err)
	eFull := bootstrapError(t, bFull, client, values)
	t.Logf("max abs error after bootstrap: %.3g (log2 %.2f) with the loaded keys at their levels, %.3g (log2 %.2f) with the top-level keys",
		eLoaded, math.Log2(eLoaded), eFull, math.Log2(eFull))
	require.Less(t, eLoaded, math.Exp2(-18))
	require.Less(t, eFull, math.Exp2(-18))
	require.Less(t, math.Abs(math.Log2(eLoaded)-math.Log2(eFull)), 1.0)
}

// TestBootstrapKeyBelowUseLevelAndOldFormat, at tiny-boot10:
//   - a Galois key one level below its use is refused by NewBootstrapper,
//     the loader and the streaming verifier (ErrKeyLevel, naming the key
//     and the levels), and Lattigo, bypassing the check, fails with it;
//   - a version-2 file (bootstrapping keys at the top level, in full, as
//     the previous build wrote them) still loads and bootstraps, and a
//     version-2 file with keys below the top is refused.
func TestBootstrapKeyBelowUseLevelAndOldFormat(t *testing.T) {
	p, err := NewParameters(tinyBootPreset())
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p, KeySpec{Bootstrapping: true})
	require.NoError(t, err)
	full := topLevelBootstrappingKeys(t, p, sk)
	btp := p.BootstrappingParameters()
	bp := btp.BootstrappingParameters.Parameters.Parameters
	lv := bootstrappingKeyLevels(btp)
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	values := make([]float64, p.Slots())
	for i := range values {
		values[i] = math.Sin(float64(i))
	}
	var buf bytes.Buffer

	// A Galois key one level below its use: the lowest-level one (a
	// SlotsToCoeffs key) regenerated one level lower.
	var g uint64
	for e, l := range lv.galois {
		if l > 0 && (g == 0 || l < lv.galois[g]) {
			g = e
		}
	}
	use := lv.galois[g]
	skN2 := extendSecret(bp, sk.sk.Value.Q)
	low, _, err := newSeededKeyGen(bp).galois(skN2, g, use-1, bp.MaxLevelP())
	require.NoError(t, err)
	bad := withBootstrapGaloisKey(evk, low)
	want := fmt.Sprintf("Galois key %d is at level %d, the bootstrapping circuit uses it at level %d", g, use-1, use)
	_, err = NewBootstrapper(p, bad)
	require.ErrorIs(t, err, ErrKeyLevel)
	require.ErrorContains(t, err, want)
	buf.Reset()
	require.NoError(t, WriteEvaluationKeys(&buf, bad))
	_, err = ReadEvaluationKeys(bytes.NewReader(buf.Bytes()), p)
	require.ErrorIs(t, err, ErrKeyLevel)
	require.ErrorContains(t, err, want)
	_, err = VerifyEvaluationKeysStream(bytes.NewReader(buf.Bytes()), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
	require.ErrorIs(t, err, ErrKeyLevel)
	// What the check prevents: Lattigo, given the key, panics inside the
	// hoisted rotations of SlotsToCoeffs (index out of range) or, for keys
	// it switches without hoisting, computes garbage without a word.
	raw, err := bootstrapping.NewEvaluator(*btp, bad.btp)
	require.NoError(t, err)
	outcome := func() (res string) {
		defer func() {
			if r := recover(); r != nil {
				res = fmt.Sprintf("panic: %v", r)
			}
		}()
		ct, err := client.EncryptReal(values, 0)
		require.NoError(t, err)
		out, err := raw.Bootstrap(ct)
		if err != nil {
			return "error: " + err.Error()
		}
		if e := decryptError(t, client, out, values); e < 1e-2 {
			return fmt.Sprintf("max abs error %.3g", e)
		}
		return "garbage"
	}()
	t.Logf("Galois key %d at level %d instead of %d, unchecked: %s", g, use-1, use, outcome)
	require.NotContains(t, outcome, "max abs error", "a key below its use level must break the bootstrap, else the level is not tight")

	// Version 2: the top-level keys in full, as the previous build wrote them.
	v2 := func(e *EvaluationKeys) []byte {
		var b bytes.Buffer
		require.NoError(t, WriteEvaluationKeys(&b, e))
		d := b.Bytes()
		d[8], d[9] = 2, 0
		return reseal(d)
	}
	old, err := ReadEvaluationKeys(bytes.NewReader(v2(full)), p)
	require.NoError(t, err)
	bOld, err := NewBootstrapper(p, old)
	require.NoError(t, err)
	eOld := bootstrapError(t, bOld, client, values)
	require.Less(t, eOld, math.Exp2(-15))
	_, err = ReadEvaluationKeys(bytes.NewReader(v2(evk)), p)
	require.ErrorIs(t, err, ErrMalformed)
	require.ErrorContains(t, err, fmt.Sprintf("expected (Q %d, P", bp.MaxLevelQ()))
}

// TestSeededBootstrappingKeyRecordErrors: a truncated or forged seeded
// bootstrapping key record fails with an error naming the record and what
// is wrong with it (tiny-boot10).
func TestSeededBootstrappingKeyRecordErrors(t *testing.T) {
	p, err := NewParameters(tinyBootPreset())
	require.NoError(t, err)
	_, evk, err := GenerateKeys(p, KeySpec{Bootstrapping: true})
	require.NoError(t, err)
	_, fileBytes, _ := BootstrappingKeyBytes(p)
	require.Equal(t, evk.SizeBytes(), 5+fileBytes, "BootstrappingKeyBytes is the size of the keys' section")
	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	data := buf.Bytes()
	btp := p.BootstrappingParameters()
	bp := btp.BootstrappingParameters.Parameters.Parameters
	lv := bootstrappingKeyLevels(btp)
	v := EvaluationKeysVersion
	// Offset of the first bootstrapping Galois record: payload header (flags,
	// #Galois), component mask, the two encapsulation keys, has-relin,
	// #Galois, the relinearization key, then the element.
	off := 53 + len(p.Name()) + 5 + 1
	off += int(evkRecordSize(bp, 0, 0, v, true) + evkRecordSize(bp, bp.MaxLevelQ(), bp.MaxLevelP(), v, true))
	off += 5 + int(evkRecordSize(bp, lv.relin, bp.MaxLevelP(), v, true))
	g := sortedUint64(mapKeys(lv.galois))[0]
	rec := off + 8
	require.Equal(t, byte(lv.galois[g]), data[rec], "record offset")
	require.Equal(t, byte(formSeeded), data[rec+4])
	verify := func(d []byte) error {
		_, err := VerifyEvaluationKeysStream(bytes.NewReader(d), func(Fingerprint, string) (*Parameters, error) { return p, nil }, 0)
		return err
	}
	require.NoError(t, verify(data))
	what := fmt.Sprintf("bootstrapping keys: Galois key %d", g)
	for _, c := range []struct {
		name string
		edit func(d []byte)
		is   error
		want string
	}{
		{"form", func(d []byte) { d[rec+4] = 7 }, ErrMalformed, what + " has unknown record form 7"},
		{"below use level", func(d []byte) { d[rec] = byte(lv.galois[g] - 1) }, ErrKeyLevel,
			fmt.Sprintf("%s is at level %d, the bootstrapping circuit uses it at level %d", what, lv.galois[g]-1, lv.galois[g])},
		{"coefficient", func(d []byte) {
			for i := 0; i < 8; i++ {
				d[rec+5+32+i] = 0xff
			}
		}, ErrMalformed, what + " coefficient"},
	} {
		d := append([]byte{}, data...)
		c.edit(d)
		d = reseal(d)
		_, err := ReadEvaluationKeys(bytes.NewReader(d), p)
		require.ErrorIs(t, err, c.is, c.name)
		require.ErrorContains(t, err, c.want, c.name)
		t.Logf("%s: %v", c.name, err)
		err = verify(d)
		require.ErrorIs(t, err, c.is, c.name)
		require.ErrorContains(t, err, c.want, c.name)
	}
	_, err = ReadEvaluationKeys(bytes.NewReader(data[:rec+100]), p)
	require.ErrorIs(t, err, ErrTruncated)
	require.ErrorIs(t, verify(data[:rec+100]), ErrTruncated)
	t.Logf("truncated: %v", err)
}

package he

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/ring"
)

func TestPresetsPassSecurityCheck(t *testing.T) {
	rows, err := PresetTable()
	require.NoError(t, err)
	require.Len(t, rows, len(Presets()))
	for _, pr := range Presets() {
		p, err := NewParameters(pr)
		require.NoError(t, err, pr.Name)
		rep := p.Security()
		if pr.InsecureForTesting {
			require.False(t, rep.OK(), "%s is marked insecure but passes: drop the mark", pr.Name)
			// Without the mark the same literal must be refused.
			pr2 := pr
			pr2.InsecureForTesting = false
			_, err := NewParameters(pr2)
			require.Error(t, err, pr.Name)
			continue
		}
		require.True(t, rep.OK(), "%s: %s", pr.Name, rep.Summary())
		require.GreaterOrEqual(t, p.Info().SecurityBits, 128.0, pr.Name)
	}
}

func TestPresetShapes(t *testing.T) {
	want := map[string]struct{ logN, levels, slots int }{
		PresetN14: {14, 8, 8192}, PresetN15: {15, 16, 16384}, PresetN16: {16, 24, 32768},
		PresetN16Boot: {16, 9, 32768}, PresetN16Boot14: {16, 14, 32768}, PresetTestN12: {12, 8, 2048}, PresetTestN13: {13, 16, 4096}, PresetTestBootN13: {13, 2, 4096},
	}
	for name, w := range want {
		p, err := ParametersFromPreset(name)
		require.NoError(t, err)
		require.Equal(t, w.logN, p.LogN(), name)
		require.Equal(t, w.levels, p.MaxLevel(), name)
		require.Equal(t, w.slots, p.Slots(), name)
		require.Equal(t, 40, p.LogDefaultScale(), name)
		require.Equal(t, ring.Standard, p.RingType(), name)
	}
	p, err := ParametersFromPreset(PresetN16Boot)
	require.NoError(t, err)
	require.True(t, p.HasBootstrapping())
	require.InDelta(t, 1546, p.BootstrappingParameters().BootstrappingParameters.LogQP(), 1)
	// n16-boot14: the dense-secret set with the most levels after a
	// bootstrap that stays under the 128-bit bound of 1761 at logN 16;
	// one more level would not.
	p, err = ParametersFromPreset(PresetN16Boot14)
	require.NoError(t, err)
	require.True(t, p.HasBootstrapping())
	lq := p.BootstrappingParameters().BootstrappingParameters.LogQP()
	require.InDelta(t, 1746, lq, 1)
	require.Greater(t, lq+40, 1761.0, "a 15th level would exceed the bound")
	_, err = LookupPreset("nope")
	require.ErrorContains(t, err, "unknown parameter preset")
}

func TestSecurityBoundTable(t *testing.T) {
	for logN, b := range map[int]float64{10: 27, 11: 54, 12: 109, 13: 218, 14: 438, 15: 881, 16: 1761} {
		got, _, err := MaxLogQP(logN, 1<<logN*2/3)
		require.NoError(t, err)
		require.Equal(t, b, got)
	}
	got, _, err := MaxLogQP(16, 192)
	require.NoError(t, err)
	require.InDelta(t, 1550, got, 0.01)
	_, _, err = MaxLogQP(16, 64) // sparse below any known bound
	require.Error(t, err)
	_, _, err = MaxLogQP(17, 1<<16)
	require.Error(t, err)

	require.Equal(t, 128.0, EstimateSecurityBits(14, 438, 1<<14))
	require.Equal(t, 192.0, EstimateSecurityBits(14, 305, 1<<14))
	require.Equal(t, 256.0, EstimateSecurityBits(14, 100, 1<<14))
	require.InDelta(t, 64, EstimateSecurityBits(14, 876, 1<<14), 1e-9)
	require.Less(t, EstimateSecurityBits(14, 439, 1<<14), 128.0)
}

func TestCheckSecurityRefusesAboveBound(t *testing.T) {
	// logN=14 with 11 levels of 40 bits: logQP ≈ 55+440+61 > 438.
	lit := hefloat.ParametersLiteral{LogN: 14, LogQ: append([]int{55}, repeatInt(40, 11)...), LogP: []int{61}, LogDefaultScale: 40}
	rep, err := CheckSecurity(lit, nil, false)
	require.Error(t, err)
	require.Contains(t, err.Error(), "below 128-bit security")
	require.False(t, rep.Secure)
	rep, err = CheckSecurity(lit, nil, true)
	require.NoError(t, err)
	require.False(t, rep.Secure)
	// A sparse secret with h=64 has no known bound: refused.
	lit = hefloat.ParametersLiteral{LogN: 15, LogQ: []int{55, 40}, LogP: []int{61}, Xs: ring.Ternary{H: 64}, LogDefaultScale: 40}
	_, err = CheckSecurity(lit, nil, false)
	require.Error(t, err)
}

func TestFingerprintStableAndDistinct(t *testing.T) {
	seen := map[Fingerprint]string{}
	for _, name := range PresetNames() {
		a, err := ParametersFromPreset(name)
		require.NoError(t, err)
		b, err := ParametersFromPreset(name)
		require.NoError(t, err)
		require.Equal(t, a.Fingerprint(), b.Fingerprint(), "fingerprint must be deterministic")
		require.Len(t, a.Fingerprint().String(), 64)
		if other, ok := seen[a.Fingerprint()]; ok {
			t.Fatalf("%s and %s share a fingerprint", name, other)
		}
		seen[a.Fingerprint()] = name
		f, err := ParseFingerprint(a.Fingerprint().String())
		require.NoError(t, err)
		require.Equal(t, a.Fingerprint(), f)
	}
	// Pinned value: a change means every existing file becomes unreadable,
	// so it must be deliberate (bump the canonical format then).
	p, err := ParametersFromPreset(PresetTestN12)
	require.NoError(t, err)
	require.Equal(t, "6a1cc1a269158a46750bd3b1f64c1a69c67471a5bab9e41cd341bcd3dee91cf7", p.Fingerprint().String())
	// The scale is part of the fingerprint.
	pr, _ := LookupPreset(PresetTestN12)
	pr.Literal.LogDefaultScale = 39
	q, err := NewParameters(pr)
	require.NoError(t, err)
	require.NotEqual(t, p.Fingerprint(), q.Fingerprint())
}

func TestParametersFileRoundTrip(t *testing.T) {
	for _, name := range []string{PresetTestN12, PresetTestBootN13, PresetN16Boot} {
		p, err := ParametersFromPreset(name)
		require.NoError(t, err)
		var buf bytes.Buffer
		require.NoError(t, WriteParameters(&buf, p))
		q, err := DecodeParameters(buf.Bytes())
		require.NoError(t, err, name)
		require.Equal(t, p.Fingerprint(), q.Fingerprint())
		require.Equal(t, p.Name(), q.Name())
		require.True(t, p.HE().Equal(&hefloat.Parameters{Parameters: q.HE().Parameters}))
		require.Equal(t, p.HasBootstrapping(), q.HasBootstrapping())
	}
	path := t.TempDir() + "/params.pfp"
	p, _ := ParametersFromPreset(PresetTestN13)
	require.NoError(t, WriteParametersFile(path, p, false))
	require.Error(t, WriteParametersFile(path, p, false), "must refuse to overwrite")
	require.NoError(t, WriteParametersFile(path, p, true))
	q, err := ReadParametersFile(path)
	require.NoError(t, err)
	require.Equal(t, p.Fingerprint(), q.Fingerprint())
}

func TestParametersFileRejectsTampering(t *testing.T) {
	p, _ := ParametersFromPreset(PresetTestN12)
	payload, err := p.marshalPayload()
	require.NoError(t, err)
	// Change a prime but keep a valid envelope (checksum recomputed): the
	// recomputed fingerprint no longer matches.
	tampered := bytes.Replace(payload, []byte(`"log_default_scale": 40`), []byte(`"log_default_scale": 41`), 1)
	require.NotEqual(t, payload, tampered)
	var buf bytes.Buffer
	require.NoError(t, WriteEnvelope(&buf, FileParameters, p.Fingerprint(), p.Name(), tampered))
	_, err = DecodeParameters(buf.Bytes())
	require.True(t, errors.Is(err, ErrFingerprintMismatch), "%v", err)
	// Unknown JSON field.
	buf.Reset()
	bad := bytes.Replace(payload, []byte(`"format"`), []byte(`"extra": 1, "format"`), 1)
	require.NoError(t, WriteEnvelope(&buf, FileParameters, p.Fingerprint(), p.Name(), bad))
	_, err = DecodeParameters(buf.Bytes())
	require.True(t, errors.Is(err, ErrMalformed), "%v", err)
	// An insecure set with the insecure mark removed is refused on load.
	buf.Reset()
	bad = bytes.Replace(payload, []byte(`"insecure_for_testing": true`), []byte(`"insecure_for_testing": false`), 1)
	require.NoError(t, WriteEnvelope(&buf, FileParameters, p.Fingerprint(), p.Name(), bad))
	_, err = DecodeParameters(buf.Bytes())
	require.ErrorContains(t, err, "below 128-bit security")
}

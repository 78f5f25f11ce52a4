package he

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils"
)

func TestRequireSecurePresets(t *testing.T) {
	for _, pr := range Presets() {
		p, err := NewParameters(pr)
		require.NoError(t, err, pr.Name)
		rep, err := RequireSecure(p, false)
		if pr.InsecureForTesting {
			require.ErrorIs(t, err, ErrInsecureParameters, pr.Name)
			require.NotContains(t, err.Error(), "\n")
			require.Contains(t, err.Error(), "128")
			require.Contains(t, err.Error(), pr.Name)
			require.False(t, rep.OK())
			_, err = RequireSecure(p, true)
			require.NoError(t, err, "allowInsecure accepts %s", pr.Name)
			continue
		}
		require.NoError(t, err, pr.Name)
		require.True(t, rep.OK())
	}
	_, err := RequireSecure(nil, true)
	require.Error(t, err)
}

// TestRequireSecureIgnoresNamesAndMarks: the policy looks at the parameters,
// not at the name they carry or at the file's insecure mark.
func TestRequireSecureIgnoresNamesAndMarks(t *testing.T) {
	test, err := LookupPreset(PresetTestN13)
	require.NoError(t, err)
	spoof := test
	spoof.Name = PresetN15 // test parameters under a secure preset's name
	p, err := NewParameters(spoof)
	require.NoError(t, err)
	_, err = RequireSecure(p, false)
	require.ErrorIs(t, err, ErrInsecureParameters)
	require.Contains(t, err.Error(), `"n15"`)
	require.Contains(t, err.Error(), "logN=13")
	require.Contains(t, err.Error(), "estimated 32 bits")

	// The same parameters as untrusted JSON, whatever the insecure mark says.
	js, err := MarshalParametersJSON(p)
	require.NoError(t, err)
	for _, mark := range []bool{false, true} {
		var m map[string]any
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber() // keep the 61-bit primes exact
		require.NoError(t, dec.Decode(&m))
		m["insecure_for_testing"] = mark
		b, err := json.Marshal(m)
		require.NoError(t, err)
		q, err := DecodeParametersJSON(b)
		require.NoError(t, err)
		require.Equal(t, p.Fingerprint(), q.Fingerprint())
		require.True(t, q.Insecure(), "Insecure reports the computed security")
		_, err = RequireSecure(q, false)
		require.ErrorIs(t, err, ErrInsecureParameters, "mark %v", mark)
	}
	// A parameters file is refused at read time without the mark (as before).
	var buf bytes.Buffer
	np, err := NewParameters(Preset{Name: "x", Literal: test.Literal, InsecureForTesting: true})
	require.NoError(t, err)
	require.NoError(t, WriteParameters(&buf, np))
	_, err = DecodeParameters(buf.Bytes())
	require.NoError(t, err, "marked file")

	_, err = DecodeParametersJSON(bytes.Repeat([]byte(" "), MaxParametersJSON+1))
	require.ErrorIs(t, err, ErrTooLarge)
}

// TestRequireSecureDistributions: a narrow error, a narrow Gaussian secret,
// a too-sparse secret or a weak ephemeral bootstrapping secret are refused
// even when log QP is within the bound.
func TestRequireSecureDistributions(t *testing.T) {
	base, err := LookupPreset(PresetN14)
	require.NoError(t, err)
	cases := map[string]func(pr *Preset){
		"error sigma":                func(pr *Preset) { pr.Literal.Xe = ring.DiscreteGaussian{Sigma: 1, Bound: 6} },
		"error bound":                func(pr *Preset) { pr.Literal.Xe = ring.DiscreteGaussian{Sigma: 3.2, Bound: 4} },
		"error distribution ternary": func(pr *Preset) { pr.Literal.Xe = ring.Ternary{P: 0.5} },
		"Gaussian secret":            func(pr *Preset) { pr.Literal.Xs = ring.DiscreteGaussian{Sigma: 0.5, Bound: 3} },
		"Hamming weight 64":          func(pr *Preset) { pr.Literal.Xs = ring.Ternary{H: 64} },
	}
	for want, mod := range cases {
		pr := base
		pr.Name, pr.InsecureForTesting = "n14-variant", true
		mod(&pr)
		p, err := NewParameters(pr)
		require.NoError(t, err, want)
		_, err = RequireSecure(p, false)
		require.ErrorIs(t, err, ErrInsecureParameters, want)
		require.Contains(t, strings.ToLower(err.Error()), strings.ToLower(want))
	}
	ok := base
	ok.Literal.Xe = ring.DiscreteGaussian{Sigma: 3.2, Bound: 19.2}
	p, err := NewParameters(ok)
	require.NoError(t, err)
	_, err = RequireSecure(p, false)
	require.NoError(t, err)

	boot, err := LookupPreset(PresetN16Boot)
	require.NoError(t, err)
	boot.InsecureForTesting = true
	b := *boot.Bootstrapping
	b.EphemeralSecretWeight = utils.Pointy(4)
	boot.Bootstrapping = &b
	p, err = NewParameters(boot)
	require.NoError(t, err)
	_, err = RequireSecure(p, false)
	require.ErrorIs(t, err, ErrInsecureParameters)
	require.Contains(t, err.Error(), "ephemeral")
	require.Contains(t, err.Error(), "bootstrapping circuit")
}

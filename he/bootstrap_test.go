package he

import (
	"bytes"
	"math"
	"math/big"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// secretRecoveryAttack runs the attack of reference §0.1 on RNS limb `limb`
// of the first component of the dense-to-sparse key: if the key's output
// secret is zero on that limb, b = e + P·s mod q with small e, so trying
// s ∈ {-1,0,1} per coefficient and keeping the candidate that minimizes
// |b − P·s| (centered mod q) recovers s. It returns the number of
// coefficients equal to the true secret (sk, same limb, coefficient domain)
// and the median residual |b − P·ŝ|.
func secretRecoveryAttack(t *testing.T, rp rlwe.Parameters, evk *rlwe.EvaluationKey, sk *rlwe.SecretKey, limb int) (recovered int, medianResidual float64) {
	t.Helper()
	require.LessOrEqual(t, limb, evk.LevelQ(), "key has no limb %d", limb)
	levelQ, levelP := evk.LevelQ(), evk.LevelP()
	digit := limb / (levelP + 1)
	ringQ := rp.RingQ().AtLevel(levelQ)

	b := ringQ.NewPoly()
	b.Copy(evk.Value[digit][0][0].Q)
	ringQ.IMForm(b, b)
	ringQ.INTT(b, b)

	s := ringQ.NewPoly()
	s.Copy(sk.Value.Q)
	ringQ.IMForm(s, s)
	ringQ.INTT(s, s)

	q := rp.Q()[limb]
	bigP := big.NewInt(1)
	for _, pi := range rp.P()[:levelP+1] {
		bigP.Mul(bigP, new(big.Int).SetUint64(pi))
	}
	pModQ := new(big.Int).Mod(bigP, new(big.Int).SetUint64(q)).Uint64()
	center := func(x uint64) int64 {
		if x > q/2 {
			return -int64(q - x)
		}
		return int64(x)
	}
	residuals := make([]float64, rp.N())
	for j := 0; j < rp.N(); j++ {
		bj := b.Coeffs[limb][j]
		best, bestAbs := int64(0), uint64(math.MaxUint64)
		for _, cand := range []int64{-1, 0, 1} {
			ps := pModQ
			switch cand {
			case 0:
				ps = 0
			case -1:
				ps = q - pModQ
			}
			r := center((bj + q - ps) % q)
			if r < 0 {
				r = -r
			}
			if uint64(r) < bestAbs {
				best, bestAbs = cand, uint64(r)
			}
		}
		residuals[j] = float64(bestAbs)
		if best == center(s.Coeffs[limb][j]) {
			recovered++
		}
	}
	sort.Float64s(residuals)
	return recovered, residuals[len(residuals)/2]
}

func TestBootstrapKeysDoNotLeakSecret(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestBootN13)
	require.NoError(t, err)
	sk, _, err := GenerateKeys(p, KeySpec{})
	require.NoError(t, err)

	start := time.Now()
	raw, skN2, err := generateBootstrappingKeysUnfixed(p, sk)
	require.NoError(t, err)
	t.Logf("raw bootstrapping keygen: %v", time.Since(start))
	bp := p.BootstrappingParameters().BootstrappingParameters.Parameters.Parameters
	n := bp.N()

	// The library's raw key: the attack on q_1 recovers the secret.
	require.Greater(t, raw.EvkDenseToSparse.LevelQ(), 0)
	rec, res := secretRecoveryAttack(t, bp, raw.EvkDenseToSparse, skN2, 1)
	t.Logf("raw EvkDenseToSparse: recovered %d/%d coefficients, median residual %.3g", rec, n, res)
	require.GreaterOrEqual(t, rec, n*99/100, "attack must work on the library's raw key, else this test proves nothing")
	require.Error(t, CheckBootstrappingKeysSafe(raw), "raw keys must be flagged as leaky")

	// The fix, as GenerateBootstrappingKeys applies it.
	require.NoError(t, regenerateEncapsulationKeys(p.BootstrappingParameters(), raw, skN2))
	require.NoError(t, CheckBootstrappingKeysSafe(raw))
	fixed := raw.EvkDenseToSparse
	require.Equal(t, 0, fixed.LevelQ(), "fixed key must have no limb beyond q_0")
	require.Equal(t, 0, fixed.LevelP())
	// The only limb left is q_0, where the sparse secret is present: the
	// same attack is at chance level (1/3 for a dense ternary secret).
	rec, res = secretRecoveryAttack(t, bp, fixed, skN2, 0)
	t.Logf("fixed EvkDenseToSparse (limb q_0): recovered %d/%d coefficients, median residual %.3g", rec, n, res)
	require.Less(t, rec, n*40/100, "fixed key must not reveal the secret")
	require.Greater(t, res, 1e6, "residual must look uniform mod q_0")
}

// TestBootstrapRoundTrip generates keys with GenerateKeys (fix applied
// inside), serializes and reloads them component by component, bootstraps a
// level-0 ciphertext with the reloaded keys, also on a ShallowCopy in a
// second goroutine, and checks the level and the precision.
//
// Measured on the 2-core dev machine (shared with other jobs) with
// `/usr/bin/time -v go test -run 'TestBootstrap' -count=1 -v ./he`:
// this test 14.2 s (keygen 2.8 s, evaluation keys 463 MB, bootstrapper
// setup 3.0 s, one bootstrap 1.2 s, max abs error 1.2e-7), the leak test
// 2.4 s; 21.9 s wall for both including compilation; peak RSS 2.69 GB.
// With the bootstrapping keys seeded at their levels (2026-12-07, load
// average about 18): keygen 3.1 s, evaluation keys 141 MB, max abs error
// 1.4e-7.
// With -short the ShallowCopy part (two more bootstraps) is skipped.
func TestBootstrapRoundTrip(t *testing.T) {
	p, err := ParametersFromPreset(PresetTestBootN13)
	require.NoError(t, err)
	start := time.Now()
	sk, evk, err := GenerateKeys(p, KeySpec{Relinearization: true, Bootstrapping: true})
	require.NoError(t, err)
	t.Logf("keygen: %v, evaluation keys %d bytes", time.Since(start), evk.SizeBytes())
	require.NoError(t, CheckBootstrappingKeysSafe(evk.BootstrappingKeys()))
	// The attack on the key GenerateKeys produced: level 0 only, chance level.
	bp := p.BootstrappingParameters().BootstrappingParameters.Parameters.Parameters
	d2s := evk.BootstrappingKeys().EvkDenseToSparse
	require.Equal(t, 0, d2s.LevelQ())
	rec, _ := secretRecoveryAttack(t, bp, d2s, sk.Lattigo(), 0)
	require.Less(t, rec, bp.N()*40/100, "keys from GenerateKeys must not reveal the secret")

	var buf bytes.Buffer
	require.NoError(t, WriteEvaluationKeys(&buf, evk))
	require.Equal(t, int(evk.SizeBytes())+53+len(p.Name())+32, buf.Len())
	evk2, err := ReadEvaluationKeys(&buf, p)
	require.NoError(t, err)
	require.True(t, evk.BootstrappingKeys().EvkDenseToSparse.Equal(evk2.BootstrappingKeys().EvkDenseToSparse))
	require.True(t, evk.BootstrappingKeys().EvkSparseToDense.Equal(evk2.BootstrappingKeys().EvkSparseToDense))

	start = time.Now()
	btp, err := NewBootstrapper(p, evk2)
	require.NoError(t, err)
	t.Logf("bootstrapper setup: %v", time.Since(start))
	require.Equal(t, p.MaxLevel(), btp.OutputLevel())

	client, err := NewClient(p, sk)
	require.NoError(t, err)
	rng := rand.New(rand.NewSource(1))
	values := make([]float64, p.Slots())
	for i := range values {
		values[i] = 2*rng.Float64() - 1
	}
	ct, err := client.EncryptReal(values, 0)
	require.NoError(t, err)
	require.Equal(t, 0, ct.Level())

	check := func(out *rlwe.Ciphertext) float64 {
		require.Equal(t, p.MaxLevel(), out.Level())
		require.True(t, out.Scale.Equal(p.HE().DefaultScale()))
		got, err := client.DecryptReal(out)
		require.NoError(t, err)
		maxErr := 0.0
		for i := range values {
			maxErr = math.Max(maxErr, math.Abs(got[i]-values[i]))
		}
		return maxErr
	}

	start = time.Now()
	out, err := btp.Bootstrap(ct.CopyNew())
	require.NoError(t, err)
	t.Logf("bootstrap: %v", time.Since(start))
	e1 := check(out)
	t.Logf("max abs error after bootstrap: %.3g (log2 %.1f)", e1, math.Log2(e1))
	// Measured 1.2e-7 (2^-23); 2^-18 leaves a 32x margin for the random
	// draw while failing on any real breakage (a broken bootstrap gives
	// errors of order 1 or more).
	require.Less(t, e1, math.Exp2(-18))

	if testing.Short() {
		return
	}
	// ShallowCopy: two bootstraps at once on independent copies.
	var wg sync.WaitGroup
	outs := make([]*rlwe.Ciphertext, 2)
	errs := make([]error, 2)
	for g := 0; g < 2; g++ {
		wg.Add(1)
		go func(g int, b *Bootstrapper) {
			defer wg.Done()
			outs[g], errs[g] = b.Bootstrap(ct.CopyNew())
		}(g, btp.ShallowCopy())
	}
	wg.Wait()
	for g := 0; g < 2; g++ {
		require.NoError(t, errs[g])
		require.Less(t, check(outs[g]), math.Exp2(-18))
	}
	// Lattigo's own ShallowCopy is broken in v5.0.7; if this starts to pass,
	// the workaround can go.
	_, err = btp.Lattigo().ShallowCopy().Bootstrap(ct.CopyNew())
	require.Error(t, err, "lattigo v5.0.7 bootstrapping ShallowCopy is expected to be broken")
}

type bootstrappingKeysForShapeTest struct{}

func (bootstrappingKeysForShapeTest) keys(bp hefloat.Parameters) *bootstrapping.EvaluationKeys {
	return &bootstrapping.EvaluationKeys{EvkDenseToSparse: rlwe.NewEvaluationKey(bp)}
}

// tinyBootPreset is Lattigo's own fastest bootstrapping test configuration
// (testPrec45 at LogN=10, message ratio raised by 16-LogN): insecure, for
// concurrency tests only.
func tinyBootPreset() Preset {
	return Preset{
		Name:               "tiny-boot10",
		Literal:            hefloat.ParametersLiteral{LogN: 10, LogQ: []int{60, 40}, LogP: []int{61}, LogDefaultScale: 40},
		Bootstrapping:      &bootstrapping.ParametersLiteral{LogN: utils.Pointy(10), LogMessageRatio: utils.Pointy(bootstrapping.DefaultLogMessageRatio + 16 - 10)},
		InsecureForTesting: true,
	}
}

// TestBootstrapperShallowCopyConcurrent runs four bootstraps at once on
// ShallowCopy instances of one Bootstrapper. Also run under the race
// detector: `go test -race -run TestBootstrapperShallowCopyConcurrent ./he`
// (2026-11-29: PASS, no race reported, 10.2 s, 364 MB peak RSS; 0.9 s without -race).
func TestBootstrapperShallowCopyConcurrent(t *testing.T) {
	p, err := NewParameters(tinyBootPreset())
	require.NoError(t, err)
	sk, evk, err := GenerateKeys(p, KeySpec{Bootstrapping: true})
	require.NoError(t, err)
	btp, err := NewBootstrapper(p, evk)
	require.NoError(t, err)
	client, err := NewClient(p, sk)
	require.NoError(t, err)
	const workers = 4
	inputs := make([][]float64, workers)
	cts := make([]*rlwe.Ciphertext, workers)
	for g := range inputs {
		inputs[g] = make([]float64, p.Slots())
		for i := range inputs[g] {
			inputs[g][i] = math.Sin(float64(g*1000 + i))
		}
		cts[g], err = client.EncryptReal(inputs[g], 0)
		require.NoError(t, err)
	}
	outs := make([]*rlwe.Ciphertext, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g int, b *Bootstrapper) {
			defer wg.Done()
			outs[g], errs[g] = b.Bootstrap(cts[g])
		}(g, btp.ShallowCopy())
	}
	wg.Wait()
	for g := 0; g < workers; g++ {
		require.NoError(t, errs[g])
		require.Equal(t, p.MaxLevel(), outs[g].Level())
		got, err := client.DecryptReal(outs[g])
		require.NoError(t, err)
		maxErr := 0.0
		for i := range got {
			maxErr = math.Max(maxErr, math.Abs(got[i]-inputs[g][i]))
		}
		require.Less(t, maxErr, math.Exp2(-15), "worker %d", g)
	}
}

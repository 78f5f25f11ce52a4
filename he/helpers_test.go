package he

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// evalTestCtx holds small, insecure-for-production test parameters and keys
// for the evaluation half of package he.
type evalTestCtx struct {
	p      *Parameters
	params hefloat.Parameters // p.HE()
	kgen   *rlwe.KeyGenerator
	sk     *rlwe.SecretKey
	rlk    *rlwe.RelinearizationKey
	ecd    *hefloat.Encoder
	enc    *rlwe.Encryptor
	dec    *rlwe.Decryptor
}

// evalTestParams returns insecure test parameters with logN and `levels`
// 40-bit levels above a 55-bit base prime, scale 2^40, two 61-bit P primes.
func evalTestParams(t testing.TB, logN, levels int) *Parameters {
	t.Helper()
	logQ := []int{55}
	for i := 0; i < levels; i++ {
		logQ = append(logQ, 40)
	}
	p, err := NewParameters(Preset{
		Name:               fmt.Sprintf("eval-test-n%d-l%d", logN, levels),
		Literal:            hefloat.ParametersLiteral{LogN: logN, LogQ: logQ, LogP: []int{61, 61}, LogDefaultScale: 40},
		InsecureForTesting: true,
	})
	require.NoError(t, err)
	return p
}

func newEvalTestCtx(t testing.TB, logN, levels int) *evalTestCtx {
	t.Helper()
	p := evalTestParams(t, logN, levels)
	params := p.HE()
	kgen := rlwe.NewKeyGenerator(params)
	sk := kgen.GenSecretKeyNew()
	return &evalTestCtx{
		p:      p,
		params: params,
		kgen:   kgen,
		sk:     sk,
		rlk:    kgen.GenRelinearizationKeyNew(sk),
		ecd:    hefloat.NewEncoder(params),
		enc:    rlwe.NewEncryptor(params, sk),
		dec:    rlwe.NewDecryptor(params, sk),
	}
}

// evalTestKeys returns evaluation keys with the relinearization key and
// Galois keys for the given left rotations.
func (c *evalTestCtx) evalTestKeys(rots ...int) *EvaluationKeys {
	var gks []*rlwe.GaloisKey
	if len(rots) > 0 {
		gks = c.kgen.GenGaloisKeysNew(c.params.GaloisElements(rots), c.sk)
	}
	return newEvaluationKeys(c.p, c.rlk, gks, nil)
}

// secretKey returns the context's secret key as a SecretKey.
func (c *evalTestCtx) secretKey() *SecretKey { return &SecretKey{params: c.p, sk: c.sk} }

// evalTestEncrypt encrypts values at level with the default scale.
func (c *evalTestCtx) evalTestEncrypt(t testing.TB, values []float64, level int) *rlwe.Ciphertext {
	t.Helper()
	pt := hefloat.NewPlaintext(c.params, level)
	require.NoError(t, c.ecd.Encode(values, pt))
	ct, err := c.enc.EncryptNew(pt)
	require.NoError(t, err)
	return ct
}

// evalTestDecrypt decrypts ct and returns the real parts of all slots.
func (c *evalTestCtx) evalTestDecrypt(t testing.TB, ct *rlwe.Ciphertext) []float64 {
	t.Helper()
	out := make([]float64, c.params.MaxSlots())
	require.NoError(t, c.ecd.Decode(c.dec.DecryptNew(ct), out))
	return out
}

// evalTestUniform returns n values uniform in [a, b] from a fixed seed.
func evalTestUniform(seed int64, n int, a, b float64) []float64 {
	r := rand.New(rand.NewSource(seed))
	v := make([]float64, n)
	for i := range v {
		v[i] = a + (b-a)*r.Float64()
	}
	return v
}

// evalTestMaxAbsErr returns max_i |got[i] - want[i]| over len(want) entries.
func evalTestMaxAbsErr(got, want []float64) float64 {
	m := 0.0
	for i := range want {
		m = math.Max(m, math.Abs(got[i]-want[i]))
	}
	return m
}

// evalTestRelPrecBits returns -log2(max_i |got-want| / max_i |want|): the
// number of correct bits relative to the largest reference magnitude.
func evalTestRelPrecBits(got, want []float64) float64 {
	maxAbs := 0.0
	for _, w := range want {
		maxAbs = math.Max(maxAbs, math.Abs(w))
	}
	return -math.Log2(evalTestMaxAbsErr(got, want) / maxAbs)
}

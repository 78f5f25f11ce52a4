package he

import (
	"errors"
	"fmt"
	"math"
	"math/rand"
	"sort"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"github.com/polyformer/polyformer/polyapprox"
)

// OpBenchmark is the measured latency of one primitive operation.
type OpBenchmark struct {
	Op            string  `json:"op"`
	MedianSeconds float64 `json:"median_seconds"`
	MinSeconds    float64 `json:"min_seconds"`
	Runs          int     `json:"runs"`
	LevelIn       int     `json:"level_in"`
	// LevelOut is the output level of a bootstrap and its parts (omitted
	// for the other ops).
	LevelOut       int    `json:"level_out,omitempty"`
	KeySwitches    int    `json:"key_switches"`
	LogN           int    `json:"logn"`
	Slots          int    `json:"slots"`
	GaloisKeyBytes int    `json:"galois_key_bytes"`
	RelinKeyBytes  int    `json:"relin_key_bytes"`
	Note           string `json:"note,omitempty"`
}

// BenchmarkOps measures the median single-thread latency of the primitive
// operations of the CKKS runtime for params: encode, encrypt (public key),
// decrypt, add, plaintext multiplication, ct×ct multiplication with
// relinearization, rescale, one rotation, 8 hoisted rotations vs 8 plain
// ones, a degree-63 Chebyshev polynomial (7 levels, change of basis
// included) and a 64×64 BSGS linear transform (rescale included). All
// ciphertext operations start at the top level (level_in) and go through
// the traced Evaluator with tracing disabled, so their times include the
// allocation of the output ciphertext. Every row also carries the
// serialized size of one Galois key and of the relinearization key.
//
// sk is used to generate the evaluation keys (relinearization key and the
// 14 Galois keys the rotations and the transform need: 1..8, 16, 24, ..,
// 56); at logN 16 that is about 2.4 GB of keys. For parameters with
// bootstrapping it also measures one bootstrap and its parts
// (bootstrapBenchmarks; the bootstrapping keys, at their levels, and the
// DFT matrices take about 10 GB at n16-boot). runs >= 1 measured runs are
// taken per op, after one warm-up run when runs >= 3. progress, if not nil,
// is called with a short message before each op. Ops that need more levels
// or slots than params has are reported with Runs 0 and a Note.
func BenchmarkOps(p *Parameters, secret *SecretKey, runs int, progress func(string)) ([]OpBenchmark, error) {
	if p == nil {
		return nil, errors.New("benchmark ops: nil parameters")
	}
	if secret == nil {
		return nil, errors.New("benchmark ops: nil secret key")
	}
	if secret.params.Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("benchmark ops: %w: secret key made for %s, not %s", ErrFingerprintMismatch, secret.params, p)
	}
	if runs < 1 {
		return nil, fmt.Errorf("benchmark ops: runs %d < 1", runs)
	}
	if progress == nil {
		progress = func(string) {}
	}
	params := p.HE()
	top := params.MaxLevel()
	if top < 1 {
		return nil, fmt.Errorf("benchmark ops: parameters have %d levels, need at least 1", top)
	}
	slots := params.MaxSlots()
	sk := secret.sk

	progress("generating keys")
	kgen := rlwe.NewKeyGenerator(params)
	pk := kgen.GenPublicKeyNew(sk)
	rlk := kgen.GenRelinearizationKeyNew(sk)
	rots := []int{1, 2, 3, 4, 5, 6, 7, 8}
	var lt *LinearTransform
	if slots >= 64 {
		m := make([][]float64, 64)
		r := rand.New(rand.NewSource(1))
		for i := range m {
			m[i] = make([]float64, 64)
			for j := range m[i] {
				m[i][j] = 2*r.Float64() - 1
			}
		}
		var err error
		if lt, err = NewDenseTransform(p, m); err != nil {
			return nil, fmt.Errorf("benchmark ops: %w", err)
		}
		rots = append(rots, lt.Rotations()...)
	}
	rots = distinctInts(rots)
	gks := kgen.GenGaloisKeysNew(params.GaloisElements(rots), sk)
	keys := newEvaluationKeys(p, rlk, gks, nil)
	gkBytes := gks[0].BinarySize()
	rlkBytes := rlk.BinarySize()

	ev := NewEvaluator(p, keys, nil)
	ecd := hefloat.NewEncoder(params)
	enc := rlwe.NewEncryptor(params, pk)
	dec := rlwe.NewDecryptor(params, sk)

	r := rand.New(rand.NewSource(2))
	values := make([]float64, slots)
	for i := range values {
		values[i] = 2*r.Float64() - 1
	}
	pt := hefloat.NewPlaintext(params, top)
	if err := ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("benchmark ops: encode: %w", err)
	}
	ct, err := enc.EncryptNew(pt)
	if err != nil {
		return nil, fmt.Errorf("benchmark ops: encrypt: %w", err)
	}
	ptMul, err := ev.EncodeMul(values, top)
	if err != nil {
		return nil, fmt.Errorf("benchmark ops: %w", err)
	}
	prod, err := ev.MulRelin(ct, ct)
	if err != nil {
		return nil, fmt.Errorf("benchmark ops: %w", err)
	}

	var out []OpBenchmark
	measure := func(op string, level, ks int, note string, f func() error) error {
		progress(op)
		n := runs
		if runs >= 3 {
			n++ // warm-up
		}
		times := make([]float64, 0, n)
		for i := 0; i < n; i++ {
			start := time.Now()
			if err := f(); err != nil {
				return fmt.Errorf("benchmark ops: %s: %w", op, err)
			}
			times = append(times, time.Since(start).Seconds())
		}
		if runs >= 3 {
			times = times[1:]
		}
		sort.Float64s(times)
		med := times[len(times)/2]
		if len(times)%2 == 0 {
			med = (times[len(times)/2-1] + times[len(times)/2]) / 2
		}
		out = append(out, OpBenchmark{Op: op, MedianSeconds: med, MinSeconds: times[0], Runs: runs, LevelIn: level, KeySwitches: ks,
			LogN: params.LogN(), Slots: slots, GaloisKeyBytes: gkBytes, RelinKeyBytes: rlkBytes, Note: note})
		return nil
	}
	skip := func(op, note string) {
		out = append(out, OpBenchmark{Op: op, LogN: params.LogN(), Slots: slots, GaloisKeyBytes: gkBytes, RelinKeyBytes: rlkBytes, Note: note})
	}

	steps := []struct {
		op   string
		ks   int
		note string
		f    func() error
	}{
		{"encode", 0, fmt.Sprintf("%d float64 values", slots), func() error { return ecd.Encode(values, hefloat.NewPlaintext(params, top)) }},
		{"encrypt", 0, "public key", func() error { _, err := enc.EncryptNew(pt); return err }},
		{"decrypt", 0, "", func() error { dec.DecryptNew(ct); return nil }},
		{"add", 0, "ct + ct", func() error { _, err := ev.Add(ct, ct); return err }},
		{"mul_plain", 0, "ct × pt, no rescale", func() error { _, err := ev.MulPlain(ct, ptMul); return err }},
		{"mul_relin", 1, "ct × ct + relinearize, no rescale", func() error { _, err := ev.MulRelin(ct, ct); return err }},
		{"rescale", 0, "", func() error { _, err := ev.Rescale(prod); return err }},
		{"rotate", 1, "rotate by 1", func() error { _, err := ev.Rotate(ct, 1); return err }},
		{"rotate_hoisted_8", 8, "rotations 1..8 sharing one decomposition", func() error {
			_, err := ev.RotateHoisted(ct, []int{1, 2, 3, 4, 5, 6, 7, 8})
			return err
		}},
		{"rotate_plain_8", 8, "8 separate rotations 1..8", func() error {
			for k := 1; k <= 8; k++ {
				if _, err := ev.Rotate(ct, k); err != nil {
					return err
				}
			}
			return nil
		}},
	}
	for _, s := range steps {
		if err := measure(s.op, top, s.ks, s.note, s.f); err != nil {
			return nil, err
		}
	}

	cheb, err := polyapprox.Interpolate(func(x float64) float64 { return 1 / math.Sqrt(x) }, polyapprox.Interval{A: 0.1, B: 10}, 63)
	if err != nil {
		return nil, fmt.Errorf("benchmark ops: %w", err)
	}
	if top < cheb.Depth() {
		skip("chebyshev_63", fmt.Sprintf("needs %d levels, parameters have %d", cheb.Depth(), top))
	} else {
		// Input inside [0.1, 10] (4.9x + 5.05 for x in [-1, 1]) when a level is
		// left for that; otherwise the top-level ciphertext as is (same timing,
		// values outside the interval).
		ctPoly := ct
		if top-1 >= cheb.Depth() {
			scaled, err := ev.MulConst(ct, 4.9)
			if err == nil {
				scaled, err = ev.AddConst(scaled, 5.05)
			}
			if err == nil {
				ctPoly, err = ev.Rescale(scaled)
			}
			if err != nil {
				return nil, fmt.Errorf("benchmark ops: %w", err)
			}
		}
		var ks int
		if err := measure("chebyshev_63", ctPoly.Level(), 0, "1/sqrt on [0.1,10], change of basis included", func() error {
			tr := NewTrace()
			_, err := ev.withTrace(tr).Polynomial(ctPoly, cheb)
			if rec := tr.Records(); len(rec) == 1 {
				ks = rec[0].KeySwitches
			}
			return err
		}); err != nil {
			return nil, err
		}
		out[len(out)-1].KeySwitches = ks
	}

	if lt == nil {
		skip("linear_transform_64", fmt.Sprintf("needs 64 slots, parameters have %d", slots))
	} else {
		progress("encoding 64×64 linear transform")
		encLT, err := ev.EncodeLinearTransform(lt, top)
		if err != nil {
			return nil, fmt.Errorf("benchmark ops: %w", err)
		}
		note := fmt.Sprintf("64×64 dense, BSGS, %d rotation keys, rescale included", len(lt.Rotations()))
		if err := measure("linear_transform_64", top, lt.KeySwitches(), note, func() error {
			_, err := ev.LinearTransform(ct, encLT)
			return err
		}); err != nil {
			return nil, err
		}
	}
	if p.HasBootstrapping() {
		err := bootstrapBenchmarks(p, secret, progress, func(op string, levelIn, levelOut int, note string, f func() error) error {
			if err := measure(op, levelIn, 0, note, f); err != nil {
				return err
			}
			out[len(out)-1].LevelOut = levelOut
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("benchmark ops: bootstrap: %w", err)
		}
	}
	return out, nil
}

// withTrace returns a view (sharing buffers, like WithLabel) recording into tr.
func (e *Evaluator) withTrace(tr *Trace) *Evaluator {
	c := *e
	c.trace = tr
	return &c
}

func distinctInts(v []int) []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range v {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Ints(out)
	return out
}

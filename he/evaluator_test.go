package he

import (
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
)

func TestEvaluatorArithmeticAndTrace(t *testing.T) {
	c := newEvalTestCtx(t, 12, 4)
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(1, 3, 5), tr).WithLabel("arith")
	slots := c.params.MaxSlots()
	x := evalTestUniform(1, slots, -1, 1)
	y := evalTestUniform(2, slots, -1, 1)
	top := c.params.MaxLevel()
	cx := c.evalTestEncrypt(t, x, top)
	cy := c.evalTestEncrypt(t, y, top)

	// x*y + rescale
	p, err := ev.MulRelin(cx, cy)
	require.NoError(t, err)
	p, err = ev.Rescale(p)
	require.NoError(t, err)
	require.Equal(t, top-1, p.Level())
	want := make([]float64, slots)
	for i := range want {
		want[i] = x[i] * y[i]
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, p), want), 1e-7)

	// integer constant: must still be encoded at Q[level] so Rescale restores the scale
	m2, err := ev.MulConst(cx, 2)
	require.NoError(t, err)
	m2, err = ev.Rescale(m2)
	require.NoError(t, err)
	require.Equal(t, 0, m2.Scale.Cmp(cx.Scale), "scale after MulConst(2)+Rescale must equal the input scale exactly")
	for i := range want {
		want[i] = 2 * x[i]
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, m2), want), 1e-7)

	// plaintext multiplicand encoded at Q[level]
	w := evalTestUniform(3, slots, -2, 2)
	pt, err := ev.EncodeMul(w, top)
	require.NoError(t, err)
	mp, err := ev.MulPlain(cx, pt)
	require.NoError(t, err)
	mp, err = ev.Rescale(mp)
	require.NoError(t, err)
	require.Equal(t, 0, mp.Scale.Cmp(cx.Scale))
	for i := range want {
		want[i] = w[i] * x[i]
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, mp), want), 1e-7)

	// add/sub with constants and plaintexts
	ac, err := ev.AddConst(cx, 0.25)
	require.NoError(t, err)
	sc, err := ev.SubConst(ac, 1)
	require.NoError(t, err)
	pa, err := ev.EncodeAdd(y, sc)
	require.NoError(t, err)
	sp, err := ev.SubPlain(sc, pa)
	require.NoError(t, err)
	for i := range want {
		want[i] = x[i] + 0.25 - 1 - y[i]
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, sp), want), 1e-7)

	// rotation and hoisted rotations
	r, err := ev.Rotate(cx, 3)
	require.NoError(t, err)
	for i := range want {
		want[i] = x[(i+3)%slots]
	}
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, r), want), 1e-7)
	hr, err := ev.RotateHoisted(cx, []int{1, 3, 5, 0})
	require.NoError(t, err)
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, hr[0]), x), 1e-7, "rotation 0 is a copy")
	for _, k := range []int{1, 3, 5} {
		for i := range want {
			want[i] = x[(i+k)%slots]
		}
		require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, hr[k]), want), 1e-7, "rotation %d", k)
	}

	recs := tr.Records()
	kinds := map[OpKind]OpRecord{}
	for _, rec := range recs {
		require.Equal(t, "arith", rec.Label)
		kinds[rec.Kind] = rec
	}
	require.Equal(t, 1, kinds[OpMulRelin].KeySwitches)
	require.Equal(t, top, kinds[OpMulRelin].LevelIn)
	require.Equal(t, 1, kinds[OpRotate].KeySwitches)
	require.Equal(t, 3, kinds[OpRotateHoisted].KeySwitches)
	require.True(t, kinds[OpRotateHoisted].Hoisted)
	require.Equal(t, 0, kinds[OpAddConst].KeySwitches)
	rs := kinds[OpRescale]
	require.Equal(t, rs.LevelIn-1, rs.LevelOut)
	require.InDelta(t, 80, recs[0].LogScaleOut, 0.01) // MulRelin output scale 2^80
	require.InDelta(t, 40, rs.LogScaleOut, 0.01)
	tot := tr.Total()
	require.Equal(t, len(recs), tot.Count)
	require.Equal(t, 1+1+3, tot.KeySwitches)
}

func TestEvaluatorUpFrontErrors(t *testing.T) {
	c := newEvalTestCtx(t, 12, 2)
	x := evalTestUniform(4, 16, -1, 1)
	ct0 := c.evalTestEncrypt(t, x, 0)
	ct := c.evalTestEncrypt(t, x, c.params.MaxLevel())

	for _, noKeys := range []*Evaluator{NewEvaluator(c.p, nil, nil), NewEvaluator(c.p, newEvaluationKeys(c.p, nil, nil, nil), nil)} {
		_, err := noKeys.MulRelin(ct, ct)
		require.ErrorContains(t, err, "relinearization key")
		_, err = noKeys.Rotate(ct, 1)
		require.ErrorContains(t, err, "Galois key for rotation 1")
	}
	_, err := NewEvaluator(c.p, newEvaluationKeys(c.p, nil, nil, nil), nil).MulRelin(ct, ct)
	require.ErrorContains(t, err, "relinearization key missing")

	ev := NewEvaluator(c.p, c.evalTestKeys(1), nil)
	_, err = ev.Rotate(ct, 2)
	require.ErrorContains(t, err, "Galois key for rotation 2")
	_, err = ev.RotateHoisted(ct, []int{1, 2})
	require.ErrorContains(t, err, "Galois key for rotation 2")

	_, err = ev.Rescale(ct0)
	var le *LevelError
	require.True(t, errors.As(err, &le))
	require.Equal(t, 1, le.Needed)
	require.Equal(t, 0, le.Left)
	require.ErrorContains(t, err, "needs 1 levels, ciphertext has 0 left")

	_, err = ev.Bootstrap(ct)
	require.ErrorIs(t, err, ErrNoBootstrapper)

	_, err = ev.MulRelin(nil, ct)
	require.Error(t, err)
	_, err = ev.DropLevel(ct, 5)
	require.Error(t, err)
	_, err = ev.MulConst(ct, math.NaN())
	require.Error(t, err)
}

func TestEvaluatorAlignForAdd(t *testing.T) {
	c := newEvalTestCtx(t, 12, 4)
	ev := NewEvaluator(c.p, c.evalTestKeys(), NewTrace())
	slots := c.params.MaxSlots()
	x := evalTestUniform(5, slots, -1, 1)
	y := evalTestUniform(6, slots, -1, 1)
	top := c.params.MaxLevel()
	cx := c.evalTestEncrypt(t, x, top)
	cy := c.evalTestEncrypt(t, y, top)

	// Residual connection: r = x*y (rescaled, drifted scale 2^80/q) + x (one level higher, scale 2^40).
	p, err := ev.MulRelinRescale(cx, cy)
	require.NoError(t, err)
	require.Greater(t, relScaleDiff(p.Scale, cx.Scale), DefaultScaleTolerance, "test needs a drifted scale")
	sum, err := ev.Add(p, cx)
	require.NoError(t, err)
	require.Equal(t, p.Level(), sum.Level())
	want := make([]float64, slots)
	for i := range want {
		want[i] = x[i]*y[i] + x[i]
	}
	errAligned := evalTestMaxAbsErr(c.evalTestDecrypt(t, sum), want)
	require.Less(t, errAligned, 1e-7)

	// Same level, drifted scales: refuse instead of losing precision silently.
	cxLow, err := ev.DropLevel(cx, 1)
	require.NoError(t, err)
	_, err = ev.Add(p, cxLow)
	require.ErrorContains(t, err, "tolerance")

	// What the refusal prevents: Lattigo's raw addition of the same operands.
	raw, err := ev.Lattigo().AddNew(p, cxLow)
	require.NoError(t, err)
	errRaw := evalTestMaxAbsErr(c.evalTestDecrypt(t, raw), want)
	require.Greater(t, errRaw, 10*errAligned, "raw add should be visibly worse (raw %g, aligned %g)", errRaw, errAligned)

	// MatchScale fixes it at the cost of one level.
	fixed, err := ev.MatchScale(p, cxLow.Scale)
	require.NoError(t, err)
	require.Equal(t, p.Level()-1, fixed.Level())
	sum2, err := ev.Add(fixed, cxLow)
	require.NoError(t, err)
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, sum2), want), 1e-7)

	// Near-integer scale ratio at the same level (unrescaled product + fresh ciphertext at Q-scale):
	q, err := ev.MulRelin(cx, cy) // scale 2^80
	require.NoError(t, err)
	sum3, err := ev.Add(q, cx) // ratio 2^40 is an exact integer
	require.NoError(t, err)
	sum3, err = ev.Rescale(sum3)
	require.NoError(t, err)
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, sum3), want), 1e-7)

	// Plaintext addend at the wrong scale is refused.
	ptBad, err := ev.EncodeMul(y, p.Level())
	require.NoError(t, err)
	_, err = ev.AddPlain(p, ptBad)
	require.ErrorContains(t, err, "EncodeAdd")
}

func TestEvaluatorBootstrapRecorded(t *testing.T) {
	c := newEvalTestCtx(t, 12, 3)
	tr := NewTrace()
	btp := bootstrapping.NewSecretKeyBootstrapper(c.params, c.sk) // insecure test stand-in
	ev := NewEvaluator(c.p, c.evalTestKeys(), tr).WithBootstrapper(btp).WithLabel("btp")
	x := evalTestUniform(7, c.params.MaxSlots(), -1, 1)
	ct := c.evalTestEncrypt(t, x, 0)
	out, err := ev.Bootstrap(ct)
	require.NoError(t, err)
	require.Equal(t, 0, ct.Level(), "input must be left unchanged")
	require.Equal(t, c.params.MaxLevel(), out.Level())
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, out), x), 1e-6)
	recs := tr.Records()
	require.Len(t, recs, 1)
	require.Equal(t, OpBootstrap, recs[0].Kind)
	require.Equal(t, -c.params.MaxLevel(), recs[0].LevelsConsumed())
}

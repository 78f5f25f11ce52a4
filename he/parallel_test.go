package he

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/polyformer/polyformer/polyapprox"
)

func TestParallelBitIdenticalToSequential(t *testing.T) {
	c := newEvalTestCtx(t, 12, 6)
	params := c.params
	lt, err := NewDenseTransform(c.p, evalTestMatrix(7, 16, 16))
	require.NoError(t, err)
	rots := append(lt.Rotations(), 1, 2)
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(rots...), tr)
	enc, err := ev.EncodeLinearTransform(lt, params.MaxLevel()-1) // shared, read-only across goroutines
	require.NoError(t, err)
	poly, err := polyapprox.Interpolate(func(x float64) float64 { return x / (1 + x*x) }, polyapprox.Interval{A: -3, B: 3}, 7)
	require.NoError(t, err)

	const n = 6
	inputs := make([]*rlwe.Ciphertext, n)
	for i := range inputs {
		inputs[i] = c.evalTestEncrypt(t, evalTestUniform(int64(100+i), params.MaxSlots(), -1, 1), params.MaxLevel())
	}
	job := func(ev *Evaluator, ct *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
		sq, err := ev.WithLabel("square").MulRelinRescale(ct, ct)
		if err != nil {
			return nil, err
		}
		r, err := ev.RotateHoisted(sq, []int{1, 2})
		if err != nil {
			return nil, err
		}
		s, err := ev.Add(r[1], r[2])
		if err != nil {
			return nil, err
		}
		s, err = ev.Add(s, ct) // residual across levels
		if err != nil {
			return nil, err
		}
		y, err := ev.WithLabel("lt").LinearTransform(s, enc)
		if err != nil {
			return nil, err
		}
		return ev.Polynomial(y, poly)
	}

	seq := make([]*rlwe.Ciphertext, n)
	for i, ct := range inputs {
		seq[i], err = job(ev, ct)
		require.NoError(t, err)
	}
	nSeq := tr.Len()

	par, err := ev.MapParallel(2, inputs, job)
	require.NoError(t, err)
	require.Len(t, par, n)
	for i := range seq {
		require.Equal(t, seq[i].Level(), par[i].Level())
		require.Equal(t, 0, seq[i].Scale.Cmp(par[i].Scale))
		require.True(t, seq[i].Value[0].Equal(&par[i].Value[0]) && seq[i].Value[1].Equal(&par[i].Value[1]),
			"ciphertext %d differs between sequential and parallel evaluation", i)
	}
	recs := tr.Records()
	require.Len(t, recs, 2*nSeq)
	workers := map[int]bool{}
	for _, r := range recs[nSeq:] {
		workers[r.Worker] = true
	}
	require.True(t, workers[1] && workers[2] && !workers[0], "parallel records carry worker ids 1..2: %v", workers)

	// errors from jobs are reported, and every job runs
	ran := make([]bool, 4)
	boom := errors.New("boom")
	err = ev.RunParallel(3, []Job{
		func(_ *Evaluator, i int) error { ran[i] = true; return nil },
		func(_ *Evaluator, i int) error { ran[i] = true; return boom },
		func(_ *Evaluator, i int) error { ran[i] = true; return nil },
		func(_ *Evaluator, i int) error { ran[i] = true; return nil },
	})
	require.ErrorIs(t, err, boom)
	require.ErrorContains(t, err, "job 1")
	require.Equal(t, []bool{true, true, true, true}, ran)
}

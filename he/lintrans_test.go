package he

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

func evalTestMatrix(seed int64, rows, cols int) [][]float64 {
	v := evalTestUniform(seed, rows*cols, -1, 1)
	m := make([][]float64, rows)
	for i := range m {
		m[i] = v[i*cols : (i+1)*cols]
	}
	return m
}

func evalTestMatVec(m [][]float64, x []float64) []float64 {
	y := make([]float64, len(m))
	for i, r := range m {
		for j, v := range r {
			y[i] += v * x[j]
		}
	}
	return y
}

// Max abs error bound for matrix-vector products with entries in [-1, 1] and
// d <= 64 at logN 12, scale 2^40.
const evalTestLTMaxErr = 1e-6

func TestDenseTransformMatchesPlaintext(t *testing.T) {
	c := newEvalTestCtx(t, 12, 3)
	params := c.params
	slots := params.MaxSlots()
	cases := []struct{ rows, cols int }{{64, 64}, {10, 24}, {32, 5}}
	for _, tc := range cases {
		m := evalTestMatrix(int64(tc.rows*100+tc.cols), tc.rows, tc.cols)
		lt, err := NewDenseTransform(c.p, m)
		require.NoError(t, err)
		d := lt.BlockSize()
		// the rotation set is exactly what Lattigo's own planner asks for
		level := params.MaxLevel()
		lattigoGal := hefloat.GaloisElementsForLinearTransformation(params, hefloat.LinearTransformationParameters{
			DiagonalsIndexList: lt.Diagonals(), Level: level, LogDimensions: params.LogMaxDimensions(), LogBabyStepGianStepRatio: DefaultLogBSGSRatio,
		})
		ours := lt.GaloisElements(c.p)
		sortU := func(v []uint64) []uint64 {
			v = append([]uint64(nil), v...)
			sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
			return v
		}
		// Lattigo's list may include the identity element for rotation 0; ours lists only non-zero rotations.
		var lg []uint64
		for _, g := range lattigoGal {
			if g != params.GaloisElement(0) {
				lg = append(lg, g)
			}
		}
		require.Equal(t, sortU(lg), sortU(ours))

		tr := NewTrace()
		ev := NewEvaluator(c.p, c.evalTestKeys(lt.Rotations()...), tr)
		enc, err := ev.EncodeLinearTransform(lt, level)
		require.NoError(t, err)
		x := evalTestUniform(int64(tc.cols), tc.cols, -1, 1)
		packed, err := PackReplicated(x, d, slots)
		require.NoError(t, err)
		ct := c.evalTestEncrypt(t, packed, level)
		out, err := ev.LinearTransform(ct, enc)
		require.NoError(t, err)
		require.Equal(t, level-1, out.Level())
		require.Equal(t, 0, out.Scale.Cmp(ct.Scale))
		y := evalTestMatVec(m, x)
		want, err := PackReplicated(y, d, slots)
		require.NoError(t, err)
		e := evalTestMaxAbsErr(c.evalTestDecrypt(t, out), want)
		t.Logf("dense %dx%d (d=%d): %d diagonals, %d rotations (%d key switches), max abs err %.3g", tc.rows, tc.cols, d, len(lt.Diagonals()), len(lt.Rotations()), lt.KeySwitches(), e)
		require.Less(t, e, evalTestLTMaxErr)
		rec := tr.Records()[0]
		require.Equal(t, OpLinearTransform, rec.Kind)
		require.Equal(t, lt.KeySwitches(), rec.KeySwitches)
		require.Equal(t, 1, rec.LevelsConsumed())
	}
}

func TestBlockDiagonalTransformMatchesPlaintext(t *testing.T) {
	c := newEvalTestCtx(t, 12, 3)
	params := c.params
	slots := params.MaxSlots()
	nb, rows, cols := 16, 12, 16 // e.g. 16 tokens, a 16 -> 12 linear layer, different weights per block
	blocks := make([][][]float64, nb)
	xs := make([][]float64, nb)
	for b := range blocks {
		blocks[b] = evalTestMatrix(int64(1000+b), rows, cols)
		xs[b] = evalTestUniform(int64(2000+b), cols, -1, 1)
	}
	lt, err := NewBlockDiagonalTransform(c.p, blocks)
	require.NoError(t, err)
	d := lt.BlockSize()
	require.Equal(t, 16, d)
	ev := NewEvaluator(c.p, c.evalTestKeys(lt.Rotations()...), nil)
	level := params.MaxLevel() - 1 // encode at the level where it is applied
	enc, err := ev.EncodeLinearTransform(lt, level)
	require.NoError(t, err)
	packed, err := PackBlocks(xs, d, slots)
	require.NoError(t, err)
	ct := c.evalTestEncrypt(t, packed, params.MaxLevel()) // one level above: dropped automatically
	out, err := ev.LinearTransform(ct, enc)
	require.NoError(t, err)
	require.Equal(t, level-1, out.Level())
	ys := make([][]float64, nb)
	for b := range ys {
		ys[b] = evalTestMatVec(blocks[b], xs[b])
	}
	want, err := PackBlocks(ys, d, slots)
	require.NoError(t, err)
	e := evalTestMaxAbsErr(c.evalTestDecrypt(t, out), want)
	t.Logf("block-diagonal %d blocks of %dx%d: %d diagonals, %d key switches, max abs err %.3g", nb, rows, cols, len(lt.Diagonals()), lt.KeySwitches(), e)
	require.Less(t, e, evalTestLTMaxErr)

	// A ciphertext below the encoding level is an error, not a panic.
	low := c.evalTestEncrypt(t, packed, level-1)
	_, err = ev.LinearTransform(low, enc)
	require.ErrorContains(t, err, "encoded for level")
	// Missing rotation keys are reported up front.
	noRot := NewEvaluator(c.p, c.evalTestKeys(), nil)
	_, err = noRot.LinearTransform(ct, enc)
	require.ErrorContains(t, err, "Galois key")
}

func TestRepeatedBlockTransform(t *testing.T) {
	c := newEvalTestCtx(t, 12, 2)
	params := c.params
	slots := params.MaxSlots()
	w := evalTestMatrix(77, 8, 8)
	nb := slots / 8 // fills every slot: wrap-around rotations must stay inside blocks
	lt, err := NewRepeatedBlockTransform(c.p, w, nb)
	require.NoError(t, err)
	ev := NewEvaluator(c.p, c.evalTestKeys(lt.Rotations()...), nil)
	enc, err := ev.EncodeLinearTransform(lt, params.MaxLevel())
	require.NoError(t, err)
	xs := make([][]float64, nb)
	ys := make([][]float64, nb)
	for b := range xs {
		xs[b] = evalTestUniform(int64(b), 8, -1, 1)
		ys[b] = evalTestMatVec(w, xs[b])
	}
	packed, err := PackBlocks(xs, 8, slots)
	require.NoError(t, err)
	out, err := ev.LinearTransform(c.evalTestEncrypt(t, packed, params.MaxLevel()), enc)
	require.NoError(t, err)
	want, err := PackBlocks(ys, 8, slots)
	require.NoError(t, err)
	require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, out), want), evalTestLTMaxErr)
	_, err = NewRepeatedBlockTransform(c.p, w, 0)
	require.Error(t, err)
}

func TestLinearTransformManySharesDecomposition(t *testing.T) {
	c := newEvalTestCtx(t, 12, 3)
	params := c.params
	slots := params.MaxSlots()
	d := 32
	mq, mk, mv := evalTestMatrix(1, d, d), evalTestMatrix(2, d, d), evalTestMatrix(3, d, d)
	var lts []*LinearTransform
	rotSet := map[int]bool{}
	for _, m := range [][][]float64{mq, mk, mv} {
		lt, err := NewDenseTransform(c.p, m)
		require.NoError(t, err)
		lts = append(lts, lt)
		for _, r := range lt.Rotations() {
			rotSet[r] = true
		}
	}
	var rots []int
	for r := range rotSet {
		rots = append(rots, r)
	}
	tr := NewTrace()
	ev := NewEvaluator(c.p, c.evalTestKeys(rots...), tr)
	level := params.MaxLevel()
	var encs []*EncodedLinearTransform
	for _, lt := range lts {
		enc, err := ev.EncodeLinearTransform(lt, level)
		require.NoError(t, err)
		encs = append(encs, enc)
	}
	x := evalTestUniform(9, d, -1, 1)
	packed, err := PackReplicated(x, d, slots)
	require.NoError(t, err)
	ct := c.evalTestEncrypt(t, packed, level)
	outs, err := ev.LinearTransformMany(ct, encs)
	require.NoError(t, err)
	require.Len(t, outs, 3)
	for i, m := range [][][]float64{mq, mk, mv} {
		want, err := PackReplicated(evalTestMatVec(m, x), d, slots)
		require.NoError(t, err)
		require.Less(t, evalTestMaxAbsErr(c.evalTestDecrypt(t, outs[i]), want), evalTestLTMaxErr, "transform %d", i)
	}
	rec := tr.Records()[0]
	sep := 0
	for _, lt := range lts {
		sep += lt.KeySwitches()
	}
	// same diagonal pattern: baby steps are rotated once and reused
	require.Equal(t, sep-2*len(lts[0].baby), rec.KeySwitches)
	t.Logf("3 dense %dx%d transforms: %d key switches together vs %d separately", d, d, rec.KeySwitches, sep)
}

func TestLinearTransformInputValidation(t *testing.T) {
	params := evalTestParams(t, 12, 1)
	_, err := NewDenseTransform(params, nil)
	require.Error(t, err)
	_, err = NewDenseTransform(params, [][]float64{{1, 2}, {3}})
	require.ErrorContains(t, err, "row 1")
	_, err = NewBlockDiagonalTransform(params, [][][]float64{evalTestMatrix(1, 2, 2), evalTestMatrix(1, 3, 2)})
	require.ErrorContains(t, err, "block 1")
	big := make([][][]float64, params.Slots()/4+1)
	for i := range big {
		big[i] = evalTestMatrix(1, 4, 4)
	}
	_, err = NewBlockDiagonalTransform(params, big)
	require.ErrorContains(t, err, "exceed")
	_, err = PackReplicated([]float64{1, 2, 3}, 3, params.Slots())
	require.Error(t, err)
}

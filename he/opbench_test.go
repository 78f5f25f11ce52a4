package he

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

func TestBenchmarkOpsReportsEveryOp(t *testing.T) {
	c := newEvalTestCtx(t, 12, 8)
	var msgs []string
	res, err := BenchmarkOps(c.p, c.secretKey(), 1, func(s string) { msgs = append(msgs, s) })
	require.NoError(t, err)
	want := []string{"encode", "encrypt", "decrypt", "add", "mul_plain", "mul_relin", "rescale", "rotate",
		"rotate_hoisted_8", "rotate_plain_8", "chebyshev_63", "linear_transform_64"}
	require.Len(t, res, len(want))
	for i, r := range res {
		require.Equal(t, want[i], r.Op)
		require.Equal(t, 1, r.Runs, r.Op)
		require.Greater(t, r.MedianSeconds, 0.0, r.Op)
		require.Greater(t, r.GaloisKeyBytes, 0)
		require.Greater(t, r.RelinKeyBytes, 0)
		require.Equal(t, 12, r.LogN)
	}
	require.Equal(t, 8, res[8].KeySwitches)
	require.Greater(t, res[10].KeySwitches, 0, "polynomial key switches are counted")
	require.Equal(t, 7, res[10].LevelIn, "input prepared with one level")
	require.Contains(t, msgs, "generating keys")
	b, err := json.Marshal(res[0])
	require.NoError(t, err)
	for _, k := range []string{`"op"`, `"median_seconds"`, `"runs"`, `"level_in"`, `"galois_key_bytes"`, `"relin_key_bytes"`} {
		require.Contains(t, string(b), k)
	}

	// Too few levels for the polynomial: reported as skipped, not an error.
	c2 := newEvalTestCtx(t, 12, 3)
	res2, err := BenchmarkOps(c2.p, c2.secretKey(), 1, nil)
	require.NoError(t, err)
	require.Equal(t, "chebyshev_63", res2[10].Op)
	require.Equal(t, 0, res2[10].Runs)
	require.Contains(t, res2[10].Note, "needs 7 levels")

	_, err = BenchmarkOps(c.p, nil, 1, nil)
	require.Error(t, err)
	_, err = BenchmarkOps(c.p, c.secretKey(), 0, nil)
	require.Error(t, err)
}

// TestBenchmarkOpsBootstrap: with bootstrapping parameters the table ends
// with the bootstrap (level 0 in, the residual top out) and its four parts,
// each with its levels on the bootstrapping chain.
func TestBenchmarkOpsBootstrap(t *testing.T) {
	p, err := NewParameters(tinyBootPreset())
	require.NoError(t, err)
	sk, _, err := GenerateKeys(p, KeySpec{})
	require.NoError(t, err)
	var msgs []string
	res, err := BenchmarkOps(p, sk, 1, func(s string) { msgs = append(msgs, s) })
	require.NoError(t, err)
	require.Contains(t, msgs, "generating bootstrapping keys")
	want := []string{"bootstrap", "bootstrap.scale_down_mod_up", "bootstrap.coeffs_to_slots", "bootstrap.eval_mod", "bootstrap.slots_to_coeffs"}
	require.GreaterOrEqual(t, len(res), len(want))
	rows := res[len(res)-len(want):]
	top := p.BootstrappingParameters().BootstrappingParameters.MaxLevel()
	for i, r := range rows {
		require.Equal(t, want[i], r.Op)
		require.Equal(t, 1, r.Runs, r.Op)
		require.Greater(t, r.MedianSeconds, 0.0, r.Op)
		t.Logf("%-30s %8.3f s  level %2d -> %2d  %s", r.Op, r.MedianSeconds, r.LevelIn, r.LevelOut, r.Note)
	}
	require.Equal(t, 0, rows[0].LevelIn)
	require.Equal(t, p.MaxLevel(), rows[0].LevelOut)
	require.Equal(t, top, rows[1].LevelOut, "ModUp raises to the top of the bootstrapping chain")
	require.Equal(t, rows[1].LevelOut, rows[2].LevelIn)
	require.Less(t, rows[2].LevelOut, rows[2].LevelIn)
	require.Equal(t, rows[2].LevelOut, rows[3].LevelIn)
	require.Equal(t, rows[3].LevelOut, rows[4].LevelIn)
	b, err := json.Marshal(rows[0])
	require.NoError(t, err)
	require.Contains(t, string(b), `"level_out"`)
}

// BenchmarkTraceOverhead compares a representative op mix (MulRelin +
// Rescale, Rotate, Add) through raw Lattigo calls and through the traced
// Evaluator recording into a Trace, at logN 13 with 5 levels. Run with
//
//	go test -run='^$' -bench=TraceOverhead -count=6 ./he
//
// and compare the medians of the two sub-benchmarks.
func BenchmarkTraceOverhead(b *testing.B) {
	c := newEvalTestCtx(b, 13, 5)
	keys := c.evalTestKeys(1)
	x := evalTestUniform(1, c.params.MaxSlots(), -1, 1)
	ct := c.evalTestEncrypt(b, x, c.params.MaxLevel())

	raw := hefloat.NewEvaluator(c.params, keys.KeySet())
	rawMix := func(b *testing.B) {
		p, err := raw.MulRelinNew(ct, ct)
		if err != nil {
			b.Fatal(err)
		}
		r := hefloat.NewCiphertext(c.params, 1, p.Level())
		if err = raw.Rescale(p, r); err != nil {
			b.Fatal(err)
		}
		rot, err := raw.RotateNew(r, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err = raw.AddNew(rot, r); err != nil {
			b.Fatal(err)
		}
	}
	tr := NewTrace()
	traced := NewEvaluator(c.p, keys, tr).WithLabel("bench")
	tracedMix := func(b *testing.B) {
		p, err := traced.MulRelin(ct, ct)
		if err != nil {
			b.Fatal(err)
		}
		r, err := traced.Rescale(p)
		if err != nil {
			b.Fatal(err)
		}
		rot, err := traced.Rotate(r, 1)
		if err != nil {
			b.Fatal(err)
		}
		if _, err = traced.Add(rot, r); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("raw", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rawMix(b)
		}
	})
	b.Run("traced", func(b *testing.B) {
		tr.Reset()
		for i := 0; i < b.N; i++ {
			tracedMix(b)
		}
		if tr.Len() != 4*b.N {
			b.Fatalf("trace has %d records, want %d", tr.Len(), 4*b.N)
		}
	})
	// paired: raw and traced mixes alternate inside one loop, so machine-load
	// drift hits both equally; reports both per-mix times and the overhead.
	b.Run("paired", func(b *testing.B) {
		var rawNs, tracedNs int64
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			rawMix(b)
			t1 := time.Now()
			tracedMix(b)
			t2 := time.Now()
			rawNs += t1.Sub(t0).Nanoseconds()
			tracedNs += t2.Sub(t1).Nanoseconds()
		}
		b.ReportMetric(float64(rawNs)/float64(b.N), "raw-ns/mix")
		b.ReportMetric(float64(tracedNs)/float64(b.N), "traced-ns/mix")
		b.ReportMetric(100*(float64(tracedNs)/float64(rawNs)-1), "overhead-%")
	})
}

// BenchmarkTraceBookkeeping measures the per-op work the traced Evaluator
// adds around a Lattigo call (key checks, scale comparison, timing, record
// append) without the Lattigo operation itself: a deterministic upper bound
// on the tracing overhead, to be divided by the op latency.
func BenchmarkTraceBookkeeping(b *testing.B) {
	c := newEvalTestCtx(b, 13, 5)
	keys := c.evalTestKeys(1)
	ct := c.evalTestEncrypt(b, []float64{1}, c.params.MaxLevel())
	tr := NewTrace()
	ev := NewEvaluator(c.p, keys, tr).WithLabel("bench")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := checkCt("x", ct, ct); err != nil {
			b.Fatal(err)
		}
		if err := ev.checkRelinKey("x", ct.Level()); err != nil {
			b.Fatal(err)
		}
		if err := ev.checkRotKey("x", 1, ct.Level()); err != nil {
			b.Fatal(err)
		}
		_ = relScaleDiff(ct.Scale, ct.Scale)
		s := ev.begin(ct)
		ev.end(s, OpAdd, ct, 0, 0, false, "")
	}
}

package he

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTraceAggregationAndWriters(t *testing.T) {
	tr := NewTrace()
	add := func(kind OpKind, label string, in, out, ks int, d time.Duration) {
		tr.Record(OpRecord{Kind: kind, Label: label, LevelIn: in, LevelOut: out, KeySwitches: ks, Duration: d, LogScaleIn: 40, LogScaleOut: 40})
	}
	add(OpMulRelin, "attn", 5, 5, 1, 10*time.Millisecond)
	add(OpRescale, "attn", 5, 4, 0, 2*time.Millisecond)
	add(OpMulRelin, "ffn", 4, 4, 1, 30*time.Millisecond)
	add(OpRotate, "", 4, 4, 1, 20*time.Millisecond)
	add(OpMulRelin, "ffn", 4, 4, 1, 50*time.Millisecond)

	recs := tr.Records()
	require.Len(t, recs, 5)
	for i, r := range recs {
		require.Equal(t, i, r.Seq)
	}
	byKind := map[string]OpStats{}
	for _, s := range tr.ByKind() {
		byKind[s.Key] = s
	}
	mr := byKind[string(OpMulRelin)]
	require.Equal(t, 3, mr.Count)
	require.Equal(t, 90*time.Millisecond, mr.Total)
	require.Equal(t, 30*time.Millisecond, mr.Median)
	require.Equal(t, 3, mr.KeySwitches)
	require.Equal(t, 1, byKind[string(OpRescale)].LevelsConsumed)

	byLabel := map[string]OpStats{}
	for _, s := range tr.ByLabel() {
		byLabel[s.Key] = s
	}
	require.Equal(t, 2, byLabel["attn"].Count)
	require.Equal(t, 12*time.Millisecond, byLabel["attn"].Total)
	require.Equal(t, 6*time.Millisecond, byLabel["attn"].Median) // even count: mean of the middle two
	require.Equal(t, 1, byLabel["(none)"].Count)
	require.Equal(t, "ffn", tr.ByLabel()[0].Key) // sorted by total time
	tot := tr.Total()
	require.Equal(t, 5, tot.Count)
	require.Equal(t, 4, tot.KeySwitches)
	require.Equal(t, 1, tot.LevelsConsumed)

	var jb bytes.Buffer
	require.NoError(t, tr.WriteJSON(&jb))
	var doc struct {
		Records []OpRecord `json:"records"`
		ByKind  []OpStats  `json:"by_kind"`
		Total   OpStats    `json:"total"`
	}
	require.NoError(t, json.Unmarshal(jb.Bytes(), &doc))
	require.Equal(t, recs, doc.Records)
	require.Equal(t, 4, doc.Total.KeySwitches)
	require.Contains(t, jb.String(), `"duration_ns": 10000000`)

	var cb bytes.Buffer
	require.NoError(t, tr.WriteCSV(&cb))
	rows, err := csv.NewReader(&cb).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 6)
	require.Equal(t, csvHeader, rows[0])
	require.Equal(t, []string{"0", "mul_relin", "attn", "0", "5", "5", "40.000000", "40.000000", "1", "0", "false", "0.01", ""}, rows[1])

	var tb bytes.Buffer
	require.NoError(t, tr.WriteTable(&tb))
	out := tb.String()
	for _, want := range []string{"mul_relin", "attn", "ffn", "(none)", "total", "90.000ms", "key switches"} {
		require.Contains(t, out, want)
	}

	tr.Reset()
	require.Equal(t, 0, tr.Len())
	tb.Reset()
	require.NoError(t, tr.WriteTable(&tb)) // empty trace still writes
	require.True(t, strings.Contains(tb.String(), "total"))
}

func TestTraceConcurrentRecording(t *testing.T) {
	tr := NewTrace()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				tr.Record(OpRecord{Kind: OpAdd, Worker: g})
				if i%100 == 0 {
					_ = tr.Records()
					_ = tr.ByKind()
				}
			}
		}(g)
	}
	wg.Wait()
	recs := tr.Records()
	require.Len(t, recs, 4000)
	seen := make([]bool, 4000)
	for _, r := range recs {
		require.False(t, seen[r.Seq])
		seen[r.Seq] = true
	}
	var nilTrace *Trace
	nilTrace.Record(OpRecord{}) // no-op, no panic
	require.Equal(t, 0, nilTrace.Len())
}

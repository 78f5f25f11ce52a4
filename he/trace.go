package he

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"
)

// OpKind names the kind of a homomorphic operation recorded in a Trace.
type OpKind string

// Operation kinds recorded by the traced Evaluator.
const (
	OpAdd             OpKind = "add"              // ciphertext + ciphertext (after alignment)
	OpAddPlain        OpKind = "add_plain"        // ciphertext + plaintext
	OpAddConst        OpKind = "add_const"        // ciphertext + constant
	OpSub             OpKind = "sub"              // ciphertext - ciphertext (after alignment)
	OpSubPlain        OpKind = "sub_plain"        // ciphertext - plaintext
	OpSubConst        OpKind = "sub_const"        // ciphertext - constant
	OpAlign           OpKind = "align"            // level/scale alignment before an addition (levels consumed = levels dropped from the higher operand)
	OpMulPlain        OpKind = "mul_plain"        // ciphertext × plaintext (or vector)
	OpMulConst        OpKind = "mul_const"        // ciphertext × constant
	OpMulRelin        OpKind = "mul_relin"        // ciphertext × ciphertext + relinearization
	OpRescale         OpKind = "rescale"          // division by the last modulus
	OpDropLevel       OpKind = "drop_level"       // modulus dropping without division
	OpRotate          OpKind = "rotate"           // one slot rotation (1 key switch)
	OpRotateHoisted   OpKind = "rotate_hoisted"   // n rotations sharing one decomposition
	OpLinearTransform OpKind = "linear_transform" // BSGS plaintext matrix × ciphertext (rescaled)
	OpPolynomial      OpKind = "polynomial"       // Chebyshev polynomial (change of basis included)
	OpPower           OpKind = "power"            // x^p by repeated squaring
	OpInverse         OpKind = "inverse"          // Goldschmidt plan for 1/x
	OpInvSqrt         OpKind = "inv_sqrt"         // Newton plan for 1/sqrt(x)
	OpBootstrap       OpKind = "bootstrap"        // bootstrapping (level refresh)
)

// OpRecord is one homomorphic operation as recorded by the traced Evaluator.
//
// LevelIn is the level of the (first) input, LevelOut the level of the output;
// LevelIn-LevelOut is the number of levels the operation consumed (negative
// for a bootstrap). LogScaleIn/LogScaleOut are log2 of the scales. KeySwitches
// counts key-switching operations (relinearizations and rotations), the
// dominant cost of CKKS circuits. Hoisted is true when several rotations shared
// one key-switching decomposition (RotateHoisted, linear transforms). Worker
// is the goroutine index under RunParallel (0 otherwise).
type OpRecord struct {
	Seq         int           `json:"seq"`
	Kind        OpKind        `json:"kind"`
	Label       string        `json:"label,omitempty"`
	Worker      int           `json:"worker,omitempty"`
	LevelIn     int           `json:"level_in"`
	LevelOut    int           `json:"level_out"`
	LogScaleIn  float64       `json:"log_scale_in"`
	LogScaleOut float64       `json:"log_scale_out"`
	KeySwitches int           `json:"key_switches"`
	Rotations   int           `json:"rotations,omitempty"`
	Hoisted     bool          `json:"hoisted,omitempty"`
	Duration    time.Duration `json:"duration_ns"`
	Note        string        `json:"note,omitempty"`
	// KeyUses lists the switching keys the op used and the highest
	// ciphertext level it used each at (a key must be at least there).
	KeyUses []KeyUse `json:"key_uses,omitempty"`
}

// KeyUse is one switching key used by an op at a ciphertext level.
type KeyUse struct {
	// GaloisElement is the Galois key's element; 0 is the relinearization key.
	GaloisElement uint64 `json:"galois_element"`
	Level         int    `json:"level"`
}

// LevelsConsumed returns LevelIn - LevelOut.
func (r OpRecord) LevelsConsumed() int { return r.LevelIn - r.LevelOut }

// Trace collects OpRecords. It is safe for concurrent use by several
// goroutines (a mutex guards the record list), so evaluator copies running
// in parallel can share one Trace. The zero value is ready to use.
type Trace struct {
	mu      sync.Mutex
	records []OpRecord
}

// NewTrace returns an empty trace.
func NewTrace() *Trace { return &Trace{} }

// Record appends r to the trace and sets its sequence number. It is a no-op
// on a nil Trace.
func (t *Trace) Record(r OpRecord) {
	if t == nil {
		return
	}
	t.mu.Lock()
	r.Seq = len(t.records)
	t.records = append(t.records, r)
	t.mu.Unlock()
}

// Records returns a copy of the records in the order they were recorded.
func (t *Trace) Records() []OpRecord {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]OpRecord, len(t.records))
	copy(out, t.records)
	return out
}

// Len returns the number of records.
func (t *Trace) Len() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.records)
}

// Reset discards all records.
func (t *Trace) Reset() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.records = nil
	t.mu.Unlock()
}

// OpStats aggregates the records sharing a key (an op kind or a label).
type OpStats struct {
	Key            string        `json:"key"`
	Count          int           `json:"count"`
	Total          time.Duration `json:"total_ns"`
	Median         time.Duration `json:"median_ns"`
	KeySwitches    int           `json:"key_switches"`
	LevelsConsumed int           `json:"levels_consumed"`
}

// ByKind aggregates the records per op kind, sorted by decreasing total time.
func (t *Trace) ByKind() []OpStats {
	return aggregate(t.Records(), func(r OpRecord) string { return string(r.Kind) })
}

// ByLabel aggregates the records per label (empty labels are reported as
// "(none)"), sorted by decreasing total time.
func (t *Trace) ByLabel() []OpStats {
	return aggregate(t.Records(), func(r OpRecord) string {
		if r.Label == "" {
			return "(none)"
		}
		return r.Label
	})
}

// Total aggregates all records into one OpStats with key "total".
func (t *Trace) Total() OpStats {
	s := aggregate(t.Records(), func(OpRecord) string { return "total" })
	if len(s) == 0 {
		return OpStats{Key: "total"}
	}
	return s[0]
}

func aggregate(recs []OpRecord, key func(OpRecord) string) []OpStats {
	durs := map[string][]time.Duration{}
	stats := map[string]*OpStats{}
	for _, r := range recs {
		k := key(r)
		s, ok := stats[k]
		if !ok {
			s = &OpStats{Key: k}
			stats[k] = s
		}
		s.Count++
		s.Total += r.Duration
		s.KeySwitches += r.KeySwitches
		s.LevelsConsumed += r.LevelsConsumed()
		durs[k] = append(durs[k], r.Duration)
	}
	out := make([]OpStats, 0, len(stats))
	for k, s := range stats {
		s.Median = medianDuration(durs[k])
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Total != out[j].Total {
			return out[i].Total > out[j].Total
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// traceJSON is the JSON document written by WriteJSON.
type traceJSON struct {
	Records []OpRecord `json:"records"`
	ByKind  []OpStats  `json:"by_kind"`
	ByLabel []OpStats  `json:"by_label"`
	Total   OpStats    `json:"total"`
}

// WriteJSON writes the records and their aggregations (per kind, per label,
// total) as one indented JSON object. Durations are in nanoseconds.
func (t *Trace) WriteJSON(w io.Writer) error {
	recs := t.Records()
	if recs == nil {
		recs = []OpRecord{}
	}
	doc := traceJSON{
		Records: recs,
		ByKind:  aggregate(recs, func(r OpRecord) string { return string(r.Kind) }),
		ByLabel: aggregate(recs, func(r OpRecord) string {
			if r.Label == "" {
				return "(none)"
			}
			return r.Label
		}),
	}
	doc.Total = OpStats{Key: "total"}
	if tot := aggregate(recs, func(OpRecord) string { return "total" }); len(tot) > 0 {
		doc.Total = tot[0]
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("trace: write json: %w", err)
	}
	return nil
}

// csvHeader is the header row written by WriteCSV.
var csvHeader = []string{"seq", "kind", "label", "worker", "level_in", "level_out", "log_scale_in", "log_scale_out",
	"key_switches", "rotations", "hoisted", "duration_seconds", "note"}

// WriteCSV writes one row per record with a header row. Durations are in seconds.
func (t *Trace) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("trace: write csv: %w", err)
	}
	for _, r := range t.Records() {
		row := []string{
			strconv.Itoa(r.Seq), string(r.Kind), r.Label, strconv.Itoa(r.Worker),
			strconv.Itoa(r.LevelIn), strconv.Itoa(r.LevelOut),
			strconv.FormatFloat(r.LogScaleIn, 'f', 6, 64), strconv.FormatFloat(r.LogScaleOut, 'f', 6, 64),
			strconv.Itoa(r.KeySwitches), strconv.Itoa(r.Rotations), strconv.FormatBool(r.Hoisted),
			strconv.FormatFloat(r.Duration.Seconds(), 'g', 9, 64), r.Note,
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("trace: write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("trace: write csv: %w", err)
	}
	return nil
}

// WriteTable writes a human-readable summary: one table per op kind, one per
// label, and the total.
func (t *Trace) WriteTable(w io.Writer) error {
	recs := t.Records()
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	section := func(title string, stats []OpStats) {
		fmt.Fprintf(tw, "%s\tcount\ttotal\tmedian\tkey switches\tlevels\t\n", title)
		for _, s := range stats {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t\n", s.Key, s.Count, fmtDur(s.Total), fmtDur(s.Median), s.KeySwitches, s.LevelsConsumed)
		}
		fmt.Fprintln(tw, "\t\t\t\t\t\t")
	}
	section("kind", aggregate(recs, func(r OpRecord) string { return string(r.Kind) }))
	section("label", aggregate(recs, func(r OpRecord) string {
		if r.Label == "" {
			return "(none)"
		}
		return r.Label
	}))
	tot := aggregate(recs, func(OpRecord) string { return "total" })
	if len(tot) == 0 {
		tot = []OpStats{{Key: "total"}}
	}
	section("", tot)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("trace: write table: %w", err)
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.3fs", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.3fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
	}
}

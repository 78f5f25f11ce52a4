package circuit

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/polyformer/polyformer/he"
)

// LayerReport is the plan (and, after Bench, the measurement) of one layer
// (all ops sharing a label).
type LayerReport struct {
	Layer string `json:"layer"`
	Ops   int    `json:"ops"`
	// LevelIn is the highest level among the layer's inputs from other
	// layers; LevelOut the level of its last op's output.
	LevelIn          int `json:"level_in"`
	LevelOut         int `json:"level_out"`
	Rotations        int `json:"rotations"`
	Relinearizations int `json:"relinearizations"`
	KeySwitches      int `json:"key_switches"`
	Bootstraps       int `json:"bootstraps"`
	// RotationKeys is the number of distinct rotation keys the layer's ops
	// use; NewRotationKeys those of them no earlier layer used.
	RotationKeys    int `json:"rotation_keys"`
	NewRotationKeys int `json:"new_rotation_keys"`
	// Measured by Bench (per ciphertext, summed over ops; zero before).
	TimeNs              int64 `json:"time_ns,omitempty"`
	MeasuredKeySwitches int   `json:"measured_key_switches,omitempty"`
	// Log2Err is log2 of the largest absolute difference between the
	// decrypted layer output and the simulator's, on the slots that
	// influence the result (NaN: not measured; -Inf: no live slot).
	Log2Err float64 `json:"log2_err_vs_sim"`
	// Log2RelErr is Log2Err minus log2 of the largest simulated magnitude
	// on the same slots (NaN: not measured).
	Log2RelErr float64 `json:"log2_rel_err_vs_sim"`
}

// Report is the dry run of a planned circuit: what it will cost before any
// key is made.
type Report struct {
	Preset      string `json:"preset"`
	Fingerprint string `json:"fingerprint"`
	LogN        int    `json:"log_n"`
	Slots       int    `json:"slots"`
	MaxLevel    int    `json:"max_level"`
	Layout      Layout `json:"layout"`
	// InputsPerCiphertext is Batch (the layout is replicated over all slots).
	InputsPerCiphertext int      `json:"inputs_per_ciphertext"`
	Depth               int      `json:"depth"`
	InputLevel          int      `json:"input_level"`
	Bootstraps          int      `json:"bootstraps"`
	Ops                 int      `json:"ops"`
	Rotations           int      `json:"rotations"`
	Relinearizations    int      `json:"relinearizations"`
	KeySwitches         int      `json:"key_switches"`
	RotationKeys        int      `json:"rotation_keys"`
	RotationAmounts     []int    `json:"rotation_amounts"`
	KeyBytes            KeyBytes `json:"key_bytes"`
	InputCiphertextSize int64    `json:"input_ciphertext_bytes"`
	// CiphertextSize is one ciphertext at the top level; PeakCiphertexts
	// the most values alive at once in op order (every block of a split
	// activation counts): the memory estimate holds 2 workers' worth.
	CiphertextSize   int64   `json:"ciphertext_bytes"`
	PeakCiphertexts  int     `json:"peak_live_ciphertexts"`
	MemoryBytes      int64   `json:"memory_estimate_bytes"`
	PredictedLog2Err float64 `json:"predicted_log2_err"`
	// Margin, when set (by the caller, from calibration inputs), compares
	// PredictedLog2Err with the model's logit margins.
	Margin *MarginCheck `json:"margin,omitempty"`
	// Latency, when set (by the caller: EstimateLatency with a timing
	// table), is the estimated seconds per ciphertext.
	Latency *Latency      `json:"latency_estimate_seconds,omitempty"`
	Layers  []LayerReport `json:"layers"`
	// Measured by Bench.
	WallNs      int64   `json:"wall_ns,omitempty"`
	PerInputNs  int64   `json:"per_input_ns,omitempty"`
	MaxLogitErr float64 `json:"max_logit_err_vs_sim,omitempty"`
}

// KeyBytes are the evaluation keys' sizes: each relinearization and
// rotation key at its own level (KeyNeeds.Levels), each bootstrapping key at
// the level the bootstrapping circuit uses it (he.BootstrappingKeyBytes),
// exact for the key file's records.
type KeyBytes struct {
	// Relinearization, Rotation (all rotation keys), Bootstrapping and
	// Total are on disk and on the wire: key file format version 2, the
	// random half of each relinearization and rotation key as a 32-byte
	// seed (Total is the key file's payload less its 5-byte header).
	Relinearization int64 `json:"relinearization"`
	Rotation        int64 `json:"rotation"`
	Bootstrapping   int64 `json:"bootstrapping"`
	Total           int64 `json:"total"`
	// Memory is the size of the keys in memory (both halves, expanded on load).
	Memory int64 `json:"memory"`
	// TopLevelMemory is what the keys took before per-key levels and seeds:
	// every key at the top level and in full (format version 1).
	TopLevelMemory int64 `json:"top_level_memory"`
	// Keys lists the relinearization and rotation keys with their levels.
	Keys []KeySize `json:"keys,omitempty"`
}

// KeySize is one key's level and sizes.
type KeySize struct {
	// Key is "relinearization" or "rotation k".
	Key   string `json:"key"`
	Level int    `json:"level"`
	// MemoryBytes is the expanded key, FileBytes its record in the key
	// file (with the Galois element for a rotation key).
	MemoryBytes int64 `json:"memory_bytes"`
	FileBytes   int64 `json:"file_bytes"`
}

// circuitKeyBytes sizes the keys k lists for p, each relinearization and
// rotation key at its level (the top level without k.Levels).
func circuitKeyBytes(k KeyNeeds, p *he.Parameters) KeyBytes {
	hp := p.HE()
	var kb KeyBytes
	topMem, _ := he.EvaluationKeyBytes(p, hp.MaxLevelQ(), hp.MaxLevelP())
	add := func(name string, level int, galois bool) int64 {
		mem, file := he.EvaluationKeyBytes(p, level, hp.MaxLevelP())
		if galois {
			file += 8
		}
		kb.Keys = append(kb.Keys, KeySize{Key: name, Level: level, MemoryBytes: int64(mem), FileBytes: int64(file)})
		kb.Memory += int64(mem)
		kb.TopLevelMemory += int64(topMem)
		return int64(file)
	}
	level := func(l func(*KeyLevels) int) int {
		if k.Levels == nil {
			return hp.MaxLevelQ()
		}
		return l(k.Levels)
	}
	if k.Relinearization {
		kb.Relinearization = add("relinearization", level(func(l *KeyLevels) int { return l.Relinearization }), false)
	}
	for i, r := range k.Rotations {
		kb.Rotation += add(fmt.Sprintf("rotation %d", r), level(func(l *KeyLevels) int {
			if i < len(l.Rotations) {
				return l.Rotations[i]
			}
			return hp.MaxLevelQ()
		}), true)
	}
	if k.Bootstrapping && p.HasBootstrapping() {
		mem, file, top := he.BootstrappingKeyBytes(p)
		kb.Bootstrapping = int64(file)
		kb.Memory += int64(mem)
		kb.TopLevelMemory += int64(top)
	}
	kb.Total = kb.Relinearization + kb.Rotation + kb.Bootstrapping
	return kb
}

// NewReport returns the dry-run report of a planned circuit for p.
func NewReport(c *Circuit, p *he.Parameters) (*Report, error) {
	if c == nil || c.Planned == nil {
		return nil, errors.New("report: circuit is not planned")
	}
	if p == nil || p.Fingerprint().String() != c.Planned.Fingerprint {
		return nil, fmt.Errorf("report: circuit planned for %s: %w", c.Planned.Preset, he.ErrFingerprintMismatch)
	}
	lts, err := c.transforms(p)
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	hp := p.HE()
	r := &Report{Preset: p.Name(), Fingerprint: p.Fingerprint().String(), LogN: p.LogN(), Slots: p.Slots(), MaxLevel: p.MaxLevel(),
		Layout: c.Layout, InputsPerCiphertext: c.Layout.Batch, Depth: c.Depth(), InputLevel: c.Planned.InputLevel,
		Bootstraps: c.Planned.Bootstraps, Ops: len(c.Ops), RotationAmounts: c.Planned.Keys.Rotations,
		RotationKeys: len(c.Planned.Keys.Rotations), PredictedLog2Err: math.NaN()}
	idx := map[string]int{}
	reuse := babyReuse{}
	layerKeys := map[string]map[int]bool{}
	seenKeys := map[int]bool{}
	for i, op := range c.Ops {
		k, ok := idx[op.Label]
		if !ok {
			k = len(r.Layers)
			idx[op.Label] = k
			r.Layers = append(r.Layers, LayerReport{Layer: op.Label, LevelIn: -1, Log2Err: math.NaN(), Log2RelErr: math.NaN()})
		}
		l := &r.Layers[k]
		l.Ops++
		for _, in := range op.In {
			if c.Ops[in].Label != op.Label {
				l.LevelIn = max(l.LevelIn, c.Planned.Levels[in])
			}
		}
		if op.Kind == KindInput {
			l.LevelIn = c.Planned.Levels[i]
		}
		l.LevelOut = c.Planned.Levels[i]
		rots, rel := op.KeySwitches(lts)
		if op.Kind == KindLinear && op.Group > 0 {
			baby, giant := bsgsSplit(lts[op.Mat], p.Slots())
			rots = len(giant) + reuse.fresh(op, baby)
		}
		for _, k := range op.Rotations(lts, p.Slots()) {
			if layerKeys[op.Label] == nil {
				layerKeys[op.Label] = map[int]bool{}
			}
			if !layerKeys[op.Label][k] {
				layerKeys[op.Label][k] = true
				l.RotationKeys++
				if !seenKeys[k] {
					seenKeys[k] = true
					l.NewRotationKeys++
				}
			}
		}
		l.Rotations += rots
		l.Relinearizations += rel
		l.KeySwitches += rots + rel
		if op.Kind == KindBootstrap {
			l.Bootstraps++
		}
	}
	for _, l := range r.Layers {
		r.Rotations += l.Rotations
		r.Relinearizations += l.Relinearizations
		r.KeySwitches += l.KeySwitches
	}
	pn := hp.PCount()
	r.KeyBytes = circuitKeyBytes(c.Planned.Keys, p)
	ctBytes := func(level int) int64 { return 2 * int64(p.N()) * int64(level+1) * 8 }
	r.InputCiphertextSize = ctBytes(c.Planned.InputLevel)
	// memory: keys + the largest encoded transform + peak live ciphertexts (per program, 2 workers)
	var maxLT int64
	for _, op := range c.Ops {
		if op.Kind == KindLinear {
			lvl := c.Planned.Levels[op.In[0]]
			sz := int64(len(lts[op.Mat].Diagonals())) * int64(p.N()) * int64(lvl+1+pn) * 8
			maxLT = max(maxLT, sz)
		}
	}
	r.CiphertextSize, r.PeakCiphertexts = ctBytes(p.MaxLevel()), c.peakLive()
	r.MemoryBytes = r.KeyBytes.Memory + 3*maxLT + 2*int64(r.PeakCiphertexts)*r.CiphertextSize
	return r, nil
}

// bsgsSplit returns the non-zero baby-step and giant-step rotations of a
// transform, as he (and Lattigo) evaluate it.
func bsgsSplit(lt *he.LinearTransform, slots int) (baby, giant []int) {
	return lt.BabySteps(), lt.GiantSteps()
}

// peakLive is the largest number of values alive at once in op order.
func (c *Circuit) peakLive() int {
	last := make([]int, len(c.Ops))
	for i, op := range c.Ops {
		for _, in := range op.In {
			last[in] = i
		}
	}
	live, peak := 0, 0
	for i, op := range c.Ops {
		live++
		for _, in := range op.In {
			if last[in] == i {
				live--
			}
		}
		_ = op
		peak = max(peak, live)
	}
	return peak
}

// PredictPrecision estimates log2 of the largest output error of the
// encrypted circuit on one input (a virtual slot vector) by simulating it
// with uniform noise of 128·sqrt(N)/2^logScale after every rescale and key
// switch and, after every real bootstrap, the error of p's BootstrapModel:
// the exact systematic error of Lattigo's sine-based modular reduction for
// that value and the op's pre-scale (simulated alone, deterministic) plus
// ±Floor of the measured random floor with a sign pattern shared by all
// bootstraps (with the CKKS noise, the largest over 3 seeds); the two parts
// are added. Plans made for the secret-key test bootstrapper get no
// bootstrap error.
//
// The factors are empirical: on the circuits of this package's tests and
// benchmarks the measured error stayed below the prediction
// (benchmarks/compiler/bootstrap-precision.md has the bootstrap
// measurements behind the model).
func PredictPrecision(c *Circuit, p *he.Parameters, input []float64) (float64, error) {
	clean, _, err := c.Simulate(input, SimOptions{})
	if err != nil {
		return 0, err
	}
	noise := 128 * math.Sqrt(float64(p.N())) / math.Exp2(float64(p.LogDefaultScale()))
	var btp *BootstrapModel
	if c.Planned != nil && c.Planned.Bootstraps > 0 && !c.Planned.InsecureSKBootstrap {
		if btp, err = NewBootstrapModel(p); err != nil {
			return 0, fmt.Errorf("predict precision: %w", err)
		}
	}
	// the systematic bootstrap error is deterministic and signed: random
	// noise can cancel part of it in a simulation, so the two are bounded
	// separately and added (the real noise can be large at the slot where
	// the systematic error is largest)
	sysErr := 0.0
	if btp != nil {
		sys, _, err := c.Simulate(input, SimOptions{Bootstrap: btp, BootstrapParts: BootstrapSystematic})
		if err != nil {
			return 0, err
		}
		sysErr = OutputErr(c, clean, sys)
	}
	worst := 0.0
	for seed := uint64(1); seed <= 3; seed++ {
		noisy, _, err := c.Simulate(input, SimOptions{Noise: noise, Bootstrap: btp, BootstrapParts: BootstrapRandom, Seed: seed})
		if err != nil {
			return 0, err
		}
		worst = math.Max(worst, OutputErr(c, clean, noisy))
	}
	return math.Log2(sysErr + worst), nil
}

// OutputErr is the largest absolute difference on the result slots.
func OutputErr(c *Circuit, a, b []float64) float64 {
	L := c.Layout
	worst := 0.0
	for t := 0; t < L.OutputTokens; t++ {
		for i := 0; i < L.Batch; i++ {
			for j := 0; j < L.Outputs; j++ {
				s := L.Slot(t, i, j)
				worst = math.Max(worst, math.Abs(a[s]-b[s]))
			}
		}
	}
	return worst
}

func mb(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KB", float64(b)/(1<<10))
}

func log2s(x float64) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.1f", x)
}

// WriteTable writes the report as a human-readable table.
func (r *Report) WriteTable(w io.Writer) error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "circuit on %s (logN %d, %d slots, %d levels): %d tokens × %d channels, %d inputs per ciphertext\n",
		r.Preset, r.LogN, r.Slots, r.MaxLevel, r.Layout.Tokens, r.Layout.Block, r.InputsPerCiphertext)
	if n := r.Layout.NumTokenBlocks(); n > 1 {
		fmt.Fprintf(&sb, "token-block split: the tokens of an input span %d ciphertexts of %d tokens (%d input and %d output ciphertexts per batch of inputs); peak %d live ciphertexts of %s each (top level)\n",
			n, r.Layout.BlockTokens(), n, r.Layout.OutputCiphertexts(), r.PeakCiphertexts, mb(r.CiphertextSize))
	}
	if n := r.Layout.Ciphertexts(); n > 1 {
		fmt.Fprintf(&sb, "channel-block split: the widest activation spans %d ciphertexts of %d channels per input ciphertext; peak %d live ciphertexts of %s each (top level)\n",
			n, r.Layout.Block, r.PeakCiphertexts, mb(r.CiphertextSize))
	}
	fmt.Fprintf(&sb, "depth %d levels, input level %d, bootstraps %d, ops %d\n", r.Depth, r.InputLevel, r.Bootstraps, r.Ops)
	fmt.Fprintf(&sb, "key switches %d (rotations %d, relinearizations %d); rotation keys %d\n",
		r.KeySwitches, r.Rotations, r.Relinearizations, r.RotationKeys)
	fmt.Fprintf(&sb, "keys on disk/wire (seeded, each at its level): relinearization %s, rotations %s, bootstrapping %s, total %s; in memory %s (all at the top level, in full: %s); input ciphertext %s; memory estimate %s\n",
		mb(r.KeyBytes.Relinearization), mb(r.KeyBytes.Rotation), mb(r.KeyBytes.Bootstrapping), mb(r.KeyBytes.Total),
		mb(r.KeyBytes.Memory), mb(r.KeyBytes.TopLevelMemory), mb(r.InputCiphertextSize), mb(r.MemoryBytes))
	if len(r.KeyBytes.Keys) > 0 {
		byLevel := map[int]int{}
		var lv []int
		for _, k := range r.KeyBytes.Keys {
			if byLevel[k.Level] == 0 {
				lv = append(lv, k.Level)
			}
			byLevel[k.Level]++
		}
		sort.Sort(sort.Reverse(sort.IntSlice(lv)))
		var parts []string
		for _, l := range lv {
			parts = append(parts, fmt.Sprintf("%d at level %d", byLevel[l], l))
		}
		fmt.Fprintf(&sb, "key levels (of %d): %s\n", r.MaxLevel, strings.Join(parts, ", "))
	}
	fmt.Fprintf(&sb, "predicted log2 output error %s\n", log2s(r.PredictedLog2Err))
	if r.Margin != nil {
		fmt.Fprintln(&sb, r.Margin.String())
	}
	if r.Latency != nil {
		fmt.Fprintln(&sb, r.Latency.String())
	}
	if r.WallNs > 0 {
		fmt.Fprintf(&sb, "measured: wall %s, per input %s, max logit error vs simulator %.3g\n",
			time.Duration(r.WallNs).Round(time.Millisecond), time.Duration(r.PerInputNs).Round(time.Millisecond), r.MaxLogitErr)
	}
	if _, err := io.WriteString(w, sb.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tops\tlevel in\tlevel out\trotations\trelins\tkey switches\trot keys\tnew keys\tbootstraps\ttime\tlog2 err\tlog2 rel\t")
	for _, l := range r.Layers {
		tm := "-"
		if l.TimeNs > 0 {
			tm = time.Duration(l.TimeNs).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t\n", l.Layer, l.Ops, l.LevelIn, l.LevelOut,
			l.Rotations, l.Relinearizations, l.KeySwitches, l.RotationKeys, l.NewRotationKeys, l.Bootstraps, tm, log2s(l.Log2Err), log2s(l.Log2RelErr))
	}
	return tw.Flush()
}

// WriteCSV writes the per-layer rows as CSV (header first; empty log2 error
// when not measured).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"layer", "ops", "level_in", "level_out", "rotations", "relinearizations", "key_switches",
		"rotation_keys", "new_rotation_keys", "bootstraps", "time_ns", "measured_key_switches", "log2_err_vs_sim", "log2_rel_err_vs_sim"}); err != nil {
		return err
	}
	for _, l := range r.Layers {
		f := func(x float64) string {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return ""
			}
			return strconv.FormatFloat(x, 'f', 3, 64)
		}
		rec := []string{l.Layer, strconv.Itoa(l.Ops), strconv.Itoa(l.LevelIn), strconv.Itoa(l.LevelOut), strconv.Itoa(l.Rotations),
			strconv.Itoa(l.Relinearizations), strconv.Itoa(l.KeySwitches), strconv.Itoa(l.RotationKeys), strconv.Itoa(l.NewRotationKeys), strconv.Itoa(l.Bootstraps),
			strconv.FormatInt(l.TimeNs, 10), strconv.Itoa(l.MeasuredKeySwitches), f(l.Log2Err), f(l.Log2RelErr)}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the report as indented JSON (NaN errors as null).
func (r *Report) WriteJSON(w io.Writer) error {
	type alias Report
	cp := *r
	cp.Layers = append([]LayerReport(nil), r.Layers...)
	type layerJSON struct {
		LayerReport
		Log2Err    *float64 `json:"log2_err_vs_sim"`
		Log2RelErr *float64 `json:"log2_rel_err_vs_sim"`
	}
	type repJSON struct {
		alias
		Layers           []layerJSON `json:"layers"`
		PredictedLog2Err *float64    `json:"predicted_log2_err"`
	}
	ptr := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	out := repJSON{alias: alias(cp), PredictedLog2Err: ptr(r.PredictedLog2Err)}
	for _, l := range cp.Layers {
		out.Layers = append(out.Layers, layerJSON{LayerReport: l, Log2Err: ptr(l.Log2Err), Log2RelErr: ptr(l.Log2RelErr)})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

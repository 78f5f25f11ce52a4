package circuit

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/polyapprox"
)

// OpTimings is a table of single-thread latencies of the CKKS primitives,
// in seconds, measured at one ring degree (LogN) and one level (Level, with
// PCount special primes), from which EstimateLatency prices every planned
// op at its own level and ring degree.
//
// The scaling model (stated, not fitted to any end-to-end run):
//   - ring degree: every op's time is proportional to N·log2 N;
//   - level l, ops without key switching (add, plaintext product, rescale,
//     encoding): proportional to the number of limbs l+1;
//   - level l, key switches (rotation, relinearization, hoisted rotation,
//     the products of a polynomial evaluation): proportional to
//     (l+1+P)·(dnum+1), dnum = ceil((l+1)/P) decomposition digits — the
//     ModUp and inner products of dnum digits in the l+1+P limbs of Q·P and
//     one ModDown. On n15 (P = 3) this predicts 1, 0.69, 0.34, 0.17, 0.07 of
//     the top-level time at levels 16, 12, 8, 4, 1; a level sweep of
//     Rotate measured 1, 0.70, 0.39, 0.19, 0.08 (docs/cost.md, "Seconds").
//
// Composite ops are decomposed: a hoisted group of k rotations is one
// decomposition plus k hoisted rotations (both from the rotate and
// rotate_hoisted_8 rows); a BSGS linear transform is the hoisted baby
// steps, the giant-step key switches, one product-and-add per diagonal
// (its cost from the linear_transform_64 row less that row's rotations
// and rescale), one encoding per diagonal (the executor encodes each
// transform once per level and chunk) and a rescale; a polynomial costs its
// ciphertext products (polyapprox.CtMultsOfDegree), each at the price the
// chebyshev_63 row gives per product, at the middle of the levels it spans.
// A bootstrap costs Bootstrap seconds scaled by N·log2 N from
// BootstrapLogN, whatever its input level.
type OpTimings struct {
	// Source says where the figures come from.
	Source string `json:"source"`
	// LogN, Level and PCount describe the parameters of the measurement.
	LogN   int `json:"log_n"`
	Level  int `json:"level"`
	PCount int `json:"p_count"`
	// Primitive latencies at (LogN, Level), each allocating its output as
	// the traced evaluator does: ct + ct, ct × pt (no rescale), ct × ct
	// with relinearization (no rescale), rescale, one rotation, 8 hoisted
	// rotations, the encoding of one full-slot plaintext.
	Add, MulPlain, MulRelin, Rescale, Rotate, RotateHoisted8, Encode float64
	// LinearTransform64 is a 64×64 dense BSGS transform (LT64Baby baby and
	// LT64Giant giant steps, 64 diagonals, rescale included); 0: not
	// measured, a diagonal then costs MulPlain + Add.
	LinearTransform64   float64
	LT64Baby, LT64Giant int
	// Chebyshev63 is a degree-63 polynomial evaluated from ChebyshevLevel
	// (7 levels with the change of basis) with ChebyshevProducts
	// relinearized products; 0: not measured, a product then costs
	// MulRelin + Rescale.
	Chebyshev63       float64
	ChebyshevLevel    int
	ChebyshevProducts int
	// Bootstrap is one bootstrap at ring degree BootstrapLogN.
	Bootstrap     float64
	BootstrapLogN int
}

// Bootstrap defaults: about 20 s for one bootstrap at logN 16 on one core
// (docs/design.md §1: 21 s measured with the default logN 16 bootstrapping
// set), until `bench ops` records one.
const (
	DefaultBootstrapSeconds = 20.0
	DefaultBootstrapLogN    = 16
)

// DefaultOpTimings returns the built-in table: the medians of the recorded
// `polyformer bench ops --preset n15 --runs 5 --json` run
// (benchmarks/ops/n15.json: the project's 2-core AMD EPYC machine, go1.26.8,
// one thread per op, 2026-11-29, load average about 4 from other builds,
// so the figures are high by up to ~1.5× per benchmarks/ops/README.md), and
// DefaultBootstrapSeconds at logN 16.
func DefaultOpTimings() OpTimings {
	return OpTimings{
		Source: "built-in: benchmarks/ops/n15.json (bench ops, n15, 2026-11-29, 2-core AMD EPYC, loaded) + bootstrap 20 s at logN 16",
		LogN:   15, Level: 16, PCount: 3,
		Add: 0.01214347, MulPlain: 0.017476093, MulRelin: 0.12372646, Rescale: 0.028759126,
		Rotate: 0.12774967, RotateHoisted8: 0.558371828, Encode: 0.039136315,
		LinearTransform64: 2.800967224, LT64Baby: 7, LT64Giant: 7,
		Chebyshev63: 1.5430233740000001, ChebyshevLevel: 15, ChebyshevProducts: 15,
		Bootstrap: DefaultBootstrapSeconds, BootstrapLogN: DefaultBootstrapLogN,
	}
}

// ReadOpTimings reads the JSON written by `polyformer bench ops --json`
// (see ParseOpTimings).
func ReadOpTimings(path string) (OpTimings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return OpTimings{}, fmt.Errorf("op timings: %w", err)
	}
	t, err := ParseOpTimings(b)
	if err != nil {
		return OpTimings{}, fmt.Errorf("op timings %s: %w", path, err)
	}
	t.Source = path + " (" + t.Source + ")"
	return t, nil
}

// ParseOpTimings builds a table from the rows of `bench ops --json`
// ([]he.OpBenchmark, medians). The rows add, mul_plain, mul_relin,
// rescale, rotate, rotate_hoisted_8 and encode are required, measured at
// one ring degree and level; linear_transform_64 and chebyshev_63 are used
// when measured. A measured "bootstrap" row replaces the default bootstrap
// (DefaultBootstrapSeconds at logN 16). The special-prime count is the
// preset's whose ring degree and top level match the rows (3 when none
// does, as at n15).
func ParseOpTimings(data []byte) (OpTimings, error) {
	var rows []he.OpBenchmark
	if err := json.Unmarshal(data, &rows); err != nil {
		return OpTimings{}, fmt.Errorf("parse bench ops rows: %w", err)
	}
	byOp := map[string]he.OpBenchmark{}
	for _, r := range rows {
		if r.Runs > 0 && r.MedianSeconds > 0 {
			byOp[r.Op] = r
		}
	}
	t := OpTimings{Bootstrap: DefaultBootstrapSeconds, BootstrapLogN: DefaultBootstrapLogN}
	required := []struct {
		op  string
		dst *float64
	}{{"add", &t.Add}, {"mul_plain", &t.MulPlain}, {"mul_relin", &t.MulRelin}, {"rescale", &t.Rescale},
		{"rotate", &t.Rotate}, {"rotate_hoisted_8", &t.RotateHoisted8}, {"encode", &t.Encode}}
	for i, q := range required {
		r, ok := byOp[q.op]
		if !ok {
			return OpTimings{}, fmt.Errorf("no measured %q row (need add, mul_plain, mul_relin, rescale, rotate, rotate_hoisted_8, encode)", q.op)
		}
		if i == 0 {
			t.LogN, t.Level = r.LogN, r.LevelIn
		} else if r.LogN != t.LogN || r.LevelIn != t.Level {
			return OpTimings{}, fmt.Errorf("row %q measured at logN %d level %d, row \"add\" at logN %d level %d: one parameter set per file",
				q.op, r.LogN, r.LevelIn, t.LogN, t.Level)
		}
		*q.dst = r.MedianSeconds
	}
	if t.LogN < 1 || t.Level < 0 {
		return OpTimings{}, fmt.Errorf("rows measured at logN %d level %d", t.LogN, t.Level)
	}
	t.PCount = 3
	for _, p := range he.Presets() {
		if p.Literal.LogN == t.LogN && len(p.Literal.LogQ)-1 == t.Level && len(p.Literal.LogP) > 0 {
			t.PCount = len(p.Literal.LogP)
			break
		}
	}
	if r, ok := byOp["linear_transform_64"]; ok && r.LevelIn == t.Level {
		// the bench's 64×64 dense transform: n1 = 8 → 7 baby and 7 giant steps
		t.LinearTransform64, t.LT64Baby, t.LT64Giant = r.MedianSeconds, 7, r.KeySwitches-7
	}
	if r, ok := byOp["chebyshev_63"]; ok && r.KeySwitches > 0 {
		t.Chebyshev63, t.ChebyshevLevel, t.ChebyshevProducts = r.MedianSeconds, r.LevelIn, r.KeySwitches
	}
	t.Source = fmt.Sprintf("bench ops rows at logN %d level %d, bootstrap %.3g s at logN %d (default)", t.LogN, t.Level, t.Bootstrap, t.BootstrapLogN)
	if r, ok := byOp["bootstrap"]; ok {
		t.Bootstrap, t.BootstrapLogN = r.MedianSeconds, r.LogN
		t.Source = fmt.Sprintf("bench ops rows at logN %d level %d, bootstrap measured %.3g s at logN %d", t.LogN, t.Level, t.Bootstrap, t.BootstrapLogN)
	}
	return t, t.validate()
}

func (t OpTimings) validate() error {
	for _, v := range []float64{t.Add, t.MulPlain, t.MulRelin, t.Rescale, t.Rotate, t.RotateHoisted8, t.Encode, t.Bootstrap} {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("op timings: a primitive time is %g, want a positive finite number of seconds", v)
		}
	}
	if t.LogN < 1 || t.Level < 0 || t.PCount < 1 || t.BootstrapLogN < 1 {
		return fmt.Errorf("op timings: logN %d, level %d, special primes %d, bootstrap logN %d", t.LogN, t.Level, t.PCount, t.BootstrapLogN)
	}
	return nil
}

// Latency is the dry run's time estimate for one ciphertext of the circuit
// (InputsPerCiphertext inputs), in seconds.
type Latency struct {
	// Source is the timing table's (OpTimings.Source).
	Source string `json:"source"`
	// Serial is the sum over the planned ops of each op's cost on one
	// thread: the estimate of one ciphertext at --threads 1.
	Serial float64 `json:"serial"`
	// PerInput is Serial divided by the inputs one ciphertext carries.
	PerInput float64 `json:"per_input"`
	// CriticalPath is the most expensive dependency chain of the op graph
	// (hoisting groups as one task): no number of threads evaluates one
	// ciphertext faster. With W threads the estimate is at least
	// max(CriticalPath, Serial/W) (Bound).
	CriticalPath float64 `json:"critical_path"`
	// KeySwitching, Bootstrapping and Other split Serial: the rotations,
	// relinearizations and polynomial products; the bootstraps; the rest
	// (plaintext products, encodings, additions, rescales).
	KeySwitching  float64 `json:"key_switching"`
	Bootstrapping float64 `json:"bootstrapping"`
	Other         float64 `json:"other"`
}

// Bound returns the model's lower bound for one ciphertext with w >= 1
// threads: max(CriticalPath, Serial/w).
func (l Latency) Bound(w int) float64 {
	return math.Max(l.CriticalPath, l.Serial/float64(max(w, 1)))
}

// String is the report's line.
func (l Latency) String() string {
	return fmt.Sprintf("latency estimate (one thread): %.1f s per ciphertext (%.3g s per input): key switching %.1f s, bootstraps %.1f s, other %.1f s; critical path %.1f s (the floor with any number of threads); timings: %s",
		l.Serial, l.PerInput, l.KeySwitching, l.Bootstrapping, l.Other, l.CriticalPath, l.Source)
}

// opCost is one op's estimated seconds, split into key switching,
// bootstrapping and the rest.
type opCost struct{ ks, boot, other float64 }

func (c opCost) total() float64 { return c.ks + c.boot + c.other }

// pricer prices primitives at a level of the target parameters.
type pricer struct {
	t       OpTimings
	ring    float64 // N log N of the target over the table's
	bootFac float64 // N log N of the target over the bootstrap row's
	pCount  int
}

func newPricer(p *he.Parameters, t OpTimings) pricer {
	return pricer{t: t, ring: nLogN(p.LogN()) / nLogN(t.LogN), bootFac: nLogN(p.LogN()) / nLogN(t.BootstrapLogN), pCount: max(1, p.HE().PCount())}
}

func nLogN(logN int) float64 { return math.Exp2(float64(logN)) * float64(logN) }

// keySwitchWork is (l+1+P)·(ceil((l+1)/P)+1), the key-switch cost model.
func keySwitchWork(level, pCount int) float64 {
	q := level + 1
	return float64(q+pCount) * float64((q+pCount-1)/pCount+1)
}

// lin scales a non-key-switching primitive to level l.
func (p pricer) lin(sec float64, level int) float64 {
	return sec * p.ring * float64(level+1) / float64(p.t.Level+1)
}

// linQP scales a product measured in the table's Q·P basis (Level+1+PCount
// limbs) to level l of the target's Q·P basis.
func (p pricer) linQP(sec float64, level int) float64 {
	return sec * p.ring * float64(level+1+p.pCount) / float64(p.t.Level+1+p.t.PCount)
}

// ks scales a key-switching primitive measured at the table's level to l.
func (p pricer) ks(sec float64, level int) float64 {
	return p.ksFrom(sec, p.t.Level, level)
}

// ksFrom scales a key-switching cost measured at level from to level l.
func (p pricer) ksFrom(sec float64, from, level int) float64 {
	return sec * p.ring * keySwitchWork(level, p.pCount) / keySwitchWork(from, p.t.PCount)
}

// hoisted returns one hoisted rotation and the shared decomposition at the
// table's level: 8 hoisted = decomposition + 8 hoisted, 1 plain =
// decomposition + 1 hoisted.
func (p pricer) hoisted() (rot, decomp float64) {
	rot = math.Max(0, (p.t.RotateHoisted8-p.t.Rotate)/7)
	return rot, p.t.Rotate - rot
}

// diagonal is one diagonal's product-and-add at the table's level.
func (p pricer) diagonal() float64 {
	t := p.t
	if t.LinearTransform64 > 0 {
		rot, dec := p.hoisted()
		if d := (t.LinearTransform64 - dec - float64(t.LT64Baby)*rot - float64(t.LT64Giant)*t.Rotate - t.Rescale) / 64; d > 0 {
			return d
		}
	}
	return t.MulPlain + t.Add
}

// product is one relinearized product inside a polynomial evaluation, at
// the table's Chebyshev level less 3 (the middle of its 7 levels).
func (p pricer) product() (sec float64, level int) {
	t := p.t
	if t.Chebyshev63 > 0 && t.ChebyshevProducts > 0 {
		return t.Chebyshev63 / float64(t.ChebyshevProducts), t.ChebyshevLevel - 3
	}
	return t.MulRelin + t.Rescale, t.Level
}

// EstimateLatency prices every planned op of c for p with the table t (see
// OpTimings for the model) and returns the per-ciphertext estimate.
func EstimateLatency(c *Circuit, p *he.Parameters, t OpTimings) (Latency, error) {
	if c == nil || c.Planned == nil {
		return Latency{}, errors.New("latency estimate: circuit is not planned")
	}
	if p == nil || p.Fingerprint().String() != c.Planned.Fingerprint {
		return Latency{}, fmt.Errorf("latency estimate: circuit planned for %s: %w", c.Planned.Preset, he.ErrFingerprintMismatch)
	}
	if err := t.validate(); err != nil {
		return Latency{}, err
	}
	lts, err := c.transforms(p)
	if err != nil {
		return Latency{}, fmt.Errorf("latency estimate: %w", err)
	}
	costs := c.opCosts(lts, p, t)
	l := Latency{Source: t.Source}
	for _, oc := range costs {
		l.KeySwitching += oc.ks
		l.Bootstrapping += oc.boot
		l.Other += oc.other
	}
	l.Serial = l.KeySwitching + l.Bootstrapping + l.Other
	l.PerInput = l.Serial / float64(max(1, c.Layout.Batch))
	l.CriticalPath = c.criticalPath(costs)
	return l, nil
}

// opCosts returns the cost of each op (a hoisting group's shared
// decomposition on its first member; each transform's encoding once per
// matrix and level, as the executor's cache does for one ciphertext).
func (c *Circuit) opCosts(lts []*he.LinearTransform, p *he.Parameters, t OpTimings) []opCost {
	pr := newPricer(p, t)
	hRot, decomp := pr.hoisted()
	diag := pr.diagonal()
	prod, prodLevel := pr.product()
	encoded := map[encKey]bool{}
	reuse := babyReuse{}
	groupSeen := map[[2]int]bool{}
	costs := make([]opCost, len(c.Ops))
	for i, op := range c.Ops {
		// the level the op works at: its output's plus the levels it consumes
		level := c.Planned.Levels[i] + op.Levels()
		if op.Kind == KindBootstrap || op.Kind == KindDropLevel || op.Kind == KindInput {
			level = c.Planned.Levels[i]
		}
		var oc opCost
		switch op.Kind {
		case KindAdd, KindSub, KindAddConst, KindDropLevel:
			oc.other = pr.lin(t.Add, level)
		case KindAddPlain:
			oc.other = pr.lin(t.Encode+t.Add, level)
		case KindMulPlain:
			oc.other = pr.lin(t.Encode+t.MulPlain+t.Rescale, level)
		case KindMulConst, KindMatchScale:
			oc.other = pr.lin(t.Add+t.Rescale, level)
		case KindMul:
			oc.ks = pr.ks(t.MulRelin, level)
			oc.other = pr.lin(t.Rescale, level)
		case KindRotSum:
			oc.ks = float64(len(op.Rot)) * pr.ks(t.Rotate, level)
			oc.other = float64(len(op.Rot)) * pr.lin(t.Add, level)
		case KindRotate:
			if op.Group > 0 {
				key := [2]int{op.Group, op.In[0]}
				oc.ks = pr.ks(hRot, level)
				if !groupSeen[key] {
					groupSeen[key] = true
					oc.ks += pr.ks(decomp, level)
				}
			} else {
				oc.ks = pr.ks(t.Rotate, level)
			}
		case KindLinear:
			lt := lts[op.Mat]
			baby, giant := bsgsSplit(lt, p.Slots())
			nBaby := reuse.fresh(op, baby)
			key := [2]int{op.Group, op.In[0]}
			if op.Group == 0 || !groupSeen[key] {
				groupSeen[key] = true
				oc.ks += pr.ks(decomp, level)
			}
			oc.ks += float64(nBaby)*pr.ks(hRot, level) + float64(len(giant))*pr.ks(t.Rotate, level)
			// diagonals are multiplied in Q·P: l+1+P limbs
			nd := float64(len(lt.Diagonals()))
			qp := level + pr.pCount
			oc.other = nd*pr.linQP(diag, level) + pr.lin(t.Rescale, level)
			if ek := (encKey{op.Mat, level}); !encoded[ek] {
				encoded[ek] = true
				oc.other += nd * pr.lin(t.Encode, qp)
			}
		case KindPoly:
			n := polyapprox.CtMultsOfDegree(op.Poly.Degree())
			if n == 0 {
				oc.other = pr.lin(t.Add+t.Rescale, level)
				break
			}
			mid := max(0, level-op.Levels()/2)
			oc.ks = float64(n) * pr.ksFrom(prod, prodLevel, mid)
		case KindBootstrap:
			oc.boot = t.Bootstrap * pr.bootFac
		}
		costs[i] = oc
	}
	return costs
}

// criticalPath is the longest chain of op costs through the graph, a
// hoisting group finishing all its members together.
func (c *Circuit) criticalPath(costs []opCost) float64 {
	s := newSchedule(c)
	finish := make([]float64, len(c.Ops))
	longest := 0.0
	for i, op := range c.Ops {
		lead := s.leader[i]
		if lead != i {
			finish[i] = finish[lead]
			continue
		}
		start, work := 0.0, 0.0
		for _, m := range s.group(i) {
			for _, in := range c.Ops[m].In {
				start = math.Max(start, finish[in])
			}
			work += costs[m].total()
		}
		_ = op
		finish[i] = start + work
		longest = math.Max(longest, finish[i])
	}
	return longest
}

// EstimateFromCounts is the model for a circuit known only by its totals
// (a recorded dry run whose ops are gone): every key switch priced as one
// rotation at the middle level MaxLevel/2 of p, every bootstrap at the
// table's price, and nothing else — plaintext products, encodings,
// additions and rescales are left out, so it is below what EstimateLatency
// gives for the same circuit. CriticalPath is 0 (unknown).
func EstimateFromCounts(keySwitches, bootstraps, inputsPerCiphertext int, p *he.Parameters, t OpTimings) (Latency, error) {
	if p == nil {
		return Latency{}, errors.New("latency estimate: nil parameters")
	}
	if keySwitches < 0 || bootstraps < 0 {
		return Latency{}, fmt.Errorf("latency estimate: %d key switches, %d bootstraps", keySwitches, bootstraps)
	}
	if err := t.validate(); err != nil {
		return Latency{}, err
	}
	pr := newPricer(p, t)
	l := Latency{Source: t.Source + "; from recorded counts: key switches at level " + fmt.Sprint(p.MaxLevel()/2) + ", no plaintext work"}
	l.KeySwitching = float64(keySwitches) * pr.ks(t.Rotate, p.MaxLevel()/2)
	l.Bootstrapping = float64(bootstraps) * t.Bootstrap * pr.bootFac
	l.Serial = l.KeySwitching + l.Bootstrapping
	l.PerInput = l.Serial / float64(max(1, inputsPerCiphertext))
	return l, nil
}

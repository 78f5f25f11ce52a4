package he

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// DefaultScaleTolerance is the default relative scale mismatch that additions
// accept without correction. Adding two ciphertexts whose scales differ by a
// relative amount r silently multiplies one operand by (1+r); 1e-9 keeps that
// error well below CKKS noise for values of magnitude up to ~100 at scale 2^40.
const DefaultScaleTolerance = 1e-9

// LevelError reports that an operation needs more levels than its input
// ciphertext has left. Test for it with errors.As.
type LevelError struct {
	Op     string // operation name
	Needed int    // levels the operation consumes
	Left   int    // levels the ciphertext has left
}

// Error implements error.
func (e *LevelError) Error() string {
	return fmt.Sprintf("%s: needs %d levels, ciphertext has %d left", e.Op, e.Needed, e.Left)
}

// ErrNoBootstrapper is returned by Evaluator.Bootstrap when no bootstrapper
// was attached with WithBootstrapper.
var ErrNoBootstrapper = errors.New("he: no bootstrapper attached to the evaluator")

// Evaluator is a traced CKKS evaluator wrapping Lattigo's hefloat.Evaluator.
// Every operation appends an OpRecord (kind, label, level and log2 scale in
// and out, key-switch count, wall time) to the Trace given to NewEvaluator
// (nil disables tracing).
//
// Scale discipline: plaintext and constant multiplicands are encoded at the
// scale Q[level] of the level they are applied at, so that the following
// Rescale returns exactly the ciphertext's previous scale. Additions of two
// ciphertexts go through AlignForAdd, which brings them to the same level and
// scale or returns an error instead of silently losing precision.
//
// Thread safety: an Evaluator is NOT safe for concurrent use; it owns
// Lattigo's scratch buffers. WithLabel returns a view that shares those
// buffers (cheap, same goroutine only). For concurrency give every goroutine
// its own ShallowCopy (or use RunParallel); all copies may share one Trace,
// which is safe for concurrent use.
type Evaluator struct {
	p        *Parameters
	params   hefloat.Parameters
	eval     *hefloat.Evaluator
	ecd      *hefloat.Encoder
	keys     rlwe.EvaluationKeySet
	btp      CiphertextBootstrapper
	trace    *Trace
	label    string
	worker   int
	scaleTol float64
}

// NewEvaluator returns a traced evaluator for p (not nil) with the
// evaluation keys keys (nil is allowed: operations needing a key then return
// an error) and the trace (nil disables tracing). The keys must have been
// made for p: callers that load them check the fingerprint (ReadEvaluationKeys
// and the circuit executor do).
func NewEvaluator(p *Parameters, keys *EvaluationKeys, trace *Trace) *Evaluator {
	var set rlwe.EvaluationKeySet
	if keys != nil {
		set = keys.set
	}
	params := p.HE()
	return &Evaluator{
		p:        p,
		params:   params,
		eval:     hefloat.NewEvaluator(params, set),
		ecd:      hefloat.NewEncoder(params),
		keys:     set,
		trace:    trace,
		scaleTol: DefaultScaleTolerance,
	}
}

// WithLabel returns a view of the evaluator whose records carry label. The
// view shares the scratch buffers, keys, bootstrapper and trace of e: it is
// cheap (one small struct) but must be used from the same goroutine as e.
func (e *Evaluator) WithLabel(label string) *Evaluator {
	c := *e
	c.label = label
	return &c
}

// WithScaleTolerance returns a view (sharing buffers, like WithLabel) whose
// additions accept a relative scale mismatch up to tol. It returns an error
// for a negative or non-finite tol.
func (e *Evaluator) WithScaleTolerance(tol float64) (*Evaluator, error) {
	if tol < 0 || math.IsNaN(tol) || math.IsInf(tol, 0) {
		return nil, fmt.Errorf("he: scale tolerance %g must be finite and >= 0", tol)
	}
	c := *e
	c.scaleTol = tol
	return &c, nil
}

// WithBootstrapper returns a view (sharing buffers, like WithLabel) that
// bootstraps with btp (a Bootstrapper, or NewSecretKeyBootstrapper in
// tests). Bootstrappers are not safe for concurrent use: give each goroutine
// its own.
func (e *Evaluator) WithBootstrapper(btp CiphertextBootstrapper) *Evaluator {
	c := *e
	c.btp = btp
	return &c
}

// ShallowCopy returns an evaluator with fresh scratch buffers that shares the
// parameters, keys, trace, label and bootstrapper of e; it may run
// concurrently with e. (The bootstrapper is shared as is: attach a separate
// one per goroutine if copies bootstrap concurrently.)
func (e *Evaluator) ShallowCopy() *Evaluator {
	c := *e
	c.eval = e.eval.ShallowCopy()
	c.ecd = e.ecd.ShallowCopy()
	return &c
}

// Parameters returns the parameters the evaluator was made for.
func (e *Evaluator) Parameters() *Parameters { return e.p }

// Trace returns the trace the evaluator records into (possibly nil).
func (e *Evaluator) Trace() *Trace { return e.trace }

// Label returns the label attached to the records of this view.
func (e *Evaluator) Label() string { return e.label }

// Lattigo returns the wrapped Lattigo evaluator, for operations this package
// does not cover; for packages under he/ only (Lattigo types stay inside
// he/). Operations done through it are not traced.
func (e *Evaluator) Lattigo() *hefloat.Evaluator { return e.eval }

// Encoder returns the evaluator's Lattigo encoder (not safe for concurrent
// use; see ShallowCopy); for packages under he/ only.
func (e *Evaluator) Encoder() *hefloat.Encoder { return e.ecd }

// ---------------------------------------------------------------------------
// recording helpers

type opStart struct {
	level int
	scale float64
	t     time.Time
}

func (e *Evaluator) begin(ct *Ciphertext) opStart {
	if e.trace == nil {
		return opStart{}
	}
	return opStart{level: ct.Level(), scale: logScale(ct.Scale), t: time.Now()}
}

func (e *Evaluator) end(s opStart, kind OpKind, out *Ciphertext, ks, rots int, hoisted bool, note string) {
	e.endKeys(s, kind, out, ks, rots, hoisted, note, nil)
}

// endKeys is end for an op that used switching keys.
func (e *Evaluator) endKeys(s opStart, kind OpKind, out *Ciphertext, ks, rots int, hoisted bool, note string, uses []KeyUse) {
	if e.trace == nil {
		return
	}
	d := time.Since(s.t)
	r := OpRecord{
		Kind: kind, Label: e.label, Worker: e.worker,
		LevelIn: s.level, LogScaleIn: s.scale,
		KeySwitches: ks, Rotations: rots, Hoisted: hoisted,
		Duration: d, Note: note, KeyUses: uses,
	}
	if out != nil {
		r.LevelOut = out.Level()
		r.LogScaleOut = logScale(out.Scale)
	} else {
		r.LevelOut = s.level
		r.LogScaleOut = s.scale
	}
	e.trace.Record(r)
}

func logScale(s rlwe.Scale) float64 { return math.Log2(s.Float64()) }

func checkCt(op string, cts ...*Ciphertext) error {
	for i, ct := range cts {
		if ct == nil {
			return fmt.Errorf("%s: ciphertext operand %d is nil", op, i)
		}
		if ct.Degree() != 1 {
			return fmt.Errorf("%s: ciphertext operand %d has degree %d, want 1 (relinearize first)", op, i, ct.Degree())
		}
	}
	return nil
}

// levelsLeft returns the number of rescalings a ciphertext can still undergo.
func (e *Evaluator) levelsLeft(ct *Ciphertext) int {
	return ct.Level() / e.params.LevelsConsumedPerRescaling()
}

// needLevels returns a *LevelError when ct has fewer than n levels left.
func (e *Evaluator) needLevels(op string, ct *Ciphertext, n int) error {
	if left := e.levelsLeft(ct); left < n {
		return &LevelError{Op: op, Needed: n, Left: left}
	}
	return nil
}

// rescaleFactor returns the product of the moduli a Rescale at level divides
// by (Q[level] for one prime per rescale).
func (e *Evaluator) rescaleFactor(level int) rlwe.Scale {
	q := e.params.Q()
	s := rlwe.NewScale(q[level])
	for i := 1; i < e.params.LevelsConsumedPerRescaling(); i++ {
		s = s.Mul(rlwe.NewScale(q[level-i]))
	}
	return s
}

// mulConstAtScale multiplies ct by the constant c encoded as the integer
// round(c*scale) and labels the result with scale ct.Scale*scale. The
// integer encoding bypasses Lattigo's special case that does not scale
// integer-valued constants (which would break a following Rescale).
func (e *Evaluator) mulConstAtScale(ct *Ciphertext, c float64, scale rlwe.Scale) (*Ciphertext, error) {
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("constant %g is not finite", c)
	}
	v := new(big.Float).SetPrec(256).SetFloat64(c)
	v.Mul(v, &scale.Value)
	if v.Sign() >= 0 {
		v.Add(v, big.NewFloat(0.5))
	} else {
		v.Sub(v, big.NewFloat(0.5))
	}
	k, _ := v.Int(nil)
	out := hefloat.NewCiphertext(e.params, 1, ct.Level())
	if err := e.eval.Mul(ct, k, out); err != nil {
		return nil, err
	}
	out.Scale = ct.Scale.Mul(scale)
	return out, nil
}

// addConstNew returns ct + c. It adds in place on a copy: Lattigo v5.0.7's
// AddNew with a scalar labels the output with the default scale instead of
// ct's scale, which silently scales the result by DefaultScale/ct.Scale
// (measured: error 7.7e-7 for c=1 after one MulRelin+Rescale at logN 12).
func (e *Evaluator) addConstNew(ct *Ciphertext, c float64) (*Ciphertext, error) {
	out := ct.CopyNew()
	if err := e.eval.Add(out, c, out); err != nil {
		return nil, err
	}
	out.Scale = ct.Scale
	return out, nil
}

// relScaleDiff returns |a/b - 1|.
func relScaleDiff(a, b rlwe.Scale) float64 {
	r, _ := new(big.Float).Quo(&a.Value, &b.Value).Float64()
	return math.Abs(r - 1)
}

// ---------------------------------------------------------------------------
// encoding

// EncodeMul encodes values as a plaintext multiplicand for a ciphertext at
// level: the plaintext is at that level with scale Q[level], so that Rescale
// after MulPlain restores the ciphertext's scale exactly.
func (e *Evaluator) EncodeMul(values []float64, level int) (*Plaintext, error) {
	if level < 0 || level > e.params.MaxLevel() {
		return nil, fmt.Errorf("encode multiplicand: level %d outside [0, %d]", level, e.params.MaxLevel())
	}
	if len(values) > e.params.MaxSlots() {
		return nil, fmt.Errorf("encode multiplicand: %d values > %d slots", len(values), e.params.MaxSlots())
	}
	pt := hefloat.NewPlaintext(e.params, level)
	pt.Scale = e.rescaleFactor(level)
	if err := e.ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("encode multiplicand: %w", err)
	}
	return pt, nil
}

// EncodeAdd encodes values as a plaintext addend for ct (same level and scale).
func (e *Evaluator) EncodeAdd(values []float64, ct *Ciphertext) (*Plaintext, error) {
	if ct == nil {
		return nil, errors.New("encode addend: nil ciphertext")
	}
	if len(values) > e.params.MaxSlots() {
		return nil, fmt.Errorf("encode addend: %d values > %d slots", len(values), e.params.MaxSlots())
	}
	pt := hefloat.NewPlaintext(e.params, ct.Level())
	pt.Scale = ct.Scale
	if err := e.ecd.Encode(values, pt); err != nil {
		return nil, fmt.Errorf("encode addend: %w", err)
	}
	return pt, nil
}

// ---------------------------------------------------------------------------
// additions

// AlignForAdd returns copies of a and b (or a and b themselves when nothing
// needs to change) at the same level and the same scale, ready to be added.
//
//   - Different levels: the higher operand is brought down to the lower one.
//     If its scale differs from the lower operand's by more than the
//     tolerance, it is first multiplied by 1 encoded at the scale that makes
//     the following Rescale land exactly on the other operand's scale; this
//     uses one of the levels it would drop anyway, so it is free.
//   - Same level: if the scales differ by a near-integer ratio k (relative
//     rounding error <= tolerance), the smaller one is multiplied by k.
//     Otherwise AlignForAdd returns an error: fixing it would consume a level
//     (use MatchScale explicitly).
func (e *Evaluator) AlignForAdd(a, b *Ciphertext) (*Ciphertext, *Ciphertext, error) {
	if err := checkCt("align for add", a, b); err != nil {
		return nil, nil, err
	}
	swapped := false
	if a.Level() < b.Level() {
		a, b = b, a
		swapped = true
	}
	// now a.Level() >= b.Level()
	var err error
	if a.Level() > b.Level() {
		a, err = e.bringDown(a, b.Level(), b.Scale)
	} else {
		a, b, err = e.alignSameLevel(a, b)
	}
	if err != nil {
		return nil, nil, err
	}
	if swapped {
		a, b = b, a
	}
	return a, b, nil
}

// bringDown returns ct at level lvl with scale target, using one of the
// dropped levels for an exact scale change when needed.
func (e *Evaluator) bringDown(ct *Ciphertext, lvl int, target rlwe.Scale) (*Ciphertext, error) {
	s := e.begin(ct)
	if relScaleDiff(ct.Scale, target) <= e.scaleTol {
		out := e.eval.DropLevelNew(ct, ct.Level()-lvl)
		out.Scale = target
		e.end(s, OpAlign, out, 0, 0, false, "drop levels")
		return out, nil
	}
	lcr := e.params.LevelsConsumedPerRescaling()
	if ct.Level()-lvl < lcr {
		return nil, fmt.Errorf("align for add: scales 2^%.6f and 2^%.6f differ and level gap %d is too small to fix them without a level", logScale(ct.Scale), logScale(target), ct.Level()-lvl)
	}
	out, err := e.scaleTo(ct, target)
	if err != nil {
		return nil, fmt.Errorf("align for add: %w", err)
	}
	e.eval.DropLevel(out, out.Level()-lvl)
	e.end(s, OpAlign, out, 0, 0, false, "exact scale change on a dropped level")
	return out, nil
}

// scaleTo multiplies ct by 1 encoded at scale target*Q[level]/ct.Scale and
// rescales: the result has one level less and exactly the scale target.
func (e *Evaluator) scaleTo(ct *Ciphertext, target rlwe.Scale) (*Ciphertext, error) {
	q := e.rescaleFactor(ct.Level())
	t := target.Mul(q).Div(ct.Scale)
	if t.Float64() < 1<<20 {
		return nil, fmt.Errorf("scale change from 2^%.3f to 2^%.3f needs a multiplier 2^%.1f < 2^20 (rescale first)", logScale(ct.Scale), logScale(target), logScale(t))
	}
	out, err := e.mulConstAtScale(ct, 1, t)
	if err != nil {
		return nil, err
	}
	if err = e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	out.Scale = target // exact up to the rounding of t to an integer (relative 2^-21 or better)
	return out, nil
}

func (e *Evaluator) alignSameLevel(a, b *Ciphertext) (*Ciphertext, *Ciphertext, error) {
	if relScaleDiff(a.Scale, b.Scale) <= e.scaleTol {
		return a, b, nil
	}
	swapped := false
	if a.Scale.Cmp(b.Scale) < 0 {
		a, b = b, a
		swapped = true
	}
	// a has the larger scale; is the ratio a near-integer?
	ratio := new(big.Float).Quo(&a.Scale.Value, &b.Scale.Value)
	k, _ := new(big.Float).Add(ratio, big.NewFloat(0.5)).Int(nil)
	kf := new(big.Float).SetInt(k)
	rel, _ := new(big.Float).Quo(new(big.Float).Sub(kf, ratio), ratio).Float64()
	if k.Sign() <= 0 || math.Abs(rel) > e.scaleTol || k.Cmp(big.NewInt(1)) == 0 {
		return nil, nil, fmt.Errorf("align for add: scales 2^%.9f and 2^%.9f differ by a relative %.3g > tolerance %.3g at the same level %d; "+
			"adding them would lose precision silently: use MatchScale (costs a level) or plan the scales", logScale(a.Scale), logScale(b.Scale), relScaleDiff(a.Scale, b.Scale), e.scaleTol, a.Level())
	}
	s := e.begin(b)
	nb := hefloat.NewCiphertext(e.params, 1, b.Level())
	if err := e.eval.Mul(b, k, nb); err != nil {
		return nil, nil, fmt.Errorf("align for add: %w", err)
	}
	nb.Scale = a.Scale
	e.end(s, OpAlign, nb, 0, 0, false, "integer scale ratio")
	if swapped {
		return nb, a, nil
	}
	return a, nb, nil
}

// MatchScale returns ct with exactly the given scale, at one level less
// (ct × 1 encoded at the right scale, then Rescale). Use it before adding
// ciphertexts whose scales drifted apart at the same level.
func (e *Evaluator) MatchScale(ct *Ciphertext, scale rlwe.Scale) (*Ciphertext, error) {
	if err := checkCt("match scale", ct); err != nil {
		return nil, err
	}
	if err := e.needLevels("match scale", ct, 1); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	out, err := e.scaleTo(ct, scale)
	if err != nil {
		return nil, fmt.Errorf("match scale: %w", err)
	}
	e.end(s, OpAlign, out, 0, 0, false, "match scale (1 level)")
	return out, nil
}

// Add returns a + b after AlignForAdd.
func (e *Evaluator) Add(a, b *Ciphertext) (*Ciphertext, error) {
	return e.addSub(OpAdd, a, b)
}

// Sub returns a - b after AlignForAdd.
func (e *Evaluator) Sub(a, b *Ciphertext) (*Ciphertext, error) {
	return e.addSub(OpSub, a, b)
}

func (e *Evaluator) addSub(kind OpKind, a, b *Ciphertext) (*Ciphertext, error) {
	a2, b2, err := e.AlignForAdd(a, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	s := e.begin(a2)
	var out *Ciphertext
	if kind == OpAdd {
		out, err = e.eval.AddNew(a2, b2)
	} else {
		out, err = e.eval.SubNew(a2, b2)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	out.Scale = a2.Scale
	e.end(s, kind, out, 0, 0, false, "")
	return out, nil
}

// AddPlain returns ct + pt. The plaintext must have ct's scale (within the
// tolerance; see EncodeAdd) and at least ct's level.
func (e *Evaluator) AddPlain(ct *Ciphertext, pt *Plaintext) (*Ciphertext, error) {
	return e.addSubPlain(OpAddPlain, ct, pt)
}

// SubPlain returns ct - pt (same requirements as AddPlain).
func (e *Evaluator) SubPlain(ct *Ciphertext, pt *Plaintext) (*Ciphertext, error) {
	return e.addSubPlain(OpSubPlain, ct, pt)
}

func (e *Evaluator) addSubPlain(kind OpKind, ct *Ciphertext, pt *Plaintext) (*Ciphertext, error) {
	if err := checkCt(string(kind), ct); err != nil {
		return nil, err
	}
	if pt == nil {
		return nil, fmt.Errorf("%s: nil plaintext", kind)
	}
	if pt.Level() < ct.Level() {
		return nil, fmt.Errorf("%s: plaintext at level %d below ciphertext level %d", kind, pt.Level(), ct.Level())
	}
	if d := relScaleDiff(ct.Scale, pt.Scale); d > e.scaleTol {
		return nil, fmt.Errorf("%s: plaintext scale 2^%.6f differs from ciphertext scale 2^%.6f (relative %.3g > %.3g); encode with EncodeAdd",
			kind, logScale(pt.Scale), logScale(ct.Scale), d, e.scaleTol)
	}
	s := e.begin(ct)
	var out *Ciphertext
	var err error
	if kind == OpAddPlain {
		out, err = e.eval.AddNew(ct, pt)
	} else {
		out, err = e.eval.SubNew(ct, pt)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	out.Scale = ct.Scale
	e.end(s, kind, out, 0, 0, false, "")
	return out, nil
}

// AddConst returns ct + c (c encoded at ct's scale, no level).
func (e *Evaluator) AddConst(ct *Ciphertext, c float64) (*Ciphertext, error) {
	return e.addSubConst(OpAddConst, ct, c)
}

// SubConst returns ct - c (no level).
func (e *Evaluator) SubConst(ct *Ciphertext, c float64) (*Ciphertext, error) {
	return e.addSubConst(OpSubConst, ct, c)
}

func (e *Evaluator) addSubConst(kind OpKind, ct *Ciphertext, c float64) (*Ciphertext, error) {
	if err := checkCt(string(kind), ct); err != nil {
		return nil, err
	}
	if math.IsNaN(c) || math.IsInf(c, 0) {
		return nil, fmt.Errorf("%s: constant %g is not finite", kind, c)
	}
	s := e.begin(ct)
	if kind == OpSubConst {
		c = -c
	}
	out, err := e.addConstNew(ct, c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", kind, err)
	}
	e.end(s, kind, out, 0, 0, false, "")
	return out, nil
}

// ---------------------------------------------------------------------------
// multiplications

// MulPlain returns ct × pt, not rescaled. Encode pt with EncodeMul at ct's
// level so that Rescale restores ct's scale exactly.
func (e *Evaluator) MulPlain(ct *Ciphertext, pt *Plaintext) (*Ciphertext, error) {
	if err := checkCt("mul plain", ct); err != nil {
		return nil, err
	}
	if pt == nil {
		return nil, errors.New("mul plain: nil plaintext")
	}
	if pt.Level() < ct.Level() {
		return nil, fmt.Errorf("mul plain: plaintext at level %d below ciphertext level %d (encode at the level where it is applied)", pt.Level(), ct.Level())
	}
	s := e.begin(ct)
	out, err := e.eval.MulNew(ct, pt)
	if err != nil {
		return nil, fmt.Errorf("mul plain: %w", err)
	}
	e.end(s, OpMulPlain, out, 0, 0, false, "")
	return out, nil
}

// MulVector returns ct × values (slot-wise), not rescaled; values are encoded
// at scale Q[level].
func (e *Evaluator) MulVector(ct *Ciphertext, values []float64) (*Ciphertext, error) {
	if err := checkCt("mul vector", ct); err != nil {
		return nil, err
	}
	if len(values) > e.params.MaxSlots() {
		return nil, fmt.Errorf("mul vector: %d values > %d slots", len(values), e.params.MaxSlots())
	}
	s := e.begin(ct)
	out, err := e.eval.MulNew(ct, values)
	if err != nil {
		return nil, fmt.Errorf("mul vector: %w", err)
	}
	e.end(s, OpMulPlain, out, 0, 0, false, "vector")
	return out, nil
}

// MulConst returns ct × c, not rescaled; c is encoded at scale Q[level]
// (also when c is an integer), so Rescale restores ct's scale exactly.
func (e *Evaluator) MulConst(ct *Ciphertext, c float64) (*Ciphertext, error) {
	if err := checkCt("mul const", ct); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	out, err := e.mulConstAtScale(ct, c, e.rescaleFactor(ct.Level()))
	if err != nil {
		return nil, fmt.Errorf("mul const: %w", err)
	}
	e.end(s, OpMulConst, out, 0, 0, false, "")
	return out, nil
}

// MulRelin returns a × b relinearized (1 key switch), not rescaled. Operands
// at different levels are multiplied at the lower level.
func (e *Evaluator) MulRelin(a, b *Ciphertext) (*Ciphertext, error) {
	if err := checkCt("mul relin", a, b); err != nil {
		return nil, err
	}
	level := min(a.Level(), b.Level())
	if err := e.checkRelinKey("mul relin", level); err != nil {
		return nil, err
	}
	s := e.begin(a)
	out, err := e.eval.MulRelinNew(a, b)
	if err != nil {
		return nil, fmt.Errorf("mul relin: %w", err)
	}
	e.endKeys(s, OpMulRelin, out, 1, 0, false, "", []KeyUse{{Level: level}})
	return out, nil
}

// checkRelinKey checks that the relinearization key is present and at
// least at level (a key below the ciphertext's level gives garbage without
// any error in Lattigo v5.0.7).
func (e *Evaluator) checkRelinKey(op string, level int) error {
	if e.keys == nil {
		return fmt.Errorf("%s: no evaluation keys (relinearization key needed)", op)
	}
	rlk, err := e.keys.GetRelinearizationKey()
	if err != nil || rlk == nil {
		return fmt.Errorf("%s: relinearization key missing from the evaluation key set", op)
	}
	if rlk.LevelQ() < level {
		return fmt.Errorf("%s: %w: the relinearization key is at level %d, the ciphertext at level %d", op, ErrKeyLevel, rlk.LevelQ(), level)
	}
	return nil
}

// ErrKeyLevel is wrapped by errors refusing a switching key whose level is
// below the level of the ciphertext it would switch.
var ErrKeyLevel = errors.New("key below the ciphertext's level")

// Rescale divides ct by its last modulus (1 level) and returns the result.
func (e *Evaluator) Rescale(ct *Ciphertext) (*Ciphertext, error) {
	if ct == nil {
		return nil, errors.New("rescale: nil ciphertext")
	}
	if err := e.needLevels("rescale", ct, 1); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	out := hefloat.NewCiphertext(e.params, ct.Degree(), ct.Level())
	if err := e.eval.Rescale(ct, out); err != nil {
		return nil, fmt.Errorf("rescale: %w", err)
	}
	e.end(s, OpRescale, out, 0, 0, false, "")
	return out, nil
}

// MulRelinRescale returns a × b relinearized and rescaled (1 level).
func (e *Evaluator) MulRelinRescale(a, b *Ciphertext) (*Ciphertext, error) {
	lvl := a
	if b != nil && a != nil && b.Level() < a.Level() {
		lvl = b
	}
	if lvl != nil {
		if err := e.needLevels("mul relin rescale", lvl, 1); err != nil {
			return nil, err
		}
	}
	out, err := e.MulRelin(a, b)
	if err != nil {
		return nil, err
	}
	return e.Rescale(out)
}

// DropLevel returns ct with n levels dropped (no division, scale unchanged).
func (e *Evaluator) DropLevel(ct *Ciphertext, n int) (*Ciphertext, error) {
	if ct == nil {
		return nil, errors.New("drop level: nil ciphertext")
	}
	if n < 0 || n > ct.Level() {
		return nil, fmt.Errorf("drop level: cannot drop %d levels from a level-%d ciphertext", n, ct.Level())
	}
	s := e.begin(ct)
	out := e.eval.DropLevelNew(ct, n)
	e.end(s, OpDropLevel, out, 0, 0, false, "")
	return out, nil
}

// ---------------------------------------------------------------------------
// rotations

func (e *Evaluator) normRot(k int) int {
	slots := e.params.MaxSlots()
	k %= slots
	if k < 0 {
		k += slots
	}
	return k
}

// checkRotKey checks that the key for rotation k is present and at least
// at level (a key below the ciphertext's level gives garbage without any
// error in Lattigo v5.0.7).
func (e *Evaluator) checkRotKey(op string, k, level int) error {
	if e.normRot(k) == 0 {
		return nil
	}
	if e.keys == nil {
		return fmt.Errorf("%s: no evaluation keys (Galois key for rotation %d needed)", op, k)
	}
	galEl := e.params.GaloisElement(k)
	gk, err := e.keys.GetGaloisKey(galEl)
	if err != nil || gk == nil {
		return fmt.Errorf("%s: Galois key for rotation %d (element %d) missing from the evaluation key set", op, k, galEl)
	}
	if gk.LevelQ() < level {
		return fmt.Errorf("%s: %w: the Galois key for rotation %d (element %d) is at level %d, the ciphertext at level %d", op, ErrKeyLevel, k, galEl, gk.LevelQ(), level)
	}
	return nil
}

// rotUses returns the key uses of rotations ks at level (zero rotations
// need no key).
func (e *Evaluator) rotUses(ks []int, level int) []KeyUse {
	if e.trace == nil {
		return nil
	}
	var out []KeyUse
	seen := map[uint64]bool{}
	for _, k := range ks {
		if e.normRot(k) == 0 {
			continue
		}
		g := e.params.GaloisElement(k)
		if !seen[g] {
			seen[g] = true
			out = append(out, KeyUse{GaloisElement: g, Level: level})
		}
	}
	return out
}

// Rotate returns ct rotated left by k slots (negative k rotates right);
// 1 key switch (0 when k ≡ 0 mod slots).
func (e *Evaluator) Rotate(ct *Ciphertext, k int) (*Ciphertext, error) {
	if err := checkCt("rotate", ct); err != nil {
		return nil, err
	}
	if err := e.checkRotKey("rotate", k, ct.Level()); err != nil {
		return nil, err
	}
	s := e.begin(ct)
	if e.normRot(k) == 0 {
		out := ct.CopyNew()
		e.end(s, OpRotate, out, 0, 0, false, "rotation by 0")
		return out, nil
	}
	out, err := e.eval.RotateNew(ct, k)
	if err != nil {
		return nil, fmt.Errorf("rotate by %d: %w", k, err)
	}
	e.endKeys(s, OpRotate, out, 1, 1, false, "", e.rotUses([]int{k}, ct.Level()))
	return out, nil
}

// RotateHoisted returns ct rotated left by each k in ks, sharing one
// key-switching decomposition (hoisting). Key switches: one per distinct
// non-zero rotation; the decomposition is done once.
func (e *Evaluator) RotateHoisted(ct *Ciphertext, ks []int) (map[int]*Ciphertext, error) {
	if err := checkCt("rotate hoisted", ct); err != nil {
		return nil, err
	}
	if len(ks) == 0 {
		return nil, errors.New("rotate hoisted: no rotations")
	}
	distinct := map[int]bool{}
	var rots []int
	for _, k := range ks {
		if err := e.checkRotKey("rotate hoisted", k, ct.Level()); err != nil {
			return nil, err
		}
		if !distinct[k] {
			distinct[k] = true
			rots = append(rots, k)
		}
	}
	var nonzero []int
	for _, k := range rots {
		if e.normRot(k) != 0 {
			nonzero = append(nonzero, k)
		}
	}
	s := e.begin(ct)
	out := map[int]*Ciphertext{}
	if len(nonzero) > 0 {
		var err error
		if out, err = e.eval.RotateHoistedNew(ct, nonzero); err != nil {
			return nil, fmt.Errorf("rotate hoisted: %w", err)
		}
	}
	for _, k := range rots {
		if e.normRot(k) == 0 {
			out[k] = ct.CopyNew()
		}
	}
	e.endKeys(s, OpRotateHoisted, out[rots[0]], len(nonzero), len(nonzero), true, fmt.Sprintf("%d rotations, 1 shared decomposition", len(nonzero)), e.rotUses(nonzero, ct.Level()))
	return out, nil
}

// ---------------------------------------------------------------------------
// bootstrapping

// Bootstrap refreshes ct's levels with the attached bootstrapper (see
// WithBootstrapper) and returns the new ciphertext; ct is left unchanged. It
// returns ErrNoBootstrapper (wrapped) when none is attached.
func (e *Evaluator) Bootstrap(ct *Ciphertext) (*Ciphertext, error) {
	if err := checkCt("bootstrap", ct); err != nil {
		return nil, err
	}
	if e.btp == nil {
		return nil, fmt.Errorf("bootstrap: %w", ErrNoBootstrapper)
	}
	if min := e.btp.MinimumInputLevel(); ct.Level() < min {
		return nil, fmt.Errorf("bootstrap: input level %d below the bootstrapper's minimum %d", ct.Level(), min)
	}
	s := e.begin(ct)
	out, err := e.btp.Bootstrap(ct.CopyNew())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	e.end(s, OpBootstrap, out, 0, 0, false, "key switches inside bootstrapping not counted")
	return out, nil
}

package circuit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"runtime"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"

	"github.com/polyformer/polyformer/he"
)

// ExecOptions control an Executor.
type ExecOptions struct {
	// Workers is the number of goroutines (0: runtime.NumCPU()). Independent ops (input
	// ciphertexts, attention diagonals, heads' chains) run concurrently,
	// each worker on its own evaluator copy.
	Workers int
	// Trace receives every op record (labels are the layer names); nil: none.
	Trace *he.Trace
	// Bootstrapper is used for bootstrap ops; nil builds he.NewBootstrapper
	// from the evaluation keys when the circuit bootstraps. Tests may pass
	// he.NewSecretKeyBootstrapper (insecure).
	Bootstrapper he.CiphertextBootstrapper
	// Probe, with ProbeOps, receives a copy of the output of the selected
	// ops (input ciphertext index, op id) for per-layer error measurement.
	Probe    func(ct, op int, v *he.Ciphertext)
	ProbeOps func(op int) bool
	// Chunk bounds how many input ciphertexts are evaluated together (0:
	// Workers). Smaller chunks bound memory (live ciphertexts); encoded
	// linear transforms are shared within a chunk and re-encoded per chunk.
	Chunk int
	// Context, when non-nil, stops the evaluation between ops once it is
	// done (deadline or cancellation): Run then returns its error.
	Context context.Context
}

// Executor evaluates a planned circuit on encrypted inputs.
type Executor struct {
	c      *Circuit
	params *he.Parameters
	lts    []*he.LinearTransform
	ev     *he.Evaluator
	opt    ExecOptions
	btp    he.CiphertextBootstrapper
	btpMu  sync.Mutex
}

// NewExecutor checks that the planned circuit c was made for params p and
// that keys hold every key it uses, and returns an executor.
func NewExecutor(c *Circuit, p *he.Parameters, keys *he.EvaluationKeys, opt ExecOptions) (*Executor, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if c.Planned == nil {
		return nil, errors.New("executor: circuit is not planned for a parameter set (run Plan)")
	}
	if p == nil || keys == nil {
		return nil, errors.New("executor: nil parameters or evaluation keys")
	}
	if c.Planned.Fingerprint != p.Fingerprint().String() {
		return nil, fmt.Errorf("executor: circuit was planned for preset %s (fingerprint %.16s), parameters are %s (%s): %w",
			c.Planned.Preset, c.Planned.Fingerprint, p.Name(), p.Fingerprint().Short(), he.ErrFingerprintMismatch)
	}
	if c.Layout.Slots() > p.Slots() {
		return nil, fmt.Errorf("executor: the layout needs %d slots, parameters have %d", c.Layout.Slots(), p.Slots())
	}
	if keys.Parameters() == nil || keys.Parameters().Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("executor: evaluation keys were made for other parameters: %w", he.ErrFingerprintMismatch)
	}
	k := c.Planned.Keys
	if k.Relinearization && !keys.HasRelinearization() {
		return nil, errors.New("executor: the relinearization key is missing")
	}
	var missing []int
	for _, r := range k.Rotations {
		if !keys.HasRotation(r) {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("executor: %d of %d rotation keys are missing (e.g. rotation %d); generate keys from the circuit's key spec",
			len(missing), len(k.Rotations), missing[0])
	}
	for i, op := range c.Ops {
		if op.Kind == KindBootstrap {
			if _, err := bootstrapPreScale(op.Const); err != nil {
				return nil, fmt.Errorf("executor: op %d: %w", i, err)
			}
		}
	}
	lts, err := c.transforms(p)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if err := (&Executor{c: c, params: p, lts: lts}).checkKeyLevels(keys); err != nil {
		return nil, err // before evaluating anything: Lattigo would return garbage
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.NumCPU()
	}
	ev := he.NewEvaluator(p, keys, opt.Trace)
	if k.Bootstrapping {
		btp := opt.Bootstrapper
		if btp == nil && c.Planned.InsecureSKBootstrap {
			return nil, errors.New("executor: the circuit was planned for the insecure secret-key test bootstrapper (level-0 inputs); pass it in ExecOptions.Bootstrapper or re-plan without InsecureSecretKeyBootstrap")
		}
		if btp == nil {
			if !keys.HasBootstrapping() {
				return nil, errors.New("executor: the circuit bootstraps but the evaluation keys have no bootstrapping keys")
			}
			b, err := he.NewBootstrapper(p, keys)
			if err != nil {
				return nil, fmt.Errorf("executor: %w", err)
			}
			btp = b
		}
		ev = ev.WithBootstrapper(levelZeroInput{btp})
		opt.Bootstrapper = nil
		return &Executor{c: c, params: p, lts: lts, ev: ev, opt: opt, btp: btp}, nil
	}
	return &Executor{c: c, params: p, lts: lts, ev: ev, opt: opt}, nil
}

// fullVec expands a pattern to every slot of the parameters.
func (x *Executor) fullVec(p []float64) []float64 {
	L := x.c.Layout
	v := make([]float64, x.params.Slots())
	R := L.RowStride()
	for s := range v {
		v[s] = p[((s/R)%L.BlockTokens())*L.Block+s%L.Block]
	}
	return v
}

// Run evaluates the circuit on the input ciphertexts (Layout.NumTokenBlocks()
// per batch of inputs, token blocks in order, as made by EncryptInputs) and
// returns the output ciphertexts (Layout.OutputCiphertexts() per batch).
func (x *Executor) Run(inputs []*he.Ciphertext) ([]*he.Ciphertext, error) {
	if len(inputs) == 0 {
		return nil, errors.New("run: no input ciphertexts")
	}
	nb := x.c.Layout.NumTokenBlocks()
	if len(inputs)%nb != 0 {
		return nil, fmt.Errorf("run: %d input ciphertexts are not whole batches of %d token blocks", len(inputs), nb)
	}
	chunk := x.opt.Chunk
	if chunk <= 0 {
		chunk = x.opt.Workers
	}
	var outs []*rlwe.Ciphertext
	for lo := 0; lo < len(inputs)/nb; lo += chunk {
		if ctx := x.opt.Context; ctx != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("run: evaluation stopped: %w", context.Cause(ctx))
		}
		hi := min(lo+chunk, len(inputs)/nb)
		o, err := x.run(inputs[lo*nb:hi*nb], lo)
		if err != nil {
			return nil, err
		}
		outs = append(outs, o...)
	}
	return outs, nil
}

// run evaluates one chunk of batches; base is the index of its first batch (for probes and errors).
func (x *Executor) run(inputs []*rlwe.Ciphertext, base int) ([]*rlwe.Ciphertext, error) {
	if err := x.checkInputs(inputs, base); err != nil {
		return nil, err
	}
	r, err := x.newRun(inputs, base)
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for w := 0; w < x.opt.Workers; w++ {
		ev := x.ev.ShallowCopy()
		if b, ok := x.btp.(*he.Bootstrapper); ok && w > 0 {
			ev = ev.WithBootstrapper(levelZeroInput{b.ShallowCopy()}) // concurrent bootstraps on separate buffers
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.work(ev)
		}()
	}
	wg.Wait()
	if r.firstErr != nil {
		return nil, r.firstErr
	}
	var outs []*rlwe.Ciphertext
	for k := range r.vals {
		for _, id := range r.outIDs {
			outs = append(outs, r.vals[k][id])
		}
	}
	return outs, nil
}

// checkInputs refuses a nil or malformed input ciphertext, or one below the
// plan's input level.
func (x *Executor) checkInputs(inputs []*rlwe.Ciphertext, base int) error {
	base *= x.c.Layout.NumTokenBlocks()
	for i, ct := range inputs {
		if ct == nil {
			return fmt.Errorf("run: input %d is nil", base+i)
		}
		if err := he.CheckCiphertext(x.params, ct); err != nil {
			return fmt.Errorf("run: input %d: %w", base+i, err)
		}
		if ct.Level() < x.c.Planned.InputLevel {
			return fmt.Errorf("run: input %d at level %d, the circuit needs level %d", base+i, ct.Level(), x.c.Planned.InputLevel)
		}
	}
	return nil
}

// execOp evaluates op i of ciphertext k with ev and stores its output (and
// those of the other members of its group).
func (r *runState) execOp(ev *he.Evaluator, k, i int) error {
	x, c := r.x, r.x.c
	op := c.Ops[i]
	lev := ev.WithLabel(op.Label)
	in := func(j int) *rlwe.Ciphertext { return r.value(k, op.In[j]) }
	var out *rlwe.Ciphertext
	var err error
	switch op.Kind {
	case KindInput:
		out = r.inputs[k*c.Layout.NumTokenBlocks()+i] // input op i reads token block i
		if out.Level() > c.Planned.InputLevel {
			out, err = lev.DropLevel(out, out.Level()-c.Planned.InputLevel)
		}
	case KindLinear:
		out, err = r.execLinear(ev, lev, k, i)
	case KindRotate:
		out, err = r.execRotate(lev, k, i)
	case KindAdd:
		out, err = lev.Add(in(0), in(1))
	case KindSub:
		out, err = lev.Sub(in(0), in(1))
	case KindAddPlain:
		var pt *rlwe.Plaintext
		a := in(0)
		if pt, err = lev.EncodeAdd(x.fullVec(c.Vecs[op.Vec]), a); err == nil {
			out, err = lev.AddPlain(a, pt)
		}
	case KindAddConst:
		out, err = lev.AddConst(in(0), op.Const)
	case KindMulPlain:
		var pt *rlwe.Plaintext
		a := in(0)
		if pt, err = lev.EncodeMul(x.fullVec(c.Vecs[op.Vec]), a.Level()); err == nil {
			if out, err = lev.MulPlain(a, pt); err == nil {
				out, err = lev.Rescale(out)
			}
		}
	case KindMulConst:
		if out, err = lev.MulConst(in(0), op.Const); err == nil {
			out, err = lev.Rescale(out)
		}
	case KindMul:
		out, err = lev.MulRelinRescale(in(0), in(1))
	case KindRotSum:
		out = in(0)
		for _, rot := range op.Rot {
			var v *rlwe.Ciphertext
			if v, err = lev.Rotate(out, rot); err != nil {
				break
			}
			if out, err = lev.Add(out, v); err != nil {
				break
			}
		}
	case KindPoly:
		out, err = lev.Polynomial(in(0), *op.Poly)
	case KindMatchScale:
		out, err = lev.MatchScale(in(0), in(1).Scale)
	case KindDropLevel:
		a := in(0)
		out, err = lev.DropLevel(a, a.Level()-c.Planned.Levels[i])
	case KindBootstrap:
		if _, ok := x.btp.(*he.Bootstrapper); ok {
			out, err = bootstrapScaled(lev, x.params, in(0), op.Const) // each worker has its own copy
		} else {
			x.btpMu.Lock() // e.g. the secret-key test bootstrapper: shared buffers
			out, err = bootstrapScaled(lev, x.params, in(0), op.Const)
			x.btpMu.Unlock()
		}
	case KindOutput:
		out = in(0)
	default:
		err = fmt.Errorf("unknown op kind %q", op.Kind)
	}
	if err != nil {
		return err
	}
	if out.Level() != c.Planned.Levels[i] {
		return fmt.Errorf("output at level %d, plan says %d", out.Level(), c.Planned.Levels[i])
	}
	r.set(k, i, out)
	return nil
}

// execLinear evaluates the linear ops of op i's group on ciphertext k with
// one hoisted decomposition (ev encodes the transforms, lev evaluates),
// stores the other members' outputs and returns op i's.
func (r *runState) execLinear(ev, lev *he.Evaluator, k, i int) (*rlwe.Ciphertext, error) {
	c := r.x.c
	ms := r.sched.group(i)
	level := c.Planned.Levels[c.Ops[i].In[0]]
	list := make([]*he.EncodedLinearTransform, len(ms))
	for j, m := range ms {
		enc, err := r.encs.get(ev, r.x.lts, encKey{c.Ops[m].Mat, level})
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", c.Mats[c.Ops[m].Mat].Name, err)
		}
		list[j] = enc
	}
	outs, err := lev.LinearTransformMany(r.value(k, c.Ops[i].In[0]), list)
	if err != nil {
		return nil, err
	}
	for j, m := range ms {
		r.encs.release(encKey{c.Ops[m].Mat, level})
		if m != i {
			r.set(k, m, outs[j])
		}
	}
	return outs[0], nil
}

// execRotate evaluates the rotations of op i's group on ciphertext k with
// one hoisted decomposition, stores the other members' outputs and returns
// op i's.
func (r *runState) execRotate(lev *he.Evaluator, k, i int) (*rlwe.Ciphertext, error) {
	c := r.x.c
	ms := r.sched.group(i)
	ks := make([]int, len(ms))
	for j, m := range ms {
		ks[j] = c.Ops[m].Rot[0]
	}
	rs, err := lev.RotateHoisted(r.value(k, c.Ops[i].In[0]), ks)
	if err != nil {
		return nil, err
	}
	for j, m := range ms {
		if m != i {
			r.set(k, m, rs[ks[j]])
		}
	}
	return rs[ks[0]], nil
}

// EncryptInputs encrypts the slot vectors of batches of inputs (from
// EncodeImages, EncodeBytes; Layout.InputSlots() values each) at the
// circuit's input level: one ciphertext per token block (Layout.Slots()
// values, replicated over all slots of the parameters), the blocks of a
// batch one after the other.
func EncryptInputs(client *he.Client, c *Circuit, vecs [][]float64) ([]*he.Ciphertext, error) {
	if client == nil || c == nil || c.Planned == nil {
		return nil, errors.New("encrypt inputs: nil client or unplanned circuit")
	}
	p := client.Parameters()
	if p.Fingerprint().String() != c.Planned.Fingerprint {
		return nil, fmt.Errorf("encrypt inputs: circuit planned for %s, client parameters are %s: %w", c.Planned.Preset, p.Name(), he.ErrFingerprintMismatch)
	}
	S := c.Layout.Slots()
	var out []*rlwe.Ciphertext
	for i, v := range vecs {
		if len(v) != c.Layout.InputSlots() {
			return nil, fmt.Errorf("encrypt inputs: vector %d has %d slots, the layout has %d (%d token blocks of %d)", i, len(v), c.Layout.InputSlots(), c.Layout.NumTokenBlocks(), S)
		}
		for lo := 0; lo < len(v); lo += S {
			full := make([]float64, p.Slots())
			for s := range full {
				full[s] = v[lo+s%S]
			}
			ct, err := client.EncryptReal(full, c.Planned.InputLevel)
			if err != nil {
				return nil, fmt.Errorf("encrypt inputs: %w", err)
			}
			out = append(out, ct)
		}
	}
	return out, nil
}

// DecryptOutputs decrypts output ciphertexts (Layout.OutputCiphertexts()
// per batch of inputs) to the result slot vectors of the batches (the
// first Layout.Slots() slots of each ciphertext, one after the other), for
// DecodeLogits.
func DecryptOutputs(client *he.Client, c *Circuit, cts []*he.Ciphertext) ([][]float64, error) {
	if client == nil || c == nil {
		return nil, errors.New("decrypt outputs: nil client or circuit")
	}
	S, no := c.Layout.Slots(), c.Layout.OutputCiphertexts()
	if len(cts)%no != 0 {
		return nil, fmt.Errorf("decrypt outputs: %d ciphertexts are not whole batches of %d", len(cts), no)
	}
	out := make([][]float64, len(cts)/no)
	for i, ct := range cts {
		v, err := client.DecryptReal(ct)
		if err != nil {
			return nil, fmt.Errorf("decrypt outputs: %w", err)
		}
		if len(v) < S {
			return nil, fmt.Errorf("decrypt outputs: %d slots < layout %d", len(v), S)
		}
		out[i/no] = append(out[i/no], v[:S]...)
	}
	return out, nil
}

// bootstrapPreScale checks the pre-scale s of a bootstrap op (Op.Const):
// 0 or 1 (none) or 2^-k for 1 <= k <= 30, and returns k.
func bootstrapPreScale(s float64) (int, error) {
	if s == 0 || s == 1 {
		return 0, nil
	}
	fr, exp := math.Frexp(s) // s = fr·2^exp, fr in [0.5, 1)
	if fr != 0.5 || exp > 0 || exp < -29 {
		return 0, fmt.Errorf("bootstrap pre-scale %g is not 2^-k with 1 <= k <= 30", s)
	}
	return 1 - exp, nil
}

// levelZeroInput lets he.Evaluator.Bootstrap pass level-0 ciphertexts to
// a Lattigo bootstrapper, which accepts them (its ScaleDown then has nothing
// to drop); bootstrapScaled makes such inputs at the exact scale the
// bootstrapper expects.
type levelZeroInput struct {
	he.CiphertextBootstrapper
}

// MinimumInputLevel implements he.CiphertextBootstrapper.
func (levelZeroInput) MinimumInputLevel() int { return 0 }

// bootstrapScaled bootstraps ct with its message multiplied by s = 2^-k
// (Op.Const of the bootstrap op; 0: 1) and multiplies the result by the
// integer 2^k (free: Lattigo multiplies by integers without a rescale).
// The bootstrapper attached to ev must accept level-0 inputs
// (levelZeroInput).
//
// Exact input scale: Lattigo's ScaleDown first drops the input to level 0
// and then multiplies it by the integer round(q0/(scale·2^R)), about 2^12
// at n16-boot, and ignores the rounding: the output is the message times
// scale·round(...)·2^R/q0, a relative error of the order of the input
// scale's distance to a power of two (measured: up to 2^-19 per bootstrap
// in a Goldschmidt chain, adding up over successive bootstraps). Instead,
// on an input at level >= 1, this function multiplies by the integer
// K = round(s·(q0/2^R)·q1/scale) and rescales by q1 (the level Lattigo
// would have dropped), which leaves m·s at scale q0/2^R to within 1/K
// (about 2^-48): ScaleDown then multiplies by exactly 1.
func bootstrapScaled(ev *he.Evaluator, p *he.Parameters, ct *rlwe.Ciphertext, s float64) (*rlwe.Ciphertext, error) {
	k, err := bootstrapPreScale(s)
	if err != nil {
		return nil, err
	}
	pow := math.Exp2(float64(k))
	var in *rlwe.Ciphertext
	hp := p.HE()
	if p.HasBootstrapping() && ct.Level() >= 1 && hp.LevelsConsumedPerRescaling() == 1 {
		if in, err = exactBootstrapInput(ev, p, ct, 1/pow); err != nil {
			return nil, err
		}
	}
	if in == nil { // level 0 (secret-key test bootstrapper plans) or an unusual scale: relabel only
		in = ct.CopyNew()
		in.Scale = in.Scale.Mul(rlwe.NewScale(pow))
	}
	out, err := ev.Bootstrap(in)
	if err != nil {
		return nil, err
	}
	if k > 0 {
		if err := ev.Lattigo().Mul(out, new(big.Int).Lsh(big.NewInt(1), uint(k)), out); err != nil {
			return nil, fmt.Errorf("bootstrap: rescaling by 2^%d: %w", k, err)
		}
	}
	return out, nil
}

// exactBootstrapInput returns ct (level >= 1) times s at level 0, labeled
// with the bootstrapper's input scale q0/2^R, to within a relative 2^-30
// (2^-48 at n16-boot); nil if ct's scale is too large for that.
func exactBootstrapInput(ev *he.Evaluator, p *he.Parameters, ct *rlwe.Ciphertext, s float64) (*rlwe.Ciphertext, error) {
	hp := p.HE()
	q := hp.Q()
	in := ct
	var err error
	if in.Level() > 1 {
		if in, err = ev.DropLevel(in, in.Level()-1); err != nil {
			return nil, fmt.Errorf("bootstrap input: %w", err)
		}
	}
	R := p.BootstrappingParameters().Mod1ParametersLiteral.LogMessageRatio
	target := new(big.Float).SetPrec(256).SetUint64(q[0])
	target.Quo(target, new(big.Float).SetPrec(256).SetMantExp(big.NewFloat(1), R))
	// K = round(s·target·q1/scale)
	kf := new(big.Float).SetPrec(256).Mul(target, new(big.Float).SetPrec(256).SetFloat64(s))
	kf.Mul(kf, new(big.Float).SetPrec(256).SetUint64(q[1]))
	kf.Quo(kf, &in.Scale.Value)
	kf.Add(kf, big.NewFloat(0.5))
	K, _ := kf.Int(nil)
	if K.BitLen() < 30 { // a scale far above the bootstrapper's: 1/K would not be precise
		return nil, nil
	}
	m := hefloat.NewCiphertext(hp, in.Degree(), in.Level())
	if err := ev.Lattigo().Mul(in, K, m); err != nil {
		return nil, fmt.Errorf("bootstrap input: %w", err)
	}
	m.Scale = in.Scale.Mul(rlwe.NewScale(K)) // the integer product's true scale
	out, err := ev.Rescale(m)
	if err != nil {
		return nil, fmt.Errorf("bootstrap input: %w", err)
	}
	out.Scale = rlwe.NewScale(target)
	return out, nil
}

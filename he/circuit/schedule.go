package circuit

import (
	"context"
	"fmt"
	"sync"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/polyformer/polyformer/he"
)

// schedule is the dependency structure the executor's workers walk: for
// each op its consumers, its number of inputs and of uses, and the leader
// of its hoisting group (the first linear or rotate op of the same Group on
// the same input, which evaluates the whole group).
type schedule struct {
	deps    [][]int       // consumers of each op
	waits   []int         // inputs of each op
	uses    []int         // uses of each op's output
	leader  []int         // the op that evaluates each op (itself outside groups)
	members map[int][]int // the ops a group leader evaluates, itself first
}

// newSchedule returns the schedule of c's op graph.
func newSchedule(c *Circuit) schedule {
	n := len(c.Ops)
	s := schedule{deps: make([][]int, n), waits: make([]int, n), uses: make([]int, n), leader: make([]int, n), members: map[int][]int{}}
	groupLead := map[[2]int]int{}
	for i, op := range c.Ops {
		s.leader[i] = i
		if op.Group > 0 && (op.Kind == KindLinear || op.Kind == KindRotate) {
			key := [2]int{op.Group, op.In[0]}
			if l, ok := groupLead[key]; ok {
				s.leader[i] = l
			} else {
				groupLead[key] = i
			}
			s.members[s.leader[i]] = append(s.members[s.leader[i]], i)
		}
		for _, in := range op.In {
			s.deps[in] = append(s.deps[in], i)
			s.waits[i]++
			s.uses[in]++
		}
	}
	return s
}

// group returns the ops op i evaluates: its group's members, or i alone.
func (s schedule) group(i int) []int {
	if ms := s.members[i]; len(ms) > 0 {
		return ms
	}
	return []int{i}
}

type encKey struct{ mat, level int }

type encEntry struct {
	once sync.Once
	enc  *he.EncodedLinearTransform
	err  error
	left int
}

// encCache holds the encoded linear transforms of one run: each is encoded
// lazily at the level of its use and released after its last use.
type encCache struct {
	mu sync.Mutex
	m  map[encKey]*encEntry
}

// newEncCache counts the uses of each (matrix, level) over nct ciphertexts.
func newEncCache(c *Circuit, nct int) *encCache {
	e := &encCache{m: map[encKey]*encEntry{}}
	for _, op := range c.Ops {
		if op.Kind == KindLinear {
			k := encKey{op.Mat, c.Planned.Levels[op.In[0]]}
			if e.m[k] == nil {
				e.m[k] = &encEntry{}
			}
			e.m[k].left += nct
		}
	}
	return e
}

// get returns the transform of key, encoding it with ev on first use.
func (e *encCache) get(ev *he.Evaluator, lts []*he.LinearTransform, key encKey) (*he.EncodedLinearTransform, error) {
	e.mu.Lock()
	en := e.m[key]
	e.mu.Unlock()
	en.once.Do(func() { en.enc, en.err = ev.EncodeLinearTransform(lts[key.mat], key.level) })
	return en.enc, en.err
}

// release counts one use of key done, dropping the encoding after the last.
func (e *encCache) release(key encKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if en := e.m[key]; en != nil {
		if en.left--; en.left == 0 {
			en.enc = nil
		}
	}
}

// runState is the state of one run of the executor on a chunk of batches
// of inputs (each batch the ciphertexts of its token blocks): the values,
// what each op still waits for, the ready queue and the first error. mu
// guards everything but encs (its own lock).
type runState struct {
	x      *Executor
	inputs []*rlwe.Ciphertext // token block i of batch k is inputs[k·nb+i]
	base   int                // index of the chunk's first batch among all batches (probes, errors)
	sched  schedule
	encs   *encCache
	outIDs []int
	isOut  []bool

	mu       sync.Mutex
	cond     *sync.Cond
	vals     [][]*rlwe.Ciphertext // [ciphertext][op], released after the last use
	wait     [][]int              // inputs not yet computed
	left     [][]int              // uses not yet done
	queue    []task
	pending  int // ops not yet done, over all ciphertexts
	firstErr error
}

// task is one op of one batch of inputs.
type task struct{ ct, op int }

// newRun prepares the run of x on inputs (len(inputs)/nb batches of nb
// token blocks): every batch's input ops are ready.
func (x *Executor) newRun(inputs []*rlwe.Ciphertext, base int) (*runState, error) {
	c := x.c
	outIDs, err := c.Outputs()
	if err != nil {
		return nil, err
	}
	nb := c.Layout.NumTokenBlocks()
	n, nct := len(c.Ops), len(inputs)/nb
	r := &runState{x: x, inputs: inputs, base: base, sched: newSchedule(c), encs: newEncCache(c, nct), outIDs: outIDs, isOut: make([]bool, n)}
	for _, id := range outIDs {
		r.isOut[id] = true
	}
	r.cond = sync.NewCond(&r.mu)
	r.vals = make([][]*rlwe.Ciphertext, nct)
	r.wait = make([][]int, nct)
	r.left = make([][]int, nct)
	for k := range r.vals {
		r.vals[k] = make([]*rlwe.Ciphertext, n)
		r.wait[k] = append([]int(nil), r.sched.waits...)
		r.left[k] = append([]int(nil), r.sched.uses...)
		for i := 0; i < nb; i++ {
			r.queue = append(r.queue, task{k, i})
		}
		r.pending += n
	}
	return r, nil
}

// value returns the output of op id on batch k.
func (r *runState) value(k, id int) *rlwe.Ciphertext {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.vals[k][id]
}

// set stores the output of op id on ciphertext k and hands a copy to the
// probe when it asks for the op.
func (r *runState) set(k, id int, v *rlwe.Ciphertext) {
	r.mu.Lock()
	r.vals[k][id] = v
	r.mu.Unlock()
	if opt := r.x.opt; opt.Probe != nil && opt.ProbeOps != nil && opt.ProbeOps(id) {
		opt.Probe(r.base+k, id, v.CopyNew())
	}
}

// done marks op i of ciphertext k complete: its ready consumers join the
// queue and inputs past their last use are released (mu held).
func (r *runState) done(k, i int) {
	r.pending--
	for _, d := range r.sched.deps[i] {
		if r.wait[k][d]--; r.wait[k][d] == 0 && r.sched.leader[d] == d {
			r.queue = append(r.queue, task{k, d})
		}
	}
	for _, in := range r.x.c.Ops[i].In {
		if r.left[k][in]--; r.left[k][in] == 0 && !r.isOut[in] {
			r.vals[k][in] = nil
		}
	}
	r.cond.Broadcast()
}

// next waits for a ready task and takes it; ok is false once the run is
// over (every op done, an error, or the context done).
func (r *runState) next() (t task, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) == 0 && r.pending > 0 && r.firstErr == nil {
		r.cond.Wait()
	}
	if r.pending == 0 || r.firstErr != nil {
		return task{}, false
	}
	if ctx := r.x.opt.Context; ctx != nil && ctx.Err() != nil {
		r.firstErr = fmt.Errorf("run: evaluation stopped: %w", context.Cause(ctx))
		r.cond.Broadcast()
		return task{}, false
	}
	t = r.queue[len(r.queue)-1]
	r.queue = r.queue[:len(r.queue)-1]
	return t, true
}

// work is one worker: it evaluates ready tasks with ev until the run is
// over, recording the first error.
func (r *runState) work(ev *he.Evaluator) {
	for {
		t, ok := r.next()
		if !ok {
			return
		}
		err := r.execOp(ev, t.ct, t.op)
		r.mu.Lock()
		if err != nil {
			if r.firstErr == nil {
				op := r.x.c.Ops[t.op]
				r.firstErr = fmt.Errorf("run: batch %d, op %d (%s in %s): %w", r.base+t.ct, t.op, op.Kind, op.Label, err)
			}
			r.cond.Broadcast()
			r.mu.Unlock()
			continue
		}
		for _, m := range r.sched.group(t.op) {
			r.done(t.ct, m)
		}
		r.mu.Unlock()
	}
}

// babyReuse follows what a hoisting group's LinearTransformMany reuses: it
// pre-rotates each transform's baby steps of the group's input, and the
// next transform of the same group (key: group, input, as the executor's
// schedule) reuses those it shares. The dry run's key switches and the
// latency model count baby steps through it, so both agree with the trace.
type babyReuse map[[2]int]map[int]bool

// fresh records the baby steps of linear op's transform and returns how
// many of them the previous transform of its group had not pre-rotated
// (all of them for an op outside a group).
func (r babyReuse) fresh(op Op, baby []int) int {
	if op.Group == 0 {
		return len(baby)
	}
	key := [2]int{op.Group, op.In[0]}
	prev := r[key]
	cur := make(map[int]bool, len(baby))
	n := 0
	for _, b := range baby {
		cur[b] = true
		if !prev[b] {
			n++
		}
	}
	r[key] = cur
	return n
}

package nn

import (
	"fmt"
	"runtime"
	"sync"
)

// Module is a differentiable layer. Forward computes the output and caches
// what Backward needs; Backward takes the gradient of the loss with respect to
// the output of the last Forward, accumulates (adds) the gradients of the
// parameters into Param.Grad and returns the gradient with respect to the
// input. Params lists the trainable parameters.
type Module interface {
	Forward(x *Tensor) *Tensor
	Backward(dy *Tensor) *Tensor
	Params() []*Param
}

// SiteHolder is implemented by modules containing scalar non-linearities that
// have an exact form and a polynomial form (see Site).
type SiteHolder interface {
	Sites() []*Site
}

// Norm is a normalization layer (or a norm-free substitute) that acts on each
// row of a [.., D] tensor. Package model/norm implements it. Method is
// the registry name stored in configurations ("layernorm", "rmsnorm",
// "none", ...).
type Norm interface {
	Module
	SiteHolder
	Method() string
}

// Param is one named trainable tensor with its gradient. Frozen parameters
// are saved and loaded but never updated by optimizers. NoDecay parameters
// (biases, gains, scalars) are excluded from weight decay.
type Param struct {
	Name    string
	Value   *Tensor
	Grad    *Tensor
	NoDecay bool
	Frozen  bool
}

// NewParam returns a zero parameter and gradient of the given shape.
func NewParam(name string, shape ...int) *Param {
	return &Param{Name: name, Value: New(shape...), Grad: New(shape...)}
}

// Registry is an ordered set of uniquely named parameters.
type Registry struct {
	list   []*Param
	byName map[string]*Param
}

// NewRegistry collects the parameters of the modules, in order, and returns an
// error if two parameters share a name.
func NewRegistry(params ...[]*Param) (*Registry, error) {
	r := &Registry{byName: map[string]*Param{}}
	for _, ps := range params {
		for _, p := range ps {
			if _, dup := r.byName[p.Name]; dup {
				return nil, fmt.Errorf("duplicate parameter name %q", p.Name)
			}
			r.byName[p.Name] = p
			r.list = append(r.list, p)
		}
	}
	return r, nil
}

// List returns the parameters in registration order.
func (r *Registry) List() []*Param { return r.list }

// Get returns the parameter with the given name, or nil.
func (r *Registry) Get(name string) *Param { return r.byName[name] }

// ZeroGrad clears every gradient.
func (r *Registry) ZeroGrad() {
	for _, p := range r.list {
		p.Grad.Zero()
	}
}

// Count is the total number of scalar parameters.
func (r *Registry) Count() int {
	n := 0
	for _, p := range r.list {
		n += p.Value.Len()
	}
	return n
}

// Workers returns the number of goroutines to use for n independent items:
// min(n, GOMAXPROCS), at least 1.
func Workers(n int) int {
	w := runtime.GOMAXPROCS(0)
	if n < w {
		w = n
	}
	if w < 1 {
		w = 1
	}
	return w
}

// ParallelFor runs fn(worker, i) for i in [0, n) on Workers(n) goroutines;
// worker is in [0, Workers(n)) so callers can keep per-worker buffers.
// Items are handed out in contiguous chunks, so the assignment of items to
// workers is deterministic.
func ParallelFor(n int, fn func(worker, i int)) {
	w := Workers(n)
	if w == 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var wg sync.WaitGroup
	for k := 0; k < w; k++ {
		lo, hi := k*n/w, (k+1)*n/w
		wg.Add(1)
		go func(k, lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				fn(k, i)
			}
		}(k, lo, hi)
	}
	wg.Wait()
}

package he

import (
	"errors"
	"fmt"
	"sync"
)

// Job is one independent unit of ciphertext work. It receives an evaluator
// that belongs to the goroutine running it (use it, or views of it made with
// WithLabel, and nothing else) and its index in the job list.
type Job func(ev *Evaluator, index int) error

// RunParallel runs jobs on up to workers goroutines. Each goroutine gets its
// own ShallowCopy of e (fresh scratch buffers, shared keys and trace), whose
// records carry the goroutine's worker number (1..workers). Since Lattigo
// operations are deterministic, results are bit-identical to running the
// jobs sequentially. All jobs run even if some fail; the errors are joined.
// workers < 1 means 1. Jobs must not share mutable state (e.g. write to
// distinct slice elements only).
func (e *Evaluator) RunParallel(workers int, jobs []Job) error {
	if workers < 1 {
		workers = 1
	}
	if workers > len(jobs) {
		workers = len(jobs)
	}
	if len(jobs) == 0 {
		return nil
	}
	next := make(chan int)
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		ev := e.ShallowCopy()
		ev.worker = w + 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if jobs[i] == nil {
					errs[i] = fmt.Errorf("job %d is nil", i)
					continue
				}
				if err := jobs[i](ev, i); err != nil {
					errs[i] = fmt.Errorf("job %d: %w", i, err)
				}
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// MapParallel applies f to every ciphertext on up to workers goroutines (see
// RunParallel) and returns the results in input order.
func (e *Evaluator) MapParallel(workers int, cts []*Ciphertext, f func(ev *Evaluator, ct *Ciphertext) (*Ciphertext, error)) ([]*Ciphertext, error) {
	if f == nil {
		return nil, errors.New("map parallel: nil function")
	}
	out := make([]*Ciphertext, len(cts))
	jobs := make([]Job, len(cts))
	for i := range cts {
		jobs[i] = func(ev *Evaluator, i int) error {
			r, err := f(ev, cts[i])
			if err != nil {
				return err
			}
			out[i] = r
			return nil
		}
	}
	if err := e.RunParallel(workers, jobs); err != nil {
		return nil, fmt.Errorf("map parallel: %w", err)
	}
	return out, nil
}

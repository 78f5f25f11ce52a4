package server

import (
	"context"
	"sync/atomic"
)

// admission bounds the requests in the system (evaluating, queued, or
// reading their body) to concurrent+queue, and the evaluations running at
// once to concurrent.
type admission struct {
	limit    int64
	inSystem atomic.Int64
	waiting  atomic.Int64
	running  atomic.Int64
	slots    chan struct{}
}

func newAdmission(concurrent, queue int) *admission {
	return &admission{limit: int64(concurrent + queue), slots: make(chan struct{}, concurrent)}
}

// enter admits a request, or reports false when the system is full.
func (a *admission) enter() bool {
	if a.inSystem.Add(1) > a.limit {
		a.inSystem.Add(-1)
		return false
	}
	return true
}

func (a *admission) leave() { a.inSystem.Add(-1) }

// acquire waits for an evaluation slot (or the context's end).
func (a *admission) acquire(ctx context.Context) error {
	a.waiting.Add(1)
	defer a.waiting.Add(-1)
	select {
	case a.slots <- struct{}{}:
		a.running.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *admission) release() {
	a.running.Add(-1)
	<-a.slots
}

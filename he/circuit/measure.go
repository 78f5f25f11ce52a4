package circuit

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/polyformer/polyformer/he"
)

// Bench encrypts the virtual slot vectors vecs with client, evaluates the
// planned circuit, decrypts, and returns the dry-run report completed with
// measurements: wall time, per-input time, per-layer time and key switches
// (summed over all ciphertexts, from the trace), per-layer log2 error of
// the decrypted layer output against the simulator (first ciphertext, on
// the slots that influence the result: see LiveSlots), and
// the largest result error against the simulator (all ciphertexts). It also
// returns the decrypted output slot vectors.
func Bench(c *Circuit, p *he.Parameters, keys *he.EvaluationKeys, client *he.Client, vecs [][]float64, opt ExecOptions) (*Report, [][]float64, error) {
	rep, err := NewReport(c, p)
	if err != nil {
		return nil, nil, err
	}
	if len(vecs) == 0 {
		return nil, nil, errors.New("bench: no inputs")
	}
	if opt.Trace == nil {
		opt.Trace = he.NewTrace()
	}
	lastOf := map[int]bool{}
	seen := map[string]bool{}
	for i := len(c.Ops) - 1; i >= 0; i-- {
		if l := c.Ops[i].Label; !seen[l] {
			seen[l] = true
			lastOf[i] = true
		}
	}
	var mu sync.Mutex
	probes := map[int]*rlwe.Ciphertext{}
	opt.ProbeOps = func(op int) bool { return lastOf[op] }
	opt.Probe = func(ct, op int, v *rlwe.Ciphertext) {
		if ct == 0 {
			mu.Lock()
			probes[op] = v
			mu.Unlock()
		}
	}
	x, err := NewExecutor(c, p, keys, opt)
	if err != nil {
		return nil, nil, err
	}
	cts, err := EncryptInputs(client, c, vecs)
	if err != nil {
		return nil, nil, err
	}
	start := time.Now()
	outs, err := x.Run(cts)
	if err != nil {
		return nil, nil, err
	}
	wall := time.Since(start)
	dec, err := DecryptOutputs(client, c, outs)
	if err != nil {
		return nil, nil, err
	}
	rep.WallNs = wall.Nanoseconds()
	rep.PerInputNs = wall.Nanoseconds() / int64(len(vecs)*c.Layout.Batch)
	_, kept, err := c.Simulate(vecs[0], SimOptions{Keep: func(id int) bool { return lastOf[id] }})
	if err != nil {
		return nil, nil, err
	}
	errOf, relOf := map[string]float64{}, map[string]float64{}
	live := c.LiveSlots()
	for id, ct := range probes {
		v, err := client.DecryptReal(ct)
		if err != nil {
			return nil, nil, fmt.Errorf("bench: decrypt probe of op %d: %w", id, err)
		}
		worst, mag := 0.0, 0.0
		for s, w := range kept[id] {
			if live[id][s] {
				worst = math.Max(worst, math.Abs(v[s]-w))
				mag = math.Max(mag, math.Abs(w))
			}
		}
		errOf[c.Ops[id].Label] = math.Log2(worst)
		relOf[c.Ops[id].Label] = math.Log2(worst) - math.Log2(mag)
	}
	byLabel := map[string]he.OpStats{}
	for _, s := range opt.Trace.ByLabel() {
		byLabel[s.Key] = s
	}
	for i := range rep.Layers {
		l := &rep.Layers[i]
		if s, ok := byLabel[l.Layer]; ok {
			l.TimeNs = s.Total.Nanoseconds()
			l.MeasuredKeySwitches = s.KeySwitches
		}
		if e, ok := errOf[l.Layer]; ok {
			l.Log2Err, l.Log2RelErr = e, relOf[l.Layer]
		}
	}
	for k, v := range vecs {
		sim, _, err := c.Simulate(v, SimOptions{})
		if err != nil {
			return nil, nil, err
		}
		rep.MaxLogitErr = math.Max(rep.MaxLogitErr, OutputErr(c, sim, dec[k]))
	}
	if pe, err := PredictPrecision(c, p, vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	return rep, dec, nil
}

package compiler

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/model"
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
		rep.MaxLogitErr = math.Max(rep.MaxLogitErr, outputErr(c, sim, dec[k]))
	}
	if pe, err := PredictPrecision(c, p, vecs[0]); err == nil {
		rep.PredictedLog2Err = pe
	}
	return rep, dec, nil
}

// DefaultPresets are the presets CompileFor tries, smallest first: the
// secure leveled sets, then the bootstrapping set when allowed.
func DefaultPresets(allowBootstrap bool) []string {
	ps := []string{he.PresetN14, he.PresetN15, he.PresetN16}
	if allowBootstrap {
		ps = append(ps, he.PresetN16Boot)
	}
	return ps
}

// CompileFor compiles m and plans it: for the named preset, or (preset
// "") for the first of DefaultPresets whose levels suffice. Batch 0 means
// the largest batch the preset's slots hold. With allowBootstrap, a preset
// with bootstrapping gets bootstraps where the levels run out. The error
// names the levels needed and available when no preset fits.
func CompileFor(m *model.Model, preset string, batch int, allowBootstrap bool) (*Circuit, *he.Parameters, error) {
	names := []string{preset}
	if preset == "" {
		names = DefaultPresets(allowBootstrap)
	}
	var errs []string
	for _, name := range names {
		p, err := he.ParametersFromPreset(name)
		if err != nil {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		b := batch
		if b == 0 {
			if b, err = MaxBatch(m, p.Slots()); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
				continue
			}
		}
		c, err := Compile(m, CompileOptions{Batch: b})
		if err != nil {
			return nil, nil, err
		}
		pc, err := Plan(c, p, PlanOptions{AllowBootstrap: allowBootstrap && p.HasBootstrapping()})
		if err == nil {
			return pc, p, nil
		}
		var le *LevelError
		if !errors.As(err, &le) && preset == "" {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if preset != "" {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		errs = append(errs, le.Error())
	}
	return nil, nil, fmt.Errorf("compile: no preset fits: %s", strings.Join(errs, "; "))
}

package he

import (
	"fmt"
	"math/rand"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// bootstrapBenchmarks measures, for parameters with bootstrapping, one
// bootstrap of a level-0 ciphertext of values in [-1, 1] (level in 0, level
// out the residual top) and, when the residual and bootstrapping rings
// coincide (every preset), its parts as Lattigo's bootstrapping.Evaluator
// runs them: ScaleDown and ModUp (with the dense-to-sparse and
// sparse-to-dense key switches and the trace), CoeffsToSlots, EvalMod and
// SlotsToCoeffs, each timed on a copy of its recorded input. The
// bootstrapping keys are generated at their levels from sk (about 6 GB at
// n16-boot) and the bootstrapper built (the DFT matrices: about 3.5 GB and
// 30 s at logN 16). measure times one op (see BenchmarkOps).
func bootstrapBenchmarks(p *Parameters, secret *SecretKey, progress func(string), measure func(op string, levelIn, levelOut int, note string, f func() error) error) error {
	progress("generating bootstrapping keys")
	btpKeys, seeds, err := generateBootstrappingKeys(p, secret)
	if err != nil {
		return err
	}
	keys := newEvaluationKeys(p, nil, nil, btpKeys)
	keys.btpSeeds = seeds
	progress("building the bootstrapper (DFT matrices)")
	b, err := NewBootstrapper(p, keys)
	if err != nil {
		return err
	}
	client, err := NewClient(p, secret)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewSource(3))
	values := make([]float64, p.Slots())
	for i := range values {
		values[i] = 2*r.Float64() - 1
	}
	ct, err := client.EncryptReal(values, 0)
	if err != nil {
		return err
	}
	note := fmt.Sprintf("level 0 -> %d, keys at their levels: %.2f GB on disk", b.OutputLevel(), float64(keys.SizeBytes())/1e9)
	if err := measure("bootstrap", ct.Level(), b.OutputLevel(), note, func() error {
		_, err := b.Bootstrap(ct.CopyNew())
		return err
	}); err != nil {
		return err
	}
	btp := p.btp
	if btp.ResidualParameters.N() != btp.BootstrappingParameters.N() || btp.ResidualParameters.RingType() != ring.Standard {
		return nil // the parts need the ring switches too: total only
	}
	ev := b.eval
	// The parts' inputs, recorded on one run.
	sd, _, err := ev.ScaleDown(ct.CopyNew())
	if err != nil {
		return err
	}
	up, err := ev.ModUp(sd.CopyNew())
	if err != nil {
		return err
	}
	re, im, err := ev.CoeffsToSlots(up.CopyNew())
	if err != nil {
		return err
	}
	copyOrNil := func(c *rlwe.Ciphertext) *rlwe.Ciphertext {
		if c == nil {
			return nil
		}
		return c.CopyNew()
	}
	mre, err := ev.EvalMod(re.CopyNew())
	if err != nil {
		return err
	}
	mim := im
	if im != nil {
		if mim, err = ev.EvalMod(im.CopyNew()); err != nil {
			return err
		}
	}
	parts := []struct {
		op      string
		in, out *rlwe.Ciphertext
		f       func() error
	}{
		{"bootstrap.scale_down_mod_up", ct, up, func() error {
			s, _, err := ev.ScaleDown(ct.CopyNew())
			if err == nil {
				_, err = ev.ModUp(s)
			}
			return err
		}},
		{"bootstrap.coeffs_to_slots", up, re, func() error { _, _, err := ev.CoeffsToSlots(up.CopyNew()); return err }},
		{"bootstrap.eval_mod", re, mre, func() error {
			if _, err := ev.EvalMod(re.CopyNew()); err != nil || im == nil {
				return err
			}
			_, err := ev.EvalMod(im.CopyNew())
			return err
		}},
		{"bootstrap.slots_to_coeffs", mre, nil, func() error { _, err := ev.SlotsToCoeffs(mre.CopyNew(), copyOrNil(mim)); return err }},
	}
	s2c, err := ev.SlotsToCoeffs(mre.CopyNew(), copyOrNil(mim))
	if err != nil {
		return err
	}
	parts[3].out = s2c
	for _, part := range parts {
		note := "part of bootstrap, on the bootstrapping modulus chain"
		if part.op == "bootstrap.eval_mod" && im != nil {
			note += " (real and imaginary parts)"
		}
		if err := measure(part.op, part.in.Level(), part.out.Level(), note, part.f); err != nil {
			return err
		}
	}
	return nil
}

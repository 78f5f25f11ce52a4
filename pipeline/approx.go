package pipeline

import (
	"fmt"
	"math"
	"time"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/polyapprox"
)

// approxItem is one encrypted evaluation of ApproxDemo: a non-linearity,
// its plaintext twin and the true function.
type approxItem struct {
	name     string
	domain   polyapprox.Interval
	truth    func(float64) float64
	twin     func(float64) float64
	depth    int
	evaluate func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error)
}

func approxItems() ([]approxItem, error) {
	normIv := polyapprox.Interval{A: 0.1, B: 10}
	actIv := polyapprox.Interval{A: -4, B: 4}
	invSqrtPoly, err := polyapprox.Approximate("invsqrt", normIv, 31, polyapprox.MethodRemezRelative)
	if err != nil {
		return nil, err
	}
	newton, err := polyapprox.NewNewtonInvSqrt(normIv, 7, 2)
	if err != nil {
		return nil, err
	}
	gold, err := polyapprox.NewGoldschmidtInv(polyapprox.Interval{A: 1, B: 8}, 5)
	if err != nil {
		return nil, err
	}
	gelu, err := polyapprox.Approximate("gelu", actIv, 31, polyapprox.MethodRemez)
	if err != nil {
		return nil, err
	}
	pow := func(x float64) float64 { return x * x * x * x }
	return []approxItem{
		{
			name: "invsqrt remez-rel deg 31", domain: normIv,
			truth: func(x float64) float64 { return 1 / math.Sqrt(x) }, twin: invSqrtPoly.Evaluate, depth: invSqrtPoly.Depth,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Polynomial(ct, invSqrtPoly.Poly)
			},
		},
		{
			name: "invsqrt newton init 7 + 2 it", domain: normIv,
			truth: func(x float64) float64 { return 1 / math.Sqrt(x) }, twin: newton.Evaluate, depth: newton.Depth(),
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.EvaluateNewtonInvSqrt(ct, newton)
			},
		},
		{
			name: "inv goldschmidt 5 it", domain: gold.Interval,
			truth: func(x float64) float64 { return 1 / x }, twin: gold.Evaluate, depth: gold.Depth(),
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.EvaluateGoldschmidtInv(ct, gold)
			},
		},
		{
			name: "gelu remez deg 31", domain: actIv,
			truth: polyapprox.GELU, twin: gelu.Evaluate, depth: gelu.Depth,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Polynomial(ct, gelu.Poly)
			},
		},
		{
			name: "x^4 by squaring", domain: polyapprox.Interval{A: -1, B: 1},
			truth: pow, twin: pow, depth: 2,
			evaluate: func(ev *he.Evaluator, ct *he.Ciphertext) (*he.Ciphertext, error) {
				return ev.Power(ct, 4)
			},
		},
	}, nil
}

// ApproxRow is one non-linearity evaluated on a ciphertext by ApproxDemo.
type ApproxRow struct {
	Name              string
	Domain            polyapprox.Interval
	LevelIn, LevelOut int
	// Bits is the relative precision of the decrypted result against the
	// float64 twin (same polynomial or plan, same arithmetic order): CKKS
	// noise alone.
	Bits float64
	// TwinTrue and HETrue are the largest |twin - true| and |decrypted - true|.
	TwinTrue, HETrue float64
	Elapsed          time.Duration
}

// Approx is the outcome of ApproxDemo.
type Approx struct {
	// Keygen is the time to generate the secret and relinearization keys;
	// EvalKeyBytes their evaluation keys' size.
	Keygen       time.Duration
	EvalKeyBytes uint64
	Rows         []ApproxRow
	// Trace holds every operation, labelled with the row's name.
	Trace *he.Trace
}

// ApproxDemo evaluates on one ciphertext each the approximations a
// transformer needs (1/sqrt by Remez and by Newton, 1/x by Goldschmidt,
// GELU, x^4) over a grid of their interval filling the slots: the client
// encrypts, an evaluator holding only the public evaluation keys computes,
// the client decrypts, and each result is compared with its float64 twin
// and with the true function. An approximation deeper than p's levels is
// an error before any key exists.
func ApproxDemo(p *he.Parameters) (*Approx, error) {
	items, err := approxItems()
	if err != nil {
		return nil, fmt.Errorf("build approximations: %w", err)
	}
	for _, it := range items {
		if it.depth > p.MaxLevel() {
			return nil, fmt.Errorf("%s needs %d levels, preset %s has %d", it.name, it.depth, p.Name(), p.MaxLevel())
		}
	}
	t0 := time.Now()
	sk, evk, err := he.GenerateKeys(p, he.KeySpec{Relinearization: true})
	if err != nil {
		return nil, err
	}
	client, err := he.NewClient(p, sk)
	if err != nil {
		return nil, err
	}
	res := &Approx{Keygen: time.Since(t0), EvalKeyBytes: evk.SizeBytes(), Trace: he.NewTrace()}
	// The server side: an evaluator holding only the public evaluation keys.
	server := he.NewEvaluator(p, evk, res.Trace)
	n := p.Slots()
	for _, it := range items {
		x := make([]float64, n)
		for i := range x {
			x[i] = it.domain.A + (it.domain.B-it.domain.A)*float64(i)/float64(n-1)
		}
		ct, err := client.EncryptReal(x, -1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.name, err)
		}
		t := time.Now()
		out, err := it.evaluate(server.WithLabel(it.name), ct)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.name, err)
		}
		elapsed := time.Since(t)
		y, err := client.DecryptReal(out)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", it.name, err)
		}
		row := ApproxRow{Name: it.name, Domain: it.domain, LevelIn: ct.Level(), LevelOut: out.Level(), Elapsed: elapsed}
		var heTwin, maxTwin float64
		for i, xi := range x {
			tw, tr := it.twin(xi), it.truth(xi)
			heTwin = math.Max(heTwin, math.Abs(y[i]-tw))
			row.TwinTrue = math.Max(row.TwinTrue, math.Abs(tw-tr))
			row.HETrue = math.Max(row.HETrue, math.Abs(y[i]-tr))
			maxTwin = math.Max(maxTwin, math.Abs(tw))
		}
		row.Bits = -math.Log2(heTwin / maxTwin)
		res.Rows = append(res.Rows, row)
	}
	return res, nil
}

package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/stretchr/testify/require"
)

// distillPair returns a softmax + LayerNorm teacher and an HE-friendly
// student (the task defaults: power-softmax, weight normalization) of the
// same tiny shape, the student with entropy regularization.
func distillPair(t *testing.T, task string) (student, teacher *Model) {
	tc := tinyConfig(t, task)
	tc.Attention = AttentionConfig{Kind: AttnSoftmax}
	tc.Norm, tc.Seed = "layernorm", 7
	teacher, err := New(tc)
	require.NoError(t, err)
	sc := tinyConfig(t, task)
	sc.Entropy = EntropyConfig{Enabled: true, Gamma: 0.01, Lambda: 0.5, Theta0: 0.9}
	student, err = New(sc)
	require.NoError(t, err)
	return student, teacher
}

func gradsOf(m *Model) [][]float64 {
	var g [][]float64
	for _, p := range m.Params() {
		g = append(g, append([]float64(nil), p.Grad.Data...))
	}
	return g
}

// TestDistillGradCheck checks the gradient of each distillation term in
// isolation (the gradient of a step with the term minus that of a step
// without it, against finite differences of the term itself) and of the
// whole loss, on every student parameter.
func TestDistillGradCheck(t *testing.T) {
	for _, task := range []string{TaskMNIST, TaskText} {
		student, teacher := distillPair(t, task)
		b := synthBatch(student.Cfg, 3, 1)
		to, err := teacher.TeacherForward(b)
		require.NoError(t, err)
		terms := map[string]struct {
			on   DistillOptions
			term func(r DistillResult, o DistillOptions) float64
		}{
			// with alpha, the KD term replaces alpha of the CE
			"kd": {DistillOptions{Alpha: 0.5, Temp: 2}, func(r DistillResult, o DistillOptions) float64 { return o.Alpha * (r.KD - r.CE) }},
			"attn": {DistillOptions{Alpha: 0.5, Temp: 2, Attn: 3}, func(r DistillResult, o DistillOptions) float64 {
				return o.Alpha*(r.KD-r.CE) + o.Attn*r.AttnLoss
			}},
			"hidden": {DistillOptions{Alpha: 0.5, Temp: 2, Hidden: 0.7}, func(r DistillResult, o DistillOptions) float64 {
				return o.Alpha*(r.KD-r.CE) + o.Hidden*r.HiddenLoss
			}},
		}
		off := DistillOptions{Alpha: 0, Temp: 2}
		for name, tc := range terms {
			t.Run(task+"/"+name, func(t *testing.T) {
				student.Reg.ZeroGrad()
				_, err := student.DistillStep(b, to, off)
				require.NoError(t, err)
				g0 := gradsOf(student)
				student.Reg.ZeroGrad()
				res, err := student.DistillStep(b, to, tc.on)
				require.NoError(t, err)
				require.Greater(t, res.KD, 0.0)
				if tc.on.Attn > 0 {
					require.Greater(t, res.AttnLoss, 0.0)
				}
				if tc.on.Hidden > 0 {
					require.Greater(t, res.HiddenLoss, 0.0)
				}
				g1 := gradsOf(student)
				loss := func() float64 {
					r, err := student.DistillForward(b, to, tc.on)
					require.NoError(t, err)
					return tc.term(r, tc.on)
				}
				rng := rand.New(rand.NewPCG(3, 4))
				var norm float64
				for i, p := range student.Params() {
					if p.Frozen {
						continue
					}
					d := make([]float64, len(g1[i]))
					for j := range d {
						d[j] = g1[i][j] - g0[i][j]
						norm += d[j] * d[j]
					}
					r := nn.GradCheck(p.Name, loss, p.Value.Data, d, 1e-5, 10, rng)
					require.Less(t, r.AggRelErr, 1e-6, r.String())
				}
				require.Greater(t, norm, 1e-12, "the term has a gradient")
			})
		}
		t.Run(task+"/total", func(t *testing.T) {
			o := DistillOptions{Alpha: 0.3, Temp: 1.5, Attn: 2, Hidden: 0.5}
			student.Reg.ZeroGrad()
			res, err := student.DistillStep(b, to, o)
			require.NoError(t, err)
			require.Greater(t, res.EntLoss, 0.0)
			want := 0.7*res.CE + 0.3*res.KD + 2*res.AttnLoss + 0.5*res.HiddenLoss + res.EntLoss
			require.InDelta(t, want, res.Loss, 1e-12)
			loss := func() float64 {
				r, err := student.DistillForward(b, to, o)
				require.NoError(t, err)
				return r.Loss
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for _, p := range student.Params() {
				if p.Frozen {
					continue
				}
				g := append([]float64(nil), p.Grad.Data...)
				r := nn.GradCheck(p.Name, loss, p.Value.Data, g, 1e-5, 10, rng)
				require.Less(t, r.AggRelErr, 1e-6, r.String())
			}
		})
	}
}

// TestDistillReducesToStep: with alpha 0 and no matching terms a
// distillation step accumulates exactly the gradients of Step, and leaves
// no attention-weight gradient behind for the next Step.
func TestDistillReducesToStep(t *testing.T) {
	student, teacher := distillPair(t, TaskText)
	b := synthBatch(student.Cfg, 2, 3)
	to, err := teacher.TeacherForward(b)
	require.NoError(t, err)
	student.Reg.ZeroGrad()
	ref, err := student.Step(b)
	require.NoError(t, err)
	want := gradsOf(student)
	student.Reg.ZeroGrad()
	res, err := student.DistillStep(b, to, DistillOptions{Alpha: 0, Temp: 2})
	require.NoError(t, err)
	require.Equal(t, ref.Loss, res.Loss)
	require.Equal(t, want, gradsOf(student))
	// an attention-matching step must not leak its weight gradient
	student.Reg.ZeroGrad()
	_, err = student.DistillStep(b, to, DistillOptions{Alpha: 0, Temp: 2, Attn: 5})
	require.NoError(t, err)
	student.Reg.ZeroGrad()
	_, err = student.Step(b)
	require.NoError(t, err)
	require.Equal(t, want, gradsOf(student))
}

// TestDistillKDValue checks KD against a direct evaluation, and that a
// student that is a copy of its teacher has zero distillation terms.
func TestDistillKDValue(t *testing.T) {
	zs, err := nn.FromData([]float64{1, 2, 0.5, -1, 0, 3}, 2, 3)
	require.NoError(t, err)
	zt, err := nn.FromData([]float64{0.2, 1, 1, 2, -2, 0}, 2, 3)
	require.NoError(t, err)
	const temp = 2.0
	var want float64
	for i := 0; i < 2; i++ {
		ps, pt := make([]float64, 3), make([]float64, 3)
		var ss, st float64
		for j := 0; j < 3; j++ {
			ps[j], pt[j] = math.Exp(zs.Data[i*3+j]/temp), math.Exp(zt.Data[i*3+j]/temp)
			ss += ps[j]
			st += pt[j]
		}
		for j := 0; j < 3; j++ {
			want += pt[j] / st * math.Log((pt[j]/st)/(ps[j]/ss))
		}
	}
	want *= temp * temp / 2
	require.InDelta(t, want, kdLoss(zs, zt, temp, nil), 1e-14)

	c := tinyConfig(t, TaskMNIST)
	teacher, err := New(c)
	require.NoError(t, err)
	c.Seed = 99
	student, err := New(c)
	require.NoError(t, err)
	b := synthBatch(c, 4, 2)
	to, err := teacher.TeacherForward(b)
	require.NoError(t, err)
	o := DistillOptions{Alpha: 0.5, Temp: 2, Attn: 1, Hidden: 1}
	far, err := student.DistillForward(b, to, o)
	require.NoError(t, err)
	require.Greater(t, far.KD, 1e-6)
	require.Greater(t, far.AttnLoss, 1e-9)
	require.Greater(t, far.HiddenLoss, 1e-6)
	init, err := InitFromTeacher(student, teacher)
	require.NoError(t, err)
	require.Empty(t, init.Kept)
	same, err := student.DistillForward(b, to, o)
	require.NoError(t, err)
	require.InDelta(t, 0, same.KD, 1e-12)
	require.InDelta(t, 0, same.AttnLoss, 1e-12)
	require.InDelta(t, 0, same.HiddenLoss, 1e-12)
}

func TestDistillErrors(t *testing.T) {
	student, teacher := distillPair(t, TaskText)
	b := synthBatch(student.Cfg, 2, 1)
	to, err := teacher.TeacherForward(b)
	require.NoError(t, err)
	_, err = student.DistillStep(b, to, DistillOptions{Alpha: 1.5, Temp: 0})
	require.ErrorContains(t, err, "alpha")
	require.ErrorContains(t, err, "temperature")
	_, err = student.DistillStep(b, nil, DistillOptions{Alpha: 0.5, Temp: 1})
	require.ErrorContains(t, err, "no teacher outputs")

	other := teacher.Cfg
	other.Heads, other.Width, other.Depth = 4, 12, 1
	wide, err := New(other)
	require.NoError(t, err)
	wo, err := wide.TeacherForward(b)
	require.NoError(t, err)
	_, err = student.DistillStep(b, wo, DistillOptions{Alpha: 0.5, Temp: 1, Attn: 1})
	require.ErrorContains(t, err, "same number of layers")
	_, err = student.DistillStep(b, wo, DistillOptions{Alpha: 0.5, Temp: 1, Hidden: 1})
	require.ErrorContains(t, err, "same depth")
	res, err := student.DistillStep(b, wo, DistillOptions{Alpha: 0.5, Temp: 1})
	require.NoError(t, err, "logit distillation works across shapes")
	require.Greater(t, res.KD, 0.0)

	o := DistillOptions{Alpha: 0.5, Temp: 2, Attn: 1, Hidden: 1}
	err = CheckTeacher(student.Cfg, other, o)
	require.ErrorContains(t, err, "same layers and heads")
	require.ErrorContains(t, err, "same depth and width")
	require.NoError(t, CheckTeacher(student.Cfg, other, DistillOptions{Alpha: 0.5, Temp: 2}))
	short := teacher.Cfg
	short.Context = 4
	require.ErrorContains(t, CheckTeacher(student.Cfg, short, DistillOptions{Alpha: 0.5, Temp: 2}), "context 4 is shorter")
	img := tinyConfig(t, TaskMNIST)
	require.ErrorContains(t, CheckTeacher(student.Cfg, img, DistillOptions{Alpha: 0.5, Temp: 2}), "task mnist")
	cls := img
	cls.Classes, cls.Patch = 4, 2
	err = CheckTeacher(img, cls, o)
	require.ErrorContains(t, err, "4 classes")
	require.ErrorContains(t, err, "same sequence length")
}

// TestInitFromTeacher initializes a power-softmax, weight-normalized
// student from a softmax + LayerNorm teacher: every weight is copied, the
// weight-normalization parameters are re-derived so the materialized
// weights equal the teacher's, and the LayerNorm parameters do not exist
// in the student.
func TestInitFromTeacher(t *testing.T) {
	student, teacher := distillPair(t, TaskText)
	init, err := InitFromTeacher(student, teacher)
	require.NoError(t, err)
	status := map[string]string{}
	for _, n := range init.Copied {
		status[n] = "copied"
	}
	for _, n := range init.Derived {
		status[n] = "derived"
	}
	for _, n := range init.Kept {
		status[n] = "kept"
	}
	require.Len(t, status, len(student.Params()), "every parameter is listed once")
	for _, p := range student.Params() {
		tp := teacher.Reg.Get(p.Name)
		switch status[p.Name] {
		case "copied":
			require.NotNil(t, tp, p.Name)
			require.InDeltaSlice(t, tp.Value.Data, p.Value.Data, 1e-12, p.Name)
		case "derived":
			require.Nil(t, tp, p.Name)
		case "kept":
			require.True(t, tp == nil || !tp.Value.SameShape(p.Value), p.Name)
		}
	}
	for _, n := range []string{"embed.weight", "pos.weight", "head.weight", "blocks.0.attn.qkv.weight", "blocks.1.ffn.up.weight", "blocks.1.ffn.down.bias"} {
		if student.Reg.Get(n) != nil {
			require.Equal(t, "copied", status[n], n)
		}
	}
	require.NotEmpty(t, init.Derived, "weight normalization parameters are re-derived")
	require.Contains(t, init.Kept, "entropy.theta", "the teacher has no entropy regularizer")
	// the materialized weights are the teacher's (weight normalization is exact)
	student.Materialize()
	for _, r := range student.Reparams {
		w := r.Linear().W
		tw := teacher.Reg.Get(w.Name)
		require.NotNil(t, tw, w.Name)
		require.InDeltaSlice(t, tw.Value.Data, w.Value.Data, 1e-12, w.Name)
	}
	_, err = InitFromTeacher(student, mustNew(t, tinyConfig(t, TaskMNIST)))
	require.ErrorContains(t, err, "task")
}

func mustNew(t *testing.T, c Config) *Model {
	m, err := New(c)
	require.NoError(t, err)
	return m
}

// TestDistillOptionsJSON: the options keep the JSON of the training run's
// former wrapper type (teacher, the loss weights, init_from_teacher), so the
// distillation options saved with existing checkpoints still load.
func TestDistillOptionsJSON(t *testing.T) {
	saved := `{"teacher":"/ckpt/teacher","alpha":0.5,"temp":2,"attn":1,"hidden":0.1,"init_from_teacher":true}`
	var o DistillOptions
	require.NoError(t, json.Unmarshal([]byte(saved), &o))
	require.Equal(t, DistillOptions{Teacher: "/ckpt/teacher", Alpha: 0.5, Temp: 2, Attn: 1, Hidden: 0.1, InitFromTeacher: true}, o)
	require.True(t, o.Enabled())
	b, err := json.Marshal(o)
	require.NoError(t, err)
	require.JSONEq(t, saved, string(b))
	b, err = json.Marshal(DistillOptions{Alpha: 0.5, Temp: 2})
	require.NoError(t, err)
	require.JSONEq(t, `{"alpha":0.5,"temp":2}`, string(b))
	require.False(t, DistillOptions{Alpha: 0.5, Temp: 2}.Enabled())
}

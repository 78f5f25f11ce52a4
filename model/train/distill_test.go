package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/stretchr/testify/require"
)

// trainTeacher trains a tiny softmax + LayerNorm MNIST teacher and returns
// its directory and config.
func trainTeacher(t *testing.T, ds dataset.Dataset) (string, model.Config) {
	cfg := tinyCfg(t, model.TaskMNIST)
	cfg.Attention = model.AttentionConfig{Kind: model.AttnSoftmax}
	cfg.Norm = "layernorm"
	o := opts(t.TempDir())
	o.Dataset, o.CalibBatches, o.EvalEvery = ds, 0, 0
	_, err := Run(context.Background(), cfg, o, nil)
	require.NoError(t, err)
	return o.OutDir, cfg
}

func TestDistillRun(t *testing.T) {
	student := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), student)
	require.NoError(t, err)
	teacherDir, _ := trainTeacher(t, ds)

	o := opts(t.TempDir())
	o.Dataset, o.CalibBatches, o.Steps = ds, 0, 20
	o.Distill = model.DistillOptions{Teacher: teacherDir, InitFromTeacher: true, Alpha: 0.5, Temp: 2, Attn: 1, Hidden: 0.1}
	res, err := Run(context.Background(), student, o, nil)
	require.NoError(t, err)
	require.NotNil(t, res.TeacherInit)
	require.Contains(t, res.TeacherInit.Copied, "patch.weight")
	require.Contains(t, res.TeacherInit.Copied, "head.weight")
	require.NotEmpty(t, res.TeacherInit.Derived, "weight normalization of the copied weights")
	for _, n := range res.TeacherInit.Copied {
		require.NotContains(t, n, "norm", "the student has no LayerNorm parameters")
	}
	var train int
	for _, m := range readMetrics(t, o.OutDir) {
		if m.Kind != "train" {
			continue
		}
		train++
		require.Greater(t, m.KD, 0.0)
		require.Greater(t, m.AttnLoss, 0.0)
		require.Greater(t, m.HiddenLoss, 0.0)
		require.InDelta(t, 0.5*m.CE+0.5*m.KD+m.AttnLoss+0.1*m.HiddenLoss+m.EntLoss, m.Loss, 1e-9)
	}
	require.Equal(t, 20, train)
	var sum struct {
		Options struct {
			Distill map[string]any `json:"distill"`
		} `json:"options"`
	}
	b, err := os.ReadFile(filepath.Join(o.OutDir, SummaryFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sum))
	abs, err := filepath.Abs(teacherDir)
	require.NoError(t, err)
	require.Equal(t, abs, sum.Options.Distill["teacher"])
	require.Equal(t, 0.5, sum.Options.Distill["alpha"])
	require.Equal(t, 2.0, sum.Options.Distill["temp"])
	require.Equal(t, true, sum.Options.Distill["init_from_teacher"])
	m, err := checkpoint.Load(o.OutDir)
	require.NoError(t, err)
	require.Equal(t, student.Attention.Kind, m.Cfg.Attention.Kind)
	require.NotEqual(t, model.AttnSoftmax, m.Cfg.Attention.Kind, "the student is HE-friendly")
}

// TestDistillResumeKeepsOptions: a distilled run interrupted and resumed
// without distillation options continues distilling with the saved ones
// and ends with the weights of the uninterrupted run.
func TestDistillResumeKeepsOptions(t *testing.T) {
	student := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), student)
	require.NoError(t, err)
	teacherDir, _ := trainTeacher(t, ds)
	d := model.DistillOptions{Teacher: teacherDir, InitFromTeacher: true, Alpha: 0.7, Temp: 3, Attn: 0.5}

	full := opts(t.TempDir())
	full.Dataset, full.CalibBatches, full.Steps, full.EvalEvery, full.Distill = ds, 0, 20, 0, d
	_, err = Run(context.Background(), student, full, nil)
	require.NoError(t, err)

	split := opts(t.TempDir())
	split.Dataset, split.CalibBatches, split.Steps, split.EvalEvery, split.Distill, split.StopAt = ds, 0, 20, 0, d, 8
	_, err = Run(context.Background(), student, split, nil)
	require.NoError(t, err)
	split.StopAt, split.Resume, split.Distill = 0, true, model.DistillOptions{}
	res, err := Run(context.Background(), student, split, nil)
	require.NoError(t, err)
	require.Equal(t, teacherDir, res.Options.Distill.Teacher)
	require.Equal(t, 0.7, res.Options.Distill.Alpha)
	var kd int
	for _, m := range readMetrics(t, split.OutDir) {
		if m.Kind == "train" && m.Step > 8 {
			require.Greater(t, m.KD, 0.0, "step %d", m.Step)
			require.Greater(t, m.AttnLoss, 0.0, "step %d", m.Step)
			kd++
		}
	}
	require.Equal(t, 12, kd)
	a, err := checkpoint.Load(full.OutDir)
	require.NoError(t, err)
	b, err := checkpoint.Load(split.OutDir)
	require.NoError(t, err)
	for i, p := range a.Params() {
		require.Equal(t, p.Value.Data, b.Params()[i].Value.Data, p.Name)
	}
}

func TestDistillBadTeacher(t *testing.T) {
	student := tinyCfg(t, model.TaskMNIST)
	ds, err := dataset.NewImage(synthImages(256, 1), synthImages(64, 2), student)
	require.NoError(t, err)
	o := opts(t.TempDir())
	o.Dataset, o.CalibBatches, o.Steps = ds, 0, 2
	o.Distill = model.DistillOptions{Teacher: filepath.Join(t.TempDir(), "missing"), Alpha: 0.5, Temp: 2}
	_, err = Run(context.Background(), student, o, nil)
	require.ErrorContains(t, err, "teacher")
	require.ErrorContains(t, err, "missing")

	o.Distill = model.DistillOptions{InitFromTeacher: true, Alpha: 0.5, Temp: 2}
	_, err = Run(context.Background(), student, o, nil)
	require.ErrorContains(t, err, "needs a teacher")

	// a teacher of another shape: logits distill, attention matching does not
	tc := student
	tc.Heads, tc.Patch = 4, 2
	to := opts(t.TempDir())
	tds, err := dataset.NewImage(synthImages(64, 1), synthImages(64, 2), tc)
	require.NoError(t, err)
	to.Dataset, to.CalibBatches, to.Steps, to.EvalEvery = tds, 0, 1, 0
	_, err = Run(context.Background(), tc, to, nil)
	require.NoError(t, err)
	o.Distill = model.DistillOptions{Teacher: to.OutDir, Alpha: 0.5, Temp: 2, Attn: 1}
	_, err = Run(context.Background(), student, o, nil)
	require.ErrorContains(t, err, "incompatible teacher")
	require.ErrorContains(t, err, "layers and heads")
	o.Distill.Attn, o.Distill.Alpha = 0, 2
	_, err = Run(context.Background(), student, o, nil)
	require.ErrorContains(t, err, "alpha 2")
	o.Distill.Alpha = 1
	_, err = Run(context.Background(), student, o, nil)
	require.NoError(t, err, "pure logit distillation across shapes")
}

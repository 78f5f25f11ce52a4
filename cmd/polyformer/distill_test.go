package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/model/checkpoint"
	"github.com/polyformer/polyformer/model/train"
)

// tinyTextArgs are the flags of a tiny, fast byte-LM run on a text file.
func tinyTextArgs(text, out string, steps string) []string {
	return []string{"train", "--task", "text", "--text", text, "--width", "16", "--depth", "1", "--heads", "2",
		"--hidden", "32", "--context", "16", "--steps", steps, "--batch", "8", "--warmup", "1",
		"--calib-batches", "0", "--eval-every", "0", "--final-eval-limit", "16", "--checkpoint-every", "0",
		"--no-progress", "--out", out}
}

// TestDistillCLI trains a tiny softmax + LayerNorm teacher, then distills a
// power-softmax, weight-normalized student from it with every term and
// --init-from-teacher, and checks the checkpoint, the metrics and the
// copied weights.
func TestDistillCLI(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "corpus.txt")
	require.NoError(t, os.WriteFile(text, []byte(strings.Repeat("func main() { fmt.Println(\"hello\") }\n", 60)), 0o644))
	teacherDir := filepath.Join(dir, "teacher")
	out, err := runCLI(t, append(tinyTextArgs(text, teacherDir, "5"), "--attention", "softmax", "--norm", "layernorm")...)
	require.NoError(t, err, out)

	// a learning rate of 1e-12 keeps the student at its initialization, to
	// compare it with the teacher
	studentDir := filepath.Join(dir, "student")
	out, err = runCLI(t, append(tinyTextArgs(text, studentDir, "3"), "--attention", "power-softmax", "--lr", "1e-12", "--min-lr", "0",
		"--teacher", teacherDir, "--distill-attn", "2", "--distill-hidden", "0.5", "--init-from-teacher")...)
	require.NoError(t, err, out)
	require.Contains(t, out, "distilling from")
	require.Contains(t, out, "alpha 0.5, temperature 2", "defaults of --distill-alpha and --distill-temp")
	require.Contains(t, out, "initialized from the teacher: copied")

	student, err := checkpoint.Load(studentDir)
	require.NoError(t, err)
	require.Equal(t, "power-softmax", student.Cfg.Attention.Kind)
	require.Equal(t, "weightnorm", student.Cfg.Norm)
	teacher, err := checkpoint.Load(teacherDir)
	require.NoError(t, err)
	for _, name := range []string{"embed.weight", "pos.weight", "blocks.0.attn.qkv.weight", "blocks.0.ffn.down.weight", "head.weight"} {
		tp, sp := teacher.Reg.Get(name), student.Reg.Get(name)
		require.NotNil(t, tp, name)
		require.NotNil(t, sp, name)
		require.InDeltaSlice(t, tp.Value.Data, sp.Value.Data, 1e-9, "%s is copied from the teacher", name)
	}

	f, err := os.Open(filepath.Join(studentDir, train.MetricsFile))
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var steps int
	for sc.Scan() {
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		if m["kind"] != "train" {
			continue
		}
		steps++
		for _, k := range []string{"kd", "attn_loss", "hidden_loss", "ce", "loss"} {
			v, ok := m[k].(float64)
			require.True(t, ok, "metrics lack %s: %v", k, m)
			require.Greater(t, v, 0.0, k)
		}
	}
	require.Equal(t, 3, steps)

	var sum struct {
		Options struct {
			Distill map[string]any `json:"distill"`
		} `json:"options"`
		TeacherInit struct {
			Copied, Derived, Kept []string
		} `json:"teacher_init"`
	}
	b, err := os.ReadFile(filepath.Join(studentDir, train.SummaryFile))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &sum))
	require.Equal(t, teacherDir, sum.Options.Distill["teacher"])
	require.Equal(t, 2.0, sum.Options.Distill["attn"])
	require.Equal(t, 0.5, sum.Options.Distill["hidden"])
	require.Contains(t, sum.TeacherInit.Copied, "head.weight")
	require.NotEmpty(t, sum.TeacherInit.Derived)

	// errors name the problem
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "x"), "1"), "--distill-alpha", "0.3")...)
	require.ErrorContains(t, err, "--distill-alpha needs --teacher")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "x"), "1"), "--init-from-teacher")...)
	require.ErrorContains(t, err, "--init-from-teacher needs --teacher")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "x"), "1"), "--teacher", filepath.Join(dir, "nosuch"))...)
	require.ErrorContains(t, err, "teacher")
	require.ErrorContains(t, err, "nosuch")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "y"), "1"), "--context", "32", "--teacher", teacherDir)...)
	require.ErrorContains(t, err, "incompatible teacher")
	require.ErrorContains(t, err, "context 16 is shorter than the student's 32")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "z"), "1"), "--heads", "4", "--teacher", teacherDir, "--distill-attn", "1")...)
	require.ErrorContains(t, err, "same layers and heads")
	_, err = runCLI(t, append(tinyTextArgs(text, filepath.Join(dir, "w"), "1"), "--teacher", teacherDir, "--distill-alpha", "1.5")...)
	require.ErrorContains(t, err, "alpha 1.5")
}

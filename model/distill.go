package model

import (
	"errors"
	"fmt"
	"math"

	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/norm"
)

// DistillOptions weight the terms of the knowledge-distillation loss of
// DistillStep:
//
//	Loss = (1-Alpha) CE + Alpha KD + Attn L_attn + Hidden L_hid (+ the entropy penalty)
//
// with, for N predictions (rows of logits), temperature T = Temp,
// p^t = softmax(z_teacher/T) and p^s = softmax(z_student/T) per row:
//
//	KD     = T^2 (1/N) sum_rows KL(p^t || p^s)
//	L_attn = (1/L) sum_l mean over [B, H, T, T] of (p_ij - q_ij)^2
//	L_hid  = (1/L) sum_l mean over [B, T, Width] of (h^s_l - h^t_l)^2
//
// where p_ij = a_ij / sum_k a_ik is the row-normalized student attention
// weight of layer l (every head, batch item and query row), q_ij the
// teacher's (row-normalized as well: a no-op for softmax), and h_l the
// residual stream after block l. L_attn needs the same number of layers,
// heads and tokens in both models, L_hid the same depth, width and tokens;
// each is computed only when its weight is positive.
//
// The same options configure a distilled training run (model/train): the
// teacher checkpoint (run in exact mode on every training batch; "" means
// no distillation) and whether the student starts from the teacher's
// weights. DistillStep uses only the weights.
type DistillOptions struct {
	// Teacher is the teacher checkpoint directory of a training run ("" disables distillation).
	Teacher string `json:"teacher,omitempty"`
	// Alpha in [0, 1] mixes the hard-label CE and the soft-target KD term.
	Alpha float64 `json:"alpha"`
	// Temp > 0 is the softmax temperature of the soft targets.
	Temp float64 `json:"temp"`
	// Attn >= 0 weights attention-map matching (0: off).
	Attn float64 `json:"attn,omitempty"`
	// Hidden >= 0 weights hidden-state matching (0: off).
	Hidden float64 `json:"hidden,omitempty"`
	// InitFromTeacher starts the student of a training run from the
	// teacher's weights: every parameter with the same name and shape is
	// copied (InitFromTeacher).
	InitFromTeacher bool `json:"init_from_teacher,omitempty"`
}

// Enabled says whether a teacher is set.
func (o DistillOptions) Enabled() bool { return o.Teacher != "" }

// Validate checks the ranges of the loss weights.
func (o DistillOptions) Validate() error {
	var errs []error
	if !(o.Alpha >= 0 && o.Alpha <= 1) {
		errs = append(errs, fmt.Errorf("alpha %g must be in [0, 1]", o.Alpha))
	}
	if !(o.Temp > 0) || math.IsInf(o.Temp, 0) {
		errs = append(errs, fmt.Errorf("temperature %g must be positive and finite", o.Temp))
	}
	if !(o.Attn >= 0) || !(o.Hidden >= 0) || math.IsInf(o.Attn+o.Hidden, 0) {
		errs = append(errs, fmt.Errorf("attention weight %g and hidden weight %g must be >= 0 and finite", o.Attn, o.Hidden))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid distillation options: %w", errors.Join(errs...))
	}
	return nil
}

// CheckTeacher reports why a model of config teacher cannot guide a student
// of config student with options o: the task, the classes (images) or
// vocabulary (text) and the input (image size; teacher context >= student
// context) must agree so the teacher runs on the student's batches; the
// attention term needs equal depth, heads and tokens, the hidden term equal
// depth, width and tokens.
func CheckTeacher(student, teacher Config, o DistillOptions) error {
	if err := o.Validate(); err != nil {
		return err
	}
	if student.Task != teacher.Task {
		return fmt.Errorf("incompatible teacher: task %s, the student's is %s", teacher.Task, student.Task)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if student.Task == TaskMNIST {
		if student.Classes != teacher.Classes {
			bad("teacher has %d classes, student %d", teacher.Classes, student.Classes)
		}
		if student.ImageRows != teacher.ImageRows || student.ImageCols != teacher.ImageCols {
			bad("teacher reads %dx%d images, student %dx%d", teacher.ImageRows, teacher.ImageCols, student.ImageRows, student.ImageCols)
		}
	} else {
		if student.Vocab != teacher.Vocab {
			bad("teacher vocabulary %d, student %d", teacher.Vocab, student.Vocab)
		}
		if teacher.Context < student.Context {
			bad("teacher context %d is shorter than the student's %d", teacher.Context, student.Context)
		}
	}
	if o.Attn > 0 {
		if student.Depth != teacher.Depth || student.Heads != teacher.Heads {
			bad("attention matching needs the same layers and heads: teacher %d layers x %d heads, student %d x %d", teacher.Depth, teacher.Heads, student.Depth, student.Heads)
		}
		if student.Task == TaskMNIST && student.Tokens() != teacher.Tokens() {
			bad("attention matching needs the same sequence length: teacher %d tokens, student %d", teacher.Tokens(), student.Tokens())
		}
	}
	if o.Hidden > 0 {
		if student.Depth != teacher.Depth || student.Width != teacher.Width {
			bad("hidden-state matching needs the same depth and width: teacher depth %d width %d, student depth %d width %d", teacher.Depth, teacher.Width, student.Depth, student.Width)
		}
		if student.Task == TaskMNIST && student.Tokens() != teacher.Tokens() {
			bad("hidden-state matching needs the same sequence length: teacher %d tokens, student %d", teacher.Tokens(), student.Tokens())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("incompatible teacher: %w", errors.Join(errs...))
	}
	return nil
}

// TeacherOutputs are what a teacher computed on one batch (copies, safe to
// keep across later forward passes).
type TeacherOutputs struct {
	// Logits are [B, Classes] (images) or [B, T, Vocab] (text).
	Logits *nn.Tensor
	// Attn[l] are the attention weights of layer l, [B, Heads, T, T].
	Attn [][]float64
	// Hidden[l] is the residual stream after block l, [B, T, Width].
	Hidden []*nn.Tensor
}

// TeacherForward runs the model (in its current mode and in inference
// mode: no gradients, no training statistics) on a batch and returns its
// logits, every layer's attention weights and every block's output.
func (m *Model) TeacherForward(b Batch) (*TeacherOutputs, error) {
	logits, hs, err := m.forward(b, true)
	if err != nil {
		return nil, fmt.Errorf("teacher forward: %w", err)
	}
	out := &TeacherOutputs{Logits: logits.Clone()}
	for l, blk := range m.Blocks {
		out.Attn = append(out.Attn, append([]float64(nil), blk.Attn.Weights()...))
		out.Hidden = append(out.Hidden, hs[l].Clone())
	}
	return out, nil
}

// DistillResult is the outcome of a distillation step. Loss (of the
// embedded StepResult) is the optimized total (see DistillOptions), CE the
// plain cross-entropy and EntLoss the entropy penalty; the other terms are
// reported unweighted.
type DistillResult struct {
	StepResult
	// KD is T^2 times the mean KL divergence of the soft targets.
	KD float64
	// AttnLoss is L_attn (0 when its weight is 0).
	AttnLoss float64
	// HiddenLoss is L_hid (0 when its weight is 0).
	HiddenLoss float64
}

// DistillStep runs forward and backward on a batch with the distillation
// loss against the teacher's outputs t on the same batch: it accumulates
// gradients exactly like Step (CE weighted by 1-Alpha, the entropy
// penalty, reparameterizations, StepEnders) plus those of the KD,
// attention and hidden terms.
func (m *Model) DistillStep(b Batch, t *TeacherOutputs, o DistillOptions) (DistillResult, error) {
	m.setTraining(true)
	defer m.setTraining(false)
	return m.distill(b, t, o, true)
}

// DistillForward computes the distillation loss of DistillStep without
// gradients (inference mode).
func (m *Model) DistillForward(b Batch, t *TeacherOutputs, o DistillOptions) (DistillResult, error) {
	return m.distill(b, t, o, false)
}

func (m *Model) distill(b Batch, t *TeacherOutputs, o DistillOptions, grads bool) (DistillResult, error) {
	if err := o.Validate(); err != nil {
		return DistillResult{}, err
	}
	if t == nil || t.Logits == nil {
		return DistillResult{}, errors.New("distill: no teacher outputs")
	}
	logits, hs, err := m.forward(b, o.Hidden > 0)
	if err != nil {
		return DistillResult{}, err
	}
	sr, ceGrad, err := m.lossOf(b, logits)
	if err != nil {
		return DistillResult{StepResult: sr}, err
	}
	res := DistillResult{StepResult: sr}
	if !t.Logits.SameShape(logits) {
		return res, fmt.Errorf("distill: teacher logits %v, student logits %v", t.Logits.Shape, logits.Shape)
	}
	var kdGrad *nn.Tensor
	if grads {
		kdGrad = nn.New(logits.Shape...)
	}
	res.KD = kdLoss(logits, t.Logits, o.Temp, kdGrad)
	res.Loss = (1-o.Alpha)*sr.CE + o.Alpha*res.KD + sr.EntLoss
	nl := len(m.Blocks)
	var attnGrads [][]float64
	if o.Attn > 0 {
		if len(t.Attn) != nl {
			return res, fmt.Errorf("distill: attention matching needs the same number of layers: teacher %d, student %d", len(t.Attn), nl)
		}
		tok := m.seqLen(b)
		for l, blk := range m.Blocks {
			a := blk.Attn.Weights()
			if len(t.Attn[l]) != len(a) {
				return res, fmt.Errorf("distill: layer %d: teacher attention has %d weights, student %d (%d heads x %d^2 tokens x %d): heads and sequence length must match",
					l, len(t.Attn[l]), len(a), m.Cfg.Heads, tok, b.B)
			}
			var da []float64
			if grads {
				da = make([]float64, len(a))
				attnGrads = append(attnGrads, da)
			}
			res.AttnLoss += attnMatch(a, t.Attn[l], tok, o.Attn/float64(nl*len(a)), da) / float64(nl*len(a))
		}
		res.Loss += o.Attn * res.AttnLoss
	}
	var hidGrads []*nn.Tensor
	if o.Hidden > 0 {
		if len(t.Hidden) != nl {
			return res, fmt.Errorf("distill: hidden-state matching needs the same depth: teacher %d blocks, student %d", len(t.Hidden), nl)
		}
		for l, h := range hs {
			th := t.Hidden[l]
			if !th.SameShape(h) {
				return res, fmt.Errorf("distill: block %d: teacher hidden state %v, student %v: width and sequence length must match", l, th.Shape, h.Shape)
			}
			n := float64(nl * h.Len())
			var g *nn.Tensor
			if grads {
				g = nn.New(h.Shape...)
				hidGrads = append(hidGrads, g)
			}
			for i, v := range h.Data {
				d := v - th.Data[i]
				res.HiddenLoss += d * d / n
				if g != nil {
					g.Data[i] = 2 * o.Hidden * d / n
				}
			}
		}
		res.Loss += o.Hidden * res.HiddenLoss
	}
	if math.IsNaN(res.Loss) || math.IsInf(res.Loss, 0) {
		return res, errors.New("distillation loss is not finite (training diverged)")
	}
	if !grads {
		return res, nil
	}
	for i := range ceGrad.Data {
		ceGrad.Data[i] = (1-o.Alpha)*ceGrad.Data[i] + o.Alpha*kdGrad.Data[i]
	}
	for l, da := range attnGrads {
		if err := m.Blocks[l].Attn.SetWeightsGrad(da); err != nil {
			return res, fmt.Errorf("distill: %w", err)
		}
	}
	defer func() {
		for _, blk := range m.Blocks {
			_ = blk.Attn.SetWeightsGrad(nil)
		}
	}()
	m.backward(sr, b, ceGrad, hidGrads)
	return res, nil
}

// kdLoss returns T^2 (1/N) sum_rows KL(softmax(zt/T) || softmax(zs/T)) for
// logits zs (student) and zt (teacher) of N rows, and when grad is not nil
// stores its gradient with respect to zs, T (p^s - p^t) / N.
func kdLoss(zs, zt *nn.Tensor, temp float64, grad *nn.Tensor) float64 {
	n, c := zs.Rows(), zs.Cols()
	ls, lt := make([]float64, c), make([]float64, c)
	var kl float64
	for i := 0; i < n; i++ {
		logSoftmax(zs.Data[i*c:(i+1)*c], temp, ls)
		logSoftmax(zt.Data[i*c:(i+1)*c], temp, lt)
		for j := range lt {
			pt := math.Exp(lt[j])
			if pt > 0 {
				kl += pt * (lt[j] - ls[j])
			}
			if grad != nil {
				grad.Data[i*c+j] = temp * (math.Exp(ls[j]) - pt) / float64(n)
			}
		}
	}
	return temp * temp * kl / float64(n)
}

// logSoftmax stores log softmax(z/temp) in out.
func logSoftmax(z []float64, temp float64, out []float64) {
	mx := math.Inf(-1)
	for _, v := range z {
		mx = math.Max(mx, v/temp)
	}
	var s float64
	for _, v := range z {
		s += math.Exp(v/temp - mx)
	}
	lse := mx + math.Log(s)
	for j, v := range z {
		out[j] = v/temp - lse
	}
}

// attnMatch returns sum (p_ij - q_ij)^2 over the rows of t x t blocks of a
// (student) and ta (teacher) with p and q their row-normalized forms
// (all-zero rows stay zero), and when da is not nil adds scale times the
// gradient of that sum with respect to a: with g_j = 2 (p_j - q_j) and S the
// row sum, d/da_j = (g_j - sum_k p_k g_k) / S.
func attnMatch(a, ta []float64, t int, scale float64, da []float64) float64 {
	var loss float64
	p, q := make([]float64, t), make([]float64, t)
	for r := 0; r+t <= len(a); r += t {
		row, trow := a[r:r+t], ta[r:r+t]
		s := normalizeRow(row, p)
		normalizeRow(trow, q)
		var mean float64
		for j := range p {
			d := p[j] - q[j]
			loss += d * d
			mean += p[j] * 2 * d
		}
		if da == nil || s == 0 {
			continue
		}
		for j := range p {
			da[r+j] += scale * (2*(p[j]-q[j]) - mean) / s
		}
	}
	return loss
}

// normalizeRow stores row / sum(row) in out (zeros when the sum is 0) and
// returns the sum.
func normalizeRow(row, out []float64) float64 {
	var s float64
	for _, v := range row {
		s += v
	}
	for j, v := range row {
		if s == 0 {
			out[j] = 0
		} else {
			out[j] = v / s
		}
	}
	return s
}

// TeacherInit lists what InitFromTeacher did with each student parameter.
type TeacherInit struct {
	// Copied parameters took the teacher's value (same name and shape).
	Copied []string `json:"copied"`
	// Derived parameters of weight-side reparameterizations (weight
	// normalization and the like) were re-derived from a copied weight,
	// because the teacher does not have them.
	Derived []string `json:"derived,omitempty"`
	// Kept parameters were left at the student's initialization.
	Kept []string `json:"kept"`
}

// InitFromTeacher copies into student every parameter of teacher with the
// same name and shape ("continual training after swapping attention and
// norms": a softmax + LayerNorm teacher initializes a power-attention,
// norm-free student). When the student reparameterizes a linear weight
// (weight normalization, sigmaReparam, scaled weight standardization) that
// was copied but the teacher lacks the reparameterization's parameters,
// they are re-derived from the copied weight as at initialization (exact for
// weight normalization and sigmaReparam; scaled weight standardization
// standardizes it). Both models must have the same task.
func InitFromTeacher(student, teacher *Model) (TeacherInit, error) {
	if student.Cfg.Task != teacher.Cfg.Task {
		return TeacherInit{}, fmt.Errorf("init from teacher: teacher task %s, student task %s", teacher.Cfg.Task, student.Cfg.Task)
	}
	teacher.Materialize()
	const (
		kept = iota
		copied
		derived
	)
	status := map[string]int{}
	for _, p := range student.Params() {
		tp := teacher.Reg.Get(p.Name)
		if tp == nil || !tp.Value.SameShape(p.Value) {
			status[p.Name] = kept
			continue
		}
		copy(p.Value.Data, tp.Value.Data)
		status[p.Name] = copied
	}
	for _, r := range student.Reparams {
		lin := r.Linear()
		if status[lin.W.Name] != copied {
			continue
		}
		all := true
		for _, p := range r.Params() {
			all = all && status[p.Name] == copied
		}
		if all {
			continue
		}
		fresh, err := norm.NewReparam(r.Method(), lin)
		if err != nil {
			return TeacherInit{}, fmt.Errorf("init from teacher: %w", err)
		}
		fp := fresh.Params()
		for i, p := range r.Params() {
			copy(p.Value.Data, fp[i].Value.Data)
			status[p.Name] = derived
		}
	}
	student.Materialize()
	var ti TeacherInit
	for _, p := range student.Params() {
		switch status[p.Name] {
		case copied:
			ti.Copied = append(ti.Copied, p.Name)
		case derived:
			ti.Derived = append(ti.Derived, p.Name)
		default:
			ti.Kept = append(ti.Kept, p.Name)
		}
	}
	return ti, nil
}

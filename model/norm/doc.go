// Package norm holds every normalization layer and norm-free substitute
// of polyformer, all implementing nn.Norm so that model builds them by name
// (NewWith, Methods), with training forward and backward, an inference form,
// exact folding into the adjacent linear layer where the algebra allows
// (Foldable, AffineForm, FoldIntoLinear) and a CKKS cost (CostOf,
// CostTable).
//
// Methods: LayerNorm, RMSNorm, CRMSNorm (on a compressed stream), BatchNorm
// with running statistics, RepBN, progressive PRepBN, PowerNorm (with and
// without per-group RMS scaling), Unified Normalization, a fixed-scale
// substitute, and the weight-side methods sigmaReparam, weight
// normalization and scaled weight standardization (Reparam). Options also
// select the placement inside a block (pre, post, peri, mix, LayerNorm
// Scaling, DeepNorm), which model and nn.Block implement.
//
// Norms with an inverse square root evaluate it through an nn.Site, so in
// poly mode they use the same Newton plan (polyapprox.NewtonInvSqrt on the
// calibrated range) that the encrypted circuit evaluates; Backward
// differentiates whatever Forward computed (exact or polynomial). Norms with
// batch statistics implement nn.Trainable (training mode only inside
// model.Model.Step) and nn.StepEnder (running statistics and schedules move
// once per training step), and keep their state in frozen parameters so
// checkpoints carry it.
//
// Package model/convert rewrites trained models exactly: the Pre-LN to
// Pre-RMSNorm conversion and the folding of every foldable norm.
// docs/normalization.md explains the methods, their costs and the ablation.
package norm

// Package normfree holds normalization layers and their norm-free
// substitutes, all implementing nn.Norm so that model builds them by name.
//
// This first version provides LayerNorm, RMSNorm and None (identity). The
// full set (BatchNorm/RepBN, sigmaReparam, fixed scales, folding into
// adjacent linear layers, HE cost reports) comes with the normfree issue.
//
// LayerNorm and RMSNorm evaluate their reciprocal square root through an
// nn.Site, so in poly mode they use the same Newton inverse-square-root plan
// (polyapprox.NewtonInvSqrt on the calibrated variance range) that the
// encrypted circuit evaluates. Backward differentiates whatever Forward
// computed (exact or polynomial), so poly-mode fine-tuning gets true gradients.
package normfree

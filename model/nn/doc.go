// Package nn is the lowest layer of polyformer's plaintext training engine:
// float64 tensors multiplied through gonum BLAS, the Module interface that
// every layer implements (Forward caches what Backward needs, Backward returns
// the input gradient and accumulates parameter gradients), a parameter
// registry, a finite-difference gradient checker, the transformer layers
// (linear, embeddings, multi-head self-attention with pluggable attention
// kernels, FFN with several activations, pre-norm residual blocks, heads),
// cross-entropy, entropy regularization, and the Site mechanism that lets
// every scalar non-linearity run exactly, record its input range
// (calibration), or run as the polyapprox polynomial the encrypted circuit
// evaluates (poly mode). Backward passes differentiate whatever the forward
// pass computed, so poly-mode fine-tuning gets exact gradients of the
// polynomial model.
//
// Layers are not safe for concurrent use: a Forward must be followed by its
// Backward before the next Forward. Inside a layer, independent work (batch
// items, heads) runs on at most runtime.GOMAXPROCS goroutines.
//
// The Norm interface declared here is implemented by package model/norm, which
// model builds its blocks from: the imports point one way (model/nn <
// model/norm < model).
package nn

// Package compiler is the front end of the compiler: it lowers a trained,
// calibrated polyformer model (a checkpoint's model.Model) into the op
// graph of package he/circuit (Compile), and picks and plans a parameter
// preset for it (CompileFor). Everything after the op graph (plan,
// simulator, executor, report, circuit file) is the back end, he/circuit,
// which does not import the model; this package does not import Lattigo.
//
// # Lowering
//
// Every normalization, attention scale and constant is folded into a
// neighbouring plaintext: the residual stream carries a scalar scale σ
// (scaled residuals); norms' gains and biases and σ go into the next linear
// layer; the change of basis of each Chebyshev polynomial into the linear
// layer producing its input; 1/sqrt(dh), temperatures, the Power-Softmax
// length norm and Goldschmidt's normalizer into the score mask; the mask's
// per-row factors and Goldschmidt's sign into the out projection. Attention
// uses the diagonal method of docs/design.md §3: for r = 0..T-1, Q ⊙ rot(K, r·B·D)
// summed over each head (butterfly), masked to the head's first slot (which
// also applies causal masks), x^p, row sums by additions, the Goldschmidt
// iterations of the calibrated plan, weights broadcast back over the head
// and multiplied with rot(V, r·B·D). Mean pooling is a butterfly over token
// rotations. LayerNorm and RMSNorm evaluate the calibrated Newton plan op by
// op, the mean and variance being linear transforms.
package compiler

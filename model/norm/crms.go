package norm

import (
	"fmt"

	"github.com/polyformer/polyformer/model/nn"
)

// MethodCRMSNorm names CRMSNorm. It is not a model method: it acts on a
// residual stream compressed to Dim-1 channels (see CRMSNorm).
const MethodCRMSNorm = "crmsnorm"

// CRMSNorm is compressed RMSNorm (Jiang et al., 2023). A zero-mean vector
// of width D is stored losslessly in its first D-1 coordinates (the last is
// minus their sum); CRMSNorm normalizes such a compressed vector x exactly
// as RMSNorm normalizes the full one:
//
//	y = x / sqrt((sum x^2 + (sum x)^2) / D + Eps)
//
// and returns the first D-1 coordinates of the normalized full vector. The
// gain and the decompression fold into the next linear layer
// (DecompressLinear). Under CKKS slot packing the saved channel buys
// nothing (widths are padded to powers of two) while the extra sum costs
// log2(D) more rotations than RMSNorm; see Cost.
type CRMSNorm struct {
	// Dim is the full width D; inputs have Dim-1 channels.
	Dim  int
	Eps  float64
	site *nn.Site
	x    *nn.Tensor
	v, r []float64
	sums []float64
}

// NewCRMSNorm returns a CRMSNorm for a stream of full width dim (inputs of width dim-1).
func NewCRMSNorm(name string, dim int, eps float64) (*CRMSNorm, error) {
	if dim < 2 {
		return nil, fmt.Errorf("crmsnorm %s: full width %d must be at least 2", name, dim)
	}
	return &CRMSNorm{Dim: dim, Eps: eps, site: nn.NewSite(name+".invsqrt", nn.FnInvSqrt)}, nil
}

// Method returns "crmsnorm".
func (c *CRMSNorm) Method() string { return MethodCRMSNorm }

// Forward normalizes compressed rows of width Dim-1.
func (c *CRMSNorm) Forward(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	c.x = x
	c.v, c.r, c.sums = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		var s, s2 float64
		for _, a := range x.Data[i*d : (i+1)*d] {
			s += a
			s2 += a * a
		}
		c.sums[i] = s
		c.v[i] = (s2+s*s)/float64(c.Dim) + c.Eps
	}
	c.site.Apply(c.r, c.v)
	y := nn.New(x.Shape...)
	for i := 0; i < n; i++ {
		for j := 0; j < d; j++ {
			y.Data[i*d+j] = x.Data[i*d+j] * c.r[i]
		}
	}
	return y
}

// Backward differentiates the last Forward (exact or poly mode).
func (c *CRMSNorm) Backward(dy *nn.Tensor) *nn.Tensor {
	n, d := dy.Rows(), dy.Cols()
	dx := nn.New(dy.Shape...)
	for i := 0; i < n; i++ {
		var dr float64
		for j := 0; j < d; j++ {
			dr += dy.Data[i*d+j] * c.x.Data[i*d+j]
		}
		dv := c.site.Deriv(c.v[i]) * dr / float64(c.Dim)
		for j := 0; j < d; j++ {
			k := i*d + j
			dx.Data[k] = dy.Data[k]*c.r[i] + dv*(2*c.x.Data[k]+2*c.sums[i])
		}
	}
	return dx
}

// Params returns nothing (the gain folds into the next linear layer).
func (c *CRMSNorm) Params() []*nn.Param { return nil }

// Sites returns the inverse-square-root site.
func (c *CRMSNorm) Sites() []*nn.Site { return []*nn.Site{c.site} }

// Compress drops the last channel of zero-mean rows of width D.
func Compress(x *nn.Tensor) *nn.Tensor {
	n, d := x.Rows(), x.Cols()
	shape := append(append([]int(nil), x.Shape[:len(x.Shape)-1]...), d-1)
	y := nn.New(shape...)
	for i := 0; i < n; i++ {
		copy(y.Data[i*(d-1):(i+1)*(d-1)], x.Data[i*d:i*d+d-1])
	}
	return y
}

// DecompressLinear returns a linear layer on compressed inputs of width
// lin.In-1 that computes lin on the decompressed vector [x, -sum x]:
// W'[j] = W[j] - W[D-1], same bias. The name is lin's.
func DecompressLinear(lin *nn.Linear) *nn.Linear {
	in, out := lin.In, lin.Out
	c := &nn.Linear{In: in - 1, Out: out, W: nn.NewParam(lin.W.Name, in-1, out), B: nn.NewParam(lin.B.Name, out)}
	c.B.NoDecay = true
	copy(c.B.Value.Data, lin.B.Value.Data)
	last := lin.W.Value.Data[(in-1)*out : in*out]
	for j := 0; j < in-1; j++ {
		for k := 0; k < out; k++ {
			c.W.Value.Data[j*out+k] = lin.W.Value.Data[j*out+k] - last[k]
		}
	}
	return c
}

package norm

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/polyformer/polyformer/model/nn"
)

// CostOptions describe the circuit a cost is computed for.
type CostOptions struct {
	// Width is the model width D and Tokens the sequence length T.
	Width  int `json:"width"`
	Tokens int `json:"tokens"`
	// Slots per ciphertext (default 16384, logN = 15); the T x D activations
	// (D padded to a power of two) fill ceil(T D / Slots) ciphertexts.
	Slots int `json:"slots"`
	// VarRange is the calibrated input range of the inverse square root
	// (default [0.1, 10]); it is widened and fitted as nn.DefaultFitOptions does.
	VarRange [2]float64 `json:"var_range"`
	// Depth is the number of blocks (for the mix placement; default 2).
	Depth int `json:"depth"`
}

func (o CostOptions) defaults() CostOptions {
	if o.Slots == 0 {
		o.Slots = 1 << 14
	}
	if o.VarRange == [2]float64{} {
		o.VarRange = [2]float64{0.1, 10}
	}
	if o.Depth == 0 {
		o.Depth = 2
	}
	return o
}

// Cost is the CKKS cost of a normalization method under the row-major slot
// packing of docs/design.md §3 (a token's D channels in consecutive
// slots; a sum over a token's channels is a log2(D)-step rotate-and-add
// butterfly that leaves the sum in every slot of the token).
//
// Per norm application: Depth is the levels on the critical path,
// CtMults the ciphertext-ciphertext multiplications (each a
// relinearization, i.e. a key switch), Rotations the rotations (key
// switches), PtMults the plaintext multiplications that are not folded
// into an adjacent linear layer. The Block* fields count all norms of one
// block (they run in series, so depths add up); FinalNorm says whether the
// model adds one more norm before the head. All counts are per ciphertext
// except Block*, which multiply by Ciphertexts.
type Cost struct {
	Method         string `json:"method"`
	Placement      string `json:"placement"`
	Description    string `json:"description"`
	Depth          int    `json:"depth"`
	CtMults        int    `json:"ct_mults"`
	Rotations      int    `json:"rotations"`
	PtMults        int    `json:"pt_mults"`
	FoldsToZero    bool   `json:"folds_to_zero"`
	NormsPerBlock  int    `json:"norms_per_block"`
	BlockDepth     int    `json:"block_depth"`
	BlockCtMults   int    `json:"block_ct_mults"`
	BlockRotations int    `json:"block_rotations"`
	BlockPtMults   int    `json:"block_pt_mults"`
	FinalNorm      bool   `json:"final_norm"`
	Ciphertexts    int    `json:"ciphertexts"`
	Note           string `json:"note,omitempty"`
}

// InvSqrtCost is the depth and ciphertext multiplications of the Newton
// inverse-square-root plan fitted (nn.FitSpec, default fit options) on r.
func InvSqrtCost(r [2]float64) (depth, ctMults int, err error) {
	spec, err := nn.FitSpec("cost", nn.FnInvSqrt, r[0], r[1], nn.DefaultFitOptions())
	if err != nil {
		return 0, 0, fmt.Errorf("inverse square root cost: %w", err)
	}
	n, err := spec.Newton()
	if err != nil {
		return 0, 0, fmt.Errorf("inverse square root cost: %w", err)
	}
	return n.Depth(), n.CtMults(), nil
}

// InvSqrtNormCost returns the levels and ciphertext multiplications of one
// LayerNorm or RMSNorm application, as the compiler lowers it, whose Newton
// inverse-square-root plan has depth dinv and minv ciphertext
// multiplications: x^2 (1 mult, 1 level), the row mean as a plaintext
// linear transform that also folds the plan's change of basis (1 level), the
// plan, and x * r (1 mult, 1 level); LayerNorm first centres x with a
// plaintext linear transform (1 more level).
func InvSqrtNormCost(method string, dinv, minv int) (depth, ctMults int) {
	depth, ctMults = dinv+2, minv+2
	if method == MethodLayerNorm {
		depth++
	}
	return depth, ctMults
}

func log2ceil(n int) int {
	if n <= 1 {
		return 0
	}
	return int(math.Ceil(math.Log2(float64(n))))
}

// CostOf returns the cost of method with options no (placement, groups)
// for the circuit o. method may also be MethodCRMSNorm.
func CostOf(method string, no Options, o CostOptions) (Cost, error) {
	o = o.defaults()
	if o.Width <= 0 || o.Tokens <= 0 || o.Slots <= 0 {
		return Cost{}, fmt.Errorf("cost: width %d, tokens %d and slots %d must be positive", o.Width, o.Tokens, o.Slots)
	}
	if method != MethodCRMSNorm {
		if err := ValidMethod(method); err != nil {
			return Cost{}, fmt.Errorf("cost: %w", err)
		}
	}
	if err := no.Validate(); err != nil {
		return Cost{}, fmt.Errorf("cost: %w", err)
	}
	no = no.Defaults()
	dinv, minv, err := InvSqrtCost(o.VarRange)
	if err != nil {
		return Cost{}, err
	}
	pad := 1 << log2ceil(o.Width)
	r := log2ceil(o.Width)
	c := Cost{Method: method, Placement: no.Placement, Description: Describe(method),
		Ciphertexts: (o.Tokens*pad + o.Slots - 1) / o.Slots}
	if method == MethodCRMSNorm {
		c.Description = "compressed RMSNorm on a (D-1)-channel zero-mean stream"
	}
	// per-norm cost of the non-foldable methods
	switch method {
	case MethodRMSNorm:
		c.Depth, c.CtMults = InvSqrtNormCost(method, dinv, minv)
		c.Rotations = r
		c.Note = "x^2 (1 mult), row mean (log2 D rotations, 1 level), Newton 1/sqrt, x * r (1 mult)"
	case MethodLayerNorm:
		c.Depth, c.CtMults = InvSqrtNormCost(method, dinv, minv)
		c.Rotations = 2 * r
		c.Note = "RMSNorm plus the centring x - mean(x) (log2 D more rotations, 1 level: a plaintext linear transform)"
	case MethodCRMSNorm:
		c.Depth, c.CtMults, c.Rotations = dinv+2, minv+3, 2*r
		c.Note = "sum x^2 and (sum x)^2: two row sums and one more mult; the saved channel saves no slots (D is padded to a power of two)"
	case MethodPowerNorm:
		if no.Groups > 0 {
			c.Method = fmt.Sprintf("%s (groups %d)", method, no.Groups)
			c.Depth, c.CtMults, c.Rotations = dinv+2, minv+2, log2ceil(o.Width/no.Groups)
			c.Note = "per-group RMS scaling (rotations within a group) does not fold; the running-statistics part does"
		} else {
			c.FoldsToZero = true
		}
	case MethodPRepBN:
		c.FoldsToZero = true
		c.Note = "after lambda reaches 0 (RepBN alone); before that it costs a LayerNorm"
	case MethodSigmaReparam, MethodWeightNorm, MethodScaledWS:
		c.FoldsToZero = true
		c.Note = "no norm layer: the reparameterized weights are the weights"
	case MethodNone:
		c.FoldsToZero = true
		c.Note = "nothing to compute"
	default: // batchnorm, repbn, unified, fixedscale
		c.FoldsToZero = true
	}
	c.NormsPerBlock = 2
	if IsWeightSide(method) || method == MethodNone {
		c.NormsPerBlock = 0
	}
	c.FinalNorm = c.NormsPerBlock > 0
	switch no.Placement {
	case PlacePeri:
		if c.NormsPerBlock > 0 {
			c.NormsPerBlock = 4
		}
	case PlacePost, PlaceDeepNorm, PlaceMix:
		if no.Placement != PlaceMix {
			c.FinalNorm = false
		}
		if c.FoldsToZero && c.NormsPerBlock > 0 {
			// an affine map on the residual stream: one plaintext product and level
			c.FoldsToZero = false
			c.Depth, c.PtMults = 1, 1
			c.Note = "a post norm acts on the residual stream: its affine form is a plaintext product (1 level), not folded"
		}
		if no.Placement == PlaceMix {
			c.Note = strings.TrimSpace(c.Note + fmt.Sprintf(" (mix: the first ceil(%g L) blocks are post, the rest pre; block columns show a post block)", no.MixFraction))
		}
	}
	n := c.NormsPerBlock
	c.BlockDepth, c.BlockCtMults = n*c.Depth, n*c.CtMults*c.Ciphertexts
	c.BlockRotations, c.BlockPtMults = n*c.Rotations*c.Ciphertexts, n*c.PtMults*c.Ciphertexts
	if no.Placement == PlaceDeepNorm {
		// alpha * x on both skip paths (off the critical path)
		c.BlockPtMults += 2 * c.Ciphertexts
	}
	return c, nil
}

// CostTable returns the cost of every method (pre-norm), of PowerNorm with
// group scaling (1 and 4 groups), of CRMSNorm, and of LayerNorm, RMSNorm
// and BatchNorm in the other placements, for width D and T tokens with the
// default CostOptions.
func CostTable(width, tokens int) ([]Cost, error) {
	return CostTableWith(CostOptions{Width: width, Tokens: tokens})
}

// CostTableWith is CostTable for explicit options.
func CostTableWith(o CostOptions) ([]Cost, error) {
	type row struct {
		method string
		no     Options
	}
	var rows []row
	for _, k := range []string{MethodNone, MethodLayerNorm, MethodRMSNorm, MethodCRMSNorm, MethodBatchNorm, MethodRepBN, MethodPRepBN,
		MethodPowerNorm, MethodUnified, MethodFixedScale, MethodSigmaReparam, MethodWeightNorm, MethodScaledWS} {
		rows = append(rows, row{k, Options{}})
	}
	rows = append(rows, row{MethodPowerNorm, Options{Groups: 1}})
	if o.Width%4 == 0 {
		rows = append(rows, row{MethodPowerNorm, Options{Groups: 4}})
	}
	for _, p := range []string{PlacePost, PlacePeri, PlaceMix, PlaceLNScaling, PlaceDeepNorm} {
		rows = append(rows, row{MethodLayerNorm, Options{Placement: p}})
	}
	rows = append(rows, row{MethodRMSNorm, Options{Placement: PlacePeri}}, row{MethodBatchNorm, Options{Placement: PlacePost}})
	out := make([]Cost, 0, len(rows))
	for _, r := range rows {
		c, err := CostOf(r.method, r.no, o)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// FormatCostTable writes the table for people.
func FormatCostTable(w io.Writer, costs []Cost) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "method\tplacement\tdepth\tct-mults\trotations\tpt-mults\tfolds\tnorms/block\tblock depth\tblock ct-mults\tblock rotations\tfinal norm")
	for _, c := range costs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%v\t%d\t%d\t%d\t%d\t%v\n", c.Method, c.Placement, c.Depth, c.CtMults, c.Rotations, c.PtMults,
			c.FoldsToZero, c.NormsPerBlock, c.BlockDepth, c.BlockCtMults, c.BlockRotations, c.FinalNorm)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("cost table: %w", err)
	}
	return nil
}

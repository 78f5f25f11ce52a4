package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/ring"
)

// Shape checks: a key or polynomial has the ring degree, limbs and gadget
// rows the parameters dictate, before it is written or after it is
// allocated for a read.

// checkPolyShape checks a ring.Poly has N coefficients on levels+1 limbs.
func checkPolyShape(pol ring.Poly, n, level int, what string) error {
	if len(pol.Coeffs) != level+1 {
		return fmt.Errorf("%s has %d RNS limbs, parameters need %d", what, len(pol.Coeffs), level+1)
	}
	for i, c := range pol.Coeffs {
		if len(c) != n {
			return fmt.Errorf("%s limb %d has ring degree %d, parameters need N=%d", what, i, len(c), n)
		}
	}
	return nil
}

// checkEvaluationKeyShape checks that a Lattigo evaluation key has the ring
// degree and levels of rp, levels (levelQ, levelP), and no base-2 decomposition.
func checkEvaluationKeyShape(rp rlwe.Parameters, evk *rlwe.EvaluationKey, levelQ, levelP int, what string) error {
	if evk == nil {
		return fmt.Errorf("%s is nil", what)
	}
	if evk.BaseTwoDecomposition != 0 {
		return fmt.Errorf("%s uses base-2 decomposition %d (unsupported)", what, evk.BaseTwoDecomposition)
	}
	rows := rp.BaseRNSDecompositionVectorSize(levelQ, levelP)
	if len(evk.Value) != rows {
		return fmt.Errorf("%s has %d gadget rows, parameters need %d", what, len(evk.Value), rows)
	}
	for i := range evk.Value {
		if len(evk.Value[i]) != 1 {
			return fmt.Errorf("%s row %d has %d columns, want 1", what, i, len(evk.Value[i]))
		}
		for _, v := range evk.Value[i] {
			if len(v) != 2 {
				return fmt.Errorf("%s has a gadget entry of degree %d, want 2 components", what, len(v))
			}
			for _, qp := range v {
				if err := checkPolyShape(qp.Q, rp.N(), levelQ, what+" (Q part)"); err != nil {
					return err
				}
				if levelP >= 0 {
					if err := checkPolyShape(qp.P, rp.N(), levelP, what+" (P part)"); err != nil {
						return err
					}
				} else if len(qp.P.Coeffs) != 0 {
					return fmt.Errorf("%s has a P part but levelP=-1", what)
				}
			}
		}
	}
	return nil
}

package circuit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/polyapprox"
)

// Public circuit descriptions.
//
// A circuit file holds the model's weights: the server's asset. What a
// client needs to generate keys, encode inputs and check the server's
// claims is the structure only, so a server publishes a PublicCircuit:
// the op graph (kinds, inputs, labels, rotations, groups), the layout, the
// level plan and key spec, and for every linear layer the set of its
// non-zero block diagonals (which fixes the rotations it needs), but no
// matrix entry, no slot pattern, no constant and no polynomial coefficient.
//
// Skeleton turns a description back into a Circuit with placeholder
// weights (ones on the listed diagonals, zero patterns, polynomials of the
// same degree and depth). The skeleton needs exactly the same keys, levels
// and key switches as the real circuit, so the client recomputes the key
// spec and the dry-run report from it instead of believing the server; its
// outputs are meaningless and it must never be evaluated.

// PublicFormatVersion is the version of the public description.
const PublicFormatVersion = 1

// MaxPublicCircuitBytes caps the encoded size of a public description a
// client accepts (16 MiB).
const MaxPublicCircuitBytes = 16 << 20

// PublicCircuit is a circuit without its weights.
type PublicCircuit struct {
	Version int            `json:"version"`
	Task    string         `json:"task"`
	Layout  Layout         `json:"layout"`
	Ops     []PublicOp     `json:"ops"`
	Mats    []PublicMatrix `json:"mats"`
	// Vecs is the number of slot patterns (their values are withheld).
	Vecs    int       `json:"vecs"`
	Planned *PlanInfo `json:"planned"`
}

// PublicOp is an Op without its constant and polynomial coefficients.
type PublicOp struct {
	Kind  Kind   `json:"kind"`
	In    []int  `json:"in,omitempty"`
	Label string `json:"label"`
	Mat   int    `json:"mat,omitempty"`
	Vec   int    `json:"vec,omitempty"`
	Rot   []int  `json:"rot,omitempty"`
	Group int    `json:"group,omitempty"`
	Ref   int    `json:"ref"`
	// PreScale is a bootstrap op's pre-scale (Op.Const of KindBootstrap only).
	PreScale float64     `json:"pre_scale,omitempty"`
	Poly     *PublicPoly `json:"poly,omitempty"`
}

// PublicPoly is the shape of a polynomial: degree, and whether its interval
// is [-1, 1] (no change of basis, one level less).
type PublicPoly struct {
	Degree   int  `json:"degree"`
	UnitBase bool `json:"unit_interval"`
}

// PublicMatrix is a linear layer's shape: the offsets c-r (in
// [-(Block-1), Block-1]) of the diagonals of its blocks that hold a
// non-zero entry in some block.
type PublicMatrix struct {
	Name      string `json:"name"`
	Diagonals []int  `json:"diagonals"`
}

// Public returns the weight-free description of c.
func (c *Circuit) Public() (*PublicCircuit, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("public circuit: %w", err)
	}
	if c.Planned == nil {
		return nil, errors.New("public circuit: circuit is not planned")
	}
	pc := &PublicCircuit{Version: PublicFormatVersion, Task: c.Task, Layout: c.Layout, Vecs: len(c.Vecs)}
	planned := *c.Planned
	planned.Levels = append([]int(nil), c.Planned.Levels...)
	planned.Keys.Rotations = append([]int(nil), c.Planned.Keys.Rotations...)
	pc.Planned = &planned
	D := c.Layout.Block
	for _, m := range c.Mats {
		var diags []int
		for off := -(D - 1); off <= D-1; off++ {
			nz := false
			for _, b := range m.Blocks {
				for r := 0; r < D && !nz; r++ {
					if col := r + off; col >= 0 && col < D && b[r*D+col] != 0 {
						nz = true
					}
				}
			}
			if nz {
				diags = append(diags, off)
			}
		}
		pc.Mats = append(pc.Mats, PublicMatrix{Name: m.Name, Diagonals: diags})
	}
	for _, op := range c.Ops {
		po := PublicOp{Kind: op.Kind, In: append([]int(nil), op.In...), Label: op.Label, Mat: op.Mat, Vec: op.Vec,
			Rot: append([]int(nil), op.Rot...), Group: op.Group, Ref: op.Ref}
		if op.Kind == KindBootstrap {
			po.PreScale = op.Const
		}
		if op.Poly != nil {
			po.Poly = &PublicPoly{Degree: op.Poly.Degree(), UnitBase: op.Poly.Interval.IsUnit()}
		}
		pc.Ops = append(pc.Ops, po)
	}
	return pc, nil
}

// Skeleton returns a circuit with the structure of pc and placeholder
// weights, after validating everything (bounds are checked before any
// allocation, so a hostile description gives an error, never a panic or an
// unbounded allocation). The skeleton needs the same keys and levels as the
// circuit pc was made from; never evaluate it.
func (pc *PublicCircuit) Skeleton() (*Circuit, error) {
	if pc == nil {
		return nil, errors.New("public circuit: nil")
	}
	if pc.Version != PublicFormatVersion {
		return nil, fmt.Errorf("public circuit: version %d, this build reads %d", pc.Version, PublicFormatVersion)
	}
	if err := pc.Layout.Validate(); err != nil {
		return nil, fmt.Errorf("public circuit: %w", err)
	}
	if pc.Planned == nil {
		return nil, errors.New("public circuit: not planned")
	}
	L := pc.Layout
	D := L.Block
	const maxOps, maxMats, maxVecs = 1 << 20, 1 << 16, 1 << 16
	if len(pc.Ops) > maxOps || len(pc.Mats) > maxMats || pc.Vecs < 0 || pc.Vecs > maxVecs {
		return nil, fmt.Errorf("public circuit: %d ops, %d matrices, %d patterns exceed the limits (%d, %d, %d)",
			len(pc.Ops), len(pc.Mats), pc.Vecs, maxOps, maxMats, maxVecs)
	}
	// Placeholder weights are D*D (matrices) and Tb*D (patterns) floats each.
	if cells := (int64(len(pc.Mats))*int64(D) + int64(pc.Vecs)*int64(L.BlockTokens())) * int64(D); cells > 1<<28 {
		return nil, fmt.Errorf("public circuit: placeholder weights of %d values exceed the limit", cells)
	}
	c := &Circuit{Version: FormatVersion, Task: pc.Task, Layout: L}
	for i, m := range pc.Mats {
		if len(m.Diagonals) > 2*D-1 {
			return nil, fmt.Errorf("public circuit: matrix %d lists %d diagonals, a %dx%d block has %d", i, len(m.Diagonals), D, D, 2*D-1)
		}
		b := make([]float64, D*D)
		prev := -D
		for _, off := range m.Diagonals {
			if off <= prev || off >= D {
				return nil, fmt.Errorf("public circuit: matrix %d diagonal %d invalid (offsets in [%d, %d], strictly increasing)", i, off, -(D - 1), D-1)
			}
			prev = off
			for r := 0; r < D; r++ {
				if col := r + off; col >= 0 && col < D {
					b[r*D+col] = 1
				}
			}
		}
		c.Mats = append(c.Mats, Matrix{Name: m.Name, Blocks: [][]float64{b}})
	}
	for i := 0; i < pc.Vecs; i++ {
		c.Vecs = append(c.Vecs, make([]float64, L.BlockTokens()*D))
	}
	for i, po := range pc.Ops {
		op := Op{Kind: po.Kind, In: po.In, Label: po.Label, Mat: po.Mat, Vec: po.Vec, Rot: po.Rot, Group: po.Group, Ref: po.Ref}
		if po.PreScale != 0 {
			if po.Kind != KindBootstrap {
				return nil, fmt.Errorf("public circuit: op %d (%s) has a pre-scale", i, po.Kind)
			}
			op.Const = po.PreScale
		}
		if po.Poly != nil {
			if po.Kind != KindPoly {
				return nil, fmt.Errorf("public circuit: op %d (%s) has a polynomial", i, po.Kind)
			}
			if po.Poly.Degree < 1 || po.Poly.Degree > 1023 {
				return nil, fmt.Errorf("public circuit: op %d (poly): degree %d outside [1, 1023]", i, po.Poly.Degree)
			}
			coeffs := make([]float64, po.Poly.Degree+1)
			coeffs[po.Poly.Degree] = 1
			iv := polyapprox.Interval{A: -1, B: 1}
			if !po.Poly.UnitBase {
				iv = polyapprox.Interval{A: -2, B: 2}
			}
			op.Poly = &polyapprox.Chebyshev{Interval: iv, Coeffs: coeffs}
		}
		c.Ops = append(c.Ops, op)
	}
	planned := *pc.Planned
	c.Planned = &planned
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("public circuit: %w", err)
	}
	return c, nil
}

// KeyNeeds recomputes, from the op graph alone, the keys the circuit uses
// for parameters p (what a client compares with the key spec a server
// announces).
func (pc *PublicCircuit) KeyNeeds(p *he.Parameters) (KeyNeeds, error) {
	c, err := pc.Skeleton()
	if err != nil {
		return KeyNeeds{}, err
	}
	if p == nil || c.Layout.Slots() > p.Slots() {
		return KeyNeeds{}, errors.New("public circuit: parameters missing or too small for the layout")
	}
	return c.KeyNeeds(p)
}

// DecodePublicCircuit decodes a JSON public description (at most
// MaxPublicCircuitBytes, no unknown fields, one value) and validates it by
// building its skeleton.
func DecodePublicCircuit(r io.Reader) (*PublicCircuit, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxPublicCircuitBytes+1))
	if err != nil {
		return nil, fmt.Errorf("public circuit: %w", err)
	}
	if len(data) > MaxPublicCircuitBytes {
		return nil, fmt.Errorf("public circuit: larger than %d bytes", MaxPublicCircuitBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var pc PublicCircuit
	if err := dec.Decode(&pc); err != nil {
		return nil, fmt.Errorf("public circuit: %w: %v", he.ErrMalformed, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("public circuit: %w: data after the description", he.ErrMalformed)
	}
	if _, err := pc.Skeleton(); err != nil {
		return nil, err
	}
	return &pc, nil
}

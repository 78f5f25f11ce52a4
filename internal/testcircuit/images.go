package testcircuit

import (
	mrand "math/rand/v2"

	"github.com/polyformer/polyformer/model"
)

// SynthImages returns b synthetic images of c's shape, deterministic in
// seed: each image is weak noise plus a bright band of rows selected by its
// class (rows whose index mod Classes is the target), so a tiny ViT can
// learn them and poly mode has non-trivial inputs. Shared by the compiler
// and service tests.
func SynthImages(c model.Config, b int, seed uint64) model.Batch {
	r := mrand.New(mrand.NewPCG(seed, 5))
	px := make([]float64, b*c.ImageRows*c.ImageCols)
	tg := make([]int, b)
	for i := 0; i < b; i++ {
		tg[i] = r.IntN(c.Classes)
		for j := 0; j < c.ImageRows*c.ImageCols; j++ {
			v := 0.1 * r.Float64()
			if (j/c.ImageCols)%c.Classes == tg[i] {
				v += 0.9
			}
			px[i*c.ImageRows*c.ImageCols+j] = v
		}
	}
	return model.Batch{B: b, Pixels: px, Targets: tg}
}

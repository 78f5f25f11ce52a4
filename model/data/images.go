package data

import (
	"errors"
	"fmt"
	"math/rand/v2"
)

// Images is a set of N grayscale images of Rows x Cols pixels with optional
// integer labels.
type Images struct {
	// N is the number of images.
	N int
	// Rows and Cols are the height and width of every image.
	Rows, Cols int
	// Pixels holds N*Rows*Cols values, image after image, each image
	// row-major, scaled to [0,1] (IDX byte / 255).
	Pixels []float64
	// Labels holds one label per image (len N), or is nil when the set is
	// unlabelled (as returned by ReadIDXImages).
	Labels []int
}

// Size returns the number of pixels in one image, Rows*Cols.
func (im *Images) Size() int { return im.Rows * im.Cols }

// Image returns a view (not a copy) of the Rows*Cols pixels of image i,
// row-major. Its capacity is clipped so that appending to it cannot overwrite
// the next image. It returns nil if i is out of [0, N).
func (im *Images) Image(i int) []float64 {
	if i < 0 || i >= im.N {
		return nil
	}
	sz := im.Size()
	return im.Pixels[i*sz : (i+1)*sz : (i+1)*sz]
}

// Subset returns a copy of the first n images (and their labels, if any).
// n is clamped to [0, N].
func (im *Images) Subset(n int) *Images {
	n = max(0, min(n, im.N))
	sz := im.Size()
	out := &Images{
		N:      n,
		Rows:   im.Rows,
		Cols:   im.Cols,
		Pixels: append([]float64(nil), im.Pixels[:n*sz]...),
	}
	if im.Labels != nil {
		out.Labels = append([]int(nil), im.Labels[:n]...)
	}
	return out
}

// Batches returns a random permutation of the indices 0..N-1 cut into
// consecutive batches of batchSize indices; the last batch holds the
// remainder and may be shorter. Call it once per epoch. The permutation is
// drawn from rng only, so a seeded rng gives reproducible epochs.
func (im *Images) Batches(rng *rand.Rand, batchSize int) ([][]int, error) {
	if rng == nil {
		return nil, errors.New("data: Images.Batches: nil rng")
	}
	if batchSize <= 0 {
		return nil, fmt.Errorf("data: Images.Batches: batch size %d must be positive", batchSize)
	}
	perm := rng.Perm(im.N)
	batches := make([][]int, 0, (im.N+batchSize-1)/batchSize)
	for start := 0; start < im.N; start += batchSize {
		end := min(start+batchSize, im.N)
		batches = append(batches, perm[start:end:end])
	}
	return batches, nil
}

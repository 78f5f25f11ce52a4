package data

import (
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

// smallImages returns n images of 2x3 whose pixel k of image i is i+k/10.
func smallImages(n int) *Images {
	im := &Images{N: n, Rows: 2, Cols: 3, Pixels: make([]float64, n*6), Labels: make([]int, n)}
	for i := range n {
		for k := range 6 {
			im.Pixels[i*6+k] = float64(i) + float64(k)/10
		}
		im.Labels[i] = i % NumClasses
	}
	return im
}

func TestImageView(t *testing.T) {
	im := smallImages(4)
	v := im.Image(2)
	require.Equal(t, []float64{2, 2.1, 2.2, 2.3, 2.4, 2.5}, v)
	require.Equal(t, 6, cap(v), "capacity must be clipped to one image")
	v[0] = -1
	require.Equal(t, -1.0, im.Pixels[12], "Image must be a view")
	_ = append(v, 99)
	require.Equal(t, 3.0, im.Pixels[18], "append to a view must not clobber the next image")
	require.Nil(t, im.Image(-1))
	require.Nil(t, im.Image(4))
}

func TestSubset(t *testing.T) {
	im := smallImages(5)
	s := im.Subset(3)
	require.Equal(t, 3, s.N)
	require.Equal(t, im.Pixels[:18], s.Pixels)
	require.Equal(t, []int{0, 1, 2}, s.Labels)
	s.Pixels[0], s.Labels[0] = 42, 7
	require.Equal(t, 0.0, im.Pixels[0], "Subset must copy pixels")
	require.Equal(t, 0, im.Labels[0], "Subset must copy labels")

	require.Equal(t, 5, im.Subset(100).N)
	require.Len(t, im.Subset(100).Pixels, 30)
	require.Equal(t, 0, im.Subset(-2).N)
	require.Empty(t, im.Subset(-2).Pixels)

	unlabelled := &Images{N: 2, Rows: 1, Cols: 1, Pixels: []float64{0.5, 1}}
	require.Nil(t, unlabelled.Subset(1).Labels)
}

func TestBatches(t *testing.T) {
	im := smallImages(10)
	rng := rand.New(rand.NewPCG(1, 2))
	b, err := im.Batches(rng, 4)
	require.NoError(t, err)
	require.Len(t, b, 3)
	require.Len(t, b[0], 4)
	require.Len(t, b[1], 4)
	require.Len(t, b[2], 2)
	var all []int
	for _, batch := range b {
		all = append(all, batch...)
	}
	sorted := append([]int(nil), all...)
	sort.Ints(sorted)
	require.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, sorted, "every index exactly once")
	require.NotEqual(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, all, "order must be shuffled")

	again, err := im.Batches(rand.New(rand.NewPCG(1, 2)), 4)
	require.NoError(t, err)
	require.Equal(t, b, again, "same seed, same batches")
	next, err := im.Batches(rng, 4)
	require.NoError(t, err)
	require.NotEqual(t, b, next, "next epoch reshuffles")

	one, err := im.Batches(rng, 100)
	require.NoError(t, err)
	require.Len(t, one, 1)
	require.Len(t, one[0], 10)

	_, err = im.Batches(rng, 0)
	require.ErrorContains(t, err, "batch size")
	_, err = im.Batches(nil, 4)
	require.ErrorContains(t, err, "nil rng")

	empty, err := (&Images{Rows: 1, Cols: 1}).Batches(rng, 3)
	require.NoError(t, err)
	require.Empty(t, empty)
}

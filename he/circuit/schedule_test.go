package circuit

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A transform reuses the baby steps its group's previous transform on the
// same input pre-rotated; another group, even on the same input, and an op
// outside any group reuse nothing.
func TestBabyReuse(t *testing.T) {
	r := babyReuse{}
	q := Op{Kind: KindLinear, Group: 1, In: []int{3}}
	require.Equal(t, 3, r.fresh(q, []int{1, 2, 4}))
	require.Equal(t, 1, r.fresh(q, []int{1, 2, 8}), "second transform of the group: only 8 is new")
	require.Equal(t, 0, r.fresh(q, []int{1}), "1 was pre-rotated by the previous transform")
	other := Op{Kind: KindLinear, Group: 2, In: []int{3}}
	require.Equal(t, 2, r.fresh(other, []int{1, 2}), "another group on the same input shares nothing")
	require.Equal(t, 2, r.fresh(Op{Kind: KindLinear, In: []int{3}}, []int{1, 2}), "outside a group: every baby step")
	require.Equal(t, 0, r.fresh(q, nil))
}

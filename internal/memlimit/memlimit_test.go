package memlimit

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMemTotal(t *testing.T) {
	n, err := memTotal(strings.NewReader("MemFree: 12 kB\nMemTotal:       24609780 kB\nBuffers: 1 kB\n"))
	require.NoError(t, err)
	require.Equal(t, int64(24609780)*1024, n)
	for _, bad := range []string{"", "MemFree: 1 kB\n", "MemTotal: x kB\n", "MemTotal: -5 kB\n", "MemTotal: 99999999999999999 kB\n"} {
		_, err := memTotal(strings.NewReader(bad))
		require.Error(t, err, "%q", bad)
	}
}

func TestSetDefault(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)

	t.Setenv("GOMEMLIMIT", "")
	avail, _, err := Available()
	if err != nil {
		t.Skipf("no memory figure on this system: %v", err)
	}
	limit, src := SetDefault()
	require.NotEmpty(t, src)
	require.Equal(t, int64(float64(avail)*Fraction), limit)
	require.Equal(t, limit, debug.SetMemoryLimit(-1))

	t.Setenv("GOMEMLIMIT", "1GiB")
	limit, src = SetDefault()
	require.Zero(t, limit, "a user's GOMEMLIMIT wins")
	require.Equal(t, "GOMEMLIMIT", src)
}

func TestSetHEGC(t *testing.T) {
	t.Setenv("GOGC", "")
	prev := SetHEGC()
	defer debug.SetGCPercent(prev)
	require.Equal(t, HEGCPercent, debug.SetGCPercent(HEGCPercent))
	t.Setenv("GOGC", "50")
	require.Equal(t, -2, SetHEGC(), "GOGC set: left to the runtime")
}

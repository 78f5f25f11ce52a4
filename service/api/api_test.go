package api

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseContentRange(t *testing.T) {
	c, err := ParseContentRange("bytes 0-99/1000")
	require.NoError(t, err)
	require.Equal(t, ContentRange{0, 99, 1000}, c)
	require.Equal(t, int64(100), c.Len())
	require.Equal(t, "bytes 0-99/1000", c.String())
	for _, bad := range []string{"", "bytes", "bytes 5-1/10", "bytes 0-10/10", "bytes -1-2/3", "bytes +1-2/3", "items 0-1/2", "bytes 0-1", "bytes 1/2", "bytes a-b/c"} {
		_, err := ParseContentRange(bad)
		require.Error(t, err, bad)
	}
}

func TestValidID(t *testing.T) {
	require.NoError(t, ValidID(strings.Repeat("a0", 32)))
	require.Error(t, ValidID(strings.Repeat("A0", 32)))
	require.Error(t, ValidID("../../etc/passwd"))
	require.Error(t, ValidID(strings.Repeat("g", 64)))
}

func FuzzParseContentRange(f *testing.F) {
	f.Add("bytes 0-99/1000")
	f.Add("bytes 9223372036854775806-9223372036854775806/9223372036854775807")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContentRange(s)
		if err == nil {
			require.True(t, c.Start >= 0 && c.Start <= c.End && c.End < c.Total && c.Len() > 0)
		}
	})
}

func FuzzDecodeCircuitInfo(f *testing.F) {
	f.Add([]byte(`{"id":"` + strings.Repeat("0", 64) + `","circuit":{"version":1}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ci, err := DecodeCircuitInfo(strings.NewReader(string(data)))
		if err == nil {
			_, err = ci.Circuit.Skeleton()
			require.NoError(t, err)
		}
	})
}

func FuzzDecodeResponses(f *testing.F) {
	f.Add([]byte(`{"circuits":[]}`))
	f.Add([]byte(`{"id":"` + strings.Repeat("0", 64) + `","complete":true}`))
	f.Add([]byte(`{"kind":"x","error":"y"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeCircuitList(strings.NewReader(string(data)))
		_, _ = DecodeKeyStatus(strings.NewReader(string(data)))
		_ = DecodeError(strings.NewReader(string(data)))
	})
}

package pipeline_test

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/pipeline"
)

// TestCompileAndDryRun: an insecure preset is refused unless allowed;
// the dry run of the demo checkpoint predicts the logit error and checks
// the precision margin on calibration images.
func TestCompileAndDryRun(t *testing.T) {
	m, err := pipeline.LoadForCompile("../cmd/polyformer/demodata")
	require.NoError(t, err)
	_, _, err = compiler.CompileFor(m, he.PresetTestN13, compiler.Options{Batch: 2})
	require.ErrorIs(t, err, he.ErrInsecureParameters)
	c, p, err := compiler.CompileFor(m, he.PresetTestN13, compiler.Options{Batch: 2, AllowInsecure: true})
	require.NoError(t, err)
	require.Equal(t, he.PresetTestN13, p.Name())
	require.Equal(t, 2, c.Layout.Batch)
	rep, err := pipeline.DryRun(m, c, p, "")
	require.NoError(t, err)
	require.False(t, math.IsNaN(rep.PredictedLog2Err), "a predicted error")
	require.Less(t, rep.PredictedLog2Err, -5.0)
	require.NotNil(t, rep.Margin, "the precision margin on calibration images")
	require.Equal(t, 256, rep.Margin.Inputs)
	require.NotNil(t, rep.Latency, "the latency estimate, priced with the built-in table")
	want, err := circuit.EstimateLatency(c, p, circuit.DefaultOpTimings())
	require.NoError(t, err)
	require.Equal(t, want, *rep.Latency)
	require.Positive(t, rep.Latency.Serial)
}

package pipeline

import (
	"errors"
	"math"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/model"
)

// sampleText is the text of the byte-LM samples (a Go program).
const sampleText = "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hello, encrypted world\")\n}\n"

// DryRun is the dry-run report of a compiled model before any key exists:
// circuit.NewReport, plus the predicted log2 logit error on one sample
// input (a test image, or the first bytes of sampleText) and the precision
// margin: whether that error can flip a prediction, from the poly-mode
// margins of calibration inputs (the first 256 training images; for a byte
// LM, 16 windows of sampleText). MNIST data is read from dataDir ("": the
// default directory). The prediction and the margin are left empty (NaN,
// nil) when their inputs cannot be had; the report itself is an error. The
// latency estimate is priced with the built-in timing table
// (circuit.DefaultOpTimings; DryRunTimed takes another).
func DryRun(m *model.Model, c *circuit.Circuit, p *he.Parameters, dataDir string) (*circuit.Report, error) {
	return DryRunTimed(m, c, p, dataDir, circuit.DefaultOpTimings())
}

// DryRunTimed is DryRun with the latency estimate priced by the timing
// table t (e.g. circuit.ReadOpTimings of a `bench ops --json` file).
func DryRunTimed(m *model.Model, c *circuit.Circuit, p *he.Parameters, dataDir string, t circuit.OpTimings) (*circuit.Report, error) {
	rep, err := circuit.NewReport(c, p)
	if err != nil {
		return nil, err
	}
	lat, err := circuit.EstimateLatency(c, p, t)
	if err != nil {
		return nil, err
	}
	rep.Latency = &lat
	if vec, err := sampleInput(m, c, dataDir); err == nil {
		if pe, err := circuit.PredictPrecision(c, p, vec); err == nil {
			rep.PredictedLog2Err = pe
		}
	}
	if b, err := calibrationBatch(m, dataDir); err == nil && !math.IsNaN(rep.PredictedLog2Err) {
		if margins, err := compiler.PolyMargins(m, b); err == nil {
			if mc, err := circuit.CheckMargins(margins, rep.PredictedLog2Err); err == nil {
				rep.Margin = &mc
			}
		}
	}
	return rep, nil
}

// sampleInput returns one encoded input of the right shape for precision
// prediction: the first test images, or the first bytes of sampleText.
func sampleInput(m *model.Model, c *circuit.Circuit, dataDir string) ([]float64, error) {
	n := c.Layout.Batch
	var vecs [][]float64
	var err error
	if m.Cfg.Task == model.TaskMNIST {
		_, test, lerr := LoadMNIST(dataDir)
		if lerr != nil {
			return nil, lerr
		}
		test = test.Subset(n)
		vecs, err = c.EncodeImages(test.Pixels, test.N, test.Rows, test.Cols)
	} else {
		ids := make([]int, n*c.Layout.Tokens)
		for i := range ids {
			ids[i] = int(sampleText[i%len(sampleText)])
		}
		vecs, err = c.EncodeBytes(ids, n, c.Layout.Tokens)
	}
	if err != nil || len(vecs) == 0 {
		return nil, errors.Join(err, errors.New("no input"))
	}
	return vecs[0], nil
}

// calibrationBatch returns the inputs whose poly-mode margins DryRun checks.
func calibrationBatch(m *model.Model, dataDir string) (model.Batch, error) {
	if m.Cfg.Task == model.TaskMNIST {
		train, _, err := LoadMNIST(dataDir)
		if err != nil {
			return model.Batch{}, err
		}
		train = train.Subset(256)
		return model.Batch{B: train.N, Pixels: train.Pixels, Targets: train.Labels}, nil
	}
	T := m.Cfg.Context
	const n = 16
	b := model.Batch{B: n, T: T, Inputs: make([]int, n*T), Targets: make([]int, n*T)}
	for i := 0; i < n; i++ {
		for t := 0; t < T; t++ {
			b.Inputs[i*T+t] = int(sampleText[(5*i+t)%len(sampleText)])
			b.Targets[i*T+t] = int(sampleText[(5*i+t+1)%len(sampleText)])
		}
	}
	return b, nil
}

// Package checkpoint saves and loads models as a directory:
//
//	config.json            model.Config (architecture, every function-changing choice, polynomial specs)
//	model.safetensors      weights, F64, one tensor per parameter name
//	optimizer.safetensors  AdamW moments ("m/<param>", "v/<param>"), only for resumable checkpoints
//	trainer.json           TrainState (step, AdamW hyper-parameters and step count)
//
// Loading validates that the weights match the architecture of config.json
// exactly (names and shapes), so a checkpoint of another architecture is a
// clear error.
package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/nn"
	"github.com/polyformer/polyformer/model/optim"
	"github.com/polyformer/polyformer/model/safetensors"
)

// File names inside a checkpoint directory.
const (
	ConfigFile    = "config.json"
	WeightsFile   = "model.safetensors"
	OptimizerFile = "optimizer.safetensors"
	TrainerFile   = "trainer.json"
)

// TrainState is the training progress saved with a resumable checkpoint.
type TrainState struct {
	// Step is the number of completed optimizer steps.
	Step int `json:"step"`
	// AdamT, Beta1, Beta2, Eps and WeightDecay restore the optimizer.
	AdamT       int     `json:"adam_t"`
	Beta1       float64 `json:"beta1"`
	Beta2       float64 `json:"beta2"`
	Eps         float64 `json:"eps"`
	WeightDecay float64 `json:"weight_decay"`
	// Extra is free-form training information (options, elapsed time).
	Extra map[string]any `json:"extra,omitempty"`
}

// Save writes config and weights, plus optimizer state when opt is not nil.
func Save(dir string, m *model.Model, opt *optim.AdamW, st *TrainState) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := model.SaveConfig(filepath.Join(dir, ConfigFile), m.Cfg); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	ts := map[string]safetensors.Tensor{}
	for _, p := range m.Params() {
		ts[p.Name] = safetensors.Tensor{DType: "F64", Shape: p.Value.Shape, Data: p.Value.Data}
	}
	meta := map[string]string{"format": "polyformer", "task": m.Cfg.Task, "config_version": strconv.Itoa(m.Cfg.Version)}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, meta); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if opt == nil {
		return nil
	}
	ostate := map[string]safetensors.Tensor{}
	for _, p := range m.Params() {
		mm, vv := opt.M[p.Name], opt.V[p.Name]
		if len(mm) != p.Value.Len() || len(vv) != p.Value.Len() {
			return fmt.Errorf("checkpoint: optimizer has no state for %s", p.Name)
		}
		ostate["m/"+p.Name] = safetensors.Tensor{DType: "F64", Shape: p.Value.Shape, Data: mm}
		ostate["v/"+p.Name] = safetensors.Tensor{DType: "F64", Shape: p.Value.Shape, Data: vv}
	}
	if err := safetensors.WriteFile(filepath.Join(dir, OptimizerFile), ostate, nil); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if st == nil {
		st = &TrainState{}
	}
	s := *st
	s.AdamT, s.Beta1, s.Beta2, s.Eps, s.WeightDecay = opt.T, opt.Beta1, opt.Beta2, opt.Eps, opt.WeightDecay
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: encode train state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, TrainerFile), append(b, '\n')); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// readSmallFile reads a file of at most max bytes (checked before reading).
func readSmallFile(path string, max int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes exceed the limit %d", path, st.Size(), max)
	}
	return os.ReadFile(path)
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Load reads a checkpoint's config and weights.
func Load(dir string) (*model.Model, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	m, err := model.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	ts, _, err := safetensors.ReadFileMax(filepath.Join(dir, WeightsFile), maxWeightsFileBytes(m.Params()))
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := assign(m.Params(), ts, "", "weights"); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := checkWeights(m.Params()); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", dir, WeightsFile, err)
	}
	// Weight-side reparametrizations (weight normalization, sigmaReparam,
	// scaled weight standardization) train other parameters and derive the
	// linear weights from them; the saved weights predate the last update.
	// Derive them now, so every reader of a loaded model (the compiler
	// included) sees the weights the model computes with.
	m.Materialize()
	if err := checkWeights(m.Params()); err != nil {
		return nil, fmt.Errorf("checkpoint %s: derived weights: %w", dir, err)
	}
	return m, nil
}

// maxWeightsFileBytes is the largest weights file the architecture can
// explain: F64 values, plus a generous header (1 MiB, 256 bytes per tensor).
func maxWeightsFileBytes(params []*nn.Param) int64 {
	n := int64(8 + 1<<20)
	for _, p := range params {
		n += 8*int64(p.Value.Len()) + 256 + int64(len(p.Name))
	}
	return n
}

// MaxWeightMagnitude bounds the absolute value of every loaded weight
// (model.MaxMagnitude, 2^20): a larger weight overflows CKKS and is a
// corrupted or hostile checkpoint, not a trained model.
const MaxWeightMagnitude = model.MaxMagnitude

// checkWeights refuses non-finite weights and weights beyond
// MaxWeightMagnitude, naming the tensor and the index.
func checkWeights(params []*nn.Param) error {
	for _, p := range params {
		for i, v := range p.Value.Data {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("tensor %s: entry %d is %g (weights must be finite)", p.Name, i, v)
			}
			if math.Abs(v) > MaxWeightMagnitude {
				return fmt.Errorf("tensor %s: entry %d is %g, beyond the limit %g in magnitude", p.Name, i, v, float64(MaxWeightMagnitude))
			}
		}
	}
	return nil
}

// assign copies tensors into params; names must match one to one.
func assign(params []*nn.Param, ts map[string]safetensors.Tensor, prefix, what string) error {
	var missing, extra, mismatched []string
	used := map[string]bool{}
	for _, p := range params {
		t, ok := ts[prefix+p.Name]
		if !ok {
			missing = append(missing, p.Name)
			continue
		}
		used[prefix+p.Name] = true
		if !sameShape(t.Shape, p.Value.Shape) {
			mismatched = append(mismatched, fmt.Sprintf("%s %v (config wants %v)", p.Name, t.Shape, p.Value.Shape))
			continue
		}
		copy(p.Value.Data, t.Data)
	}
	for n := range ts {
		if !used[n] {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	var errs []string
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("missing %v", clip(missing)))
	}
	if len(mismatched) > 0 {
		errs = append(errs, fmt.Sprintf("shape mismatch %v", clip(mismatched)))
	}
	if len(extra) > 0 {
		errs = append(errs, fmt.Sprintf("unexpected %v", clip(extra)))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s do not match the architecture in %s (checkpoint of another architecture?): %w", what, ConfigFile, errors.New(strings.Join(errs, "; ")))
	}
	return nil
}

func clip(s []string) []string {
	if len(s) > 5 {
		return append(s[:5:5], fmt.Sprintf("... (%d more)", len(s)-5))
	}
	return s
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// LoadResumable reads a checkpoint with its optimizer and training state.
func LoadResumable(dir string) (*model.Model, *optim.AdamW, *TrainState, error) {
	m, err := Load(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	b, err := readSmallFile(filepath.Join(dir, TrainerFile), model.MaxConfigBytes)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s is not resumable: %w", dir, err)
	}
	var st TrainState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: parse %s: %w", dir, TrainerFile, err)
	}
	ts, _, err := safetensors.ReadFileMax(filepath.Join(dir, OptimizerFile), 2*maxWeightsFileBytes(m.Params()))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	opt := optim.NewAdamW(m.Params(), st.Beta1, st.Beta2, st.Eps, st.WeightDecay)
	opt.T = st.AdamT
	mp := make([]*nn.Param, 0, len(m.Params()))
	vp := make([]*nn.Param, 0, len(m.Params()))
	for _, p := range m.Params() {
		mp = append(mp, &nn.Param{Name: "m/" + p.Name, Value: &nn.Tensor{Shape: p.Value.Shape, Data: opt.M[p.Name]}})
		vp = append(vp, &nn.Param{Name: "v/" + p.Name, Value: &nn.Tensor{Shape: p.Value.Shape, Data: opt.V[p.Name]}})
	}
	if err := assign(append(mp, vp...), ts, "", "optimizer state"); err != nil {
		return nil, nil, nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	return m, opt, &st, nil
}

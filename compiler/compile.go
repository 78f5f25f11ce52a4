package compiler

import (
	"github.com/polyformer/polyformer/he/circuit"

	"errors"
	"fmt"
	"strings"

	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/model"
)

// DefaultPresets are the presets CompileFor tries, smallest first: the
// secure leveled sets, then the bootstrapping set when allowed.
func DefaultPresets(allowBootstrap bool) []string {
	ps := []string{he.PresetN14, he.PresetN15, he.PresetN16}
	if allowBootstrap {
		ps = append(ps, he.PresetN16Boot)
	}
	return ps
}

// CompileFor compiles m and plans it: for the named preset, or (preset
// "") for the first of DefaultPresets whose levels suffice. Batch 0 means
// the largest batch the preset's slots hold. With allowBootstrap, a preset
// with bootstrapping gets bootstraps where the levels run out. The error
// names the levels needed and available when no preset fits.
func CompileFor(m *model.Model, preset string, batch int, allowBootstrap bool) (*circuit.Circuit, *he.Parameters, error) {
	names := []string{preset}
	if preset == "" {
		names = DefaultPresets(allowBootstrap)
	}
	var errs []string
	for _, name := range names {
		p, err := he.ParametersFromPreset(name)
		if err != nil {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		b := batch
		if b == 0 {
			if b, err = MaxBatch(m, p.Slots()); err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", name, err))
				continue
			}
		}
		c, err := Compile(m, CompileOptions{Batch: b})
		if err != nil {
			return nil, nil, err
		}
		pc, err := circuit.Plan(c, p, circuit.PlanOptions{AllowBootstrap: allowBootstrap && p.HasBootstrapping()})
		if err == nil {
			return pc, p, nil
		}
		var le *circuit.LevelError
		if !errors.As(err, &le) && preset == "" {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		if preset != "" {
			return nil, nil, fmt.Errorf("compile: %w", err)
		}
		errs = append(errs, le.Error())
	}
	return nil, nil, fmt.Errorf("compile: no preset fits: %s", strings.Join(errs, "; "))
}

package main

import (
	"fmt"

	"github.com/polyformer/polyformer/he"
)

// resolvePreset resolves a preset by name and refuses presets marked
// insecure-for-testing unless the user said --insecure.
func resolvePreset(name string, allowInsecure bool) (*he.Parameters, error) {
	p, err := he.ParametersFromPreset(name)
	if err != nil {
		return nil, err
	}
	if p.Insecure() && !allowInsecure {
		return nil, fmt.Errorf("preset %q is below 128-bit security (for tests only); pass --insecure to use it anyway", name)
	}
	return p, nil
}

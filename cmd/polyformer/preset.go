package main

import (
	"fmt"

	"github.com/polyformer/polyformer/he"
)

// resolvePreset resolves a preset by name and refuses parameters below
// 128-bit security (computed from the parameters by he.RequireSecure, not
// from the preset's mark) unless the user said --insecure.
func resolvePreset(name string, allowInsecure bool) (*he.Parameters, error) {
	p, err := he.ParametersFromPreset(name)
	if err != nil {
		return nil, err
	}
	if _, err := he.RequireSecure(p, allowInsecure); err != nil {
		return nil, fmt.Errorf("preset %q: %w", name, err)
	}
	return p, nil
}

package pipeline

import (
	"fmt"

	"github.com/polyformer/polyformer/he"
)

// ResolvePreset resolves a preset by name and refuses parameters below
// 128-bit security (computed from the parameters by he.RequireSecure, not
// from the preset's mark) unless allowInsecure: the preset policy, checked
// before any work (compiler.CompileFor applies it again to the preset it
// compiles for).
func ResolvePreset(name string, allowInsecure bool) (*he.Parameters, error) {
	p, err := he.ParametersFromPreset(name)
	if err != nil {
		return nil, err
	}
	if _, err := he.RequireSecure(p, allowInsecure); err != nil {
		return nil, fmt.Errorf("preset %q: %w", name, err)
	}
	return p, nil
}

package he

import (
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
)

// TestBootstrappingKeyLevelsMatchDFTMatrices checks dftFactors (levels and
// Galois elements computed from the literal alone) against the DFT
// matrices Lattigo encodes, and that the levels cover exactly Lattigo's
// list of bootstrapping Galois elements, for every bootstrapping preset.
func TestBootstrappingKeyLevelsMatchDFTMatrices(t *testing.T) {
	for _, name := range []string{PresetTestBootN13, PresetN16Boot, PresetN16Boot14, "tiny-boot10"} {
		var p *Parameters
		var err error
		if name == "tiny-boot10" {
			p, err = NewParameters(tinyBootPreset())
		} else {
			p, err = ParametersFromPreset(name)
		}
		require.NoError(t, err)
		btp := p.BootstrappingParameters()
		bp := btp.BootstrappingParameters
		lv := bootstrappingKeyLevels(btp)
		want := btp.GaloisElements(bp)
		require.ElementsMatch(t, want, mapKeys(lv.galois), "%s: Galois elements", name)
		top := bp.MaxLevel()
		low := 0
		for _, g := range want {
			require.LessOrEqual(t, lv.galois[g], top)
			if lv.galois[g] < top {
				low++
			}
		}
		require.Equal(t, btp.Mod1ParametersLiteral.LevelStart, lv.relin)
		t.Logf("%s: %d bootstrapping Galois keys, %d below the top level %d; relinearization at %d", name, len(want), low, top, lv.relin)
		require.Greater(t, low, 0, "%s: some keys must be below the top", name)
		if bp.LogN() > 13 {
			continue // encoding the matrices takes ~30 s and GBs at logN 16
		}
		ecd := hefloat.NewEncoder(bp)
		for _, d := range []hefloat.DFTMatrixLiteral{btp.CoeffsToSlotsParameters, btp.SlotsToCoeffsParameters} {
			m, err := hefloat.NewDFTMatrixFromLiteral(bp, d, ecd)
			require.NoError(t, err)
			f := dftFactors(bp, d)
			require.Len(t, f, len(m.Matrices))
			for i, lt := range m.Matrices {
				require.Equal(t, lt.Level, f[i].level, "%s DFT type %d factor %d level", name, d.Type, i)
				require.ElementsMatch(t, lt.GaloisElements(bp), f[i].galois, "%s DFT type %d factor %d", name, d.Type, i)
			}
		}
	}
}

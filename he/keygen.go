package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
)

// GenerateKeys generates a fresh secret key for p and the evaluation keys
// the spec asks for. Bootstrapping keys are generated at their levels, seeded,
// with the dense-to-sparse key at level (Q0,P0) (Lattigo v5.0.7 leak fix,
// see encapsulationKeys).
func GenerateKeys(p *Parameters, spec KeySpec) (*SecretKey, *EvaluationKeys, error) {
	if p == nil {
		return nil, nil, fmt.Errorf("generate keys: nil parameters")
	}
	sk := &SecretKey{params: p, sk: rlwe.NewKeyGenerator(p.HE()).GenSecretKeyNew()}
	evk, err := GenerateEvaluationKeys(sk, spec)
	if err != nil {
		return nil, nil, err
	}
	return sk, evk, nil
}

// GenerateEvaluationKeys generates evaluation keys for an existing secret key.
func GenerateEvaluationKeys(sk *SecretKey, spec KeySpec) (*EvaluationKeys, error) {
	if sk == nil {
		return nil, fmt.Errorf("generate keys: nil secret key")
	}
	p := sk.params
	galEls, err := spec.ResolveGaloisElements(p)
	if err != nil {
		return nil, fmt.Errorf("generate keys: %w", err)
	}
	if spec.Bootstrapping && !p.HasBootstrapping() {
		return nil, fmt.Errorf("generate keys: bootstrapping keys requested but %s has no bootstrapping parameters", p)
	}
	relinLevel, levels, err := spec.ResolveKeyLevels(p)
	if err != nil {
		return nil, fmt.Errorf("generate keys: %w", err)
	}
	rp := p.HE().Parameters.Parameters
	levelP := rp.MaxLevelP() // always: see keySetRule (smaller LevelP would also make keys larger, docs/design.md §4)
	kg := newSeededKeyGen(rp)
	seeds := map[uint64]keySeed{}
	var relin *rlwe.RelinearizationKey
	var relinSeed keySeed
	if spec.Relinearization {
		if relin, relinSeed, err = kg.relinearization(sk.sk, relinLevel, levelP); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
	}
	var gks []*rlwe.GaloisKey
	for _, g := range galEls {
		gk, seed, err := kg.galois(sk.sk, g, levels[g], levelP)
		if err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
		gks = append(gks, gk)
		seeds[g] = seed
	}
	var btp *bootstrapping.EvaluationKeys
	var btpSeeds bootstrapKeySeeds
	if spec.Bootstrapping {
		if btp, btpSeeds, err = generateBootstrappingKeys(p, sk); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
	}
	e := newEvaluationKeys(p, relin, gks, btp)
	e.btpSeeds = btpSeeds
	e.seeds = seeds
	e.relinSeed, e.relinSeeded = relinSeed, relin != nil
	return e, nil
}

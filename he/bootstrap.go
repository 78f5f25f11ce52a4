package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	lhe "github.com/tuneinsight/lattigo/v5/he"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/schemes/ckks"
)

// GenerateBootstrappingKeys generates the bootstrapping evaluation keys for
// sk, each relinearization and Galois key at the level the bootstrapping
// circuit uses it (bootstrappingKeyLevels), with the Lattigo v5.0.7 leak
// fix applied. It returns Lattigo keys: for packages under he/ only
// (GenerateKeys with KeySpec.Bootstrapping is the public way).
func GenerateBootstrappingKeys(p *Parameters, sk *SecretKey) (*bootstrapping.EvaluationKeys, error) {
	evk, _, err := generateBootstrappingKeys(p, sk)
	return evk, err
}

// bootstrapKeySeeds are the seeds of the random halves of bootstrapping
// keys (nil or absent: the key is written in full).
type bootstrapKeySeeds struct {
	// set: the relinearization and Galois keys.
	set keySeeds
	// components, indexed like btpComponents: the encapsulation keys.
	components [len(btpComponentNames)]*keySeed
}

// generateBootstrappingKeys generates the bootstrapping keys the way
// Lattigo's bootstrapping.Parameters.GenEvaluationKeys does, except that
//
//   - the relinearization and Galois keys are generated at their levels
//     (bootstrappingKeyLevels) with every special prime, and the
//     encapsulation keys as described below, by the seeded key generator
//     the ordinary keys use: each key's random half comes from a 32-byte
//     seed, which files and uploads carry instead of the half;
//   - the Lattigo v5.0.7 leak is fixed (encapsulationKeys).
//
// The keys switching between the residual ring and a larger or
// conjugate-invariant bootstrapping ring (none of the presets) come from
// Lattigo's generator and are written in full.
func generateBootstrappingKeys(p *Parameters, sk *SecretKey) (*bootstrapping.EvaluationKeys, bootstrapKeySeeds, error) {
	var seeds bootstrapKeySeeds
	if p == nil || sk == nil {
		return nil, seeds, fmt.Errorf("bootstrapping keys: nil parameters or secret key")
	}
	if !p.HasBootstrapping() {
		return nil, seeds, fmt.Errorf("bootstrapping keys: parameters %s have no bootstrapping", p)
	}
	if sk.params.Fingerprint() != p.Fingerprint() {
		return nil, seeds, fmt.Errorf("bootstrapping keys: secret key was made for %s, not %s", sk.params, p)
	}
	btp := p.btp
	bp := btp.BootstrappingParameters
	rp := bp.Parameters.Parameters
	evk := &bootstrapping.EvaluationKeys{}
	var skN2 *rlwe.SecretKey
	if btp.ResidualParameters.N() != bp.N() {
		kgen := rlwe.NewKeyGenerator(bp)
		skN2 = kgen.GenSecretKeyNew()
		if btp.ResidualParameters.RingType() == ring.ConjugateInvariant {
			evk.EvkCmplxToReal, evk.EvkRealToCmplx = kgen.GenEvaluationKeysForRingSwapNew(skN2, sk.sk)
		} else {
			evk.EvkN1ToN2 = kgen.GenEvaluationKeyNew(sk.sk, skN2)
			evk.EvkN2ToN1 = kgen.GenEvaluationKeyNew(skN2, sk.sk)
		}
	} else {
		skN2 = extendSecret(rp, sk.sk.Value.Q) // the same secret on the bootstrapping modulus
	}
	kg := newSeededKeyGen(rp)
	if btp.EphemeralSecretWeight != 0 {
		d2s, s2d, err := encapsulationKeys(btp, kg, skN2)
		if err != nil {
			return nil, seeds, err
		}
		evk.EvkDenseToSparse, seeds.components[btpDenseToSparse] = d2s.key, &d2s.seed
		evk.EvkSparseToDense, seeds.components[btpSparseToDense] = s2d.key, &s2d.seed
	}
	lv := bootstrappingKeyLevels(btp)
	levelP := rp.MaxLevelP()
	rlk, relinSeed, err := kg.relinearization(skN2, lv.relin, levelP)
	if err != nil {
		return nil, seeds, fmt.Errorf("bootstrapping keys: %w", err)
	}
	seeds.set = keySeeds{relin: &relinSeed, galois: map[uint64]keySeed{}}
	var gks []*rlwe.GaloisKey
	for _, g := range sortedUint64(mapKeys(lv.galois)) {
		gk, seed, err := kg.galois(skN2, g, lv.galois[g], levelP)
		if err != nil {
			return nil, seeds, fmt.Errorf("bootstrapping keys: %w", err)
		}
		gks = append(gks, gk)
		seeds.set.galois[g] = seed
	}
	evk.MemEvaluationKeySet = rlwe.NewMemEvaluationKeySet(rlk, gks...)
	if err := CheckBootstrappingKeysComplete(p, evk); err != nil {
		return nil, seeds, err
	}
	return evk, seeds, nil
}

// extendSecret returns the secret whose limb Q0 is s's (a small-norm
// polynomial, NTT and Montgomery form) on every limb of rp's Q and P, as
// Lattigo's GenEvaluationKeys extends the residual secret.
func extendSecret(rp rlwe.Parameters, s ring.Poly) *rlwe.SecretKey {
	out := rlwe.NewSecretKey(rp)
	ringQ := rp.RingQ()
	buff := ringQ.NewPoly()
	rlwe.ExtendBasisSmallNormAndCenterNTTMontgomery(ringQ, ringQ, s, buff, out.Value.Q)
	rlwe.ExtendBasisSmallNormAndCenterNTTMontgomery(ringQ, rp.RingP(), s, buff, out.Value.P)
	return out
}

// seededKey is a generated key and the seed of its random half.
type seededKey struct {
	key  *rlwe.EvaluationKey
	seed keySeed
}

// generateBootstrappingKeysUnfixed returns Lattigo's raw bootstrapping keys
// (WITH the secret-key leak) and the extended secret. It exists only so that
// tests can demonstrate the attack; never ship its keys.
func generateBootstrappingKeysUnfixed(p *Parameters, sk *SecretKey) (*bootstrapping.EvaluationKeys, *rlwe.SecretKey, error) {
	if !p.insecure {
		return nil, nil, fmt.Errorf("unfixed bootstrapping keys are only available for InsecureForTesting parameters")
	}
	if !p.HasBootstrapping() {
		return nil, nil, fmt.Errorf("parameters %s have no bootstrapping", p)
	}
	return p.btp.GenEvaluationKeys(sk.sk)
}

// encapsulationKeys returns the dense-to-sparse and sparse-to-dense keys
// under a fresh sparse secret for the extended secret skN2, with the
// Lattigo v5.0.7 leak fixed.
//
// The bug: bootstrapping.Parameters.GenEvaluationKeys builds the
// dense-to-sparse encapsulation key EvkDenseToSparse at the top level of the
// bootstrapping modulus chain, but the sparse output secret only exists on
// (Q0, P0); on every other limb q_k the key encrypts under a zero secret, so
// its first component there is e + P·s mod q_k and reveals the user's secret
// s coefficient by coefficient (TestBootstrapKeysDoNotLeakSecret performs
// the recovery). Lattigo v6.1.1 fixed this by generating that key at the
// lowest level. We do the same: draw the sparse secret on (Q0, P0) and
// generate EvkDenseToSparse at LevelQ=0, LevelP=0; EvkSparseToDense (the
// sparse secret extended to every limb, switched to skN2) stays at the top
// level, where ModUp uses it. Both keys are seeded. (Lattigo's v6 call, a
// key generator over the sparse parameters, panics in v5.0.7: index out of
// range in ring.MapSmallDimensionToLargerDimensionNTT; the dense parameters
// with explicit levels avoid it, as the reference notes do.)
func encapsulationKeys(btp *bootstrapping.Parameters, kg *seededKeyGen, skN2 *rlwe.SecretKey) (d2s, s2d seededKey, err error) {
	bp := btp.BootstrappingParameters
	paramsSparse, err := rlwe.NewParametersFromLiteral(rlwe.ParametersLiteral{
		LogN: bp.LogN(),
		Q:    bp.Q()[:1],
		P:    bp.P()[:1],
	})
	if err != nil {
		return d2s, s2d, fmt.Errorf("bootstrapping keys: sparse parameters: %w", err)
	}
	skSparse := rlwe.NewKeyGenerator(paramsSparse).GenSecretKeyWithHammingWeightNew(btp.EphemeralSecretWeight)
	if d2s.key, d2s.seed, err = kg.evaluationKey(skN2, skSparse, 0, 0); err != nil {
		return d2s, s2d, fmt.Errorf("bootstrapping keys: EvkDenseToSparse: %w", err)
	}
	rp := bp.Parameters.Parameters
	if s2d.key, s2d.seed, err = kg.evaluationKey(extendSecret(rp, skSparse.Value.Q), skN2, rp.MaxLevelQ(), rp.MaxLevelP()); err != nil {
		return d2s, s2d, fmt.Errorf("bootstrapping keys: EvkSparseToDense: %w", err)
	}
	return d2s, s2d, nil
}

// regenerateEncapsulationKeys replaces evk's dense↔sparse keys by
// encapsulationKeys' (the leak fix on Lattigo's raw keys; their seeds are
// dropped).
func regenerateEncapsulationKeys(btp *bootstrapping.Parameters, evk *bootstrapping.EvaluationKeys, skN2 *rlwe.SecretKey) error {
	if btp.EphemeralSecretWeight == 0 {
		return nil // no encapsulation keys
	}
	d2s, s2d, err := encapsulationKeys(btp, newSeededKeyGen(btp.BootstrappingParameters.Parameters.Parameters), skN2)
	if err != nil {
		return err
	}
	evk.EvkDenseToSparse, evk.EvkSparseToDense = d2s.key, s2d.key
	return nil
}

// CheckBootstrappingKeysSafe returns an error if the dense-to-sparse key is
// above level (Q0,P0), i.e. if it carries limbs that leak the secret key.
// For packages under he/ only (it takes Lattigo keys).
func CheckBootstrappingKeysSafe(evk *bootstrapping.EvaluationKeys) error {
	if evk == nil || evk.EvkDenseToSparse == nil {
		return nil
	}
	if q, pl := evk.EvkDenseToSparse.LevelQ(), evk.EvkDenseToSparse.LevelP(); q != 0 || pl != 0 {
		return fmt.Errorf("bootstrapping EvkDenseToSparse is at levels (Q %d, P %d): such keys reveal the secret key (Lattigo v5.0.7 bug); regenerate them with GenerateBootstrappingKeys", q, pl)
	}
	return nil
}

// CheckBootstrappingKeysComplete checks that evk holds every key the
// bootstrapping evaluator of p needs (the same checks as Lattigo's
// NewEvaluator, as errors instead of later failures), and that it is safe.
// For packages under he/ only (it takes Lattigo keys).
func CheckBootstrappingKeysComplete(p *Parameters, evk *bootstrapping.EvaluationKeys) error {
	if !p.HasBootstrapping() {
		return fmt.Errorf("parameters %s have no bootstrapping", p)
	}
	if evk == nil {
		return fmt.Errorf("no bootstrapping keys")
	}
	btp := p.btp
	n1, n2 := btp.ResidualParameters, btp.BootstrappingParameters
	switch n1.RingType() {
	case ring.Standard:
		if n1.N() != n2.N() && (evk.EvkN1ToN2 == nil || evk.EvkN2ToN1 == nil) {
			return fmt.Errorf("bootstrapping keys lack EvkN1ToN2/EvkN2ToN1")
		}
	case ring.ConjugateInvariant:
		if evk.EvkCmplxToReal == nil || evk.EvkRealToCmplx == nil {
			return fmt.Errorf("bootstrapping keys lack EvkCmplxToReal/EvkRealToCmplx")
		}
	}
	if btp.EphemeralSecretWeight != 0 && (evk.EvkDenseToSparse == nil || evk.EvkSparseToDense == nil) {
		return fmt.Errorf("bootstrapping keys lack the encapsulation keys EvkDenseToSparse/EvkSparseToDense")
	}
	if evk.MemEvaluationKeySet == nil {
		return fmt.Errorf("bootstrapping keys lack the relinearization and Galois keys")
	}
	rp := n2.Parameters.Parameters
	lv := bootstrappingKeyLevels(btp)
	rlk, err := evk.GetRelinearizationKey()
	if err != nil {
		return fmt.Errorf("bootstrapping keys: %w", err)
	}
	if err := checkBootstrapKeyLevel(rp, &rlk.EvaluationKey, lv.relin, "relinearization key"); err != nil {
		return err
	}
	for _, g := range btp.GaloisElements(n2) {
		gk, err := evk.GetGaloisKey(g)
		if err != nil {
			return fmt.Errorf("bootstrapping keys lack Galois key %d: %w", g, err)
		}
		if err := checkBootstrapKeyLevel(rp, &gk.EvaluationKey, lv.galois[g], fmt.Sprintf("Galois key %d", g)); err != nil {
			return err
		}
	}
	if s2d := evk.EvkSparseToDense; s2d != nil && (s2d.LevelQ() != rp.MaxLevelQ() || s2d.LevelP() != rp.MaxLevelP()) {
		return fmt.Errorf("bootstrapping keys: %w: EvkSparseToDense is at levels (Q %d, P %d), ModUp uses it at (Q %d, P %d)", ErrKeyLevel, s2d.LevelQ(), s2d.LevelP(), rp.MaxLevelQ(), rp.MaxLevelP())
	}
	return CheckBootstrappingKeysSafe(evk)
}

// checkBootstrapKeyLevel refuses a bootstrapping relinearization or Galois
// key below the level the bootstrapping circuit uses it at, or with fewer
// than every special prime: Lattigo would compute garbage without an error.
func checkBootstrapKeyLevel(rp rlwe.Parameters, evk *rlwe.EvaluationKey, use int, what string) error {
	if evk.LevelQ() < use {
		return fmt.Errorf("bootstrapping keys: %w: the %s is at level %d, the bootstrapping circuit uses it at level %d", ErrKeyLevel, what, evk.LevelQ(), use)
	}
	if evk.LevelP() != rp.MaxLevelP() {
		return fmt.Errorf("bootstrapping keys: %w: the %s has special-prime level %d, the bootstrapping circuit needs %d", ErrKeyLevel, what, evk.LevelP(), rp.MaxLevelP())
	}
	return nil
}

// CiphertextBootstrapper is what an Evaluator bootstraps with (see
// Evaluator.WithBootstrapper): a Bootstrapper, or NewSecretKeyBootstrapper's
// stand-in in tests. Its method set is Lattigo's he.Bootstrapper[rlwe.Ciphertext],
// so either interface's values assign to the other.
type CiphertextBootstrapper interface {
	// Bootstrap refreshes one ciphertext.
	Bootstrap(ct *Ciphertext) (*Ciphertext, error)
	// BootstrapMany refreshes several ciphertexts.
	BootstrapMany(cts []Ciphertext) ([]Ciphertext, error)
	// Depth is the number of levels the bootstrapping circuit consumes.
	Depth() int
	// MinimumInputLevel is the lowest level an input may have.
	MinimumInputLevel() int
	// OutputLevel is the level of refreshed ciphertexts.
	OutputLevel() int
}

// Bootstrapper refreshes ciphertexts of the residual parameters to
// p.MaxLevel(). It implements lattigo he.Bootstrapper[rlwe.Ciphertext].
// One Bootstrapper must not be used by two goroutines at once; use
// ShallowCopy to get one per goroutine (copies share keys and DFT matrices).
type Bootstrapper struct {
	params *Parameters
	eval   *bootstrapping.Evaluator
}

var (
	_ CiphertextBootstrapper            = (*Bootstrapper)(nil)
	_ lhe.Bootstrapper[rlwe.Ciphertext] = (*Bootstrapper)(nil)
	_ lhe.Bootstrapper[rlwe.Ciphertext] = CiphertextBootstrapper(nil)
)

// NewBootstrapper builds the bootstrapping evaluator from p and the
// bootstrapping keys in keys. This encodes the DFT matrices: about 30 s and
// 3.5 GB at logN=16, about a second at logN=13.
func NewBootstrapper(p *Parameters, keys *EvaluationKeys) (b *Bootstrapper, err error) {
	if p == nil {
		return nil, fmt.Errorf("new bootstrapper: nil parameters")
	}
	if keys == nil || keys.btp == nil {
		return nil, fmt.Errorf("new bootstrapper: the evaluation keys hold no bootstrapping keys (generate them with KeySpec.Bootstrapping)")
	}
	if keys.params.Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("new bootstrapper: keys were made for %s, not %s", keys.params, p)
	}
	if err := CheckBootstrappingKeysComplete(p, keys.btp); err != nil {
		return nil, fmt.Errorf("new bootstrapper: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("new bootstrapper: lattigo panicked: %v", r)
		}
	}()
	eval, err := bootstrapping.NewEvaluator(*p.btp, keys.btp)
	if err != nil {
		return nil, fmt.Errorf("new bootstrapper: %w", err)
	}
	return &Bootstrapper{params: p, eval: eval}, nil
}

// Bootstrap refreshes ct to level OutputLevel() (= the residual MaxLevel)
// and the default scale. Inputs above level 0 are first scaled down to level
// 0 by Lattigo; a level-0 input needs a scale below Q[0]/2^LogMessageRatio
// (Lattigo returns an error otherwise). Precision depends on the message
// size: about 3e-8 for |m| <= 1 and 2e-6 for |m| <= 8 at logN=16 (reference
// notes §1.7), 1.2e-7 for |m| <= 1 with test-boot-n13; keep values near [-1, 1].
func (b *Bootstrapper) Bootstrap(ct *Ciphertext) (*Ciphertext, error) {
	if ct == nil {
		return nil, fmt.Errorf("bootstrap: nil ciphertext")
	}
	out, err := b.eval.Bootstrap(ct)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return out, nil
}

// BootstrapMany bootstraps several ciphertexts.
func (b *Bootstrapper) BootstrapMany(cts []Ciphertext) ([]Ciphertext, error) {
	if len(cts) == 0 {
		return nil, nil
	}
	out, err := b.eval.BootstrapMany(cts)
	if err != nil {
		return nil, fmt.Errorf("bootstrap many: %w", err)
	}
	return out, nil
}

// Depth returns the number of levels the bootstrapping circuit consumes.
func (b *Bootstrapper) Depth() int { return b.eval.Depth() }

// MinimumInputLevel returns the minimum input level.
func (b *Bootstrapper) MinimumInputLevel() int { return b.eval.MinimumInputLevel() }

// OutputLevel returns the level of bootstrapped ciphertexts.
func (b *Bootstrapper) OutputLevel() int { return b.eval.OutputLevel() }

// Parameters returns the parameters.
func (b *Bootstrapper) Parameters() *Parameters { return b.params }

// Lattigo returns the underlying Lattigo evaluator (do not call its
// ShallowCopy: it is broken in v5.0.7); for packages under he/ only.
func (b *Bootstrapper) Lattigo() *bootstrapping.Evaluator { return b.eval }

// ShallowCopy returns a Bootstrapper sharing keys, parameters and encoded
// DFT matrices with b but with its own buffers, for use in another
// goroutine. Lattigo v5.0.7's Evaluator.ShallowCopy drops the parameters and
// keys (bootstrap then fails); this copies the whole struct and rebuilds only
// the buffer-owning parts: the embedded hefloat evaluator and the DFT and
// Mod1 evaluators built on it (the v6.1.0 fix).
func (b *Bootstrapper) ShallowCopy() *Bootstrapper {
	cp := *b.eval
	params := cp.BootstrappingParameters
	cp.Evaluator = b.eval.Evaluator.ShallowCopy()
	cp.DFTEvaluator = hefloat.NewDFTEvaluator(params, cp.Evaluator)
	cp.Mod1Evaluator = hefloat.NewMod1Evaluator(cp.Evaluator, hefloat.NewPolynomialEvaluator(params, cp.Evaluator), cp.Mod1Parameters)
	// ckks.DomainSwitcher holds only rings and keys (no buffers): sharing it is safe.
	var _ ckks.DomainSwitcher = cp.DomainSwitcher
	return &Bootstrapper{params: b.params, eval: &cp}
}

// NewSecretKeyBootstrapper returns Lattigo's secret-key "bootstrapper",
// which decrypts and re-encrypts: a stand-in for tests of circuits that need
// a bootstrapper. It is refused for parameters not marked InsecureForTesting.
func NewSecretKeyBootstrapper(p *Parameters, sk *SecretKey) (CiphertextBootstrapper, error) {
	if p == nil || sk == nil {
		return nil, fmt.Errorf("secret-key bootstrapper: nil parameters or secret key")
	}
	if !p.insecure {
		return nil, fmt.Errorf("secret-key bootstrapper refused for %s: it is for tests with InsecureForTesting parameters only", p)
	}
	if sk.params.Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("secret-key bootstrapper: key made for %s, not %s", sk.params, p)
	}
	return bootstrapping.NewSecretKeyBootstrapper(p.HE(), sk.sk), nil
}

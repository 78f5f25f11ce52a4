package he

import (
	"fmt"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	lhe "github.com/tuneinsight/lattigo/v5/he"
	"github.com/tuneinsight/lattigo/v5/he/hefloat"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/schemes/ckks"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// GenerateBootstrappingKeys generates the bootstrapping evaluation keys for
// sk and applies the Lattigo v5.0.7 leak fix before returning them.
//
// The bug: bootstrapping.Parameters.GenEvaluationKeys builds the
// dense-to-sparse encapsulation key EvkDenseToSparse at the top level of the
// bootstrapping modulus chain, but the sparse output secret only exists on
// (Q0, P0); on every other limb q_k the key encrypts under a zero secret, so
// its first component there is e + P·s mod q_k and reveals the user's secret
// s coefficient by coefficient (TestBootstrapKeysDoNotLeakSecret performs
// the recovery). Lattigo v6.1.1 fixed this by generating that key at the
// lowest level. We do the same: draw a new sparse secret on (Q0, P0),
// regenerate EvkDenseToSparse at LevelQ=0, LevelP=0, and regenerate
// EvkSparseToDense with the same new sparse secret (the two must match).
// The ephemeral secret skN2 returned by Lattigo is dropped here. It returns
// Lattigo keys: for packages under he/ only (GenerateKeys with
// KeySpec.Bootstrapping is the public way).
func GenerateBootstrappingKeys(p *Parameters, sk *SecretKey) (*bootstrapping.EvaluationKeys, error) {
	if p == nil || sk == nil {
		return nil, fmt.Errorf("bootstrapping keys: nil parameters or secret key")
	}
	if !p.HasBootstrapping() {
		return nil, fmt.Errorf("bootstrapping keys: parameters %s have no bootstrapping", p)
	}
	if sk.params.Fingerprint() != p.Fingerprint() {
		return nil, fmt.Errorf("bootstrapping keys: secret key was made for %s, not %s", sk.params, p)
	}
	btp := p.btp
	evk, skN2, err := btp.GenEvaluationKeys(sk.sk)
	if err != nil {
		return nil, fmt.Errorf("bootstrapping keys: %w", err)
	}
	if err := regenerateEncapsulationKeys(btp, evk, skN2); err != nil {
		return nil, err
	}
	if err := CheckBootstrappingKeysSafe(evk); err != nil {
		return nil, err
	}
	return evk, nil
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

// regenerateEncapsulationKeys replaces evk's dense↔sparse keys by keys at
// level (Q0,P0) under a fresh sparse secret (see GenerateBootstrappingKeys).
// The v6 call (a key generator over the sparse parameters) panics in v5.0.7
// (index out of range in ring.MapSmallDimensionToLargerDimensionNTT), so we
// use the dense key generator with explicit levels, as the reference notes do.
func regenerateEncapsulationKeys(btp *bootstrapping.Parameters, evk *bootstrapping.EvaluationKeys, skN2 *rlwe.SecretKey) error {
	if btp.EphemeralSecretWeight == 0 {
		return nil // no encapsulation keys
	}
	bp := btp.BootstrappingParameters
	paramsSparse, err := rlwe.NewParametersFromLiteral(rlwe.ParametersLiteral{
		LogN: bp.LogN(),
		Q:    bp.Q()[:1],
		P:    bp.P()[:1],
	})
	if err != nil {
		return fmt.Errorf("bootstrapping keys: sparse parameters: %w", err)
	}
	skSparse := rlwe.NewKeyGenerator(paramsSparse).GenSecretKeyWithHammingWeightNew(btp.EphemeralSecretWeight)
	kgenDense := rlwe.NewKeyGenerator(bp)
	evk.EvkDenseToSparse = kgenDense.GenEvaluationKeyNew(skN2, skSparse, rlwe.EvaluationKeyParameters{LevelQ: utils.Pointy(0), LevelP: utils.Pointy(0)})
	evk.EvkSparseToDense = kgenDense.GenEvaluationKeyNew(skSparse, skN2)
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
	if _, err := evk.GetRelinearizationKey(); err != nil {
		return fmt.Errorf("bootstrapping keys: %w", err)
	}
	for _, g := range btp.GaloisElements(n2) {
		if _, err := evk.GetGaloisKey(g); err != nil {
			return fmt.Errorf("bootstrapping keys lack Galois key %d: %w", g, err)
		}
	}
	return CheckBootstrappingKeysSafe(evk)
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

package he

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/tuneinsight/lattigo/v5/core/rlwe"
	"github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	"github.com/tuneinsight/lattigo/v5/ring"
	"github.com/tuneinsight/lattigo/v5/utils"
)

// Key files.
//
// Keys are serialized in our own format rather than with Lattigo's
// WriteTo/ReadFrom: Lattigo's readers take vector lengths from the stream and
// allocate them before reading (structs.Vector.ReadFrom does make([]T, size)
// with size read from the input), so a corrupted or hostile file can make
// them allocate without bound or panic. Our readers instead build an empty
// Lattigo object of the shape the parameters dictate (after checking that the
// declared shape matches the parameters and that enough payload bytes remain)
// and fill its coefficients, checking each is below its modulus. The only
// Lattigo calls on untrusted input are parameter construction, which runs
// under recover (buildLattigoParameters).

// KeySpec says which evaluation keys to generate.
type KeySpec struct {
	// Relinearization requests the relinearization key (ciphertext products).
	Relinearization bool
	// Rotations lists slot rotations (left by k; negative k rotates right).
	Rotations []int
	// GaloisElements lists raw Galois elements (odd, < 2N), e.g. from
	// hefloat.GaloisElementsForLinearTransformation.
	GaloisElements []uint64
	// Conjugation requests the complex-conjugation key (standard ring only).
	Conjugation bool
	// Bootstrapping requests the bootstrapping keys (parameters with
	// bootstrapping only).
	Bootstrapping bool
}

// ResolveGaloisElements returns the sorted, de-duplicated Galois elements the
// spec needs for p (rotations, raw elements, conjugation), or an error for an
// invalid request.
func (s KeySpec) ResolveGaloisElements(p *Parameters) ([]uint64, error) {
	hp := p.HE()
	seen := map[uint64]bool{}
	var out []uint64
	add := func(g uint64) {
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	for _, k := range s.Rotations {
		if k%p.Slots() == 0 {
			continue // identity rotation needs no key
		}
		add(hp.GaloisElement(k))
	}
	nthRoot := uint64(hp.RingQ().NthRoot())
	for _, g := range s.GaloisElements {
		if g%2 == 0 || g >= nthRoot || g == 1 {
			return nil, fmt.Errorf("invalid Galois element %d for %s: must be odd, != 1 and < %d", g, p, nthRoot)
		}
		add(g)
	}
	if s.Conjugation {
		if p.RingType() == ring.ConjugateInvariant {
			return nil, fmt.Errorf("conjugation key requested but %s uses the conjugate-invariant ring (no conjugation)", p)
		}
		add(hp.GaloisElementForComplexConjugation())
	}
	return sortedUint64(out), nil
}

// SecretKey is a secret key bound to its parameters. It never leaves the client.
type SecretKey struct {
	params *Parameters
	sk     *rlwe.SecretKey
}

// Parameters returns the parameters the key was made for.
func (s *SecretKey) Parameters() *Parameters { return s.params }

// Lattigo returns the underlying Lattigo secret key.
func (s *SecretKey) Lattigo() *rlwe.SecretKey { return s.sk }

// EvaluationKeys are the public keys the server needs: relinearization key,
// Galois keys and, optionally, bootstrapping keys. They are safe for
// concurrent read-only use.
type EvaluationKeys struct {
	params *Parameters
	relin  *rlwe.RelinearizationKey
	galois map[uint64]*rlwe.GaloisKey
	btp    *bootstrapping.EvaluationKeys
	set    *rlwe.MemEvaluationKeySet
}

func newEvaluationKeys(p *Parameters, relin *rlwe.RelinearizationKey, gks []*rlwe.GaloisKey, btp *bootstrapping.EvaluationKeys) *EvaluationKeys {
	e := &EvaluationKeys{params: p, relin: relin, galois: map[uint64]*rlwe.GaloisKey{}, btp: btp}
	for _, g := range gks {
		e.galois[g.GaloisElement] = g
	}
	e.set = rlwe.NewMemEvaluationKeySet(relin, gks...)
	return e
}

// Parameters returns the parameters the keys were made for.
func (e *EvaluationKeys) Parameters() *Parameters { return e.params }

// KeySet returns the relinearization and Galois keys as a Lattigo key set
// for hefloat.NewEvaluator (residual parameters).
func (e *EvaluationKeys) KeySet() rlwe.EvaluationKeySet { return e.set }

// HasRelinearization reports whether the relinearization key is present.
func (e *EvaluationKeys) HasRelinearization() bool { return e.relin != nil }

// GaloisElements returns the Galois elements of the present Galois keys, sorted.
func (e *EvaluationKeys) GaloisElements() []uint64 {
	out := make([]uint64, 0, len(e.galois))
	for g := range e.galois {
		out = append(out, g)
	}
	return sortedUint64(out)
}

// HasGaloisElement reports whether the key for galEl is present.
func (e *EvaluationKeys) HasGaloisElement(galEl uint64) bool { _, ok := e.galois[galEl]; return ok }

// HasRotation reports whether the key for a left rotation by k is present.
func (e *EvaluationKeys) HasRotation(k int) bool {
	return e.HasGaloisElement(e.params.HE().GaloisElement(k))
}

// BootstrappingKeys returns the (leak-fixed) bootstrapping keys, or nil.
func (e *EvaluationKeys) BootstrappingKeys() *bootstrapping.EvaluationKeys { return e.btp }

// SizeBytes returns the serialized payload size of the keys in bytes.
func (e *EvaluationKeys) SizeBytes() uint64 { return evaluationKeysPayloadSize(e) }

// CheckCovers returns an error naming every key the spec needs that e lacks
// (relinearization key, Galois elements for rotations/raw elements/
// conjugation, bootstrapping keys), so a server can refuse a circuit before
// evaluating anything.
func (e *EvaluationKeys) CheckCovers(spec KeySpec) error {
	if e == nil {
		return fmt.Errorf("no evaluation keys")
	}
	need, err := spec.ResolveGaloisElements(e.params)
	if err != nil {
		return err
	}
	var missing []string
	if spec.Relinearization && e.relin == nil {
		missing = append(missing, "relinearization key")
	}
	var gal []uint64
	for _, g := range need {
		if !e.HasGaloisElement(g) {
			gal = append(gal, g)
		}
	}
	if len(gal) > 0 {
		missing = append(missing, fmt.Sprintf("Galois keys %v", gal))
	}
	if spec.Bootstrapping && e.btp == nil {
		missing = append(missing, "bootstrapping keys")
	}
	if len(missing) > 0 {
		return fmt.Errorf("evaluation keys for %s lack: %s", e.params, strings.Join(missing, ", "))
	}
	return nil
}

// GenerateKeys generates a fresh secret key for p and the evaluation keys
// the spec asks for. For bootstrapping, the keys are generated and then the
// encapsulation keys are regenerated at level (Q0,P0) (Lattigo v5.0.7 leak
// fix, see GenerateBootstrappingKeys) before this function returns.
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
	kgen := rlwe.NewKeyGenerator(p.HE())
	var relin *rlwe.RelinearizationKey
	if spec.Relinearization {
		relin = kgen.GenRelinearizationKeyNew(sk.sk)
	}
	var gks []*rlwe.GaloisKey
	if len(galEls) > 0 {
		gks = kgen.GenGaloisKeysNew(galEls, sk.sk)
	}
	var btp *bootstrapping.EvaluationKeys
	if spec.Bootstrapping {
		if btp, err = GenerateBootstrappingKeys(p, sk); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
	}
	return newEvaluationKeys(p, relin, gks, btp), nil
}

// --- shape checks -----------------------------------------------------------

// checkPolyShape checks a ring.Poly has N coefficients on levels+1 limbs.
func checkPolyShape(pol ring.Poly, n, level int, what string) error {
	if len(pol.Coeffs) != level+1 {
		return fmt.Errorf("%s has %d RNS limbs, parameters need %d", what, len(pol.Coeffs), level+1)
	}
	for i, c := range pol.Coeffs {
		if len(c) != n {
			return fmt.Errorf("%s limb %d has ring degree %d, parameters need N=%d", what, i, len(c), n)
		}
	}
	return nil
}

// checkEvaluationKeyShape checks that a Lattigo evaluation key has the ring
// degree and levels of rp, levels (levelQ, levelP), and no base-2 decomposition.
func checkEvaluationKeyShape(rp rlwe.Parameters, evk *rlwe.EvaluationKey, levelQ, levelP int, what string) error {
	if evk == nil {
		return fmt.Errorf("%s is nil", what)
	}
	if evk.BaseTwoDecomposition != 0 {
		return fmt.Errorf("%s uses base-2 decomposition %d (unsupported)", what, evk.BaseTwoDecomposition)
	}
	rows := rp.BaseRNSDecompositionVectorSize(levelQ, levelP)
	if len(evk.Value) != rows {
		return fmt.Errorf("%s has %d gadget rows, parameters need %d", what, len(evk.Value), rows)
	}
	for i := range evk.Value {
		if len(evk.Value[i]) != 1 {
			return fmt.Errorf("%s row %d has %d columns, want 1", what, i, len(evk.Value[i]))
		}
		for _, v := range evk.Value[i] {
			if len(v) != 2 {
				return fmt.Errorf("%s has a gadget entry of degree %d, want 2 components", what, len(v))
			}
			for _, qp := range v {
				if err := checkPolyShape(qp.Q, rp.N(), levelQ, what+" (Q part)"); err != nil {
					return err
				}
				if levelP >= 0 {
					if err := checkPolyShape(qp.P, rp.N(), levelP, what+" (P part)"); err != nil {
						return err
					}
				} else if len(qp.P.Coeffs) != 0 {
					return fmt.Errorf("%s has a P part but levelP=-1", what)
				}
			}
		}
	}
	return nil
}

// --- coefficient I/O --------------------------------------------------------

func writePoly(pw *payloadWriter, pol ring.Poly) {
	for _, c := range pol.Coeffs {
		pw.u64s(c)
	}
}

func readPoly(pr *payloadReader, pol ring.Poly, moduli []uint64, what string) {
	for i, c := range pol.Coeffs {
		pr.u64sBelow(c, moduli[i], what)
	}
}

func polyBytes(n, level int) uint64 { return uint64(n) * uint64(level+1) * 8 }

// --- secret key file ----------------------------------------------------------

// secret key payload: u8 logN, u8 #Q limbs, u8 #P limbs, then Q limbs and P
// limbs (N little-endian uint64 each, NTT+Montgomery form as Lattigo keeps them).

func secretKeyPayloadSize(p *Parameters) uint64 {
	hp := p.HE()
	return 3 + polyBytes(hp.N(), hp.MaxLevelQ()) + polyBytes(hp.N(), hp.MaxLevelP())
}

// WriteSecretKey writes the secret key envelope to w.
func WriteSecretKey(w io.Writer, sk *SecretKey) error {
	if sk == nil {
		return fmt.Errorf("write secret key: nil key")
	}
	p := sk.params
	hp := p.HE()
	if err := checkPolyShape(sk.sk.Value.Q, hp.N(), hp.MaxLevelQ(), "secret key"); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	if err := checkPolyShape(sk.sk.Value.P, hp.N(), hp.MaxLevelP(), "secret key"); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	ew, err := NewEnvelopeWriter(w, KindSecretKey, p.fp, p.name, secretKeyPayloadSize(p))
	if err != nil {
		return err
	}
	pw := newPayloadWriter(ew)
	pw.u8(uint8(hp.LogN()))
	pw.u8(uint8(hp.QCount()))
	pw.u8(uint8(hp.PCount()))
	writePoly(pw, sk.sk.Value.Q)
	writePoly(pw, sk.sk.Value.P)
	if pw.err != nil {
		return fmt.Errorf("write secret key: %w", pw.err)
	}
	return ew.Close()
}

// ReadSecretKey reads a secret key made for p. It checks the envelope (kind,
// fingerprint, exact length, checksum), the ring degree and limb counts, and
// that every coefficient is reduced modulo its prime.
func ReadSecretKey(r io.Reader, p *Parameters) (*SecretKey, error) {
	if p == nil {
		return nil, fmt.Errorf("read secret key: nil parameters")
	}
	hp := p.HE()
	want := ExpectFor(KindSecretKey, p)
	want.MaxPayload = secretKeyPayloadSize(p)
	var sk *rlwe.SecretKey
	_, err := readEnvelopeStream(r, want, func(er *EnvelopeReader, pr *payloadReader) error {
		if er.Header().PayloadLen != want.MaxPayload {
			return fmt.Errorf("%w: secret key payload is %d bytes, parameters %s need %d", ErrMalformed, er.Header().PayloadLen, p, want.MaxPayload)
		}
		logN, nq, np := int(pr.u8()), int(pr.u8()), int(pr.u8())
		if pr.err != nil {
			return pr.err
		}
		if logN != hp.LogN() || nq != hp.QCount() || np != hp.PCount() {
			return fmt.Errorf("%w: secret key has logN=%d, %d Q and %d P limbs; parameters %s have logN=%d, %d and %d",
				ErrMalformed, logN, nq, np, p, hp.LogN(), hp.QCount(), hp.PCount())
		}
		key := rlwe.NewSecretKey(hp)
		readPoly(pr, key.Value.Q, hp.Q(), "secret key")
		readPoly(pr, key.Value.P, hp.P(), "secret key")
		if pr.err != nil {
			return pr.err
		}
		sk = key
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	return &SecretKey{params: p, sk: sk}, nil
}

// WriteSecretKeyFile writes the secret key to path with mode 0600 (created
// that way, never widened). Without overwrite, an existing file is an error.
func WriteSecretKeyFile(path string, sk *SecretKey, overwrite bool) error {
	if err := writeFileAtomic(path, 0o600, overwrite, func(w io.Writer) error { return WriteSecretKey(w, sk) }); err != nil {
		return err
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("secret key file %s has mode %v, expected 0600", path, st.Mode().Perm())
	}
	return nil
}

// ReadSecretKeyFile reads a secret key file made for p. Like ssh, it refuses
// a file readable or writable by group or others.
func ReadSecretKeyFile(path string, p *Parameters) (*SecretKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret key file %s has mode %v: it must not be accessible by group or others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	var sk *SecretKey
	err = readEnvelopeFile(path, func(r io.Reader) (err error) {
		sk, err = ReadSecretKey(r, p)
		return err
	})
	return sk, err
}

// --- evaluation keys file -------------------------------------------------------

// evaluation keys payload:
//
//	u8 flags (bit 0: relinearization key, bit 1: bootstrapping section)
//	u32 number of Galois keys
//	[relinearization key record]
//	Galois keys: u64 Galois element, key record (sorted by element)
//	[bootstrapping section: u8 component mask (bit i: component i of
//	 btpComponents), component records in that order, then u8 has-relin,
//	 u32 #Galois, relin record, Galois records, all at the bootstrapping
//	 parameters]
//
// key record: u8 levelQ, u8 levelP+1, u16 gadget rows, then for each row
// (one column) the two QP components (Q limbs then P limbs).

const (
	flagRelin = 1 << 0
	flagBtp   = 1 << 1
)

var btpComponentNames = [...]string{"EvkN1ToN2", "EvkN2ToN1", "EvkRealToCmplx", "EvkCmplxToReal", "EvkDenseToSparse", "EvkSparseToDense"}

func btpComponents(b *bootstrapping.EvaluationKeys) []**rlwe.EvaluationKey {
	return []**rlwe.EvaluationKey{&b.EvkN1ToN2, &b.EvkN2ToN1, &b.EvkRealToCmplx, &b.EvkCmplxToReal, &b.EvkDenseToSparse, &b.EvkSparseToDense}
}

const btpDenseToSparse = 4

func evkRecordSize(rp rlwe.Parameters, levelQ, levelP int) uint64 {
	rows := uint64(rp.BaseRNSDecompositionVectorSize(levelQ, levelP))
	per := polyBytes(rp.N(), levelQ)
	if levelP >= 0 {
		per += polyBytes(rp.N(), levelP)
	}
	return 4 + rows*2*per
}

func evkSize(rp rlwe.Parameters, evk *rlwe.EvaluationKey) uint64 {
	return evkRecordSize(rp, evk.LevelQ(), evk.LevelP())
}

func keySetSize(rp rlwe.Parameters, relin *rlwe.RelinearizationKey, gks []*rlwe.GaloisKey) uint64 {
	var n uint64
	if relin != nil {
		n += evkSize(rp, &relin.EvaluationKey)
	}
	for _, g := range gks {
		n += 8 + evkSize(rp, &g.EvaluationKey)
	}
	return n
}

func sortedGaloisKeys(m map[uint64]*rlwe.GaloisKey) []*rlwe.GaloisKey {
	out := make([]*rlwe.GaloisKey, 0, len(m))
	for _, g := range m {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GaloisElement < out[j].GaloisElement })
	return out
}

func memSetKeys(m *rlwe.MemEvaluationKeySet) (*rlwe.RelinearizationKey, []*rlwe.GaloisKey) {
	if m == nil {
		return nil, nil
	}
	gm := map[uint64]*rlwe.GaloisKey{}
	for g, k := range m.GaloisKeys {
		gm[g] = k
	}
	return m.RelinearizationKey, sortedGaloisKeys(gm)
}

func evaluationKeysPayloadSize(e *EvaluationKeys) uint64 {
	hp := e.params.HE().Parameters.Parameters
	n := uint64(5) + keySetSize(hp, e.relin, sortedGaloisKeys(e.galois))
	if e.btp != nil {
		bp := e.params.btp.BootstrappingParameters.Parameters.Parameters
		n++
		for _, c := range btpComponents(e.btp) {
			if *c != nil {
				n += evkSize(bp, *c)
			}
		}
		rl, gks := memSetKeys(e.btp.MemEvaluationKeySet)
		n += 5 + keySetSize(bp, rl, gks)
	}
	return n
}

func writeEvk(pw *payloadWriter, evk *rlwe.EvaluationKey) {
	pw.u8(uint8(evk.LevelQ()))
	pw.u8(uint8(evk.LevelP() + 1))
	rows := len(evk.Value)
	pw.write([]byte{byte(rows), byte(rows >> 8)})
	for i := range evk.Value {
		for _, v := range evk.Value[i] {
			for _, qp := range v {
				writePoly(pw, qp.Q)
				if evk.LevelP() >= 0 {
					writePoly(pw, qp.P)
				}
			}
		}
	}
}

// levelRule says which levels a key record may have.
type levelRule struct {
	exactQ, exactP int // -2: any level in range
}

// readEvk reads one key record for parameters rp into a freshly allocated
// key, after checking the declared shape against rp and rule and that the
// remaining payload can hold it.
func readEvk(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, rule levelRule, what string) *rlwe.EvaluationKey {
	levelQ := int(pr.u8())
	levelP := int(pr.u8()) - 1
	var rb [2]byte
	pr.read(rb[:])
	if pr.err != nil {
		return nil
	}
	rows := int(rb[0]) | int(rb[1])<<8
	if levelQ > rp.MaxLevelQ() || levelP > rp.MaxLevelP() {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d) exceeds the parameters' maximum (Q %d, P %d)", ErrMalformed, what, levelQ, levelP, rp.MaxLevelQ(), rp.MaxLevelP()))
		return nil
	}
	if (rule.exactQ != -2 && levelQ != rule.exactQ) || (rule.exactP != -2 && levelP != rule.exactP) {
		pr.fail(fmt.Errorf("%w: %s at levels (Q %d, P %d), expected (Q %d, P %d) for these parameters", ErrMalformed, what, levelQ, levelP, rule.exactQ, rule.exactP))
		return nil
	}
	if levelP < 0 {
		pr.fail(fmt.Errorf("%w: %s without special primes P is not supported", ErrMalformed, what))
		return nil
	}
	if want := rp.BaseRNSDecompositionVectorSize(levelQ, levelP); rows != want {
		pr.fail(fmt.Errorf("%w: %s declares %d gadget rows, parameters need %d at these levels", ErrMalformed, what, rows, want))
		return nil
	}
	if need := evkRecordSize(rp, levelQ, levelP) - 4; er.Remaining() < need {
		pr.fail(fmt.Errorf("%w: %s needs %d more bytes, payload has %d", ErrTruncated, what, need, er.Remaining()))
		return nil
	}
	evk := rlwe.NewEvaluationKey(rp, rlwe.EvaluationKeyParameters{LevelQ: utils.Pointy(levelQ), LevelP: utils.Pointy(levelP)})
	if err := checkEvaluationKeyShape(rp, evk, levelQ, levelP, what); err != nil {
		pr.fail(fmt.Errorf("%w: %v", ErrMalformed, err))
		return nil
	}
	q, p := rp.Q(), rp.P()
	for i := range evk.Value {
		for _, v := range evk.Value[i] {
			for _, qp := range v {
				readPoly(pr, qp.Q, q, what)
				readPoly(pr, qp.P, p, what)
			}
		}
	}
	if pr.err != nil {
		return nil
	}
	return evk
}

// writeKeySet writes u8 has-relin (only when withFlag), u32 count, records.
func writeKeySet(pw *payloadWriter, rp rlwe.Parameters, relin *rlwe.RelinearizationKey, gks []*rlwe.GaloisKey, what string) error {
	if relin != nil {
		if err := checkEvaluationKeyShape(rp, &relin.EvaluationKey, rp.MaxLevelQ(), rp.MaxLevelP(), what+" relinearization key"); err != nil {
			return err
		}
		writeEvk(pw, &relin.EvaluationKey)
	}
	for _, g := range gks {
		if err := checkEvaluationKeyShape(rp, &g.EvaluationKey, rp.MaxLevelQ(), rp.MaxLevelP(), fmt.Sprintf("%s Galois key %d", what, g.GaloisElement)); err != nil {
			return err
		}
		pw.u64(g.GaloisElement)
		writeEvk(pw, &g.EvaluationKey)
	}
	return nil
}

func readKeySet(er *EnvelopeReader, pr *payloadReader, rp rlwe.Parameters, hasRelin bool, nGalois uint32, what string) (*rlwe.RelinearizationKey, []*rlwe.GaloisKey) {
	full := levelRule{exactQ: rp.MaxLevelQ(), exactP: rp.MaxLevelP()}
	var relin *rlwe.RelinearizationKey
	if hasRelin {
		evk := readEvk(er, pr, rp, full, what+" relinearization key")
		if evk == nil {
			return nil, nil
		}
		relin = &rlwe.RelinearizationKey{EvaluationKey: *evk}
	}
	nthRoot := uint64(rp.RingQ().NthRoot())
	if uint64(nGalois) > nthRoot/2 {
		pr.fail(fmt.Errorf("%w: %s declares %d Galois keys, at most %d exist", ErrMalformed, what, nGalois, nthRoot/2))
		return nil, nil
	}
	var gks []*rlwe.GaloisKey
	prev := uint64(0)
	for i := uint32(0); i < nGalois; i++ {
		g := pr.u64()
		if pr.err != nil {
			return nil, nil
		}
		if g%2 == 0 || g >= nthRoot || g <= prev {
			pr.fail(fmt.Errorf("%w: %s Galois element %d invalid (must be odd, < %d, strictly increasing)", ErrMalformed, what, g, nthRoot))
			return nil, nil
		}
		prev = g
		evk := readEvk(er, pr, rp, full, fmt.Sprintf("%s Galois key %d", what, g))
		if evk == nil {
			return nil, nil
		}
		gks = append(gks, &rlwe.GaloisKey{GaloisElement: g, NthRoot: nthRoot, EvaluationKey: *evk})
	}
	return relin, gks
}

// WriteEvaluationKeys writes the evaluation keys envelope to w. It refuses
// bootstrapping keys whose dense-to-sparse key is above level (Q0,P0): such
// keys leak the secret key (Lattigo v5.0.7 bug).
func WriteEvaluationKeys(w io.Writer, e *EvaluationKeys) error {
	if e == nil {
		return fmt.Errorf("write evaluation keys: nil keys")
	}
	p := e.params
	hp := p.HE().Parameters.Parameters
	if e.btp != nil {
		if err := CheckBootstrappingKeysSafe(e.btp); err != nil {
			return fmt.Errorf("write evaluation keys: %w", err)
		}
	}
	ew, err := NewEnvelopeWriter(w, KindEvaluationKeys, p.fp, p.name, evaluationKeysPayloadSize(e))
	if err != nil {
		return fmt.Errorf("write evaluation keys: %w", err)
	}
	pw := newPayloadWriter(ew)
	var flags uint8
	if e.relin != nil {
		flags |= flagRelin
	}
	if e.btp != nil {
		flags |= flagBtp
	}
	pw.u8(flags)
	gks := sortedGaloisKeys(e.galois)
	pw.u32(uint32(len(gks)))
	if err := writeKeySet(pw, hp, e.relin, gks, "evaluation keys:"); err != nil {
		return fmt.Errorf("write evaluation keys: %w", err)
	}
	if e.btp != nil {
		bp := p.btp.BootstrappingParameters.Parameters.Parameters
		var mask uint8
		comps := btpComponents(e.btp)
		for i, c := range comps {
			if *c != nil {
				mask |= 1 << i
			}
		}
		pw.u8(mask)
		for i, c := range comps {
			if *c == nil {
				continue
			}
			if err := checkEvaluationKeyShape(bp, *c, (*c).LevelQ(), (*c).LevelP(), "bootstrapping "+btpComponentNames[i]); err != nil {
				return fmt.Errorf("write evaluation keys: %w", err)
			}
			writeEvk(pw, *c)
		}
		rl, bgks := memSetKeys(e.btp.MemEvaluationKeySet)
		if rl != nil {
			pw.u8(1)
		} else {
			pw.u8(0)
		}
		pw.u32(uint32(len(bgks)))
		if err := writeKeySet(pw, bp, rl, bgks, "bootstrapping keys:"); err != nil {
			return fmt.Errorf("write evaluation keys: %w", err)
		}
	}
	if pw.err != nil {
		return fmt.Errorf("write evaluation keys: %w", pw.err)
	}
	return ew.Close()
}

// ReadEvaluationKeys reads evaluation keys made for p, validating the
// envelope, every key's ring degree, levels and gadget shape against p, every
// Galois element, and every coefficient's range. Bootstrapping keys are
// accepted only if p has bootstrapping parameters and the dense-to-sparse key
// is at level (Q0,P0).
func ReadEvaluationKeys(r io.Reader, p *Parameters) (*EvaluationKeys, error) {
	return readEvaluationKeys(r, p, 0)
}

// ReadEvaluationKeysMax is ReadEvaluationKeys refusing, from the header and
// before reading any key, a file whose payload declares more than maxBytes
// (0: MaxEnvelopePayload).
func ReadEvaluationKeysMax(r io.Reader, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	return readEvaluationKeys(r, p, maxBytes)
}

func readEvaluationKeys(r io.Reader, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	if p == nil {
		return nil, fmt.Errorf("read evaluation keys: nil parameters")
	}
	hp := p.HE().Parameters.Parameters
	var out *EvaluationKeys
	want := ExpectFor(KindEvaluationKeys, p)
	want.MaxPayload = maxBytes
	_, err := readEnvelopeStream(r, want, func(er *EnvelopeReader, pr *payloadReader) error {
		flags := pr.u8()
		nGalois := pr.u32()
		if pr.err != nil {
			return pr.err
		}
		if flags&^(flagRelin|flagBtp) != 0 {
			return fmt.Errorf("%w: unknown evaluation key flags %#x", ErrMalformed, flags)
		}
		relin, gks := readKeySet(er, pr, hp, flags&flagRelin != 0, nGalois, "evaluation keys:")
		if pr.err != nil {
			return pr.err
		}
		var btp *bootstrapping.EvaluationKeys
		if flags&flagBtp != 0 {
			if !p.HasBootstrapping() {
				return fmt.Errorf("%w: file holds bootstrapping keys but parameters %s have no bootstrapping", ErrMalformed, p)
			}
			bp := p.btp.BootstrappingParameters.Parameters.Parameters
			mask := pr.u8()
			if pr.err != nil {
				return pr.err
			}
			if mask>>len(btpComponentNames) != 0 {
				return fmt.Errorf("%w: unknown bootstrapping key components %#x", ErrMalformed, mask)
			}
			btp = &bootstrapping.EvaluationKeys{}
			for i, c := range btpComponents(btp) {
				if mask&(1<<i) == 0 {
					continue
				}
				rule := levelRule{exactQ: -2, exactP: -2}
				if i == btpDenseToSparse {
					rule = levelRule{exactQ: 0, exactP: 0}
				}
				*c = readEvk(er, pr, bp, rule, "bootstrapping "+btpComponentNames[i])
				if pr.err != nil {
					return pr.err
				}
			}
			hasRelin := pr.u8()
			n := pr.u32()
			if pr.err != nil {
				return pr.err
			}
			if hasRelin > 1 {
				return fmt.Errorf("%w: bootstrapping relinearization flag %d", ErrMalformed, hasRelin)
			}
			brl, bgks := readKeySet(er, pr, bp, hasRelin == 1, n, "bootstrapping keys:")
			if pr.err != nil {
				return pr.err
			}
			btp.MemEvaluationKeySet = rlwe.NewMemEvaluationKeySet(brl, bgks...)
			if err := CheckBootstrappingKeysComplete(p, btp); err != nil {
				return fmt.Errorf("%w: %v", ErrMalformed, err)
			}
		}
		out = newEvaluationKeys(p, relin, gks, btp)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read evaluation keys: %w", err)
	}
	return out, nil
}

// WriteEvaluationKeysFile writes the evaluation keys to path (mode 0644).
func WriteEvaluationKeysFile(path string, e *EvaluationKeys, overwrite bool) error {
	return writeFileAtomic(path, 0o644, overwrite, func(w io.Writer) error { return WriteEvaluationKeys(w, e) })
}

// ReadEvaluationKeysFile reads an evaluation keys file made for p.
func ReadEvaluationKeysFile(path string, p *Parameters) (*EvaluationKeys, error) {
	return ReadEvaluationKeysFileMax(path, p, 0)
}

// ReadEvaluationKeysFileMax reads an evaluation keys file made for p whose
// payload declares at most maxBytes (0: MaxEnvelopePayload).
func ReadEvaluationKeysFileMax(path string, p *Parameters, maxBytes uint64) (*EvaluationKeys, error) {
	var e *EvaluationKeys
	err := readEnvelopeFile(path, func(r io.Reader) (err error) {
		e, err = readEvaluationKeys(r, p, maxBytes)
		return err
	})
	return e, err
}

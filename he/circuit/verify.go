package circuit

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/polyformer/polyformer/he"
)

// DefaultMaxKeyBytes is the default cap on the evaluation keys a client
// generates for a circuit (4 GB, decimal): "a few GB", above the demo at n15
// (2.64 GB) and far below what a hostile key list can ask for (64 GB and
// more). Larger circuits need an explicit, informed limit: the recorded
// benchmark circuits ask for 6.92 GB (n16) and 9.97 GB (n16-boot), so their
// keygen takes --max-key-bytes 12000000000.
const DefaultMaxKeyBytes uint64 = 4_000_000_000

// ClientPolicy is what a client accepts from a circuit it did not make.
type ClientPolicy struct {
	// AllowInsecure accepts parameters below 128-bit security (tests only).
	AllowInsecure bool
	// MaxKeyBytes caps the evaluation keys the circuit may ask for (0:
	// DefaultMaxKeyBytes).
	MaxKeyBytes uint64
}

// KeyBudget is what generating a circuit's keys costs, computed before any
// key exists.
type KeyBudget struct {
	// Keys is the number of evaluation keys (switching keys): the
	// relinearization key, one per rotation, and the bootstrapping keys.
	Keys            int  `json:"keys"`
	RotationKeys    int  `json:"rotation_keys"`
	Relinearization bool `json:"relinearization"`
	// BootstrappingKeys counts the bootstrapping circuit's keys (0 without).
	BootstrappingKeys int `json:"bootstrapping_keys"`
	// KeyBytes is the size of the evaluation keys on disk and on the wire
	// (as the dry-run report: each key at its level, random halves as
	// seeds); the budget applies to it.
	KeyBytes uint64 `json:"key_bytes"`
	// KeyMemoryBytes is their size in memory, expanded on load.
	KeyMemoryBytes uint64 `json:"key_memory_bytes"`
	// SecretKeyBytes is the size of the secret key file's payload.
	SecretKeyBytes uint64 `json:"secret_key_bytes"`
	// MemoryBytes is the dry-run estimate of the encrypted evaluation's
	// memory (keys, encoded transforms, live ciphertexts).
	MemoryBytes uint64 `json:"memory_bytes"`
	// MaxKeyBytes is the cap the budget was checked against.
	MaxKeyBytes uint64 `json:"max_key_bytes"`
	// Security is the security report of the parameters.
	Security he.SecurityReport `json:"security"`
}

// String returns a one-line description.
func (b KeyBudget) String() string {
	boot := ""
	if b.BootstrappingKeys > 0 {
		boot = fmt.Sprintf(", %d bootstrapping", b.BootstrappingKeys)
	}
	relin := 0
	if b.Relinearization {
		relin = 1
	}
	return fmt.Sprintf("%d evaluation keys (%d relinearization, %d rotation%s): %s of keys on disk/wire (limit %s), %s in memory, memory estimate %s; security ~%.0f bits",
		b.Keys, relin, b.RotationKeys, boot, FormatBytes(b.KeyBytes), FormatBytes(b.MaxKeyBytes), FormatBytes(b.KeyMemoryBytes), FormatBytes(b.MemoryBytes), b.Security.MinEstimatedBits())
}

// FormatBytes formats a byte count in decimal units (B, kB, MB, GB).
func FormatBytes(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// ErrKeyBudget is wrapped by VerifyCircuit when the keys exceed MaxKeyBytes.
var ErrKeyBudget = errors.New("evaluation keys exceed the key budget")

// ErrKeySpec is wrapped by VerifyCircuit when the circuit's key spec is not
// the one its ops use.
var ErrKeySpec = errors.New("key spec does not match the circuit's ops")

// VerifyCircuit is what a client runs on a circuit it did not make (the
// circuit from a server, a file from anyone) before generating keys or
// encrypting, with p the parameters the circuit file carries:
//
//   - security computed from p itself by he.RequireSecure (refused under
//     128 bits unless pol.AllowInsecure), and, when p carries a preset's
//     name, p must be that preset of this build;
//   - the plan: the circuit was planned for p, its layout fits p's slots,
//     every op's level follows from its inputs' (so the executor keeps the
//     levels the plan claims), bootstraps only with bootstrapping
//     parameters, no secret-key test bootstrapper unless pol.AllowInsecure;
//   - the key spec recomputed from the op graph (relinearization, every
//     rotation of every rotate, rotsum and linear op, bootstrapping) must
//     equal the file's: no key the ops do not use, none missing, each key
//     at exactly the highest level the ops use it (a key below would give
//     garbage, one above costs bytes); a file without levels (an earlier
//     build) gets every key at the top level;
//   - the key budget: key count, key bytes and memory, refused above
//     pol.MaxKeyBytes.
//
// It returns the budget (with the security report) whenever it got that
// far, also with an error.
func VerifyCircuit(c *Circuit, p *he.Parameters, pol ClientPolicy) (KeyBudget, error) {
	var b KeyBudget
	if c == nil || p == nil {
		return b, errors.New("verify circuit: nil circuit or parameters")
	}
	sec, err := he.RequireSecure(p, pol.AllowInsecure)
	b.Security = sec
	if err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	if err := checkPresetName(p); err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	if err := c.Validate(); err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	pl := c.Planned
	if pl == nil {
		return b, errors.New("verify circuit: the circuit is not planned for a parameter set")
	}
	if pl.Fingerprint != p.Fingerprint().String() {
		return b, fmt.Errorf("verify circuit: planned for %s (fingerprint %.16s), parameters are %s: %w", pl.Preset, pl.Fingerprint, p, he.ErrFingerprintMismatch)
	}
	if c.Layout.Slots() > p.Slots() {
		return b, fmt.Errorf("verify circuit: layout.slots: the layout needs %d slots, parameters %s have %d", c.Layout.Slots(), p, p.Slots())
	}
	if pl.InsecureSKBootstrap && !pol.AllowInsecure {
		return b, errors.New("verify circuit: plan.insecure_sk_bootstrap: the circuit is planned for the secret-key test bootstrapper (it decrypts); refused without --insecure")
	}
	if err := checkLevels(c, p); err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	want, err := c.KeyNeeds(p)
	if err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	if err := sameKeys(pl.Keys, want); err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	if err := budget(c, p, pol, &b); err != nil {
		return b, fmt.Errorf("verify circuit: %w", err)
	}
	return b, nil
}

// checkPresetName refuses parameters that carry the name of one of this
// build's presets but are not that preset: the name is what the user sees.
func checkPresetName(p *he.Parameters) error {
	if _, err := he.LookupPreset(p.Name()); err != nil {
		return nil // not a preset name: the parameters speak for themselves
	}
	ref, err := he.ParametersFromPreset(p.Name())
	if err != nil {
		return err
	}
	if ref.Fingerprint() != p.Fingerprint() {
		return fmt.Errorf("parameters.name: the parameters are named %q but differ from this build's preset %q (fingerprint %s, preset %s): %w",
			p.Name(), p.Name(), p.Fingerprint().Short(), ref.Fingerprint().Short(), he.ErrFingerprintMismatch)
	}
	return nil
}

// checkLevels re-derives every op's level from its inputs' levels, as Plan
// assigns them, and compares with the plan.
func checkLevels(c *Circuit, p *he.Parameters) error {
	pl := c.Planned
	maxL := p.MaxLevel()
	if pl.InputLevel > maxL {
		return fmt.Errorf("plan.input_level: %d exceeds the parameters' maximum level %d", pl.InputLevel, maxL)
	}
	bootstraps := 0
	for i, op := range c.Ops {
		got := pl.Levels[i]
		ins := make([]int, len(op.In))
		for k := range ins {
			ins[k] = pl.Levels[op.In[k]]
		}
		want, ok := op.OutLevel(ins)
		switch opTable[op.Kind].Level {
		case LevelsInput:
			want = pl.InputLevel
		case LevelsDrop:
			want = min(got, ins[0])
		case LevelsRefresh:
			if !p.HasBootstrapping() {
				return fmt.Errorf("op %d (bootstrap): parameters %s have no bootstrapping", i, p)
			}
			bootstraps++
			want = maxL
		default:
			if !ok {
				return fmt.Errorf("op %d: unknown kind %q", i, op.Kind)
			}
		}
		if got != want || got < 0 {
			return fmt.Errorf("plan.levels[%d]: op %d (%s, %.64s) at level %d, its inputs give %d", i, i, op.Kind, op.Label, got, want)
		}
	}
	if bootstraps != pl.Bootstraps {
		return fmt.Errorf("plan.bootstraps: %d, the ops hold %d", pl.Bootstraps, bootstraps)
	}
	return nil
}

// sameKeys compares the file's key spec with the one the ops need.
func sameKeys(got, want KeyNeeds) error {
	var diffs []string
	if got.Relinearization != want.Relinearization {
		diffs = append(diffs, fmt.Sprintf("relinearization %v, the ops need %v", got.Relinearization, want.Relinearization))
	}
	if got.Bootstrapping != want.Bootstrapping {
		diffs = append(diffs, fmt.Sprintf("bootstrapping %v, the ops need %v", got.Bootstrapping, want.Bootstrapping))
	}
	need := map[int]bool{}
	for _, r := range want.Rotations {
		need[r] = true
	}
	listed := map[int]bool{}
	var unused, dup []int
	for _, r := range got.Rotations {
		if listed[r] {
			dup = append(dup, r)
		}
		listed[r] = true
		if !need[r] {
			unused = append(unused, r)
		}
	}
	var missing []int
	for _, r := range want.Rotations {
		if !listed[r] {
			missing = append(missing, r)
		}
	}
	some := func(xs []int) string {
		if len(xs) > 5 {
			return fmt.Sprintf("%v... (%d in all)", xs[:5], len(xs))
		}
		return fmt.Sprint(xs)
	}
	if len(unused) > 0 {
		diffs = append(diffs, fmt.Sprintf("%d rotation keys no op uses %s", len(unused), some(unused)))
	}
	if len(dup) > 0 {
		diffs = append(diffs, fmt.Sprintf("rotations listed twice %s", some(dup)))
	}
	if len(missing) > 0 {
		diffs = append(diffs, fmt.Sprintf("%d rotation keys the ops use are missing %s", len(missing), some(missing)))
	}
	if got.Levels != nil && want.Levels != nil { // nil: a circuit file of an earlier build, every key at the top level
		if got.Levels.Relinearization != want.Levels.Relinearization {
			diffs = append(diffs, fmt.Sprintf("relinearization key at level %d, the ops use it at level %d", got.Levels.Relinearization, want.Levels.Relinearization))
		}
		if len(got.Levels.Rotations) != len(got.Rotations) {
			diffs = append(diffs, fmt.Sprintf("%d rotation key levels for %d rotations", len(got.Levels.Rotations), len(got.Rotations)))
		} else if len(unused)+len(dup)+len(missing) == 0 {
			for i, r := range got.Rotations {
				j, _ := slices.BinarySearch(want.Rotations, r)
				if j < len(want.Rotations) && got.Levels.Rotations[i] != want.Levels.Rotations[j] {
					diffs = append(diffs, fmt.Sprintf("rotation key %d at level %d, the ops use it at level %d", r, got.Levels.Rotations[i], want.Levels.Rotations[j]))
					break
				}
			}
		}
	}
	if !slices.IsSorted(got.Rotations) && len(diffs) == 0 {
		diffs = append(diffs, "rotations not sorted")
	}
	if len(diffs) > 0 {
		return fmt.Errorf("plan.keys: %w: %s", ErrKeySpec, strings.Join(diffs, "; "))
	}
	return nil
}

// budget fills b's counts and sizes and applies the cap.
func budget(c *Circuit, p *he.Parameters, pol ClientPolicy, b *KeyBudget) error {
	rep, err := NewReport(c, p)
	if err != nil {
		return err
	}
	k := c.Planned.Keys
	b.RotationKeys = len(k.Rotations)
	b.Relinearization = k.Relinearization
	b.Keys = b.RotationKeys
	if k.Relinearization {
		b.Keys++
	}
	if k.Bootstrapping && p.HasBootstrapping() {
		bp := p.BootstrappingParameters()
		// Galois keys and relinearization key of the bootstrapping circuit,
		// plus the ring-switching and encapsulation keys.
		b.BootstrappingKeys = len(bp.GaloisElements(p.HE())) + 1 + 2
		if bp.BootstrappingParameters.N() != p.N() {
			b.BootstrappingKeys += 2
		}
		b.Keys += b.BootstrappingKeys
	}
	hp := p.HE()
	b.KeyBytes = uint64(rep.KeyBytes.Total)
	b.KeyMemoryBytes = uint64(rep.KeyBytes.Memory)
	b.SecretKeyBytes = uint64(hp.N()) * uint64(hp.QCount()+hp.PCount()) * 8
	b.MemoryBytes = uint64(max(rep.MemoryBytes, 0))
	b.MaxKeyBytes = pol.MaxKeyBytes
	if b.MaxKeyBytes == 0 {
		b.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if b.KeyBytes > b.MaxKeyBytes {
		return fmt.Errorf("%w: the circuit asks for %d evaluation keys, %s (%d bytes), above the limit %s (%d bytes; raise it with --max-key-bytes)",
			ErrKeyBudget, b.Keys, FormatBytes(b.KeyBytes), b.KeyBytes, FormatBytes(b.MaxKeyBytes), b.MaxKeyBytes)
	}
	return nil
}

// Package he is polyformer's CKKS runtime on Lattigo v5.0.7. It is the only
// package that imports Lattigo, so a move to Lattigo v6 touches nothing else.
//
// The package has two halves.
//
// Foundation (params*.go, security*.go, envelope*.go, keys*.go,
// ciphertext*.go, bootstrap*.go):
//
//   - Presets and Parameters: named parameter sets (n14, n15, n16, n16-boot,
//     and the insecure test-n12, test-n13, test-boot-n13), resolved into
//     Lattigo parameters with ParametersFromPreset. PresetTable feeds
//     `polyformer params`.
//   - Security: CheckSecurity / CheckParametersSecurity compare log2(QP)
//     with the HomomorphicEncryption.org 128-bit bounds (sparse secrets: the
//     bound Lattigo states for h=192) and refuse parameters above them unless
//     they are marked InsecureForTesting. EstimateSecurityBits is a
//     documented table interpolation, not a lattice-estimator run.
//     RequireSecure is the one policy every key-generating or encrypting
//     path uses: it recomputes the security from the parameters (never
//     from a name or a mark in a file) and refuses anything under 128
//     bits unless insecure parameters are explicitly allowed
//     (docs/security.md).
//   - Fingerprint: SHA-256 of a canonical parameter description; every file
//     carries it, and loading a file made for other parameters fails with
//     ErrFingerprintMismatch naming both parameter sets.
//   - Envelope: the versioned container of every file (magic, version, kind,
//     fingerprint, label, length, payload, SHA-256), with typed errors
//     (ErrBadMagic, ErrUnsupportedVersion, ErrWrongKind, ErrTruncated,
//     ErrChecksum, ErrTooLarge, ErrMalformed, ErrTrailingData) and capped
//     allocations.
//   - Keys: GenerateKeys from a KeySpec (relinearization, rotations, raw
//     Galois elements, conjugation, bootstrapping), each relinearization
//     and rotation key at its own level (KeySpec.Levels) with its random
//     half derived from a per-key seed (keys_levels.go); evaluation-key
//     files are format version 2 (levels, seeds; version 1 still loads),
//     and a key below a ciphertext's level is refused (ErrKeyLevel), never
//     used (Lattigo v5.0.7 would return garbage); SecretKey files are
//     written with mode 0600 and refused when group/world accessible;
//     EvaluationKeys.KeySet feeds hefloat.NewEvaluator. Key and ciphertext
//     files use our own coefficient format, decoded into Lattigo objects of
//     the shape the parameters dictate, so corrupted or hostile files give
//     errors and never unbounded allocations or panics.
//   - Bootstrapping: GenerateBootstrappingKeys applies the fix for the
//     Lattigo v5.0.7 secret-key leak in the dense-to-sparse key before any
//     key leaves the function; Bootstrapper implements
//     lattigo he.Bootstrapper[rlwe.Ciphertext] with a working ShallowCopy.
//   - Client: encoder, encryptor and decryptor for the key owner.
//
// Evaluation (evaluator*.go, trace*.go, lintrans*.go, poly*.go,
// parallel*.go): the traced evaluator that records every operation (kind,
// levels, scale, key switches, wall time), linear transformations,
// polynomial evaluation of polyapprox polynomials, inverse and inverse
// square root, and parallel evaluation on evaluator copies. It takes the
// Parameters, EvaluationKeys.KeySet() and Bootstrapper from the foundation.
package he

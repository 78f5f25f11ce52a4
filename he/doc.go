// Package he is polyformer's CKKS runtime on Lattigo v5.0.7. It is the only
// package that imports Lattigo, so a move to Lattigo v6 touches nothing else.
//
// The package speaks one vocabulary: its public functions take and return
// Parameters, SecretKey, EvaluationKeys, Ciphertext and Plaintext (the last
// two are aliases of Lattigo's types, so code under he/ passes them to
// Lattigo without conversion). Accessors that hand out Lattigo objects
// (Parameters.HE, EvaluationKeys.KeySet, SecretKey.Lattigo,
// Evaluator.Lattigo, ...) are for packages under he/ only.
//
// The package has two halves.
//
// Foundation:
//
//   - params.go, params_file.go: named parameter sets (n14, n15, n16,
//     n16-boot, and the insecure test-n12, test-n13, test-boot-n13),
//     resolved into Parameters with ParametersFromPreset; PresetTable feeds
//     `polyformer params`; parameter files and JSON.
//   - security.go: CheckSecurity / CheckParametersSecurity compare log2(QP)
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
//   - envelope.go: the versioned container of every file (magic, version,
//     FileKind, fingerprint, label, length, payload, SHA-256), with typed
//     errors (ErrBadMagic, ErrUnsupportedVersion, ErrWrongKind,
//     ErrTruncated, ErrChecksum, ErrTooLarge, ErrMalformed, ErrTrailingData)
//     and capped allocations.
//   - keys.go (SecretKey, EvaluationKeys, KeySpec), keygen.go
//     (GenerateKeys), keys_levels.go: each relinearization and rotation key
//     at its own level (KeySpec.Levels) with its random half derived from a
//     per-key seed; a key below a ciphertext's level is refused
//     (ErrKeyLevel), never used (Lattigo v5.0.7 would return garbage).
//   - keys_shape.go, keys_codec.go, keys_file.go, keys_verify.go: the key
//     files. Evaluation-key files are format version 2 (levels, seeds;
//     version 1 still loads); one walk of the payload (walkEvaluationKeys)
//     serves ReadEvaluationKeys, which builds the keys, and
//     VerifyEvaluationKeysStream, which checks an upload in O(N) memory.
//     SecretKey files are written with mode 0600 and refused when
//     group/world accessible. Key and ciphertext files (ciphertext*.go) use
//     our own coefficient format, decoded into Lattigo objects of the shape
//     the parameters dictate, so corrupted or hostile files give errors and
//     never unbounded allocations or panics.
//   - bootstrap.go: GenerateBootstrappingKeys applies the fix for the
//     Lattigo v5.0.7 secret-key leak in the dense-to-sparse key before any
//     key leaves the function; Bootstrapper implements
//     CiphertextBootstrapper (Lattigo's he.Bootstrapper[rlwe.Ciphertext]
//     method set) with a working ShallowCopy.
//   - client.go: encoder, encryptor and decryptor for the key owner.
//
// Evaluation (evaluator*.go, trace*.go, lintrans*.go, poly*.go,
// parallel*.go): the traced evaluator that records every operation (kind,
// levels, scale, key switches, wall time), linear transformations,
// polynomial evaluation of polyapprox polynomials, inverse and inverse
// square root, and parallel evaluation on evaluator copies. NewEvaluator
// takes the Parameters and EvaluationKeys, WithBootstrapper a
// CiphertextBootstrapper. opbench.go is the primitive-op benchmark behind
// `polyformer bench ops`.
package he

// Package pipeline is private inference end to end, once, for every caller:
// the CLI (`polyformer compile`, `keygen`, `infer`, `bench layers`,
// `client`, `demo`) and the benchmarks call it.
//
// The stages and who needs what:
//
//   - LoadForCompile (foldable norms folded, compiler.FoldNorms) and
//     compiler.CompileFor (with the preset policy; ResolvePreset checks a
//     named preset first) turn a checkpoint into a circuit; DryRun reports
//     it before any key exists. The model's weights are needed here only.
//   - KeyDir names the key files and generates or loads them (client side:
//     the secret key stays there).
//   - EncodeMNIST, EncodeImages, EncodeText, EncodeBytes and ReadInputFile
//     turn inputs into the circuit's slot vectors (Inputs); they need only
//     the circuit's layout, so a client encodes with the weightless
//     skeleton it verified.
//   - Run (and InferFile, from a circuit file and a key directory)
//     encrypts, evaluates, decrypts and compares in one process; RunRemote
//     runs the same protocol against a server through service/client, with
//     the same encoders and key directories. Result compares decrypted
//     logits with the plaintext references: predictions, agreement, errors
//     and the output check.
//
// Layering: pipeline sits above service/client, which (like the server)
// imports no model package; the server needs only the circuit and the
// evaluation keys (service/server, he/circuit) and never this package,
// whose functions that hold a secret key (KeyDir, GenerateKeys, Run,
// InferFile, RunRemote, ApproxDemo) are the client's.
package pipeline

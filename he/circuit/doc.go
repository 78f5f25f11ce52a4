// Package circuit is the back end of the compiler: the CKKS circuit of a
// polyformer model as an op graph over packed ciphertexts (the Circuit,
// built by package compiler, which lowers the model), a level and scale
// plan for one parameter set with bootstrap placement and the exact
// Galois-element set (Plan), a float64 simulator that executes the same op
// graph on the same packing with the same polynomials (Simulate, the twin
// of the executor), the executor that evaluates it with the traced
// he.Evaluator (Executor), the dry-run report (NewReport), the circuit
// file (WriteCircuitFile, LoadCircuitFile), the client's checks
// (VerifyCircuit), the input encoders and the result decoder (EncodeImages,
// EncodeBytes, DecodeLogits: a client needs no model package) and the
// bootstrap error model (BootstrapModel). It does not import the model.
//
// What each op kind consumes (levels, key switches, inputs) is one table,
// opTable (see OpInfo); the executor and the simulator define what each
// kind computes.
//
// # Packing
//
// A ciphertext holds B inputs (images or sequences) of T tokens (T a power
// of two) with D channels per token (D a power of two >= every width the
// model uses: model width, FFN hidden width, patch pixels, padded heads).
// Slots are token-major:
//
//	slot(t, b, c) = (t*B + b)*D + c        t < T, b < B, c < D
//
// so the T*B*D slots of one "virtual ciphertext" are filled exactly, and a
// rotation by r*B*D slots shifts every input's tokens cyclically by r at
// once: the diagonals of attention need no masking of wrapped tokens. A
// parameter set with more slots holds the same layout replicated (the
// client encodes copies), so a circuit is independent of the ring degree.
//
// Heads occupy dhp = nextpow2(Width/Heads) channels each (channels
// h*dhp .. h*dhp+dh-1 hold head h), so a sum over a head is a log2(dhp)
// rotate-and-add butterfly that leaves the head's sum in its first slot.
//
// # Op graph
//
// Ops are in topological order; op i's output is value i. Every op lives in
// one ciphertext; the executor runs the program once per input ciphertext
// (in parallel) and independent ops of one program in parallel. Linear
// layers are BSGS block-diagonal transforms (one D×D block per token row,
// shared or per token) evaluated with hoisted rotations; ops of the same
// Group on the same input share one key-switching decomposition.
//
// # Using the package
//
//	c, p, err := compiler.CompileFor(m, preset, compiler.Options{}) // package compiler: Compile + Plan ("" = smallest preset that fits)
//	rep, err := circuit.NewReport(c, p)                               // dry run: rep.WriteTable, rep.WriteJSON
//	err = circuit.WriteCircuitFile(path, c, false)                    // the server's artifact
//	c, p, err = circuit.LoadCircuitFile(path)                         // the circuit and the parameters it carries
//	budget, err := circuit.VerifyCircuit(c, p, circuit.ClientPolicy{}) // client: security, key spec, key budget
//	sk, evk, err := he.GenerateKeys(p, c.Planned.Keys.KeySpec())       // exactly the keys the circuit uses
//	vecs, err := c.EncodeImages(pixels, n, 28, 28)                     // or c.EncodeBytes(ids, n, seqLen)
//	cts, err := circuit.EncryptInputs(client, c, vecs)
//	x, err := circuit.NewExecutor(c, p, evk, circuit.ExecOptions{Trace: tr})
//	outs, err := x.Run(cts)                                            // server side
//	dec, err := circuit.DecryptOutputs(client, c, outs)
//	logits, err := c.DecodeLogits(dec, n)
//	rep, dec, err = circuit.Bench(c, p, evk, client, vecs, opts)     // per-layer breakdown vs the simulator
package circuit

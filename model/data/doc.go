// Package data provides small, robust training datasets for polyformer:
// MNIST images parsed from IDX files (gzip-compressed or plain) found in the
// Go module cache, and byte corpora (the Go standard library source, or any
// text file) with deterministic train/validation splits and batch samplers
// driven by a caller-provided math/rand/v2 generator.
//
// Every loader validates its input and returns an error naming the file and
// the problem; no function in this package panics on corrupted input.
package data

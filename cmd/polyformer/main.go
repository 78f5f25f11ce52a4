// Command polyformer trains HE-friendly transformers, compiles them into CKKS
// circuits, and runs and measures encrypted inference.
package main

import (
	"fmt"
	"os"

	"github.com/polyformer/polyformer/internal/memlimit"
)

func main() {
	// A soft memory limit from the machine's memory (unless GOMEMLIMIT is
	// set): keys and ciphertexts are large and the default GC lets the heap
	// grow to twice the live data.
	memlimit.SetDefault()
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "polyformer:", err)
		os.Exit(1)
	}
}

// Command polyformer trains HE-friendly transformers, compiles them into CKKS
// circuits, and runs and measures encrypted inference.
package main

import (
	"fmt"
	"os"

	"github.com/polyformer/polyformer/internal/memlimit"
)

// heCommands hold keys and ciphertexts: they run with the tighter GC target
// of memlimit.SetHEGC (peak RSS about a third lower at the same speed).
var heCommands = map[string]bool{"demo": true, "infer": true, "bench": true, "serve": true, "client": true, "keygen": true}

func main() {
	// A soft memory limit from the machine's memory (unless GOMEMLIMIT is
	// set): keys and ciphertexts are large and the default GC lets the heap
	// grow to twice the live data.
	memlimit.SetDefault()
	if len(os.Args) > 1 && heCommands[os.Args[1]] {
		memlimit.SetHEGC()
	}
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "polyformer:", err)
		os.Exit(1)
	}
}

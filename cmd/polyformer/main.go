// Command polyformer trains HE-friendly transformers, compiles them into CKKS
// circuits, and runs and measures encrypted inference.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCommand().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "polyformer:", err)
		os.Exit(1)
	}
}

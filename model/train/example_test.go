package train_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/polyformer/polyformer/model"
	"github.com/polyformer/polyformer/model/data"
	"github.com/polyformer/polyformer/model/dataset"
	"github.com/polyformer/polyformer/model/train"
)

// Train a tiny byte-level language model with the HE-friendly default
// recipe on a repetitive text, calibrate its polynomial forms and compare
// poly mode (the arithmetic the encrypted circuit performs) with the exact
// model. `polyformer train --task text` does the same on Go source.
func Example() {
	cfg, err := model.DefaultConfig(model.TaskText)
	if err != nil {
		panic(err)
	}
	cfg.Width, cfg.Depth, cfg.Heads, cfg.Hidden, cfg.Context = 16, 1, 2, 32, 16
	text := strings.Repeat("func add(a, b int) int { return a + b }\n", 40)
	corpus := &data.Corpus{Name: "example", Train: []byte(text), Valid: []byte(text[:400])}
	ds, err := dataset.NewText(corpus, cfg)
	if err != nil {
		panic(err)
	}
	dir, err := os.MkdirTemp("", "polyformer-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	opts := train.DefaultOptions()
	opts.OutDir, opts.Dataset = dir, ds
	opts.Steps, opts.BatchSize, opts.Warmup, opts.LR = 60, 16, 5, 1e-2
	opts.EvalEvery, opts.FinalEvalLimit, opts.CalibBatches = 0, 64, 2
	res, err := train.Run(context.Background(), cfg, opts, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("learned (bits per byte < 2):", res.Exact.BitsPerByte < 2)
	fmt.Println("poly mode evaluated:", res.Poly != nil)
	if res.Poly != nil {
		d := res.Poly.BitsPerByte - res.Exact.BitsPerByte
		fmt.Println("poly mode within 1% of exact:", d < 0.01*res.Exact.BitsPerByte && d > -0.01*res.Exact.BitsPerByte)
	}
	// Output:
	// learned (bits per byte < 2): true
	// poly mode evaluated: true
	// poly mode within 1% of exact: true
}

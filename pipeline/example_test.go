package pipeline_test

import (
	"fmt"
	"log"

	"github.com/polyformer/polyformer/compiler"
	"github.com/polyformer/polyformer/he"
	"github.com/polyformer/polyformer/pipeline"
)

// The whole pipeline in one process on the toolkit's demo checkpoint, at
// an insecure test preset (fast; real use: CompileOptions{} picks the
// smallest secure preset): load → compile → keygen → encrypt → evaluate →
// decrypt → compare with the float64 simulation of the same circuit.
func Example() {
	m, err := pipeline.LoadForCompile("../cmd/polyformer/demodata")
	if err != nil {
		log.Fatal(err)
	}
	c, p, err := compiler.CompileFor(m, he.PresetTestN13, compiler.Options{Batch: 2, AllowInsecure: true})
	if err != nil {
		log.Fatal(err)
	}
	_, test, err := pipeline.LoadMNIST("")
	if err != nil {
		log.Fatal(err)
	}
	in, err := pipeline.EncodeMNIST(c, test, 0, 2) // client side: the circuit's layout only
	if err != nil {
		log.Fatal(err)
	}
	sk, evk, err := pipeline.GenerateKeys(c, p, pipeline.RunOptions{}) // exactly the keys the circuit needs
	if err != nil {
		log.Fatal(err)
	}
	res, err := pipeline.Run(c, p, evk, sk, in, pipeline.RunOptions{Workers: 2, Model: m})
	if err != nil {
		log.Fatal(err)
	}
	if err := res.Check(); err != nil {
		log.Fatal(err)
	}
	agree, total := res.Agreement()
	polyAgree, _ := res.PolyAgreement()
	fmt.Printf("encrypted = plaintext prediction on %d of %d; = poly-mode model on %d; labels %v\n", agree, total, polyAgree, in.Labels)
	fmt.Println("logit error below 1e-2:", res.MaxError() < 1e-2, res.MaxPolyError() < 1e-2)
	// Output:
	// encrypted = plaintext prediction on 2 of 2; = poly-mode model on 2; labels [7 2]
	// logit error below 1e-2: true true
}

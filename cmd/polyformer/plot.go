package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/polyformer/polyformer/he/circuit"
)

// plotLayers draws the measured time per layer as a bar chart.
func plotLayers(rep *circuit.Report, path string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("encrypted time per layer (%s, %d inputs per ciphertext)", rep.Preset, rep.InputsPerCiphertext)
	p.Y.Label.Text = "seconds (summed over ciphertexts)"
	vals := make(plotter.Values, len(rep.Layers))
	names := make([]string, len(rep.Layers))
	for i, l := range rep.Layers {
		vals[i] = float64(l.TimeNs) / 1e9
		names[i] = l.Layer
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(12))
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p.Add(bars)
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign = -1
	width := vg.Length(120+18*len(names)) * vg.Millimeter / 4
	if width < 12*vg.Centimeter {
		width = 12 * vg.Centimeter
	}
	if err := p.Save(width, 12*vg.Centimeter, path); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}

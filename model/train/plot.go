package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// PlotMetrics reads a metrics JSON-lines file and writes a PNG with the
// training loss and the evaluation loss against the step.
func PlotMetrics(metricsPath, pngPath string) error {
	f, err := os.Open(metricsPath)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	defer f.Close()
	var train, eval plotter.XYs
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var m metric
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return fmt.Errorf("plot: %s: %w", metricsPath, err)
		}
		switch m.Kind {
		case "train":
			train = append(train, plotter.XY{X: float64(m.Step), Y: m.Loss})
		case "eval", "final":
			eval = append(eval, plotter.XY{X: float64(m.Step), Y: m.Loss})
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	p := plot.New()
	p.Title.Text = "loss"
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats; train includes the entropy penalty)"
	p.Legend.Top = true
	if len(train) > 0 {
		l, err := plotter.NewLine(train)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		p.Add(l)
		p.Legend.Add("train", l)
	}
	if len(eval) > 0 {
		s, err := plotter.NewScatter(eval)
		if err != nil {
			return fmt.Errorf("plot: %w", err)
		}
		p.Add(s)
		p.Legend.Add("eval", s)
	}
	if err := p.Save(8*vg.Inch, 5*vg.Inch, pngPath); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

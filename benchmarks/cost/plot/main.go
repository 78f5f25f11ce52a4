// Command plot draws the per-layer cost breakdown of a compiled circuit from
// its dry-run report (`polyformer compile --json`): key switches per layer
// (rotations and relinearizations stacked, bootstraps marked in the label)
// and the evaluation-key bytes by key, at the level each key is generated.
//
//	go run ./cmd/polyformer compile CHECKPOINT --out C --json > report.json
//	go run ./benchmarks/cost/plot -o docs/cost-demo.png report.json
//
// It reads the report's JSON fields only, so it needs no keys and no
// encryption.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// report holds the fields of the dry-run report this command draws.
type report struct {
	Preset      string `json:"preset"`
	Depth       int    `json:"depth"`
	KeySwitches int    `json:"key_switches"`
	Bootstraps  int    `json:"bootstraps"`
	Layers      []struct {
		Layer       string `json:"layer"`
		Rotations   int    `json:"rotations"`
		Relins      int    `json:"relinearizations"`
		KeySwitches int    `json:"key_switches"`
		Bootstraps  int    `json:"bootstraps"`
		NewKeys     int    `json:"new_rotation_keys"`
	} `json:"layers"`
	KeyBytes struct {
		Total uint64 `json:"total"`
		Boot  uint64 `json:"bootstrapping"`
		Keys  []struct {
			Key   string `json:"key"`
			Level int    `json:"level"`
			File  uint64 `json:"file_bytes"`
		} `json:"keys"`
	} `json:"key_bytes"`
}

const maxReportBytes = 64 << 20

func main() {
	out := flag.String("o", "cost.png", "PNG file to write")
	title := flag.String("title", "", "title (default: the report's preset and totals)")
	flag.Parse()
	if err := run(flag.Args(), *out, *title); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

func run(args []string, out, title string) error {
	if len(args) != 1 {
		return errors.New("usage: plot [-o PNG] REPORT.json")
	}
	st, err := os.Stat(args[0])
	if err != nil {
		return err
	}
	if st.Size() > maxReportBytes {
		return fmt.Errorf("%s: %d bytes, more than a report can be (%d)", args[0], st.Size(), maxReportBytes)
	}
	b, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if len(r.Layers) == 0 {
		return fmt.Errorf("%s: no layers (is it the output of `polyformer compile --json`?)", args[0])
	}
	if title == "" {
		title = fmt.Sprintf("%s: %d key switches, %d bootstraps, depth %d, %.2f GB of keys",
			r.Preset, r.KeySwitches, r.Bootstraps, r.Depth, float64(r.KeyBytes.Total)/1e9)
	}
	ks, err := keySwitchPlot(&r, title)
	if err != nil {
		return err
	}
	kb, err := keyBytesPlot(&r)
	if err != nil {
		return err
	}
	n := len(r.Layers)
	if len(r.KeyBytes.Keys) > n {
		n = len(r.KeyBytes.Keys)
	}
	w := vg.Length(8+0.55*float64(n)) * vg.Centimeter
	if w < 16*vg.Centimeter {
		w = 16 * vg.Centimeter
	}
	h := 22 * vg.Centimeter
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{{ks}, {kb}}, tiles, dc)
	ks.Draw(canvases[0][0])
	kb.Draw(canvases[1][0])
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// keySwitchPlot stacks each layer's rotations and relinearizations; a
// layer with bootstraps is labelled "name [B×n]".
func keySwitchPlot(r *report, title string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = "key switches per ciphertext"
	rot := make(plotter.Values, len(r.Layers))
	rel := make(plotter.Values, len(r.Layers))
	names := make([]string, len(r.Layers))
	for i, l := range r.Layers {
		rot[i], rel[i] = float64(l.Rotations), float64(l.Relins)
		names[i] = l.Layer
		if l.Bootstraps > 0 {
			names[i] += fmt.Sprintf(" [B×%d]", l.Bootstraps)
		}
	}
	w := vg.Points(9)
	br, err := plotter.NewBarChart(rot, w)
	if err != nil {
		return nil, err
	}
	br.Color = color.RGBA{R: 70, G: 110, B: 190, A: 255}
	bl, err := plotter.NewBarChart(rel, w)
	if err != nil {
		return nil, err
	}
	bl.Color = color.RGBA{R: 220, G: 120, B: 50, A: 255}
	bl.StackOn(br)
	p.Add(br, bl)
	p.Legend.Add("rotations", br)
	p.Legend.Add("relinearizations", bl)
	p.Legend.Top = true
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, nil
}

// keyBytesPlot draws each evaluation key's bytes on disk, labelled with the
// level it is generated at, and the bootstrapping keys as one bar.
func keyBytesPlot(r *report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "evaluation-key bytes on disk, per key (at its level)"
	p.Y.Label.Text = "MB"
	var vals plotter.Values
	var names []string
	for _, k := range r.KeyBytes.Keys {
		vals = append(vals, float64(k.File)/1e6)
		names = append(names, fmt.Sprintf("%s @%d", strings.TrimPrefix(k.Key, "rotation "), k.Level))
	}
	if r.KeyBytes.Boot > 0 {
		vals = append(vals, float64(r.KeyBytes.Boot)/1e6)
		names = append(names, "bootstrapping")
	}
	if len(vals) == 0 {
		return nil, errors.New("the report lists no keys")
	}
	b, err := plotter.NewBarChart(vals, vg.Points(9))
	if err != nil {
		return nil, err
	}
	b.Color = color.RGBA{R: 90, G: 160, B: 90, A: 255}
	p.Add(b)
	p.NominalX(names...)
	p.X.Label.Text = "key (rotation amount or relinearization) @ level"
	p.X.Tick.Label.Rotation = 1.2
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	return p, nil
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/rsup/rsup/monitor"
)

// plotCommand is "rsup plot": a --record history drawn as an SVG.
func plotCommand() *cli.Command {
	return &cli.Command{
		Name:      "plot",
		Usage:     "draw a --record history as an SVG: one panel per resource, with thresholds and warning and critical episodes",
		ArgsUsage: "FILE",
		Description: "Each resource in the record gets a panel of its utilization over time (seconds from the first sample), " +
			"with dashed lines at its warning and critical thresholds and its warning and critical episodes, as recorded, " +
			"shaded. A record holds no thresholds: the lines are drawn at rsup's defaults unless --warn and --crit give " +
			"the ones the job ran with.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the SVG to `OUT` (default: FILE with .svg appended)"},
			&cli.StringFlag{Name: "job", Usage: "plot the job `NAME` (needed when the record holds several jobs)"},
			&cli.StringSliceFlag{Name: "warn", Usage: "warning threshold `RESOURCE=FRACTION` to draw; repeatable"},
			&cli.StringSliceFlag{Name: "crit", Usage: "critical threshold `RESOURCE=FRACTION` to draw; repeatable"},
		},
		Action: runPlot,
	}
}

func runPlot(c *cli.Context) error {
	args, err := trailingFlags(c)
	if err != nil {
		return usageError(fmt.Errorf("%w (see 'rsup plot --help')", err))
	}
	if len(args) != 1 {
		return usageError(errors.New("plot: want exactly one FILE (a --record file)"))
	}
	th, err := thresholdsFromFlags(c, nil)
	if err != nil {
		return usageError(err)
	}
	in := args[0]
	out := c.String("output")
	if out == "" {
		out = in + ".svg"
	}
	rec, err := readRecord(in)
	if err != nil {
		return err
	}
	job, err := rec.selectJob(c.String("job"))
	if err != nil {
		return usageError(err)
	}
	series := recordSeries(rec.jobEntries(job))
	thr := func(r monitor.Resource) monitor.Thresholds {
		if t, ok := th[r]; ok {
			return t
		}
		return monitor.DefaultThresholds(r)
	}
	for _, s := range series {
		if !s.statesFit(thr(s.resource)) {
			t := thr(s.resource)
			fmt.Fprintf(c.App.ErrWriter, "note: %s: the recorded states do not fit warning %g and critical %g; the job ran with other thresholds (give them with --warn and --crit)\n",
				s.resource, t.Warning, t.Critical)
		}
	}
	var b bytes.Buffer
	if err := renderPlot(&b, job, series, thr); err != nil {
		return fmt.Errorf("plot %s: %w", in, err)
	}
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	names := make([]string, len(series))
	for i, s := range series {
		names[i] = s.resource.String()
	}
	fmt.Fprintf(c.App.Writer, "%s: job %s, %s\n", out, job, strings.Join(names, ", "))
	return nil
}

// trailingFlags lets flags follow the arguments, as in "rsup plot FILE -o
// OUT": urfave/cli stops parsing flags at the first argument, so those
// after it are set here. It returns the arguments.
func trailingFlags(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var flag cli.Flag
		for _, f := range c.Command.Flags {
			if slices.Contains(f.Names(), name) {
				flag = f
			}
		}
		if flag == nil {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		if _, ok := flag.(*cli.BoolFlag); ok && !hasValue {
			value, hasValue = "true", true
		}
		if !hasValue {
			if i+1 == len(args) {
				return nil, fmt.Errorf("flag needs an argument: -%s", name)
			}
			i++
			value = args[i]
		}
		if err := c.Set(flag.Names()[0], value); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag -%s: %w", value, name, err)
		}
	}
	return pos, nil
}

// series is one resource's samples, in time order.
type series struct {
	resource monitor.Resource
	times    []time.Time
	values   []float64
	states   []monitor.State
}

// recordSeries splits a job's lines (in time order) by resource, in the
// order of monitor.Resources.
func recordSeries(entries []recordEntry) []*series {
	by := map[monitor.Resource]*series{}
	for _, e := range entries {
		s := by[e.resource]
		if s == nil {
			s = &series{resource: e.resource}
			by[e.resource] = s
		}
		s.times = append(s.times, e.time)
		s.values = append(s.values, e.utilization)
		s.states = append(s.states, e.state)
	}
	var out []*series
	for _, r := range monitor.Resources() {
		if s := by[r]; s != nil {
			out = append(out, s)
		}
	}
	return out
}

// statesFit says whether the recorded states can come from t. A warning
// below t.Warning is allowed: the run may have had a clear band.
func (s *series) statesFit(t monitor.Thresholds) bool {
	for i, v := range s.values {
		switch st := s.states[i]; {
		case st == monitor.Critical && v < t.Critical,
			st == monitor.Warning && v >= t.Critical,
			st == monitor.Normal && v >= t.Warning:
			return false
		}
	}
	return true
}

// episode is a stretch of samples in one state.
type episode struct {
	from, to float64 // seconds
	state    monitor.State
}

// episodes returns the warning and critical stretches of s, each sample
// standing for the time from halfway to the sample before to halfway to
// the one after.
func (s *series) episodes(t0 time.Time) []episode {
	sec := func(i int) float64 { return s.times[i].Sub(t0).Seconds() }
	var out []episode
	for i := 0; i < len(s.states); {
		j := i
		for j+1 < len(s.states) && s.states[j+1] == s.states[i] {
			j++
		}
		if s.states[i] != monitor.Normal {
			from, to := sec(i), sec(j)
			if i > 0 {
				from = (sec(i-1) + sec(i)) / 2
			}
			if j+1 < len(s.states) {
				to = (sec(j) + sec(j+1)) / 2
			}
			out = append(out, episode{from: from, to: to, state: s.states[i]})
		}
		i = j + 1
	}
	return out
}

var (
	plotLineColor     = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	plotWarnColor     = color.RGBA{R: 230, G: 140, B: 0, A: 255}
	plotCritColor     = color.RGBA{R: 200, G: 30, B: 30, A: 255}
	plotWarnShade     = color.NRGBA{R: 255, G: 190, B: 50, A: 80}
	plotCritShade     = color.NRGBA{R: 230, G: 50, B: 50, A: 80}
	plotPanelWidth    = 8 * vg.Inch
	plotPanelHeight   = 2.4 * vg.Inch
	plotHeaderHeight  = 0.7 * vg.Inch
	plotThresholdDash = []vg.Length{vg.Points(5), vg.Points(3)}
)

// renderPlot draws a header (the job and a legend) and one panel per
// series, stacked on a shared time axis, and writes the SVG to w.
func renderPlot(w io.Writer, job string, ss []*series, thr func(monitor.Resource) monitor.Thresholds) error {
	c, err := drawRecordPlot(func(w, h vg.Length) vg.CanvasWriterTo { return vgsvg.New(w, h) }, job, ss, thr)
	if err != nil {
		return err
	}
	_, err = c.WriteTo(w)
	return err
}

// drawRecordPlot draws the plot on a canvas that newCanvas makes.
func drawRecordPlot(newCanvas func(w, h vg.Length) vg.CanvasWriterTo, job string, ss []*series, thr func(monitor.Resource) monitor.Thresholds) (vg.CanvasWriterTo, error) {
	if len(ss) == 0 {
		return nil, errors.New("no samples to plot")
	}
	t0, t1 := ss[0].times[0], ss[0].times[0]
	samples := 0
	for _, s := range ss {
		if s.times[0].Before(t0) {
			t0 = s.times[0]
		}
		if last := s.times[len(s.times)-1]; last.After(t1) {
			t1 = last
		}
		samples = max(samples, len(s.times))
	}
	span := t1.Sub(t0).Seconds()
	if span <= 0 {
		span = 1 // one sample: an axis needs a width
	}
	plots := make([][]*plot.Plot, len(ss))
	for i, s := range ss {
		p, err := resourcePanel(s, t0, span, thr(s.resource))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.resource, err)
		}
		if i == len(ss)-1 {
			p.X.Label.Text = "seconds since the first sample"
		}
		plots[i] = []*plot.Plot{p}
	}
	height := plotHeaderHeight + plotPanelHeight*vg.Length(len(ss))
	c := newCanvas(plotPanelWidth, height)
	dc := draw.New(c)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: plotPanelWidth, Y: 0}, {X: plotPanelWidth, Y: height}, {X: 0, Y: height}})
	header := draw.Crop(dc, 3*vg.Millimeter, -4*vg.Millimeter, height-plotHeaderHeight, -2*vg.Millimeter)
	if err := drawHeader(header, fmt.Sprintf("job %s", job),
		fmt.Sprintf("%d samples from %s, over %v", samples, t0.Format(time.RFC3339), t1.Sub(t0).Round(time.Millisecond))); err != nil {
		return nil, err
	}
	tiles := draw.Tiles{Rows: len(ss), Cols: 1, PadY: 3 * vg.Millimeter,
		PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, draw.Crop(dc, 0, 0, 0, -plotHeaderHeight))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	return c, nil
}

// drawHeader writes the title and a second line on the left of c, and the
// legend on the right.
func drawHeader(c draw.Canvas, title, sub string) error {
	sty := text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, 13), XAlign: draw.XLeft, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
	c.FillText(sty, vg.Point{X: c.Min.X, Y: c.Max.Y}, title)
	sty.Font = font.From(plot.DefaultFont, 10)
	c.FillText(sty, vg.Point{X: c.Min.X, Y: c.Max.Y - vg.Points(18)}, sub)

	l := plot.NewLegend()
	l.Top, l.Left = true, false
	util, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
	if err != nil {
		return err
	}
	util.Color, util.Width = plotLineColor, vg.Points(1.5)
	l.Add("utilization", util)
	for _, e := range []struct {
		name  string
		col   color.Color
		shade color.Color
	}{{"warning threshold and episodes", plotWarnColor, plotWarnShade}, {"critical threshold and episodes", plotCritColor, plotCritShade}} {
		th, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}})
		if err != nil {
			return err
		}
		th.Color, th.Width, th.Dashes = e.col, vg.Points(1), plotThresholdDash
		poly, err := shadePolygon(0, 0, 0, e.shade)
		if err != nil {
			return err
		}
		l.Add(e.name, poly, th)
	}
	l.Draw(c)
	return nil
}

// resourcePanel draws one resource: episodes shaded, thresholds dashed,
// utilization as a line.
func resourcePanel(s *series, t0 time.Time, span float64, t monitor.Thresholds) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s (warning %g, critical %g)", s.resource, t.Warning, t.Critical)
	p.Y.Label.Text = "utilization"
	switch s.resource {
	case monitor.CPUPressure, monitor.MemoryPressure, monitor.IOPressure:
		p.Y.Label.Text = "share stalled"
	}
	p.Add(plotter.NewGrid())
	peak := 1.0
	pts := make(plotter.XYs, len(s.values))
	for i, v := range s.values {
		pts[i] = plotter.XY{X: s.times[i].Sub(t0).Seconds(), Y: v}
		peak = max(peak, v)
	}
	for _, ep := range s.episodes(t0) {
		shade := plotWarnShade
		if ep.state == monitor.Critical {
			shade = plotCritShade
		}
		poly, err := shadePolygon(ep.from, ep.to, peak, shade)
		if err != nil {
			return nil, err
		}
		p.Add(poly)
	}
	for _, l := range []struct {
		y   float64
		col color.Color
	}{{t.Warning, plotWarnColor}, {t.Critical, plotCritColor}} {
		line, err := plotter.NewLine(plotter.XYs{{X: 0, Y: l.y}, {X: span, Y: l.y}})
		if err != nil {
			return nil, err
		}
		line.Color, line.Width, line.Dashes = l.col, vg.Points(1), plotThresholdDash
		p.Add(line)
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return nil, err
	}
	line.Color, line.Width = plotLineColor, vg.Points(1.5)
	p.Add(line)
	p.X.Min, p.X.Max = 0, span
	p.Y.Min, p.Y.Max = 0, peak
	return p, nil
}

func shadePolygon(from, to, top float64, col color.Color) (*plotter.Polygon, error) {
	poly, err := plotter.NewPolygon(plotter.XYs{{X: from, Y: 0}, {X: to, Y: 0}, {X: to, Y: top}, {X: from, Y: top}})
	if err != nil {
		return nil, err
	}
	poly.Color = col
	poly.LineStyle.Width = 0
	return poly, nil
}

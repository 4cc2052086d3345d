package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsup/rsup/monitor"
)

// svgTexts checks that b is XML with an <svg> root and returns the text
// of its <text> elements.
func svgTexts(t *testing.T, b []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	var texts []string
	root := ""
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not XML: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if root != "svg" {
		t.Fatalf("root element <%s>, want <svg>", root)
	}
	return texts
}

func TestPlot(t *testing.T) {
	lines := recordLines("build-1")
	// A pressure resource for part of the run.
	for i, l := range recordLines("build-1")[:10] {
		if i%2 == 0 {
			lines = append(lines, recordLine{Time: l.Time, Job: l.Job, Resource: "memory_pressure", State: "warning", Utilization: 0.15})
		}
	}
	rec := writeRecord(t, lines)
	code, out, errOut := runTestApp(t, "plot", rec, "--warn", "memory=0.8", "--crit", "memory=0.95")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := rec + ".svg: job build-1, cpu, memory, memory_pressure\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	if errOut != "" {
		t.Errorf("stderr: %q", errOut)
	}
	b, err := os.ReadFile(rec + ".svg")
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 10000 {
		t.Errorf("the SVG has only %d bytes", len(b))
	}
	texts := strings.Join(svgTexts(t, b), "\n")
	for _, want := range []string{
		"cpu (warning 0.7, critical 0.9)",
		"memory (warning 0.8, critical 0.95)",
		"memory_pressure (warning 0.1, critical 0.4)",
		"job build-1",
		"19 samples from 2026-03-01T12:00:00Z, over 18s",
		"seconds since the first sample",
		"critical threshold and episodes",
		"utilization",
	} {
		if !strings.Contains(texts, want) {
			t.Errorf("no text %q in the SVG; texts:\n%s", want, texts)
		}
	}
	// Episodes are shaded: the memory ramp has warning and critical ones.
	if n := strings.Count(string(b), "fill-opacity"); n < 3 {
		t.Errorf("%d translucent fills, want the shaded episodes", n)
	}

	// -o, and a warning about thresholds the states do not fit.
	outPath := filepath.Join(t.TempDir(), "out.svg")
	code, _, errOut = runTestApp(t, "plot", "-o", outPath, "--warn", "memory=0.7", rec)
	if code != 0 {
		t.Fatalf("-o: exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "note: memory: the recorded states do not fit warning 0.7 and critical 0.95") {
		t.Errorf("no note on thresholds that do not fit: %q", errOut)
	}
	if b, err := os.ReadFile(outPath); err != nil || len(b) < 10000 {
		t.Errorf("-o %s: %d bytes, %v", outPath, len(b), err)
	}
}

func TestPlotErrors(t *testing.T) {
	good := writeRecord(t, recordLines("a"), recordLines("b"))
	bad := writeFile(t, "bad.jsonl", encodeLines(t, recordLines("a")[:2])+`{"time":"2026-03-01T12:00:01Z","job":"a","resource":"memory","state":"normal","utilization":"high"}`+"\n")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"plot", bad}, 125, bad + ":3: not a record line"},
		{[]string{"plot"}, 125, "want exactly one FILE"},
		{[]string{"plot", good}, 125, "choose one with --job"},
		{[]string{"plot", "--job", "c", good}, 125, "--job c: no such job"},
		{[]string{"plot", "--warn", "memory=2", good}, 125, "thresholds of memory"},
		{[]string{"plot", good, "--job"}, 125, "flag needs an argument: -job"},
		{[]string{"plot", good, "--color", "red"}, 125, "flag provided but not defined: -color"},
		{[]string{"plot", "--job", "a", good, "extra"}, 125, "want exactly one FILE"},
		{[]string{"plot", filepath.Join(t.TempDir(), "missing")}, 125, "no such file"},
		{[]string{"plot", "-o", filepath.Join(t.TempDir(), "no", "dir.svg"), "--job", "a", good}, 125, "no such file"},
	} {
		code, _, errOut := runTestApp(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	if _, err := os.Stat(bad + ".svg"); err == nil {
		t.Error("an SVG was written for a bad record")
	}
}

// Episodes: each sample stands for the time halfway to its neighbours.
func TestSeriesEpisodes(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &series{resource: monitor.Memory}
	for i, st := range []monitor.State{monitor.Warning, monitor.Normal, monitor.Warning, monitor.Critical, monitor.Critical, monitor.Normal, monitor.Critical} {
		s.times = append(s.times, t0.Add(time.Duration(i)*time.Second))
		s.states = append(s.states, st)
		s.values = append(s.values, 0.5)
	}
	got := s.episodes(t0)
	want := []episode{{0, 0.5, monitor.Warning}, {1.5, 2.5, monitor.Warning}, {2.5, 4.5, monitor.Critical}, {5.5, 6, monitor.Critical}}
	if len(got) != len(want) {
		t.Fatalf("episodes %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("episodes %v, want %v", got, want)
		}
	}
}

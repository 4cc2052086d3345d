//go:build integration

package integration

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A live run under a policy, recorded with --record, replayed through the
// same policy with rsup policy test: the same rules fire as often, at
// about the same times; rsup plot draws the recording as a valid SVG.
func TestReplayMatchesLiveRun(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.3, critical = 0.6, clear = 0.2 }

[[rule]]
name = "warn"
resource = "memory"
state = "warning"
actions = [ { type = "log", level = "warn" } ]

[[rule]]
name = "crit"
resource = "memory"
state = "critical"
for = "500ms"
actions = [ { type = "kill", signal = "SIGTERM", grace = "2s" } ]
`
	dir := t.TempDir()
	file, rec, rep := filepath.Join(dir, "p.toml"), filepath.Join(dir, "run.jsonl"), filepath.Join(dir, "report.json")
	if err := os.WriteFile(file, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	live := rsup(t, append([]string{"run", "--cgroup-root", root, "--name", "rec", "--policy", file, "--interval", "100ms",
		"--log-format", "json", "--record", rec, "--report", rep, "--"}, helper("policy-job", "alloc:100M:20ms", "hold:10s")...)...)
	if live.code != 143 {
		t.Fatalf("live run exit %d, want 143 (killed by the policy)\n%s", live.code, live.stderr)
	}
	var report struct {
		RuleFirings map[string]int `json:"rule_firings"`
	}
	b, err := os.ReadFile(rep)
	if err != nil || json.Unmarshal(b, &report) != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	liveAt := map[string]time.Time{}
	for _, r := range parseLogRecords(live.stderr) {
		if r.str("msg") == "policy rule fired" {
			liveAt[r.str("rule")] = r.time()
		}
	}
	replay := rsup(t, "policy", "test", "--policy", file, "--replay", rec, "--json")
	if replay.code != 0 {
		t.Fatalf("policy test: exit %d\n%s", replay.code, replay.stderr)
	}
	var got struct {
		Decisions []struct {
			Time   time.Time `json:"time"`
			Rule   string    `json:"rule"`
			Firing int       `json:"firing"`
		} `json:"decisions"`
		Firings map[string]int `json:"firings"`
	}
	if err := json.Unmarshal([]byte(replay.stdout), &got); err != nil {
		t.Fatalf("policy test --json: %v\n%s", err, replay.stdout)
	}
	var diffs []string
	for rule, n := range report.RuleFirings {
		if got.Firings[rule] != n {
			t.Errorf("rule %s fired %d times live, %d times in the replay", rule, n, got.Firings[rule])
		}
	}
	for _, d := range got.Decisions {
		if d.Firing != 1 {
			continue
		}
		at, ok := liveAt[d.Rule]
		if !ok {
			t.Errorf("the replay fired %s, which did not fire live", d.Rule)
			continue
		}
		// The replay sees the samples the live run recorded; firing
		// times agree within a sample interval and the time a sample
		// takes to reach the engine.
		off := d.Time.Sub(at)
		diffs = append(diffs, d.Rule+" "+off.Round(time.Millisecond).String())
		if off < -300*time.Millisecond || off > 300*time.Millisecond {
			t.Errorf("rule %s: replay fired %v from the live firing", d.Rule, off)
		}
	}
	svg := filepath.Join(dir, "run.svg")
	plot := rsup(t, "plot", rec, "-o", svg)
	if plot.code != 0 {
		t.Fatalf("plot: exit %d\n%s", plot.code, plot.stderr)
	}
	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var root2 struct {
		XMLName xml.Name
	}
	if err := xml.Unmarshal(data, &root2); err != nil || root2.XMLName.Local != "svg" {
		t.Fatalf("plot output is not an SVG document: %v (root %q)", err, root2.XMLName.Local)
	}
	if !strings.Contains(string(data), "memory") {
		t.Error("the plot has no memory panel")
	}
	t.Logf("measured: live firings %v, replay firings %v; replay minus live firing time: %s; plot %d bytes of SVG",
		report.RuleFirings, got.Firings, strings.Join(diffs, ", "), len(data))
}

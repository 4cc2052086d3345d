package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/monitor"
)

// testApp has the commands of these files, registered as newApp will.
func testApp(stdout, stderr *bytes.Buffer) *cli.App {
	return &cli.App{
		Name: "rsup",
		Commands: []*cli.Command{
			plotCommand(),
			{Name: "policy", Subcommands: []*cli.Command{policyTestCommand()}},
		},
		OnUsageError:   onUsageError,
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// runTestApp runs rsup with args and returns its exit status, stdout,
// and stderr with the error rsup would print.
func runTestApp(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := testApp(&out, &errOut).Run(append([]string{"rsup"}, args...))
	if err != nil && !silent(err) {
		fmt.Fprintf(&errOut, "rsup: %v\n", err)
	}
	return exitCode(err), out.String(), errOut.String()
}

var recordT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// rampMemory goes up through warning to critical, dips to warning, is
// critical again, and comes down through 0.75 and 0.72 (a clear band of
// 0.7 keeps those at warning) to normal.
var rampMemory = []float64{0.50, 0.60, 0.82, 0.85, 0.88, 0.90, 0.96, 0.97, 0.93, 0.97,
	0.98, 0.99, 0.99, 0.99, 0.85, 0.75, 0.72, 0.60, 0.50}

// recordLines is a record of one job, one sample a second (starting 300ms
// after recordT0), with cpu flat and memory along rampMemory, its states
// classified as rsup's defaults would (no clear band).
func recordLines(job string) []recordLine {
	var out []recordLine
	for i, m := range rampMemory {
		ts := recordT0.Add(300*time.Millisecond + time.Duration(i)*time.Second)
		out = append(out,
			recordLine{Time: ts, Job: job, Resource: "cpu", State: "normal", Utilization: 0.25, Used: 250000, Total: 1000000},
			recordLine{Time: ts, Job: job, Resource: "memory", State: monitor.DefaultThresholds(monitor.Memory).Classify(monitor.Normal, m).String(),
				Utilization: m, Used: uint64(m * 1e9), Available: uint64((1 - m) * 1e9), Total: 1e9})
	}
	return out
}

func writeRecord(t *testing.T, lines ...[]recordLine) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, ls := range lines {
		for _, l := range ls {
			if err := enc.Encode(l); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "run.jsonl")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const testPolicy = `
[thresholds]
memory = { warning = 0.8, critical = 0.95, clear = 0.7 }

[[rule]]
name = "memory-warning"
resource = "memory"
state = "warning"
for = "3s"
cooldown = "5s"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" } ]

[[rule]]
name = "memory-throttle"
resource = "memory"
state = "critical"
actions = [ { type = "throttle", cpu = "25%", until = "clear" } ]

[[rule]]
name = "memory-kill"
resource = "memory"
state = "critical"
for = "4s"
actions = [ { type = "kill", signal = "SIGTERM", grace = "10s" } ]

[[rule]]
name = "oom"
resource = "oom"
actions = [ { type = "log", level = "error" } ]
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyTestReplay(t *testing.T) {
	pol := writeFile(t, "guard.toml", testPolicy)
	rec := writeRecord(t, recordLines("build-1"))
	code, out, errOut := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	want := "policy " + pol + ", job build-1: 19 samples over 18s from 2026-03-01T12:00:00.3Z\n" +
		"+5.000s  rule memory-warning (memory warning, value 0.88 >= 0.80): send SIGUSR1 to main\n" +
		"+6.000s  rule memory-throttle (memory critical, value 0.96 >= 0.95): lower cpu.max to 25000 100000 until clear\n" +
		"+9.000s  rule memory-throttle (memory critical, value 0.97 >= 0.95): lower cpu.max to 25000 100000 until clear (already in force: renewed)\n" +
		"+10.000s  rule memory-warning (memory critical, value 0.97 >= 0.80): send SIGUSR1 to main\n" +
		"+13.000s  rule memory-kill (memory critical, value 0.99 >= 0.95): kill: SIGTERM, cgroup kill after 10s\n" +
		// The record says normal at 0.75; the policy's clear band keeps
		// it at warning.
		"+15.000s  rule memory-warning (memory warning, value 0.85 >= 0.80): send SIGUSR1 to main\n" +
		"+17.000s  rule memory-throttle (memory normal, value 0.60): throttle of cpu.max ends: memory is back to normal\n" +
		"\nfirings:\n" +
		"  memory-warning   3\n" +
		"  memory-throttle  2\n" +
		"  memory-kill      1\n" +
		"  oom              0\n"
	if out != want {
		t.Errorf("output:\n%s\nwant:\n%s", out, want)
	}
	if !strings.Contains(errOut, "rule oom watches oom kills") {
		t.Errorf("no note about the oom rule: %q", errOut)
	}

	// --json: the same decisions.
	code, out, errOut = runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d\n%s", code, errOut)
	}
	var got replayJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if len(got.Decisions) != 7 || got.Job != "build-1" || got.Samples != 19 || got.Firings["memory-warning"] != 3 || got.Firings["oom"] != 0 {
		t.Fatalf("--json: %+v", got)
	}
	d := got.Decisions[4]
	if d.Rule != "memory-kill" || d.OffsetSeconds != 13 || d.State != "critical" || d.Firing != 1 || d.Action != "kill: SIGTERM, cgroup kill after 10s" {
		t.Errorf("--json decision %+v", d)
	}
}

// --warn moves the policy's warning threshold: the warning rule fires
// later.
func TestPolicyTestThresholdFlags(t *testing.T) {
	pol := writeFile(t, "guard.toml", testPolicy)
	rec := writeRecord(t, recordLines("build-1"))
	code, out, errOut := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--warn", "memory=0.86", "--clear", "memory=0")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(out, "+7.000s  rule memory-warning (memory critical, value 0.96 >= 0.86)") ||
		!strings.Contains(out, "+12.000s  rule memory-warning") || strings.Contains(out, "+5.000s  rule memory-warning") {
		t.Errorf("with --warn memory=0.86:\n%s", out)
	}
	if code, _, _ := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--warn", "memory=0.99"); code != 125 {
		t.Errorf("warning above critical: exit %d, want 125", code)
	}
}

func TestPolicyTestJobSelection(t *testing.T) {
	pol := writeFile(t, "guard.toml", testPolicy)
	quiet := recordLines("quiet")
	for i := range quiet {
		quiet[i].Utilization, quiet[i].State = 0.1, "normal"
	}
	rec := writeRecord(t, recordLines("build-1"), quiet)

	code, _, errOut := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec)
	if code != 125 || !strings.Contains(errOut, "2 jobs (build-1, quiet): choose one with --job") {
		t.Errorf("two jobs, none chosen: exit %d, %q", code, errOut)
	}
	code, out, errOut := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--job", "quiet")
	if code != 0 || !strings.Contains(out, "job quiet: 19 samples") || !strings.Contains(out, "no rule would have fired") {
		t.Errorf("--job quiet: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--job", "build-1")
	if code != 0 || !strings.Contains(out, "memory-warning   3") {
		t.Errorf("--job build-1: exit %d\n%s", code, out)
	}
	code, _, errOut = runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec, "--job", "nope")
	if code != 125 || !strings.Contains(errOut, "--job nope: no such job") {
		t.Errorf("--job nope: exit %d, %q", code, errOut)
	}
}

// Bad lines are reported with the file and line number; an invalid policy
// ends with status 2, a usage error with 125.
func TestPolicyTestErrors(t *testing.T) {
	pol := writeFile(t, "guard.toml", testPolicy)
	good, _ := json.Marshal(recordLines("j")[0])
	rec := writeFile(t, "bad.jsonl", string(good)+"\n"+
		"\n"+ // blank lines are skipped
		"{not json\n"+
		`{"time":"2026-03-01T12:00:01Z","job":"j","resource":"gpu","state":"normal","utilization":0.5}`+"\n"+
		`{"time":"2026-03-01T12:00:01Z","job":"j","resource":"cpu","state":"hot","utilization":0.5}`+"\n"+
		`{"time":"2026-03-01T12:00:01Z","job":"j","resource":"cpu","state":"normal"}`+"\n"+
		`{"time":"2026-03-01T12:00:01Z","job":"j","resource":"cpu","state":"normal","utilization":-1}`+"\n")
	code, _, errOut := runTestApp(t, "policy", "test", "--policy", pol, "--replay", rec)
	if code != 125 {
		t.Errorf("bad record: exit %d", code)
	}
	for _, want := range []string{
		rec + ":3: not a record line",
		rec + `:4: unknown resource "gpu"`,
		rec + `:5: unknown state "hot"`,
		rec + ":6: record line without utilization",
		rec + ":7: record line with utilization -1",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error %q does not say %q", errOut, want)
		}
	}
	if strings.Contains(errOut, ":1:") {
		t.Errorf("a good line reported: %q", errOut)
	}

	badPol := writeFile(t, "bad.toml", "[[rule]]\nname = \"x\"\nresource = \"gpu\"\nactions = []\n")
	good1 := writeRecord(t, recordLines("j"))
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"--policy", badPol, "--replay", good1}, 2},
		{[]string{"--replay", good1}, 125},
		{[]string{"--policy", pol}, 125},
		{[]string{"--policy", pol, "--replay", good1, "extra"}, 125},
		{[]string{"--policy", pol, "--replay", filepath.Join(t.TempDir(), "missing.jsonl")}, 125},
		{[]string{"--policy", pol, "--replay", writeFile(t, "empty.jsonl", "\n")}, 125},
	} {
		if code, _, _ := runTestApp(t, append([]string{"policy", "test"}, tc.args...)...); code != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.want)
		}
	}
}

// Lines of one sample share a timestamp and become one observation;
// lines out of order are sorted.
func TestRecordObservations(t *testing.T) {
	lines := recordLines("j")
	lines[0], lines[3] = lines[3], lines[0] // second sample's memory first
	rec, err := parseRecord("r.jsonl", strings.NewReader(encodeLines(t, lines)))
	if err != nil {
		t.Fatal(err)
	}
	obs := rec.observations("j")
	if len(obs) != len(rampMemory) {
		t.Fatalf("%d observations, want %d", len(obs), len(rampMemory))
	}
	for i, o := range obs {
		if len(o.Usages) != 2 || !o.Time.Equal(recordT0.Add(300*time.Millisecond+time.Duration(i)*time.Second)) {
			t.Fatalf("observation %d: %+v", i, o)
		}
	}
}

func encodeLines(t *testing.T, lines []recordLine) string {
	t.Helper()
	var b strings.Builder
	enc := json.NewEncoder(&b)
	for _, l := range lines {
		if err := enc.Encode(l); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

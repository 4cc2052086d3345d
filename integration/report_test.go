//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type report struct {
	ExitStatus      *int               `json:"exit_status"`
	Signal          string             `json:"signal"`
	Limits          []string           `json:"limits"`
	Peaks           map[string]float64 `json:"peak_utilization"`
	Averages        map[string]float64 `json:"mean_utilization"`
	WarningEvents   uint64             `json:"warning_events"`
	CriticalEvents  uint64             `json:"critical_events"`
	Samples         uint64             `json:"samples"`
	MemoryPeakBytes *uint64            `json:"memory_peak_bytes"`
	CPUSeconds      *float64           `json:"cpu_seconds"`
	IOWriteBytes    *uint64            `json:"io_write_bytes"`
	WriteCapHit     bool               `json:"write_cap_exceeded"`
	OOMKills        uint64             `json:"oom_kills"`
}

// rsup run --report and --record: a job that climbs through warning and
// critical memory is summarised in JSON, and every sample is a JSON line.
func TestRunReportAndRecord(t *testing.T) {
	root := requireV2(t)
	dir := t.TempDir()
	rep, rec := filepath.Join(dir, "report.json"), filepath.Join(dir, "samples.jsonl")
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--name", "rep", "--memory", "64M",
		"--warn", "memory=0.3", "--crit", "memory=0.6", "--interval", "50ms", "--log-format", "json",
		"--report", rep, "--record", rec, "--"}, helper("alloc", "48M")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatal(err)
	}
	var got report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	if got.ExitStatus == nil || *got.ExitStatus != 0 || !slices.Contains(got.Limits, "memory.max=67108864") ||
		got.Peaks["memory"] < 0.6 || got.CriticalEvents == 0 || got.Samples == 0 || got.MemoryPeakBytes == nil || got.CPUSeconds == nil {
		t.Errorf("report does not describe the job:\n%s", b)
	}
	lines := 0
	resources := map[string]bool{}
	data, _ := os.ReadFile(rec)
	for line := range strings.Lines(string(data)) {
		var s struct {
			Resource string  `json:"resource"`
			State    string  `json:"state"`
			Util     float64 `json:"utilization"`
		}
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("record line is not JSON: %q", line)
		}
		resources[s.Resource] = true
		lines++
	}
	if lines == 0 || !resources["memory"] || !resources["pids"] {
		t.Errorf("record has %d lines over %v", lines, resources)
	}
	// State changes are logged as JSON on stderr.
	changes := 0
	for line := range strings.Lines(r.stderr) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "state change" {
			changes++
		}
	}
	if changes == 0 {
		t.Errorf("no JSON state-change log on stderr:\n%s", r.stderr)
	}
	t.Logf("measured: report %s; %d recorded lines; %d state-change log lines", strings.Join(strings.Fields(string(b)), " "), lines, changes)
}

// --write-cap: rsup kills a job once it has written that much.
func TestRunWriteCap(t *testing.T) {
	root := requireV2(t)
	if _, err := os.Stat("/dev/ram0"); err != nil {
		t.Skipf("needs /dev/ram0: %v", err)
	}
	rep := filepath.Join(t.TempDir(), "report.json")
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--name", "capped", "--io-write-bps", "/dev/ram0=4M",
		"--write-cap", "4M", "--interval", "100ms", "--report", rep, "--"}, helper("odirect", "/dev/ram0", "16M")...)...)
	if r.code != 137 {
		t.Errorf("exit %d, want 137 (killed at the write cap):\n%s", r.code, r.stderr)
	}
	b, _ := os.ReadFile(rep)
	var got report
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("report: %v\n%s", err, b)
	}
	if !got.WriteCapHit || got.IOWriteBytes == nil || *got.IOWriteBytes < 4<<20 || *got.IOWriteBytes >= 16<<20 {
		t.Errorf("report: %s", b)
	}
	mustContain(t, "stderr", r.stderr, "write cap reached")
	t.Logf("measured: killed after writing %d bytes (cap 4194304) in %v", *got.IOWriteBytes, r.wall)
}

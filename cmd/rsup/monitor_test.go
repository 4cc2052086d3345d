package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rsup/rsup/monitor"
)

func TestThresholdsFromFlags(t *testing.T) {
	th, err := thresholdsFromFlags(fakeFlags{"warn": []string{"memory=0.5", "cpu=0.6"}, "crit": []string{"memory=0.7"}, "clear": []string{"memory=0.4"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := th[monitor.Memory]; got != (monitor.Thresholds{Warning: 0.5, Critical: 0.7, Clear: 0.4}) {
		t.Errorf("memory thresholds %+v", got)
	}
	if got := th[monitor.CPU]; got != (monitor.Thresholds{Warning: 0.6, Critical: monitor.DefaultThresholds(monitor.CPU).Critical}) {
		t.Errorf("cpu thresholds %+v", got)
	}
	for _, bad := range []fakeFlags{
		{"warn": []string{"gpu=0.5"}},
		{"warn": []string{"memory"}},
		{"warn": []string{"memory=lots"}},
		{"warn": []string{"memory=0.99"}},
		{"crit": []string{"cpu=1.5"}},
		{"clear": []string{"disk=0.9"}},
	} {
		if _, err := thresholdsFromFlags(bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestWriteReport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.json")
	st := 3
	if err := writeReport(path, &jobReport{Job: "j", ExitStatus: &st, Limits: []string{"memory.max=1"}}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil || got["job"] != "j" || got["exit_status"] != 3.0 {
		t.Errorf("report %s: %v", b, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the report: %v", entries)
	}
	if err := writeReport(filepath.Join(dir, "missing", "r.json"), &jobReport{}); err == nil || !strings.Contains(err.Error(), "--report") {
		t.Errorf("report into a missing directory: %v", err)
	}
}

func TestPolicyCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"rsup", "policy", "check", "../../examples/policies/ci-job-guard.toml", "../../examples/policies/pressure-guard.toml"}, 0},
		{[]string{"rsup", "policy", "check", "../../policy/testdata/bad/pids-zero.toml"}, 2},
		{[]string{"rsup", "policy", "check", "../../examples/policies/ci-job-guard.toml", "../../policy/testdata/bad/pids-zero.toml"}, 2},
		{[]string{"rsup", "policy", "check"}, 125},
		{[]string{"rsup", "policy", "explain", "../../examples/policies/cpu-hog-tamer.toml"}, 0},
		{[]string{"rsup", "policy", "explain", "../../policy/testdata/bad/pids-zero.toml"}, 2},
	} {
		if got := exitCode(newApp().Run(tc.args)); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args[1:], got, tc.want)
		}
	}
}

package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// Limit flags take the place of the file's values; io is merged per device
// and per field, and the file's limits are not changed.
func TestMergeLimits(t *testing.T) {
	a, b := cgroup.Device{Major: 8, Minor: 0}, cgroup.Device{Major: 8, Minor: 16}
	cpu := cgroup.CPUMax{Quota: 150 * time.Millisecond, Period: 100 * time.Millisecond}
	file := &cgroup.Resources{CPU: &cpu, MemoryMax: cgroup.Value(2 << 30), PidsMax: cgroup.Value(100),
		IO: []cgroup.IOLimit{{Device: a, ReadBPS: cgroup.Value(100), WriteBPS: cgroup.Value(50)}}}
	flags := &cgroup.Resources{MemoryMax: cgroup.Value(1 << 30),
		IO: []cgroup.IOLimit{{Device: a, WriteBPS: cgroup.Value(10)}, {Device: b, ReadIOPS: cgroup.Value(7)}}}
	got := mergeLimits(file, flags)
	want := []string{"cpu.max=150000 100000", "memory.max=1073741824", "memory.swap.max=0", "pids.max=100",
		"io.max=8:0 rbps=100 wbps=10", "io.max=8:16 riops=7"}
	if w := got.Writes(); !slices.Equal(w, want) {
		t.Errorf("merged writes\n got  %q\n want %q", w, want)
	}
	if w := file.IO[0].String(); w != "8:0 rbps=100 wbps=50" {
		t.Errorf("the file's io limit changed to %q", w)
	}
	if got := mergeLimits(nil, flags); got != flags {
		t.Error("without a file the flags' limits are not used as they are")
	}
}

// --warn and friends change only what they name; the rest of a policy's
// thresholds stay.
func TestThresholdsOverPolicy(t *testing.T) {
	base := map[monitor.Resource]monitor.Thresholds{
		monitor.Memory: {Warning: 0.5, Critical: 0.9, Clear: 0.4},
		monitor.Pids:   {Warning: 0.6, Critical: 0.7},
	}
	th, err := thresholdsFromFlags(fakeFlags{"warn": []string{"memory=0.6"}}, base)
	if err != nil {
		t.Fatal(err)
	}
	if got := th[monitor.Memory]; got != (monitor.Thresholds{Warning: 0.6, Critical: 0.9, Clear: 0.4}) {
		t.Errorf("memory thresholds %+v", got)
	}
	if got := th[monitor.Pids]; got != base[monitor.Pids] {
		t.Errorf("pids thresholds %+v, want the policy's", got)
	}
	if _, err := thresholdsFromFlags(fakeFlags{"warn": []string{"memory=0.95"}}, base); err == nil {
		t.Error("a --warn above the policy's critical was accepted")
	}
}

// Pressure rules get PSI triggers on their resource.
func TestPressureTriggers(t *testing.T) {
	p, err := policy.Parse("p.toml", []byte(`
[[rule]]
name = "io"
resource = "io_pressure"
state = "warning"
actions = [ { type = "log" } ]
`), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []monitor.Resource
	for _, tr := range pressureTriggers(p, true) {
		got = append(got, tr.Resource)
	}
	if !slices.Equal(got, []monitor.Resource{monitor.MemoryPressure, monitor.IOPressure}) {
		t.Errorf("triggers for %v", got)
	}
	if n := len(pressureTriggers(nil, true)); n != 1 {
		t.Errorf("%d triggers without a policy, want memory's alone", n)
	}
	if n := len(pressureTriggers(p, false)); n != 0 {
		t.Errorf("%d triggers where the cgroups have no PSI", n)
	}
}

// A bad policy is status 2, found before anything else is done (on a host
// without cgroup v2 the hierarchy would fail with 125); --dry-run without a
// policy and an unreadable file are usage errors.
func TestRunPolicyErrors(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ran")
	bad := "../../policy/testdata/bad/warning-above-critical.toml"
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{"rsup", "run", "--policy", bad, "--", "touch", marker}, 2},
		{[]string{"rsup", "track", "--policy", bad, "1"}, 2},
		{[]string{"rsup", "run", "--dry-run", "--", "touch", marker}, 125},
		{[]string{"rsup", "run", "--policy", filepath.Join(t.TempDir(), "missing.toml"), "--", "touch", marker}, 125},
		{[]string{"rsup", "track", "--no-move", "--policy", "../../examples/policies/ci-job-guard.toml", "1"}, 125},
	} {
		if got := exitCode(newApp().Run(tc.args)); got != tc.want {
			t.Errorf("%v: exit %d, want %d", tc.args[1:], got, tc.want)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran")
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rsup/rsup/cgroup"
)

// fakeFlags is a set of flag values as the CLI would parse them.
type fakeFlags map[string]any

func (f fakeFlags) IsSet(n string) bool { _, ok := f[n]; return ok }
func (f fakeFlags) String(n string) string {
	s, _ := f[n].(string)
	return s
}
func (f fakeFlags) StringSlice(n string) []string {
	s, _ := f[n].([]string)
	return s
}
func (f fakeFlags) Duration(n string) time.Duration {
	d, ok := f[n].(time.Duration)
	if !ok {
		return cgroup.DefaultCPUPeriod
	}
	return d
}

// fakeSysfs makes a sysfs with whole disk 8:0 and its partition 8:1.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	sys := t.TempDir()
	disk := filepath.Join(sys, "devices", "virtual", "block", "sda")
	part := filepath.Join(disk, "sda1")
	for _, d := range []string{disk, part, filepath.Join(sys, "dev", "block")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must(t, os.WriteFile(filepath.Join(disk, "dev"), []byte("8:0\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(part, "partition"), []byte("1\n"), 0o644))
	must(t, os.Symlink(disk, filepath.Join(sys, "dev", "block", "8:0")))
	must(t, os.Symlink(part, filepath.Join(sys, "dev", "block", "8:1")))
	return sys
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestResourcesFromFlags(t *testing.T) {
	sys := fakeSysfs(t)
	r, err := resourcesFromFlags(fakeFlags{
		"cpu": "250%", "cpu-weight": "300", "memory": "64M", "memory-high": "1.5GiB", "memory-low": "10MB",
		"pids":         "20",
		"io-write-bps": []string{"8:0=4M"}, "io-read-iops": []string{"8:0=100"},
	}, sys)
	if err != nil {
		t.Fatal(err)
	}
	got := describe(nil, r)
	want := "cpu.max=250000 100000 cpu.weight=300 memory.low=10000000 memory.high=1610612736 memory.max=67108864 memory.swap.max=0 pids.max=20 io.max=8:0 wbps=4194304 riops=100"
	if got != want {
		t.Errorf("limits:\n got %s\nwant %s", got, want)
	}

	r, err = resourcesFromFlags(fakeFlags{"memory": "max", "swap": "1G", "cpu": "50%", "cpu-period": 10 * time.Millisecond}, sys)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describe(nil, r), "cpu.max=5000 10000 memory.max=max memory.swap.max=1073741824"; got != want {
		t.Errorf("limits:\n got %s\nwant %s", got, want)
	}

	r, err = resourcesFromFlags(fakeFlags{}, sys)
	if err != nil || describe(nil, r) != "none" {
		t.Errorf("no flags: %v, %s", err, describe(nil, r))
	}
}

func TestResourcesFromFlagsErrors(t *testing.T) {
	sys := fakeSysfs(t)
	for _, tc := range []struct {
		flags fakeFlags
		want  []string
	}{
		{fakeFlags{"memory": "64Q"}, []string{`"64Q"`, "--memory"}},
		{fakeFlags{"memory-high": ""}, []string{"--memory-high"}},
		{fakeFlags{"cpu": "0.5%"}, []string{"--cpu", "below the kernel's minimum"}},
		{fakeFlags{"cpu": "50%", "cpu-period": 2 * time.Second}, []string{"--cpu", "out of range"}},
		{fakeFlags{"cpu-period": 50 * time.Millisecond}, []string{"--cpu-period needs --cpu"}},
		{fakeFlags{"cpu-weight": "0"}, []string{"--cpu-weight", "1 to 10000"}},
		{fakeFlags{"cpu-weight": "10001"}, []string{"--cpu-weight"}},
		{fakeFlags{"pids": "lots"}, []string{"--pids", `"lots"`}},
		{fakeFlags{"pids": "0"}, []string{"pids limit 0"}},
		{fakeFlags{"pids": "5000000"}, []string{"above the kernel's maximum of 4194304"}},
		{fakeFlags{"io-write-bps": []string{"8:1=4M"}}, []string{"--io-write-bps", "partition", "sda (8:0)"}},
		{fakeFlags{"io-write-bps": []string{"/dev/null=4M"}}, []string{"--io-write-bps", "not a block device"}},
		{fakeFlags{"io-write-bps": []string{"8:0"}}, []string{"--io-write-bps", "DEV=VALUE"}},
		{fakeFlags{"io-read-iops": []string{"8:0=1.5"}}, []string{"--io-read-iops", `"1.5"`}},
		{fakeFlags{"io-read-bps": []string{"8:0=1M", "8:0=2M"}}, []string{"--io-read-bps is given twice"}},
		{fakeFlags{"io-write-bps": []string{"9:9=1M"}}, []string{"no such block device"}},
		// Two bad flags: both are reported.
		{fakeFlags{"memory": "x", "pids": "y"}, []string{"--memory", "--pids"}},
	} {
		_, err := resourcesFromFlags(tc.flags, sys)
		if err == nil {
			t.Errorf("%v: no error", tc.flags)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not mention %q", tc.flags, err, w)
			}
		}
	}
}

func TestDefaultName(t *testing.T) {
	a, b := defaultName("/usr/bin/make"), defaultName("make")
	if !strings.HasPrefix(a, "make-") || len(a) != len("make-")+6 {
		t.Errorf("default name %q", a)
	}
	if a == b {
		t.Errorf("two default names collide: %q", a)
	}
	for _, cmd := range []string{"memory.max", strings.Repeat("x", 300), "/"} {
		n := defaultName(cmd)
		if err := cgroup.ValidateName(n); err != nil {
			t.Errorf("default name for %q is invalid: %v", cmd, err)
		}
	}
}

func TestOOMLine(t *testing.T) {
	for _, tc := range []struct {
		max    *cgroup.Limit
		killed bool
		want   string
	}{
		{cgroup.Value(64 << 20), true, "rsup: job j: killed by the kernel OOM killer at memory.max=64M (67108864 bytes), oom_kill=2"},
		{cgroup.Value(64 << 20), false, "rsup: job j: the kernel OOM killer killed 2 of its processes at memory.max=64M (67108864 bytes), oom_kill=2"},
		{nil, true, "rsup: job j: killed by the kernel OOM killer at memory.max=max (no limit of its own: the host ran out of memory), oom_kill=2"},
	} {
		if got := oomLine("j", "memory.max", tc.max, 2, tc.killed); got != tc.want {
			t.Errorf("oomLine:\n got %s\nwant %s", got, tc.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "0B", 1023: "1023B", 1024: "1K", 64 << 20: "64M", 1536 << 20: "1.5G"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

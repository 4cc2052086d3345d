package monitor

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func u64(v uint64) *uint64 { return &v }

func TestJobUsages(t *testing.T) {
	t0 := time.Unix(1000, 0)
	quota := 50 * time.Millisecond
	prev := CgroupSample{Time: t0, CPUUsage: 10 * time.Second}
	cur := CgroupSample{
		Time:           t0.Add(2 * time.Second),
		CPUUsage:       10*time.Second + 800*time.Millisecond, // 0.4 CPU
		CPUQuota:       &quota,
		CPUPeriod:      100 * time.Millisecond, // quota: half a CPU
		MemoryCurrent:  u64(48 << 20),
		MemoryMax:      u64(64 << 20),
		InactiveFile:   u64(8 << 20),
		PidsCurrent:    u64(10),
		PidsMax:        u64(40),
		IORBytes:       u64(100),
		IOWBytes:       u64(750),
		MemoryPressure: &Pressure{Some: PSI{Avg10: 12.5}},
	}
	got := map[Resource]Usage{}
	for _, u := range jobUsages(&prev, cur, 2, 1<<30, 4194304, 1000) {
		got[u.Resource] = u
	}
	check := func(r Resource, util float64, used, total uint64) {
		t.Helper()
		u, ok := got[r]
		if !ok {
			t.Fatalf("no %s usage", r)
		}
		if d := u.Utilization - util; d > 1e-9 || d < -1e-9 || u.Used != used || u.Total != total {
			t.Errorf("%s: utilization %v used %d total %d, want %v %d %d", r, u.Utilization, u.Used, u.Total, util, used, total)
		}
	}
	check(CPU, 0.8, 400000, 500000)
	check(Memory, 0.75, 48<<20, 64<<20)
	check(Pids, 0.25, 10, 40)
	check(IO, 0.75, 850, 1000)
	check(MemoryPressure, 0.125, 0, 0)
	if got[Memory].WorkingSet != 40<<20 {
		t.Errorf("working set %d", got[Memory].WorkingSet)
	}

	// Unlimited: memory against MemTotal, pids against pid_max, cpu against
	// the CPU count; no CPU figure from a single sample.
	cur.MemoryMax, cur.PidsMax, cur.CPUQuota = nil, nil, nil
	got = map[Resource]Usage{}
	for _, u := range jobUsages(&prev, cur, 2, 1<<30, 4194304, 0) {
		got[u.Resource] = u
	}
	check(CPU, 0.2, 400000, 2000000)
	check(Memory, float64(48<<20)/(1<<30), 48<<20, 1<<30)
	check(IO, 0, 850, 0)
	for _, u := range jobUsages(nil, cur, 2, 1<<30, 4194304, 0) {
		if u.Resource == CPU {
			t.Error("CPU usage from a single sample")
		}
	}
}

// New on a job cgroup: a fake cgroupfs tree and the real /proc.
func TestNewJobMonitor(t *testing.T) {
	m, err := New(Options{Cgroup: "testdata/cgroupfs/full", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Resource{Memory, Pids, IO, Disk, CPUPressure, MemoryPressure, IOPressure} {
		if _, ok := m.Usage(r); !ok {
			t.Errorf("no %s usage from a full cgroup tree", r)
		}
	}
	if _, ok := m.LastCgroupSample(); !ok {
		t.Error("no raw sample")
	}
	// Without memory.pressure (a kernel without PSI) the trigger cannot
	// be set: the monitor falls back to sampling without it.
	noPSI := t.TempDir()
	for _, f := range []string{"cpu.stat", "memory.current", "memory.events"} {
		b, err := os.ReadFile(filepath.Join("testdata/cgroupfs/full", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(noPSI, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m2, err := New(Options{Cgroup: noPSI, Events: true,
		PSITriggers: []PSITrigger{{Resource: MemoryPressure, StallUS: 100000, WindowUS: 1000000}}})
	if err != nil {
		t.Fatalf("New without PSI: %v", err)
	}
	if err := m2.SampleNow(); err != nil {
		t.Fatal(err)
	}
	m2.Close()
	for _, o := range []Options{{Interval: -1}, {History: -1}, {Cgroup: "testdata/no-such-cgroup"}, {Proc: "testdata/no-such-proc"}} {
		if m, err := New(o); err == nil {
			m.Close()
			t.Errorf("New(%+v) accepted", o)
		}
	}
}

// New without a cgroup monitors the host.
func TestNewHostMonitor(t *testing.T) {
	m, err := New(Options{Interval: 20 * time.Millisecond, DiskPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_ = m.SampleNow()
	time.Sleep(30 * time.Millisecond)
	if err := m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Resource{CPU, Memory, Disk} {
		u, ok := m.Usage(r)
		if !ok || u.Total == 0 || u.Utilization < 0 || u.Utilization > 1 {
			t.Errorf("host %s: %+v %v", r, u, ok)
		}
	}
}

// Tracked processes are read through their pidfd: an exited process keeps
// its last figures and is marked, never read again under a reused pid.
func TestTrackProcess(t *testing.T) {
	m, err := New(Options{Interval: time.Hour, DiskPath: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // let it exec and fault its pages in
	if err := m.TrackProcess(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := m.TrackProcess(1 << 22); err == nil {
		t.Error("tracking a pid that does not exist succeeded")
	}
	_ = m.SampleNow()
	ps := m.Processes()
	if len(ps) != 1 || ps[0].PID != cmd.Process.Pid || ps[0].Comm != "sleep" || ps[0].RSS == 0 || ps[0].Exited {
		t.Fatalf("processes %+v", ps)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	_ = m.SampleNow()
	if ps := m.Processes(); len(ps) != 1 || !ps[0].Exited {
		t.Errorf("after exit: %+v", ps)
	}
	m.UntrackProcess(cmd.Process.Pid)
	if ps := m.Processes(); len(ps) != 0 {
		t.Errorf("after untrack: %+v", ps)
	}
}

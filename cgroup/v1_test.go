package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// v1Defaults are the files of a fresh cgroup v1 job directory in each
// hierarchy, as the kernel shows them.
// (memsw reads -1 here, not its huge number: the fake's writes do not
// truncate, and writes of -1 over that number would leave its tail.)
var v1Defaults = map[string]map[string]string{
	"cpu":     {"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n", "cpu.shares": "1024\n", "cgroup.procs": ""},
	"cpuacct": {"cpuacct.usage": "0\n", "cgroup.procs": ""},
	"memory": {"memory.limit_in_bytes": "9223372036854771712\n", "memory.memsw.limit_in_bytes": "-1\n",
		"memory.soft_limit_in_bytes": "9223372036854771712\n", "memory.max_usage_in_bytes": "0\n",
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", "memory.failcnt": "0\n", "cgroup.procs": ""},
	"pids":    {"pids.max": "max\n", "cgroup.procs": ""},
	"blkio":   {"blkio.throttle.read_bps_device": "", "blkio.throttle.write_bps_device": "", "blkio.throttle.read_iops_device": "", "blkio.throttle.write_iops_device": "", "cgroup.procs": ""},
	"freezer": {"freezer.state": "THAWED\n", "cgroup.procs": ""},
}

// fakeV1Job is a job with a fresh directory per hierarchy in a temp dir.
func fakeV1Job(t *testing.T) *Job {
	t.Helper()
	base := t.TempDir()
	j := &Job{name: "t", v1: &v1Job{}, cgPath: "/own/rsup/t"}
	for _, c := range slices.Sorted(func(yield func(string) bool) {
		for c := range v1Defaults {
			if !yield(c) {
				return
			}
		}
	}) {
		dir := filepath.Join(base, c)
		writeFiles(t, dir, v1Defaults[c])
		d, err := openDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.close() })
		j.v1.dirs = append(j.v1.dirs, &v1Dir{ctls: []string{c}, path: dir, d: d})
	}
	j.path = filepath.Join(base, "memory")
	return j
}

func v1File(t *testing.T, j *Job, ctl, file string) string {
	t.Helper()
	return strings.TrimSpace(readTestFile(t, filepath.Join(j.v1.dir(ctl).path, file)))
}

// checkV1 checks one file of the fake job against the writes made to it.
func checkV1(t *testing.T, j *Job, ctl, file string, writes ...string) {
	t.Helper()
	checkWrites(t, filepath.Join(j.v1.dir(ctl).path, file), v1Defaults[ctl][file], writes...)
}

func TestApplyV1(t *testing.T) {
	t.Parallel()
	j := fakeV1Job(t)
	cpu := CPUMax{Quota: 75 * time.Millisecond, Period: 50 * time.Millisecond}
	weight := uint64(250)
	dev := Device{Major: 1, Minor: 0}
	res := &Resources{CPU: &cpu, CPUWeight: &weight, MemoryMax: Value(96 << 20), MemoryLow: Value(8 << 20), PidsMax: Value(64),
		IO: []IOLimit{{Device: dev, WriteBPS: Value(4 << 20), ReadIOPS: Value(100)}}}
	if err := j.Apply(res); err != nil {
		t.Fatal(err)
	}
	checkV1(t, j, "cpu", "cpu.cfs_quota_us", "75000")
	checkV1(t, j, "cpu", "cpu.cfs_period_us", "50000")
	checkV1(t, j, "cpu", "cpu.shares", "2560")
	checkV1(t, j, "memory", "memory.limit_in_bytes", "100663296")
	// memsw is lifted first, so that the limit may be raised above it.
	checkV1(t, j, "memory", "memory.memsw.limit_in_bytes", "-1", "100663296")
	checkV1(t, j, "memory", "memory.soft_limit_in_bytes", "8388608")
	checkV1(t, j, "pids", "pids.max", "64")
	checkV1(t, j, "blkio", "blkio.throttle.write_bps_device", "1:0 4194304")
	checkV1(t, j, "blkio", "blkio.throttle.read_iops_device", "1:0 100")
	checkV1(t, j, "blkio", "blkio.throttle.read_bps_device")

	// Swap: memsw is memory plus swap; max lifts it; memory max is -1.
	for _, c := range []struct {
		res        *Resources
		mem, memsw string
	}{
		{&Resources{MemoryMax: Value(64 << 20), SwapMax: Value(16 << 20)}, "67108864", strconv.Itoa(80 << 20)},
		{&Resources{MemoryMax: Value(64 << 20), SwapMax: &Max}, "67108864", "-1"},
		{&Resources{MemoryMax: &Max}, "-1", "-1"},
	} {
		j := fakeV1Job(t)
		if err := j.Apply(c.res); err != nil {
			t.Fatal(err)
		}
		checkV1(t, j, "memory", "memory.limit_in_bytes", c.mem)
		checkV1(t, j, "memory", "memory.memsw.limit_in_bytes", "-1", c.memsw)
	}
}

// The job reads back the limits a throttle lowers from the v1 files.
func TestJobV1Limits(t *testing.T) {
	t.Parallel()
	j := fakeV1Job(t)
	writeFiles(t, j.v1.dir("cpu").path, map[string]string{"cpu.cfs_quota_us": "75000\n", "cpu.cfs_period_us": "50000\n"})
	writeFiles(t, j.v1.dir("blkio").path, map[string]string{"blkio.throttle.write_bps_device": "8:0 7\n1:0 4194304\n",
		"blkio.throttle.read_iops_device": "1:0 100\n"})
	if got, err := j.CPUMax(); err != nil || got != (CPUMax{Quota: 75 * time.Millisecond, Period: 50 * time.Millisecond}) {
		t.Errorf("CPUMax = %+v, %v", got, err)
	}
	if l, err := j.IOMax(Device{Major: 1, Minor: 0}); err != nil || l.String() != "1:0 rbps=max wbps=4194304 riops=100 wiops=max" {
		t.Errorf("IOMax = %v, %v", l, err)
	}
	writeFiles(t, j.v1.dir("cpu").path, map[string]string{"cpu.cfs_quota_us": "-1\n"})
	if got, err := j.CPUMax(); err != nil || got != (CPUMax{Period: 50 * time.Millisecond}) {
		t.Errorf("CPUMax without quota = %+v, %v", got, err)
	}
}

// A write the kernel refuses undoes the writes before it.
func TestApplyV1RollsBack(t *testing.T) {
	t.Parallel()
	j := fakeV1Job(t)
	pids := filepath.Join(j.v1.dir("pids").path, "pids.max")
	if err := os.Remove(pids); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(pids, 0o755); err != nil { // reading it fails
		t.Fatal(err)
	}
	cpu := CPUMax{Quota: 50 * time.Millisecond}
	err := j.Apply(&Resources{CPU: &cpu, MemoryMax: Value(1 << 30), PidsMax: Value(10)})
	errorContains(t, err, "none was left in force", "pids.max")
	checkV1(t, j, "cpu", "cpu.cfs_period_us", "100000", "100000")
	checkV1(t, j, "cpu", "cpu.cfs_quota_us", "50000", "-1")
	checkV1(t, j, "memory", "memory.limit_in_bytes", "1073741824", "-1")
	checkV1(t, j, "memory", "memory.memsw.limit_in_bytes", "-1", "1073741824", "-1", "-1")
}

// Limits cgroup v1 cannot enforce are refused, not dropped.
func TestValidateV1(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		res  *Resources
		want string
	}{
		{&Resources{MemoryHigh: Value(1 << 20)}, "cgroup v2 only"},
		{&Resources{SwapMax: Value(1 << 20)}, "needs a memory limit"},
		{&Resources{MemoryMax: &Max, SwapMax: Value(1)}, "needs a memory limit"},
	} {
		errorContains(t, c.res.validateV1(), c.want)
		errorContains(t, fakeV1Job(t).Apply(c.res), c.want)
	}
	if err := (&Resources{SwapMax: &Max}).validateV1(); err != nil {
		t.Errorf("swap max alone: %v", err)
	}
	if _, err := fakeV1Job(t).MemoryHigh(); err == nil {
		t.Error("MemoryHigh on v1 succeeded")
	}
}

func TestJobV1Reads(t *testing.T) {
	t.Parallel()
	j := fakeV1Job(t)
	ev, err := j.Events()
	if err != nil || ev["populated"] != 0 || ev["frozen"] != 0 {
		t.Fatalf("Events of an empty job = %v, %v", ev, err)
	}
	// Processes in a child directory of one hierarchy count too, once.
	writeFiles(t, j.v1.dir("memory").path, map[string]string{"cgroup.procs": "10\n11\n", "sub/cgroup.procs": "12\n"})
	writeFiles(t, j.v1.dir("cpu").path, map[string]string{"cgroup.procs": "10\n11\n12\n"})
	writeFiles(t, j.v1.dir("freezer").path, map[string]string{"freezer.state": "FROZEN\n"})
	procs, err := j.Procs()
	slices.Sort(procs)
	if err != nil || !slices.Equal(procs, []uint64{10, 11, 12}) {
		t.Errorf("Procs = %v, %v", procs, err)
	}
	if ev, _ := j.Events(); ev["populated"] != 1 || ev["frozen"] != 1 {
		t.Errorf("Events = %v", ev)
	}
	writeFiles(t, j.v1.dir("memory").path, map[string]string{
		"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "memory.failcnt": "17\n",
		"memory.max_usage_in_bytes": "4096\n"})
	writeFiles(t, j.v1.dir("cpuacct").path, map[string]string{"cpuacct.usage": "1500000000\n"})
	if me, err := j.MemoryEvents(); err != nil || me["oom_kill"] != 3 || me["max"] != 17 {
		t.Errorf("MemoryEvents = %v, %v", me, err)
	}
	if d, err := j.CPUUsage(); err != nil || d != 1500*time.Millisecond {
		t.Errorf("CPUUsage = %v, %v", d, err)
	}
	if n, err := j.MemoryPeak(); err != nil || n != 4096 {
		t.Errorf("MemoryPeak = %v, %v", n, err)
	}
	if err := j.Freeze(false); err != nil || v1File(t, j, "freezer", "freezer.state") != "THAWED" {
		t.Errorf("Freeze(false): %v", err)
	}
	if s, err := j.ReadFile("pids.max"); err != nil || s != "max" {
		t.Errorf("ReadFile(pids.max) = %q, %v", s, err)
	}
	if _, err := j.ReadFile("hugetlb.2MB.limit_in_bytes"); err == nil {
		t.Error("ReadFile of a controller rsup does not use succeeded")
	}
	if fd, ok := j.CloneFD(); ok || fd != -1 || len(j.JoinFDs()) != len(v1Defaults) {
		t.Errorf("CloneFD = %d, %v; JoinFDs = %v", fd, ok, j.JoinFDs())
	}
	if d := j.V1Dirs(); d["memory"] != j.v1.dir("memory").path || len(d) != len(v1Defaults) {
		t.Errorf("V1Dirs = %v", d)
	}

	// Membership by the memory hierarchy's line of /proc/PID/cgroup.
	proc := t.TempDir()
	writeFiles(t, proc, map[string]string{
		"10/cgroup": "9:pids:/own/rsup/t\n4:memory:/own/rsup/t/sub\n0::/\n",
		"20/cgroup": "4:memory:/own/rsup/tt\n0::/own/rsup/t\n",
	})
	if in, err := j.Contains(proc, 10); err != nil || !in {
		t.Errorf("Contains(10) = %v, %v", in, err)
	}
	if in, err := j.Contains(proc, 20); err != nil || in {
		t.Errorf("Contains(20) = %v, %v: a sibling with a longer name, or the unified line, counted", in, err)
	}
}

// Open on a hybrid host falls back to cgroup v1 and nests rsup's root
// under the cgroup the process is in, in each hierarchy.
func TestOpenV1(t *testing.T) {
	t.Parallel()
	host := hybridHost(t, map[string]string{"cgroup.controllers": "", "cgroup.subtree_control": ""})
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/cgroup": "8:freezer:/\n7:blkio:/\n5:pids:/\n" +
		"4:memory:/process_api/abc\n2:cpu,cpuacct:/\n1:name=systemd:/\n0::/\n"})
	mi := readTestFile(t, filepath.Join(host.proc, "self/mountinfo"))
	mi += strings.ReplaceAll("32 25 0:30 / CG/freezer rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,freezer\n", "CG", host.cgfs)
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/mountinfo": mi})

	h, err := Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType})
	if err != nil {
		t.Fatal(err)
	}
	if h.v1 == nil {
		t.Fatal("Open on a hybrid host did not choose cgroup v1")
	}
	want := map[string]string{
		"cpu": "cpu,cpuacct/rsup", "cpuacct": "cpu,cpuacct/rsup", "memory": "memory/process_api/abc/rsup",
		"pids": "pids/rsup", "blkio": "blkio/rsup", "freezer": "freezer/rsup",
	}
	for c, rel := range want {
		if got := h.v1.roots[c]; got != filepath.Join(host.cgfs, rel) {
			t.Errorf("root of %s = %s, want %s", c, got, filepath.Join(host.cgfs, rel))
		}
		if st, err := os.Stat(h.v1.roots[c]); err != nil || !st.IsDir() {
			t.Errorf("root of %s not created: %v", c, err)
		}
	}
	if h.v1.cgPaths["memory"] != "/process_api/abc/rsup" {
		t.Errorf("memory cgroup path %q", h.v1.cgPaths["memory"])
	}
	if got := h.Enabled(); !slices.Equal(got, []string{"cpu", "io", "memory", "pids"}) {
		t.Errorf("Enabled = %v", got)
	}
	if got := h.Root(); got != filepath.Join(host.cgfs, "memory/process_api/abc/rsup") {
		t.Errorf("Root = %s", got)
	}

	// A relative root is a v1 root, also when the version is left to Open.
	h2, err := Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Root: "ci/jobs"})
	if err != nil {
		t.Fatal(err)
	}
	if got := h2.v1.roots["pids"]; got != filepath.Join(host.cgfs, "pids/ci/jobs") {
		t.Errorf("relative root: pids root %s", got)
	}
	_, err = Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Version: 1, Root: "/abs"})
	errorContains(t, err, "relative to rsup's own cgroup")
	_, err = Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Version: 1, Root: "../up"})
	errorContains(t, err, "below rsup's own cgroup")
	// Asked for v2, a hybrid host still fails closed.
	_, err = Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Version: 2})
	if !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("Version 2 on a hybrid host: %v, want ErrNoCgroup2", err)
	}
	_, err = Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Version: 3})
	errorContains(t, err, "want 1, 2")

	// A process's placement, and a move to it, cover every hierarchy;
	// co-mounted cpu and cpuacct are written once.
	writeFiles(t, host.proc, map[string]string{"77/cgroup": "8:freezer:/f\n7:blkio:/\n5:pids:/p\n4:memory:/process_api/abc/m\n2:cpu,cpuacct:/c\n0::/\n"})
	for _, d := range []string{"freezer/f", "blkio", "pids/p", "memory/process_api/abc/m", "cpu,cpuacct/c"} {
		writeFiles(t, filepath.Join(host.cgfs, d), map[string]string{"cgroup.procs": ""})
	}
	pl, err := h.CgroupOf(77)
	if want := "blkio:/;cpu:/c;cpuacct:/c;freezer:/f;memory:/process_api/abc/m;pids:/p"; err != nil || pl != want {
		t.Fatalf("CgroupOf = %q, %v; want %q", pl, err, want)
	}
	if err := h.Move(pl, 77); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"freezer/f", "blkio", "pids/p", "memory/process_api/abc/m", "cpu,cpuacct/c"} {
		if got := readTestFile(t, filepath.Join(host.cgfs, d, "cgroup.procs")); got != "77" {
			t.Errorf("%s/cgroup.procs = %q after the move", d, got)
		}
	}
	if err := h.Move("memory:/x;bogus:/", 77); err == nil {
		t.Error("Move accepted a placement naming an unknown hierarchy")
	}
	if err := h.CanMove(pl, nil); err != nil {
		t.Errorf("CanMove: %v", err)
	}
	if got := h.Rel(&Job{name: "j"}); got != "blkio:/rsup/j;cpu:/rsup/j;cpuacct:/rsup/j;freezer:/rsup/j;memory:/process_api/abc/rsup/j;pids:/rsup/j" {
		t.Errorf("Rel = %q", got)
	}
}

// Without the pids hierarchy, Open names what is missing.
func TestOpenV1Missing(t *testing.T) {
	t.Parallel()
	host := hybridHost(t, map[string]string{"cgroup.controllers": "", "cgroup.subtree_control": ""})
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/cgroup": "0::/\n"})
	mi := readTestFile(t, filepath.Join(host.proc, "self/mountinfo"))
	var kept []string
	for line := range strings.Lines(mi) {
		if !strings.Contains(line, "rw,pids") {
			kept = append(kept, line)
		}
	}
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/mountinfo": strings.Join(kept, "")})
	_, err := Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType})
	errorContains(t, err, "controller(s) pids", "host cgroup mode: hybrid")
	if !errors.Is(err, ErrNoCgroup2) || !errors.Is(err, ErrNoCgroup) {
		t.Errorf("error %v: want both the v2 and the v1 reasons", err)
	}
}

// A v1 mount that the mount table lists but another mount hides (its
// directory is no cgroup file system) does not count.
func TestOpenV1HiddenMount(t *testing.T) {
	t.Parallel()
	host := hybridHost(t, map[string]string{"cgroup.controllers": "", "cgroup.subtree_control": ""})
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/cgroup": "0::/\n"})
	hidden := host.fsType
	host.fsType = func(path string) (int64, error) {
		if path == filepath.Join(host.cgfs, "pids") {
			return unix.TMPFS_MAGIC, nil
		}
		return hidden(path)
	}
	_, err := Open(Config{CgroupFS: host.cgfs, ProcFS: host.proc, fsType: host.fsType, Version: 1})
	errorContains(t, err, "controller(s) pids")
	if _, err := os.Stat(filepath.Join(host.cgfs, "pids", "rsup")); err == nil {
		t.Error("a root was made in the hidden mount's directory")
	}
}

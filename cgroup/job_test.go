package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// kernelDefaults are the interface files of a new job cgroup with the
// values the kernel gives them.
var kernelDefaults = map[string]string{
	"cpu.max":         "max 100000\n",
	"cpu.weight":      "100\n",
	"memory.low":      "0\n",
	"memory.high":     "max\n",
	"memory.max":      "max\n",
	"memory.swap.max": "max\n",
	"pids.max":        "max\n",
	"io.max":          "",
	"cgroup.events":   "populated 0\nfrozen 0\n",
	"cgroup.procs":    "",
}

// fakeJob makes a job over a fake cgroup directory holding files.
func fakeJob(t *testing.T, files map[string]string) *Job {
	t.Helper()
	tmp := t.TempDir()
	writeFiles(t, tmp, files)
	d, err := openDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return &Job{name: "t", path: tmp, d: d}
}

// defaultsWithout returns kernelDefaults less the named files, plus extra.
func defaultsWithout(extra map[string]string, without ...string) map[string]string {
	m := make(map[string]string)
	for k, v := range kernelDefaults {
		m[k] = v
	}
	for _, k := range without {
		delete(m, k)
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

func TestJobApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		files  map[string]string
		res    *Resources
		writes map[string][]string // values written to each file, in order
	}{
		{"nil", kernelDefaults, nil, nil},
		{"empty", kernelDefaults, &Resources{}, nil},
		{"all limits", kernelDefaults, &Resources{
			CPU:        &CPUMax{Quota: 50 * time.Millisecond},
			CPUWeight:  u64(1000),
			MemoryLow:  Value(256 << 20),
			MemoryHigh: Value(512 << 20),
			MemoryMax:  Value(1 << 30),
			PidsMax:    Value(1000),
			IO:         []IOLimit{{Device: Device{8, 0}, ReadBPS: Value(4194304), WriteBPS: &Max}},
		}, map[string][]string{
			"cpu.max":         {"50000 100000"},
			"cpu.weight":      {"1000"},
			"memory.low":      {"268435456"},
			"memory.high":     {"536870912"},
			"memory.max":      {"1073741824"},
			"memory.swap.max": {"0"},
			"pids.max":        {"1000"},
			"io.max":          {"8:0 rbps=4194304 wbps=max"},
		}},
		{"memory max writes swap 0", kernelDefaults, &Resources{MemoryMax: Value(64 << 20)}, map[string][]string{
			"memory.max":      {"67108864"},
			"memory.swap.max": {"0"},
		}},
		{"explicit swap", kernelDefaults, &Resources{MemoryMax: Value(64 << 20), SwapMax: Value(32 << 20)}, map[string][]string{
			"memory.max":      {"67108864"},
			"memory.swap.max": {"33554432"},
		}},
		{"swap max written where the file exists", kernelDefaults, &Resources{MemoryMax: Value(64 << 20), SwapMax: &Max}, map[string][]string{
			"memory.max":      {"67108864"},
			"memory.swap.max": {"max"},
		}},
		{"swap max skipped without swap accounting", defaultsWithout(nil, "memory.swap.max"),
			&Resources{MemoryMax: Value(64 << 20), SwapMax: &Max, PidsMax: Value(50)}, map[string][]string{
				"memory.max": {"67108864"},
				"pids.max":   {"50"},
			}},
		{"two io devices", kernelDefaults, &Resources{IO: []IOLimit{
			{Device: Device{8, 0}, ReadIOPS: Value(100)},
			{Device: Device{259, 0}, WriteBPS: Value(1 << 20)},
		}}, map[string][]string{
			"io.max": {"8:0 riops=100", "259:0 wbps=1048576"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := fakeJob(t, tt.files)
			if err := j.Apply(tt.res); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			for file, old := range tt.files {
				checkWrites(t, filepath.Join(j.path, file), old, tt.writes[file]...)
			}
			for file := range tt.writes {
				if _, ok := tt.files[file]; !ok {
					t.Errorf("test writes %s, which the fake cgroup lacks", file)
				}
			}
		})
	}
}

func TestJobApplyValidatesFirst(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, kernelDefaults)
	err := j.Apply(&Resources{MemoryMax: Value(1 << 30), CPUWeight: u64(0), PidsMax: Value(10)})
	errorContains(t, err, "cpu weight 0 out of range")
	for file, old := range kernelDefaults {
		checkWrites(t, filepath.Join(j.path, file), old)
	}
}

// allButIO sets a limit in every file before pids.max in the plan.
func allButIO() *Resources {
	return &Resources{
		CPU:        &CPUMax{Quota: 50 * time.Millisecond},
		CPUWeight:  u64(1000),
		MemoryLow:  Value(256 << 20),
		MemoryHigh: Value(512 << 20),
		MemoryMax:  Value(1 << 30),
		PidsMax:    Value(1000),
		IO:         []IOLimit{{Device: Device{8, 0}, ReadBPS: Value(4194304)}},
	}
}

// checkRolledBack checks that the files written before pids.max hold their
// old values again: each was written once with its limit and once with the
// value it had.
func checkRolledBack(t *testing.T, j *Job) {
	t.Helper()
	for file, limit := range map[string]string{
		"cpu.max":         "50000 100000",
		"cpu.weight":      "1000",
		"memory.low":      "268435456",
		"memory.high":     "536870912",
		"memory.max":      "1073741824",
		"memory.swap.max": "0",
	} {
		old := kernelDefaults[file]
		checkWrites(t, filepath.Join(j.path, file), old, limit, strings.TrimSuffix(old, "\n"))
	}
	checkWrites(t, filepath.Join(j.path, "io.max"), "")
}

func TestJobApplyRollsBack(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		op    string
		errno error
	}{
		{"pids.max missing", func(t *testing.T, path string) {
			if err := os.Remove(filepath.Join(path, "pids.max")); err != nil {
				t.Fatal(err)
			}
		}, "open", unix.ENOENT},
		{"pids.max is a directory", func(t *testing.T, path string) {
			p := filepath.Join(path, "pids.max")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "read", unix.EISDIR},
		{"pids.max refuses the write", func(t *testing.T, path string) {
			immutable(t, filepath.Join(path, "pids.max"))
		}, "write", unix.EPERM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := fakeJob(t, kernelDefaults)
			tt.setup(t, j.path)
			err := j.Apply(allButIO())
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("Apply: %#v, want a *FileError", err)
			}
			if fe.Op != tt.op || fe.Path != filepath.Join(j.path, "pids.max") || !errors.Is(err, tt.errno) {
				t.Errorf("Apply: %#v, want Op %s on pids.max with %v", fe, tt.op, tt.errno)
			}
			errorContains(t, err, "apply limits to job t", "none was left in force", filepath.Join(j.path, "pids.max"))
			if tt.op == "write" {
				errorContains(t, err, `write "1000" to `)
				if fe.Value != "1000" {
					t.Errorf("FileError.Value = %q, want 1000", fe.Value)
				}
			}
			if strings.Contains(err.Error(), "roll back") {
				t.Errorf("the rollback failed: %v", err)
			}
			checkRolledBack(t, j)
		})
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL of <linux/fs.h> (chattr +i).
const fsImmutableFL = 0x10

// immutable sets FS_IMMUTABLE_FL on path, which makes open(2) for writing
// fail with EPERM even for root while reads still work: a stand-in for a
// kernel that rejects a value.
func immutable(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags|fsImmutableFL))
	}
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
		t.Skipf("cannot make %s immutable (%v): the temp dir's file system or this user cannot set FS_IMMUTABLE_FL, so no plain file can refuse a write", path, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if err := unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL)); err != nil {
			t.Errorf("clear immutable flag of %s: %v", path, err)
		}
	})
	if fw, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		fw.Close()
		t.Fatalf("%s is still writable after chattr +i", path)
	}
}

func TestJobApplySwapFileMissing(t *testing.T) {
	t.Parallel()
	// Without swap accounting memory.swap.max does not exist. Skipping
	// "max" is harmless, but the 0 that goes with a memory limit is not:
	// the job would swap instead of being OOM-killed.
	for _, tt := range []struct {
		name string
		res  *Resources
	}{
		{"implicit 0", &Resources{MemoryMax: Value(1 << 30)}},
		{"explicit 0", &Resources{MemoryMax: Value(1 << 30), SwapMax: Value(0)}},
		{"explicit size", &Resources{MemoryMax: Value(1 << 30), SwapMax: Value(1 << 20)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			files := defaultsWithout(nil, "memory.swap.max")
			j := fakeJob(t, files)
			err := j.Apply(tt.res)
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != filepath.Join(j.path, "memory.swap.max") || !errors.Is(err, unix.ENOENT) {
				t.Fatalf("Apply: %#v, want a *FileError for the missing memory.swap.max", err)
			}
			checkWrites(t, filepath.Join(j.path, "memory.max"), "max\n", "1073741824", "max")
		})
	}
}

// TestJobApplyIORollback makes the second io.max write fail after the
// first succeeded. io.max is a FIFO served by the test, so the test knows
// when Apply reads it for the second device and can swap a directory in
// before Apply writes. The rollback write to io.max then fails too, and its
// error shows the line Apply tried to restore.
func TestJobApplyIORollback(t *testing.T) {
	t.Parallel()
	const old = "8:0 rbps=1048576 wbps=max riops=max wiops=max\n8:16 rbps=max wbps=2097152 riops=max wiops=max\n"
	tests := []struct {
		name    string
		first   Device
		restore string
	}{
		{"device with a line", Device{8, 16}, "8:16 rbps=max wbps=2097152 riops=max wiops=max"},
		{"device without a line", Device{8, 32}, "8:32 rbps=max wbps=max riops=max wiops=max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := fakeJob(t, defaultsWithout(nil, "io.max"))
			ioMax := filepath.Join(j.path, "io.max")
			f := serveFIFO(t, ioMax, []fifoStep{
				{content: old},
				{write: true},
				{content: old, before: func() {
					// Apply holds the FIFO open and waits for
					// the content: replace the file.
					if err := os.Remove(ioMax); err != nil {
						t.Error(err)
					}
					if err := os.Mkdir(ioMax, 0o755); err != nil {
						t.Error(err)
					}
				}},
			})
			err := j.Apply(&Resources{
				CPU: &CPUMax{Quota: 150 * time.Millisecond},
				IO: []IOLimit{
					{Device: tt.first, ReadIOPS: Value(100)},
					{Device: Device{259, 0}, WriteBPS: Value(1 << 20)},
				},
			})
			got := f.wait(t)
			if want := tt.first.String() + " riops=100"; len(got) != 1 || got[0] != want {
				t.Errorf("io.max writes = %q, want [%q]", got, want)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "259:0 wbps=1048576" || fe.Path != ioMax || !errors.Is(err, unix.EISDIR) {
				t.Fatalf("Apply: %#v, want a write error for 259:0 on io.max", err)
			}
			errorContains(t, err, `roll back: write "`+tt.restore+`" to `+ioMax)
			checkWrites(t, filepath.Join(j.path, "cpu.max"), "max 100000\n", "150000 100000", "max 100000")
		})
	}
}

func TestIOMaxLine(t *testing.T) {
	t.Parallel()
	const content = "8:0 rbps=1048576 wbps=max riops=max wiops=max\n8:16 rbps=max wbps=max riops=100 wiops=max\n259:0 rbps=max wbps=2097152 riops=max wiops=50\n"
	tests := []struct {
		content string
		dev     Device
		want    string
	}{
		{content, Device{8, 0}, "8:0 rbps=1048576 wbps=max riops=max wiops=max"},
		{content, Device{8, 16}, "8:16 rbps=max wbps=max riops=100 wiops=max"},
		{content, Device{259, 0}, "259:0 rbps=max wbps=2097152 riops=max wiops=50"},
		// 8:1 is a prefix of 8:16's line but not its device.
		{content, Device{8, 1}, "8:1 rbps=max wbps=max riops=max wiops=max"},
		{content, Device{59, 0}, "59:0 rbps=max wbps=max riops=max wiops=max"},
		{"", Device{8, 0}, "8:0 rbps=max wbps=max riops=max wiops=max"},
		{"\n\n", Device{8, 0}, "8:0 rbps=max wbps=max riops=max wiops=max"},
		{"8:0 rbps=5", Device{8, 0}, "8:0 rbps=5"},
	}
	for _, tt := range tests {
		if got := ioMaxLine(tt.content, tt.dev); got != tt.want {
			t.Errorf("ioMaxLine(%q, %v) = %q, want %q", tt.content, tt.dev, got, tt.want)
		}
	}
}

func TestJobAccessors(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, kernelDefaults)
	j.owner = Owner{PID: 10, StartTime: 20}
	if j.Name() != "t" || j.Path() != j.d.path || j.FD() != j.d.fd || j.Owner() != (Owner{PID: 10, StartTime: 20}) {
		t.Errorf("accessors: %q %q %d %v", j.Name(), j.Path(), j.FD(), j.Owner())
	}
	var st unix.Stat_t
	if err := unix.Fstat(j.FD(), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("FD is not a descriptor of the job directory: %v", err)
	}
	if got, err := j.ReadFile("cpu.max"); err != nil || got != "max 100000" {
		t.Errorf("ReadFile(cpu.max) = %q, %v", got, err)
	}
	if _, err := j.ReadFile("../cpu.max"); err == nil {
		t.Error("ReadFile(../cpu.max) succeeded")
	}
}

func TestJobEvents(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, map[string]string{
		"cgroup.events": "populated 1\nfrozen 0\n",
		"memory.events": "low 0\nhigh 4\nmax 2\noom 1\noom_kill 1\noom_group_kill 0\n",
	})
	ev, err := j.Events()
	if err != nil || len(ev) != 2 || ev["populated"] != 1 || ev["frozen"] != 0 {
		t.Errorf("Events = %v, %v", ev, err)
	}
	mev, err := j.MemoryEvents()
	if err != nil || len(mev) != 6 || mev["high"] != 4 || mev["max"] != 2 || mev["oom_kill"] != 1 {
		t.Errorf("MemoryEvents = %v, %v", mev, err)
	}

	bad := fakeJob(t, map[string]string{"memory.events": "low 0\noom_kill many\n"})
	_, err = bad.MemoryEvents()
	errorContains(t, err, filepath.Join(bad.path, "memory.events"), `"oom_kill many"`)
	_, err = bad.Events()
	var fe *FileError
	if !errors.As(err, &fe) || fe.Path != filepath.Join(bad.path, "cgroup.events") {
		t.Errorf("Events without cgroup.events: %#v", err)
	}
}

func TestJobWaitEmpty(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, map[string]string{"cgroup.events": "populated 0\nfrozen 0\n"})
	ticks := 0
	if err := j.WaitEmpty(time.Second, func() { ticks++ }); err != nil {
		t.Fatal(err)
	}
	if ticks != 1 {
		t.Errorf("tick called %d times, want 1", ticks)
	}
	if err := j.WaitEmpty(time.Second, nil); err != nil {
		t.Errorf("WaitEmpty without tick: %v", err)
	}

	busy := fakeJob(t, map[string]string{"cgroup.events": "populated 1\nfrozen 0\n"})
	ticks = 0
	start := time.Now()
	err := busy.WaitEmpty(100*time.Millisecond, func() { ticks++ })
	errorContains(t, err, busy.path, "still has processes", "100ms")
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("WaitEmpty gave up after %v, before its timeout", d)
	}
	if ticks < 2 {
		t.Errorf("tick called %d times while waiting, want several", ticks)
	}

	gone := fakeJob(t, nil)
	if err := gone.WaitEmpty(time.Second, nil); !errors.Is(err, unix.ENOENT) {
		t.Errorf("WaitEmpty without cgroup.events: %v, want ENOENT", err)
	}
}

// WaitEmpty returns as soon as the kernel reports the cgroup empty.
func TestJobWaitEmptyNotices(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, map[string]string{"cgroup.events": "populated 1\nfrozen 0\n"})
	ticks := 0
	err := j.WaitEmpty(10*time.Second, func() {
		ticks++
		if ticks == 3 {
			if err := os.WriteFile(filepath.Join(j.path, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil || ticks != 3 {
		t.Errorf("WaitEmpty = %v after %d ticks, want nil after 3", err, ticks)
	}
}

func TestJobProcs(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, map[string]string{
		"cgroup.procs":       "100\n200\n",
		"child/cgroup.procs": "300\n",
	})
	j.mgr = loadManager(t, j.path)
	got, err := j.Procs()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]+got[1]+got[2] != 600 {
		t.Errorf("Procs = %v, want 100, 200 and 300", got)
	}
}

func TestJobKillWritesCgroupKill(t *testing.T) {
	t.Parallel()
	// cgroup.kill exists, so Kill only writes it: the pids listed are
	// never signalled by rsup itself. It writes it even when the listing
	// shows nothing, since the listing is only for the report.
	j := fakeJob(t, map[string]string{"cgroup.procs": "999999\n999998\n", "cgroup.kill": ""})
	j.mgr = loadManager(t, j.path)
	n, err := j.Kill()
	if err != nil || n != 2 {
		t.Errorf("Kill = %d, %v; want 2, nil", n, err)
	}
	checkWrites(t, filepath.Join(j.path, "cgroup.kill"), "", "1")

	empty := fakeJob(t, map[string]string{"cgroup.procs": "", "cgroup.kill": ""})
	empty.mgr = loadManager(t, empty.path)
	if n, err := empty.Kill(); n != 0 || err != nil {
		t.Errorf("Kill of an empty job = %d, %v", n, err)
	}
	checkWrites(t, filepath.Join(empty.path, "cgroup.kill"), "", "1")
}

// Without cgroup.kill (Linux < 5.14) Kill freezes the job, signals each
// process and thaws it. The process here is a real child of the test.
func TestJobKillFallsBackToFreezer(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	j := fakeJob(t, map[string]string{
		"cgroup.procs":  strconv.Itoa(cmd.Process.Pid) + "\n",
		"cgroup.freeze": "0\n",
		"cgroup.events": "populated 1\nfrozen 1\n",
	})
	j.mgr = loadManager(t, j.path)
	n, err := j.Kill()
	if err != nil || n != 1 {
		t.Fatalf("Kill = %d, %v; want 1, nil", n, err)
	}
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("child ended with %v, want SIGKILL", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child still runs after Kill")
	}
	checkWrites(t, filepath.Join(j.path, "cgroup.freeze"), "0\n", "1", "0")
}

func TestJobKillFrozenErrors(t *testing.T) {
	t.Parallel()
	// No freezer: nothing is signalled.
	j := fakeJob(t, map[string]string{"cgroup.procs": ""})
	j.mgr = loadManager(t, j.path)
	_, err := j.KillFrozen()
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "1" || fe.Path != filepath.Join(j.path, "cgroup.freeze") {
		t.Errorf("KillFrozen without cgroup.freeze: %#v", err)
	}

	// An empty job is frozen and thawed again.
	e := fakeJob(t, map[string]string{"cgroup.procs": "", "cgroup.freeze": "0\n", "cgroup.events": "populated 0\nfrozen 1\n"})
	e.mgr = loadManager(t, e.path)
	if n, err := e.KillFrozen(); n != 0 || err != nil {
		t.Errorf("KillFrozen of an empty job = %d, %v", n, err)
	}
	checkWrites(t, filepath.Join(e.path, "cgroup.freeze"), "0\n", "1", "0")

	// The thaw happens also when listing the processes fails.
	p := fakeJob(t, map[string]string{"cgroup.procs": "not-a-pid\n", "cgroup.freeze": "0\n", "cgroup.events": "populated 1\nfrozen 1\n"})
	p.mgr = loadManager(t, p.path)
	if _, err := p.KillFrozen(); err == nil {
		t.Error("KillFrozen with an unreadable cgroup.procs: no error")
	}
	checkWrites(t, filepath.Join(p.path, "cgroup.freeze"), "0\n", "1", "0")
}

func TestJobRemove(t *testing.T) {
	t.Parallel()
	j := fakeJob(t, nil)
	if err := os.MkdirAll(filepath.Join(j.path, "sub/leaf"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := j.Remove(time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("job directory still exists: %v", err)
	}
	if j.d.fd != -1 {
		t.Errorf("descriptor %d still open after Remove", j.d.fd)
	}
	// Removing again is not an error: the cgroup is gone.
	if err := j.Remove(time.Second); err != nil {
		t.Errorf("second Remove: %v", err)
	}

	k := fakeJob(t, map[string]string{"stray": ""})
	err := k.Remove(time.Second)
	errorContains(t, err, "remove job cgroup", k.path)
}

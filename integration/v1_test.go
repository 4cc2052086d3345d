//go:build integration

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The cgroup v1 backend on a hybrid or legacy host: the job gets one
// directory in each controller's hierarchy, nested under the cgroup the
// test itself runs in there, at <mount>/<own path>/<--cgroup-root>/<name>.
// Every test puts its jobs under "rsup-it-<pid>/<test name>" (relative to
// its own cgroups), and removes all of that again when it ends.

// v1JobCtls are the cgroup v1 hierarchies a job of rsup's is in: cpu and
// cpuacct for --cpu, memory, pids, blkio for the io limits, and freezer,
// through which rsup kills what the command leaves behind.
var v1JobCtls = []string{"cpu", "cpuacct", "memory", "pids", "blkio", "freezer"}

// v1Version selects the cgroup v1 backend explicitly. The default, auto,
// should pick it too on a hybrid host, but refuses a relative
// --cgroup-root there; TestV1AutoRelativeRoot covers that path alone, so
// that the other tests check the backend itself.
var v1Version = []string{"--cgroup-version", "1"}

// v1Args is the command line of `rsup run` for a job under rel.
func v1Args(rel string, flags []string, command []string) []string {
	a := append([]string{"run"}, v1Version...)
	a = append(a, "--cgroup-root", rel)
	a = append(a, flags...)
	a = append(a, "--")
	return append(a, command...)
}

// v1Layout is where a process sits in the cgroup hierarchies.
type v1Layout struct {
	// path is the cgroup path as /proc/PID/cgroup shows it, by
	// controller ("name=systemd" for named hierarchies, "" for cgroup2).
	path map[string]string
	// dir is that cgroup's directory, by cgroup v1 controller.
	dir map[string]string
}

// readV1Layout reads this process's cgroups and the cgroup v1 mounts.
func readV1Layout() (v1Layout, error) {
	l := v1Layout{path: map[string]string{}, dir: map[string]string{}}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return l, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			l.path[c] = f[2]
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return l, err
	}
	// "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS"
	for line := range strings.Lines(string(mi)) {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if sep < 5 || sep+3 >= len(f) || f[sep+1] != "cgroup" {
			continue
		}
		root, point := f[3], f[4]
		for _, opt := range strings.Split(f[sep+3], ",") {
			p, ok := l.path[opt]
			if !ok || opt == "" {
				continue
			}
			if _, dup := l.dir[opt]; dup {
				continue
			}
			// A mount of part of a hierarchy (in a container) shows
			// paths relative to its root.
			if root != "/" {
				p = strings.TrimPrefix(p, root)
			}
			l.dir[opt] = filepath.Join(point, p)
		}
	}
	return l, nil
}

// v1Reason says why this host cannot run the cgroup v1 tests, or "".
func v1Reason() string {
	if os.Geteuid() != 0 {
		return "needs root to create cgroups"
	}
	for _, c := range []string{"memory", "cpu", "cpuacct", "pids", "freezer", "blkio"} {
		p := filepath.Join(cgroupMount, c)
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil {
			return fmt.Sprintf("not a hybrid or legacy cgroup host: statfs %s: %v", p, err)
		}
		if st.Type != unix.CGROUP_SUPER_MAGIC {
			return fmt.Sprintf("not a hybrid or legacy cgroup host: %s is not a cgroup v1 mount (f_type %#x)", p, st.Type)
		}
	}
	return ""
}

// requireV1 skips t unless cpu, cpuacct, memory, pids, freezer and blkio
// are cgroup v1 hierarchies. It returns the --cgroup-root for the test's
// jobs, "rsup-it-<pid>/<test>", and that root's directory in each of the
// job's hierarchies (not created: rsup creates them). When the test ends,
// it fails the test if a job directory is left in any of them, kills
// whatever is inside, removes them deepest first, removes rsup-it-<pid>,
// and then checks that nothing of rsup-it-<pid> remains.
func requireV1(t *testing.T) (rel string, dirs map[string]string) {
	t.Helper()
	if r := v1Reason(); r != "" {
		t.Skip(r)
	}
	own, err := readV1Layout()
	if err != nil {
		t.Fatalf("read this process's cgroups: %v", err)
	}
	top := fmt.Sprintf("rsup-it-%d", os.Getpid())
	rel = top + "/" + regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(t.Name(), "_")
	dirs = map[string]string{}
	tops := map[string]string{}
	for _, c := range v1JobCtls {
		d, ok := own.dir[c]
		if !ok {
			t.Fatalf("no cgroup v1 mount with the %s controller in /proc/self/mountinfo", c)
		}
		dirs[c] = filepath.Join(d, rel)
		tops[c] = filepath.Join(d, top)
	}
	// Registered first, so run last (LIFO): after the removal below.
	t.Cleanup(func() {
		for _, p := range distinctDirs(tops) {
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s remains after the test's cleanup (lstat: %v)", p, err)
			}
		}
	})
	t.Cleanup(func() {
		for _, p := range jobDirsLeft(dirs) {
			t.Errorf("job cgroup %s was left behind", p)
		}
		for _, d := range distinctDirs(dirs) {
			if err := removeV1Tree(d); err != nil {
				t.Errorf("remove the test's cgroups: %v", err)
			}
		}
		for _, p := range distinctDirs(tops) {
			// Other tests of this process run one after the other, so
			// the parent is empty now.
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("rmdir %s: %v", p, err)
			}
		}
	})
	return rel, dirs
}

// distinctDirs returns the map's directories, each once, sorted.
func distinctDirs(m map[string]string) []string {
	var out []string
	for _, d := range m {
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// jobDirsLeft lists the directories below the test's root in each
// hierarchy: job directories rsup should have removed.
func jobDirsLeft(dirs map[string]string) []string {
	var left []string
	for _, d := range distinctDirs(dirs) {
		entries, _ := os.ReadDir(d)
		for _, e := range entries {
			if e.IsDir() {
				left = append(left, filepath.Join(d, e.Name()))
			}
		}
	}
	return left
}

// removeV1Tree removes a cgroup v1 directory and those below it, deepest
// first, after SIGKILLing every process inside until none is left. It does
// not use the freezer, which is part of what is tested.
func removeV1Tree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeV1Tree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	procs := filepath.Join(dir, "cgroup.procs")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		pids, err := readPidFile(procs)
		if err != nil || len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still holds pids %v after 5s of SIGKILL", dir, pids)
		}
		for _, p := range pids {
			_ = unix.Kill(p, unix.SIGKILL)
		}
	}
	var rerr error
	for range 200 {
		if rerr = unix.Rmdir(dir); rerr == nil || errors.Is(rerr, unix.ENOENT) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("rmdir %s: %w", dir, rerr)
}

func readPidFile(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

// checkNoJobDirs fails the test if the run left a job directory.
func checkNoJobDirs(t *testing.T, dirs map[string]string) {
	t.Helper()
	if left := jobDirsLeft(dirs); len(left) > 0 {
		t.Errorf("rsup left job directories: %v", left)
	}
}

// v1CgroupsHelper prints this process's /proc/self/cgroup on one line,
// "cgroups pid=N ID:CTLS:PATH;...", then starts n children at once that do
// the same, and copies their lines.
func v1CgroupsHelper(n string) int {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cgroups-v1:", err)
		return 3
	}
	fmt.Printf("cgroups pid=%d %s\n", os.Getpid(), strings.Join(strings.Fields(string(b)), ";"))
	children, _ := strconv.Atoi(n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for range children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := exec.Command(testBinOrSelf())
			c.Env = append(os.Environ(), helperEnv+"=cgroups-v1")
			out, err := c.Output()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			os.Stdout.Write(out)
		}()
	}
	wg.Wait()
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "cgroups-v1: %d children failed\n", failed)
		return 3
	}
	return 0
}

// v1FilesHelper prints "FILE: VALUE" for cgroup v1 interface files of this
// process's own directories, each in the hierarchy its prefix names
// (cpu.shares in cpu's), found through /proc/self/cgroup and mountinfo.
func v1FilesHelper(files []string) int {
	l, err := readV1Layout()
	if err != nil {
		fmt.Fprintln(os.Stderr, "files-v1:", err)
		return 3
	}
	for _, f := range files {
		ctl, _, _ := strings.Cut(f, ".")
		d, ok := l.dir[ctl]
		if !ok {
			fmt.Printf("%s: no cgroup v1 %s hierarchy\n", f, ctl)
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, f))
		if err != nil {
			fmt.Printf("%s: %v\n", f, err)
			continue
		}
		fmt.Printf("%s: %s\n", f, strings.Join(strings.Fields(string(b)), " "))
	}
	return 0
}

// procState is the state letter of /proc/PID/stat ("Z" for a zombie), or
// "" when there is no such process.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// "PID (COMM) STATE ...": COMM may hold spaces and parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
		if f := strings.Fields(string(b[i+1:])); len(f) > 0 {
			return f[0]
		}
	}
	return "?"
}

// procsInTree lists the processes named comm whose cgroups (any
// hierarchy) lie under the cgroup path part sub.
func procsInTree(comm, sub string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		if cg, err := os.ReadFile("/proc/" + e.Name() + "/cgroup"); err == nil && strings.Contains(string(cg), sub) {
			out = append(out, pid)
		}
	}
	return out
}

// 1. The command, and 20 children it starts at once, are in the job's
// directory in each of its six hierarchies from their first instruction;
// the hierarchies rsup does not use are left as they were.
func TestV1BornInJob(t *testing.T) {
	rel, dirs := requireV1(t)
	own, err := readV1Layout()
	if err != nil {
		t.Fatal(err)
	}
	r := rsup(t, v1Args(rel, []string{"--name", "born"}, helper("cgroups-v1", "20"))...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := map[string]string{}
	for c, p := range own.path {
		want[c] = p // unchanged
	}
	for _, c := range v1JobCtls {
		want[c] = filepath.Join(own.path[c], rel, "born")
	}
	in, total := 0, 0
	for line := range strings.Lines(r.stdout) {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cgroups ")
		if !ok {
			continue
		}
		total++
		pid, list, _ := strings.Cut(rest, " ")
		good := true
		seen := map[string]bool{}
		for _, e := range strings.Split(list, ";") {
			f := strings.SplitN(e, ":", 3)
			if len(f) != 3 {
				t.Errorf("%s: bad /proc/self/cgroup line %q", pid, e)
				good = false
				continue
			}
			for _, c := range strings.Split(f[1], ",") {
				seen[c] = true
				w, known := want[c]
				if !known {
					t.Errorf("%s: hierarchy %q is not one of the test's own", pid, c)
					good = false
				} else if f[2] != w {
					t.Errorf("%s: in %s of hierarchy %q, want %s", pid, f[2], c, w)
					good = false
				}
			}
		}
		for _, c := range v1JobCtls {
			if !seen[c] {
				t.Errorf("%s: no %s line in /proc/self/cgroup", pid, c)
				good = false
			}
		}
		if good {
			in++
		}
	}
	if total != 21 {
		t.Errorf("got %d cgroup reports, want 21 (command + 20 children):\n%s", total, r.stdout)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: %d of %d processes (command + 20 children) in the job's directory of all %d hierarchies (memory %s, cpu %s); other hierarchies unchanged; wall %v",
		in, total, len(v1JobCtls), want["memory"], want["cpu"], r.wall.Round(time.Millisecond))
}

// 2. A job that touches 256 MiB under --memory 64M is OOM-killed, and its
// peak usage stays at the limit.
func TestV1MemoryLimitOOMKill(t *testing.T) {
	rel, dirs := requireV1(t)
	r := rsup(t, v1Args(rel, []string{"-v", "--name", "hog", "--memory", "64M"}, helper("alloc", "256M"))...)
	if r.code != 137 {
		t.Errorf("exit %d, want 137 (SIGKILL by the OOM killer); stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stdout, "allocated all") {
		t.Errorf("the job allocated all 256 MiB under a 64 MiB limit:\n%s", r.stdout)
	}
	oomLine := regexp.MustCompile(`(?m)^rsup: job hog: killed by the kernel OOM killer at memory.limit_in_bytes=64M \(67108864 bytes\), oom_kill=(\d+)$`)
	m := oomLine.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no OOM line on stderr:\n%s", r.stderr)
	}
	if m[1] != "1" {
		t.Errorf("oom_kill=%s, want 1", m[1])
	}
	// memory.max_usage_in_bytes on v1. A task being OOM-killed may charge
	// a few pages past the limit to exit; more would mean it did not hold.
	peak := summaryValue(t, r.stderr, "memory.peak")
	const slack = 64 << 10
	if peak > 64<<20+slack || peak < 0.9*64*(1<<20) {
		t.Errorf("memory.peak %.0f is not close to the 64 MiB limit (want 0.9*64 MiB .. 64 MiB + %d)", peak, slack)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: exit %d, oom_kill=%s, memory.peak=%.0f bytes (limit 67108864, %+.0f), last progress %q, wall %v",
		r.code, m[1], peak, peak-64<<20, lastLine(r.stdout), r.wall.Round(time.Millisecond))
}

// 3. --cpu 50% (cpu.cfs_quota_us) holds two spinning threads to half a CPU.
func TestV1CPUQuota(t *testing.T) {
	rel, dirs := requireV1(t)
	r := rsup(t, v1Args(rel, []string{"-v", "--cpu", "50%"}, helper("spin", "2", "4s"))...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`cpu=([0-9.]+)s wall=([0-9.]+)s ratio=([0-9.]+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no spin report:\n%s", r.stdout)
	}
	ratio, _ := strconv.ParseFloat(m[3], 64)
	jobCPU := summaryValue(t, r.stderr, "cpu")
	jobWall := summaryValue(t, r.stderr, "wall")
	checkNoJobDirs(t, dirs)
	t.Logf("measured: 2 threads under --cpu 50%%: cpu %ss / wall %ss = %.3f (rsup's summary: cpu %.3fs over %.3fs = %.3f)",
		m[1], m[2], ratio, jobCPU, jobWall, jobCPU/jobWall)
	if ratio < 0.40 || ratio > 0.60 {
		t.Errorf("cpu/wall ratio %.3f outside 0.40..0.60", ratio)
	}
}

// 4. --pids 20 (pids.max) stops a fork bomb with EAGAIN; the job itself
// carries on, and nothing the bomb started survives rsup.
func TestV1PidsForkBomb(t *testing.T) {
	rel, dirs := requireV1(t)
	r := rsup(t, v1Args(rel, []string{"-v", "--pids", "20"}, helper("forkbomb", "200"))...)
	report, killed, lat := checkForkBomb(t, r)
	if left := procsInTree("sleep", rel); len(left) > 0 {
		t.Errorf("sleep processes of the bomb survive in the test's cgroups: pids %v", left)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: %s; leftovers killed %d; rsup done in %v; /bin/true on the host took %v after the bomb",
		report, killed, r.wall.Round(time.Millisecond), lat.Round(time.Microsecond))
}

// 5. A setsid'd, double-forked daemon is killed when the command exits,
// and rsup does not wait for the stdout pipe it holds.
func TestV1LeftoverDaemonKilled(t *testing.T) {
	rel, dirs := requireV1(t)
	pidFile := filepath.Join(t.TempDir(), "daemon.pid")
	r := rsup(t, v1Args(rel, []string{"-v", "--name", "daemon"}, helper("daemonize", pidFile))...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("daemon did not start: %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	// rsup, the subreaper, may exit before reaping the daemon it killed;
	// the zombie then waits for init. A zombie is dead.
	state := procState(pid)
	alive := state != "" && state != "Z"
	if alive {
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		t.Errorf("daemon pid %d survived rsup (state %s), cgroups:\n%s", pid, state, cg)
	}
	killed := summaryValue(t, r.stderr, "killed")
	if killed != 1 {
		t.Errorf("rsup reported %.0f leftovers killed, want 1", killed)
	}
	// The daemon would sleep five minutes with rsup's stdout open.
	if r.wall > 5*time.Second {
		t.Errorf("rsup took %v to finish after the command exited", r.wall)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: daemon pid %d alive after rsup: %v (state %q: gone, or Z awaiting init); leftovers killed %.0f; rsup (and the daemon's pipe) done in %v",
		pid, alive, state, killed, r.wall.Round(time.Millisecond))
}

// 6. Exit statuses pass through the shim: codes, deaths by signal, and
// the codes for a command that cannot be started.
func TestV1ExitStatuses(t *testing.T) {
	rel, dirs := requireV1(t)
	start := time.Now()
	runs := 0
	for _, code := range []int{0, 1, 7, 42, 255} {
		r := rsup(t, v1Args(rel, nil, []string{"/bin/sh", "-c", "exit " + strconv.Itoa(code)})...)
		runs++
		if r.code != code {
			t.Errorf("exit %d came back as %d: %s", code, r.code, r.stderr)
		}
	}
	for _, sig := range []unix.Signal{unix.SIGTERM, unix.SIGKILL} {
		r := rsup(t, v1Args(rel, nil, helper("raise", unix.SignalName(sig)))...)
		runs++
		if r.code != 128+int(sig) {
			t.Errorf("death by %v gave %d, want %d: %s", sig, r.code, 128+int(sig), r.stderr)
		}
	}
	// An orphan the command leaves does not take the command's status.
	r := rsup(t, v1Args(rel, nil, []string{"/bin/sh", "-c", "(sleep 0.3 &); exit 7"})...)
	runs++
	if r.code != 7 {
		t.Errorf("command with an orphan gave %d, want 7: %s", r.code, r.stderr)
	}
	r = rsup(t, v1Args(rel, nil, []string{"/no/such/command"})...)
	runs++
	if r.code != 127 {
		t.Errorf("missing command gave %d, want 127: %s", r.code, r.stderr)
	}
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = rsup(t, v1Args(rel, nil, []string{notExec})...)
	runs++
	if r.code != 126 {
		t.Errorf("non-executable command gave %d, want 126: %s", r.code, r.stderr)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: codes 0 1 7 42 255 passed through, SIGTERM -> 143, SIGKILL -> 137, orphan -> 7, missing -> 127, not executable -> 126; %d runs, %v per run",
		runs, (time.Since(start) / time.Duration(runs)).Round(time.Millisecond))
}

// 7. Each signal sent to rsup reaches the command exactly once; SIGURG and
// SIGCHLD are not forwarded.
func TestV1SignalsForwardedOnce(t *testing.T) {
	rel, dirs := requireV1(t)
	got := checkSignalsForwardedOnce(t, exec.Command(rsupBin, v1Args(rel, []string{"-v"}, helper("signals"))...))
	checkNoJobDirs(t, dirs)
	t.Logf("measured: arrivals per signal sent to rsup: %v", got)
}

// 8. What cgroup v1 cannot do is refused before the command runs: exit
// 125, a message that says why, and no job directory.
func TestV1Refusals(t *testing.T) {
	rel, dirs := requireV1(t)
	marker := filepath.Join(t.TempDir(), "ran")
	r := rsup(t, v1Args(rel, []string{"--name", "high", "--memory-high", "32M"}, []string{"/bin/touch", marker})...)
	if r.code != 125 {
		t.Errorf("--memory-high gave exit %d, want 125", r.code)
	}
	mustContain(t, "stderr of --memory-high", r.stderr, "cgroup v2 only")
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran despite --memory-high being refused")
	}
	checkNoJobDirs(t, dirs)
	highMsg := strings.TrimSpace(r.stderr)

	// An absolute root, with the version chosen explicitly and by auto.
	abs := filepath.Join(t.TempDir(), "abs-root")
	var absMsgs []string
	for _, version := range []string{"1", "auto"} {
		r := rsup(t, "run", "--cgroup-version", version, "--cgroup-root", abs, "--memory", "64M", "--", "/bin/touch", marker)
		if r.code != 125 {
			t.Errorf("--cgroup-version %s --cgroup-root %s gave exit %d, want 125: %s", version, abs, r.code, r.stderr)
		}
		mustContain(t, "stderr of an absolute --cgroup-root", r.stderr, "relative")
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("the command ran with an absolute --cgroup-root (--cgroup-version %s)", version)
		}
		if _, err := os.Lstat(abs); err == nil {
			t.Errorf("rsup created %s", abs)
		}
		absMsgs = append(absMsgs, version+": "+strings.TrimSpace(r.stderr))
	}
	t.Logf("measured: --memory-high -> exit 125, %q; absolute root -> exit 125, %q", highMsg, absMsgs)
}

// 9. The limits asked for are the ones the kernel reports in the job's v1
// files while it runs.
func TestV1LimitsReadBack(t *testing.T) {
	rel, dirs := requireV1(t)
	flags := []string{"--cpu", "150%", "--cpu-period", "50ms", "--cpu-weight", "250",
		"--memory", "96M", "--memory-low", "8M", "--pids", "64"}
	files := []string{"cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares", "memory.limit_in_bytes",
		"memory.memsw.limit_in_bytes", "memory.soft_limit_in_bytes", "pids.max"}
	want := []string{"cpu.cfs_quota_us: 75000", "cpu.cfs_period_us: 50000", "cpu.shares: 2560",
		"memory.limit_in_bytes: 100663296", "memory.memsw.limit_in_bytes: 100663296",
		"memory.soft_limit_in_bytes: 8388608", "pids.max: 64"}
	// The blkio throttles too, where the host has a disk to name; the job
	// does no I/O under them.
	var st unix.Stat_t
	if err := unix.Stat("/dev/vda", &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK {
		dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		flags = append(flags, "--io-write-bps", "/dev/vda=4M", "--io-write-iops", "/dev/vda=100")
		files = append(files, "blkio.throttle.write_bps_device", "blkio.throttle.write_iops_device")
		want = append(want, "blkio.throttle.write_bps_device: "+dev+" 4194304", "blkio.throttle.write_iops_device: "+dev+" 100")
	}
	r := rsup(t, v1Args(rel, flags, helper("files-v1", files...))...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, w := range want {
		mustContain(t, "limits read back from the job's v1 directories", r.stdout, w)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: limits read back:\n%s", r.stdout)
}

// 10. A policy rule kills a job whose memory use crosses its critical
// threshold: the monitor must read the job's v1 memory usage for that.
func TestV1PolicyKill(t *testing.T) {
	rel, dirs := requireV1(t)
	const pol = `
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.3, critical = 0.5 }

[[rule]]
name = "v1-crit"
resource = "memory"
state = "critical"
for = "200ms"
actions = [ { type = "kill", signal = "SIGTERM", grace = "2s" } ]
`
	file := filepath.Join(t.TempDir(), "v1kill.toml")
	if err := os.WriteFile(file, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	// 100 MiB, 1 MiB every 20ms; critical is 64 MiB. Without a kill the
	// job ends by itself after its hold.
	r := rsup(t, v1Args(rel, []string{"--name", "v1kill", "--policy", file, "--interval", "100ms"},
		helper("policy-job", "alloc:100M:20ms", "hold:2s"))...)
	checkNoJobDirs(t, dirs)
	killLine := `rsup: job v1kill: killed by policy rule "v1-crit"`
	if r.code != 143 || !strings.Contains(r.stderr, killLine) {
		if line := lastMatchingLine(r.stderr, "sample failed"); line != "" {
			t.Skipf("monitor v1 reader not in place yet: no kill (exit %d after %v), and rsup's monitor logged: %s", r.code, r.wall.Round(time.Millisecond), line)
		}
		t.Fatalf("exit %d after %v, want 143 and %q on stderr\nstdout:\n%s\nstderr:\n%s", r.code, r.wall.Round(time.Millisecond), killLine, r.stdout, r.stderr)
	}
	allocDone := strings.Contains(r.stdout, "alloc 100M")
	if allocDone {
		t.Errorf("the job allocated all 100 MiB before the kill:\n%s", r.stdout)
	}
	t.Logf("measured: exit %d after %v; kill line %q; job got through its allocation: %v",
		r.code, r.wall.Round(time.Millisecond), lastMatchingLine(r.stderr, "killed by policy rule"), allocDone)
}

func lastMatchingLine(s, sub string) string {
	var out string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = strings.TrimSpace(l)
		}
	}
	return out
}

// 11. With the default --cgroup-version auto, a hybrid host gets the
// cgroup v1 backend, and --cgroup-root is relative to rsup's own cgroups.
func TestV1AutoRelativeRoot(t *testing.T) {
	rel, dirs := requireV1(t)
	own, err := readV1Layout()
	if err != nil {
		t.Fatal(err)
	}
	r := rsup(t, append([]string{"run", "--cgroup-root", rel, "--name", "auto", "--"}, helper("cgroups-v1")...)...)
	if r.code != 0 {
		t.Fatalf("rsup run --cgroup-root %s (--cgroup-version auto) on a hybrid host: exit %d, stderr:\n%s", rel, r.code, r.stderr)
	}
	want := filepath.Join(own.path["memory"], rel, "auto")
	found := ""
	for _, e := range strings.Split(strings.TrimSpace(r.stdout), ";") {
		if f := strings.SplitN(e, ":", 3); len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			found = f[2]
		}
	}
	if found != want {
		t.Errorf("the command's memory cgroup is %q, want %s:\n%s", found, want, r.stdout)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: auto picked cgroup v1, the command's memory cgroup %s, wall %v", found, r.wall.Round(time.Millisecond))
}

// pidLayout returns pid's cgroup path by v1 controller.
func pidLayout(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 {
			for _, c := range strings.Split(f[1], ",") {
				out[c] = f[2]
			}
		}
	}
	return out
}

// rsup track on cgroup v1: a running process is moved into the job in
// every hierarchy, with its limits, and Ctrl-C puts it back where it was
// in each.
func TestV1Track(t *testing.T) {
	rel, dirs := requireV1(t)
	sleeper := startHelper(t, "sleep", "60s")
	pid := sleeper.Process.Pid
	before := pidLayout(t, pid)
	b := startRsup(t, append(append([]string{"track"}, v1Version...), "--cgroup-root", rel, "--name", "adopt",
		"--memory", "96M", "--pids", "50", "--cpu", "50%", strconv.Itoa(pid))...)
	b.waitFor(t, "memory.current starts at")
	in := pidLayout(t, pid)
	moved := 0
	for _, c := range []string{"cpu", "cpuacct", "memory", "pids", "blkio", "freezer"} {
		want := filepath.Join(before[c], rel, "adopt")
		if c != "memory" {
			// rsup nests under its own cgroup, which is this test's.
			want = filepath.Join(readOwnPath(t, c), rel, "adopt")
		}
		if in[c] != want {
			t.Errorf("%s: pid %d is in %s, want %s", c, pid, in[c], want)
		} else {
			moved++
		}
	}
	mem := filepath.Join(dirs["memory"], "adopt")
	limits := fmt.Sprintf("limit=%s pids=%s quota=%s", readCg(t, mem+"/memory.limit_in_bytes"),
		readCg(t, filepath.Join(dirs["pids"], "adopt", "pids.max")), readCg(t, filepath.Join(dirs["cpu"], "adopt", "cpu.cfs_quota_us")))
	if limits != "limit=100663296 pids=50 quota=50000" {
		t.Errorf("limits read back: %s", limits)
	}
	if err := b.cmd.Process.Signal(unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t); code != 0 {
		t.Errorf("rsup track exited %d after Ctrl-C:\n%s", code, b.stderr())
	}
	after := pidLayout(t, pid)
	for c, p := range before {
		if after[c] != p {
			t.Errorf("%s: pid %d went back to %s, want %s", c, pid, after[c], p)
		}
	}
	mustContain(t, "stderr", b.stderr(), "returned 1 process(es) to their original cgroups")
	checkNoJobDirs(t, dirs)
	t.Logf("measured: moved in %d of 6 hierarchies; limits %s; after Ctrl-C back in its own cgroups: %v", moved, limits, after["memory"] == before["memory"])
}

// readOwnPath is this process's cgroup path in controller's hierarchy.
func readOwnPath(t *testing.T, controller string) string {
	t.Helper()
	return pidLayout(t, os.Getpid())[controller]
}

// With neither a cgroup v2 that has the controllers nor the v1
// hierarchies (here: a mount namespace where /sys/fs/cgroup is an empty
// tmpfs), rsup fails closed before the command runs.
func TestNoBackendRefuses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a mount namespace")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare(1) not installed")
	}
	marker := filepath.Join(t.TempDir(), "ran")
	script := `mount -t tmpfs none /sys/fs/cgroup && exec "$0" run --memory 64M -- touch "$1"`
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, rsupBin, marker)
	r := rsupCmd(t, cmd)
	if r.code != 125 {
		t.Errorf("exit %d, want 125:\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran without any cgroup to hold it")
	}
	mustContain(t, "stderr", r.stderr, "host cgroup mode")
	t.Logf("measured: exit %d; message: %s", r.code, strings.TrimSpace(r.stderr))
}

// blkio throttles I/O that reaches the device from the job: O_DIRECT
// writes to a file on the root disk under --io-write-bps take their time;
// the same amount written through the page cache is not held back, since
// writeback runs outside the job (a cgroup v1 limit; v2 throttles both).
func TestV1IOWriteThrottle(t *testing.T) {
	rel, dirs := requireV1(t)
	var st unix.Stat_t
	dir := t.TempDir()
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev))
	if _, err := os.Stat(fmt.Sprintf("/sys/dev/block/%s/partition", dev)); err == nil {
		t.Skipf("%s is on partition %s; blkio throttles whole disks", dir, dev)
	}
	limit := []string{"--io-write-bps", dev + "=4M"}
	direct := rsup(t, v1Args(rel, append([]string{"-v", "--name", "direct"}, limit...), helper("odirect", filepath.Join(dir, "direct"), "16M"))...)
	if direct.code != 0 {
		t.Fatalf("O_DIRECT writer: exit %d\n%s\n%s", direct.code, direct.stdout, direct.stderr)
	}
	buffered := rsup(t, v1Args(rel, append([]string{"--name", "buffered"}, limit...),
		[]string{"dd", "if=/dev/zero", "of=" + filepath.Join(dir, "buffered"), "bs=1M", "count=16"})...)
	if buffered.code != 0 {
		t.Fatalf("buffered writer: exit %d\n%s", buffered.code, buffered.stderr)
	}
	checkNoJobDirs(t, dirs)
	t.Logf("measured: 16 MiB at --io-write-bps %s=4M: O_DIRECT %v (%s); buffered %v (not throttled on cgroup v1)",
		dev, direct.wall.Round(time.Millisecond), strings.TrimSpace(direct.stdout), buffered.wall.Round(time.Millisecond))
	if direct.wall < 3200*time.Millisecond || direct.wall > 10*time.Second {
		t.Errorf("16 MiB of O_DIRECT writes at 4 MiB/s took %v, want about 4s", direct.wall)
	}
}

// track --keep needs marks that cgroup v1 cannot hold: refused up front,
// nothing moved.
func TestV1TrackKeepRefused(t *testing.T) {
	rel, dirs := requireV1(t)
	sleeper := startHelper(t, "sleep", "30s")
	before := pidLayout(t, sleeper.Process.Pid)
	r := rsup(t, append(append([]string{"track"}, v1Version...), "--cgroup-root", rel, "--keep", strconv.Itoa(sleeper.Process.Pid))...)
	if r.code != 125 {
		t.Errorf("exit %d, want 125\n%s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "--keep")
	if after := pidLayout(t, sleeper.Process.Pid); after["memory"] != before["memory"] || after["pids"] != before["pids"] {
		t.Errorf("the process was moved: %v -> %v", before, after)
	}
	checkNoJobDirs(t, dirs)
}

//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// bgRsup is an rsup running in the background whose stderr is collected.
type bgRsup struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	err  strings.Builder
	done chan struct{}
}

func startRsup(t *testing.T, args ...string) *bgRsup {
	t.Helper()
	b := &bgRsup{cmd: exec.Command(rsupBin, args...), done: make(chan struct{})}
	pipe, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(b.done)
		r := bufio.NewReader(pipe)
		for {
			line, err := r.ReadString('\n')
			b.mu.Lock()
			b.err.WriteString(line)
			b.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
		_ = b.cmd.Wait()
	})
	return b
}

func (b *bgRsup) stderr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err.String()
}

// waitFor waits until rsup's stderr contains s.
func (b *bgRsup) waitFor(t *testing.T, s string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(b.stderr(), s) {
			return
		}
	}
	t.Fatalf("rsup never said %q:\n%s", s, b.stderr())
}

// wait waits for rsup to exit and returns its status.
func (b *bgRsup) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(time.Minute):
		t.Fatalf("rsup did not exit:\n%s", b.stderr())
	}
	_ = b.cmd.Wait()
	return b.cmd.ProcessState.ExitCode()
}

func startHelper(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(testBin, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func readCg(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// track 1. A running sleeper is adopted with its limits, and rsup ends
// when it exits.
func TestTrackAdoptsSleeper(t *testing.T) {
	root := requireV2(t)
	sleeper := startHelper(t, "sleep", "4s")
	pid := sleeper.Process.Pid
	before := cgroupOf(t, pid)
	rep := filepath.Join(t.TempDir(), "report.json")
	b := startRsup(t, "track", "-v", "--cgroup-root", root, "--name", "adopt", "--memory", "96M", "--pids", "50", "--cpu", "50%",
		"--interval", "100ms", "--report", rep, strconv.Itoa(pid))
	b.waitFor(t, "memory.current starts at")
	job := filepath.Join(root, "adopt")
	if cg := cgroupOf(t, pid); cg != strings.TrimPrefix(job, cgroupMount) {
		t.Fatalf("pid %d is in %s, want %s", pid, cg, job)
	}
	// Every thread moved with the process.
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		if cg := readCg(t, fmt.Sprintf("/proc/%d/task/%s/cgroup", pid, task.Name())); cg != "0::"+strings.TrimPrefix(job, cgroupMount) {
			t.Errorf("thread %s of pid %d is in %s", task.Name(), pid, cg)
		}
	}
	limits := fmt.Sprintf("memory.max=%s pids.max=%s cpu.max=%s memory.swap.max=%s",
		readCg(t, job+"/memory.max"), readCg(t, job+"/pids.max"), readCg(t, job+"/cpu.max"), readCg(t, job+"/memory.swap.max"))
	if limits != "memory.max=100663296 pids.max=50 cpu.max=50000 100000 memory.swap.max=0" {
		t.Errorf("limits read back: %s", limits)
	}
	mustContain(t, "stderr", b.stderr(), "VmRSS of")
	mustContain(t, "stderr", b.stderr(), "does not move memory already charged")
	_ = sleeper.Wait()
	exited := time.Now()
	code := b.wait(t)
	lag := time.Since(exited)
	if code != 0 {
		t.Errorf("rsup track exited %d:\n%s", code, b.stderr())
	}
	if _, err := os.Stat(job); !os.IsNotExist(err) {
		t.Errorf("job cgroup remains after the sleeper exited")
	}
	mustContain(t, "stderr", b.stderr(), "every tracked process has exited")
	var got struct {
		PIDs    []int              `json:"pids"`
		Samples uint64             `json:"samples"`
		Peaks   map[string]float64 `json:"peak_utilization"`
	}
	data, err := os.ReadFile(rep)
	if err := errors.Join(err, json.Unmarshal(data, &got)); err != nil || len(got.PIDs) != 1 || got.PIDs[0] != pid || got.Samples < 5 {
		t.Errorf("track report %s: %v", data, err)
	}
	t.Logf("measured: pid %d and its %d threads moved from %s to %s; limits %s; rsup exited %v after the sleeper", pid, len(tasks), before, strings.TrimPrefix(job, cgroupMount), limits, lag.Round(time.Millisecond))
}

// track 2. An adopted process that then allocates 256 MiB under --memory
// 64M is OOM-killed, and rsup says so.
func TestTrackOOM(t *testing.T) {
	root := requireV2(t)
	trigger := filepath.Join(t.TempDir(), "go")
	hog := startHelper(t, "alloc-on", trigger, "256M")
	b := startRsup(t, "track", "--cgroup-root", root, "--name", "hog", "--memory", "64M", strconv.Itoa(hog.Process.Pid))
	b.waitFor(t, "memory.current starts at")
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := hog.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
		t.Errorf("the hog ended with %v, want SIGKILL", err)
	}
	if code := b.wait(t); code != 0 {
		t.Errorf("rsup track exited %d", code)
	}
	mustContain(t, "stderr", b.stderr(), "rsup: job hog: the kernel OOM killer killed 1 of its processes at memory.max=64M (67108864 bytes), oom_kill=1")
	t.Logf("measured: adopted hog ended by %v; rsup reported:\n%s", err, b.stderr())
}

// descendants lists pid's descendants from /proc.
func descendants(pid int) []int {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		pp, _ := strconv.Atoi(f[1])
		parent[p] = pp
	}
	var out []int
	for p := range parent {
		for a := parent[p]; a > 1; a = parent[a] {
			if a == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// track 3. --children adopts a shell, its three children, and a child
// that keeps forking while the walk runs; track 4. Ctrl-C returns them
// all to where they were.
func TestTrackChildrenAndStop(t *testing.T) {
	root := requireV2(t)
	sh := exec.Command("/bin/sh", "-c", "sleep 300 & sleep 300 & sleep 300 & (while :; do sleep 0.01; done) & wait")
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, p := range descendants(sh.Process.Pid) {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		_ = sh.Process.Kill()
		_ = sh.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); len(descendants(sh.Process.Pid)) < 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the shell did not start its children")
		}
	}
	origin := cgroupOf(t, sh.Process.Pid)
	b := startRsup(t, "track", "--children", "--cgroup-root", root, "--name", "tree", "--pids", "100", strconv.Itoa(sh.Process.Pid))
	b.waitFor(t, "--children: adopted")
	job := strings.TrimPrefix(filepath.Join(root, "tree"), cgroupMount)
	// Every descendant, including the ones the loop forks from now on,
	// is in the job.
	var in, out int
	for range 20 {
		for _, p := range append(descendants(sh.Process.Pid), sh.Process.Pid) {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p))
			if err != nil {
				continue // exited
			}
			if strings.TrimSpace(strings.TrimPrefix(string(b), "0::")) == job {
				in++
			} else {
				out++
				t.Errorf("pid %d is outside the job: %s", p, b)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	report := lastLine(strings.Split(b.stderr(), "--children:")[1])
	if err := b.cmd.Process.Signal(unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := b.wait(t); code != 0 {
		t.Errorf("rsup track exited %d after Ctrl-C:\n%s", code, b.stderr())
	}
	mustContain(t, "stderr", b.stderr(), "returned")
	back := 0
	for _, p := range append(descendants(sh.Process.Pid), sh.Process.Pid) {
		if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p)); err == nil {
			if strings.TrimSpace(strings.TrimPrefix(string(cg), "0::")) != origin {
				t.Errorf("after Ctrl-C pid %d is in %s, not back in %s", p, cg, origin)
			} else {
				back++
			}
		}
	}
	if _, err := os.Stat(filepath.Join(root, "tree")); !os.IsNotExist(err) {
		t.Error("job cgroup remains after Ctrl-C")
	}
	t.Logf("measured: --children report %q; 20 samples: %d process observations in the job, %d outside; after Ctrl-C %d processes back in %s",
		strings.TrimSpace(report), in, out, back, origin)
}

// track 4b. --keep leaves the processes fenced when rsup stops.
func TestTrackKeep(t *testing.T) {
	root := requireV2(t)
	sleeper := startHelper(t, "sleep", "1m")
	b := startRsup(t, "track", "--keep", "--cgroup-root", root, "--name", "kept", "--memory", "50M", strconv.Itoa(sleeper.Process.Pid))
	b.waitFor(t, "memory.current starts at")
	_ = b.cmd.Process.Signal(unix.SIGTERM)
	if code := b.wait(t); code != 0 {
		t.Errorf("exit %d", code)
	}
	job := filepath.Join(root, "kept")
	mustContain(t, "stderr", b.stderr(), "stay fenced with their limits in "+job)
	if cg := cgroupOf(t, sleeper.Process.Pid); cg != strings.TrimPrefix(job, cgroupMount) {
		t.Errorf("--keep: pid is in %s", cg)
	}
	if v := readCg(t, job+"/memory.max"); v != "52428800" {
		t.Errorf("--keep: memory.max is %s", v)
	}
	t.Logf("measured: after SIGTERM with --keep, pid %d still in %s with memory.max=%s", sleeper.Process.Pid, job, readCg(t, job+"/memory.max"))
}

// track 5. Every refusal exits 125 with its message and leaves no cgroup.
func TestTrackRefusals(t *testing.T) {
	root := requireV2(t)
	busy := startRsup(t, "run", "--cgroup-root", root, "--name", "other", "--", "/bin/sleep", "60")
	var inJob int
	for deadline := time.Now().Add(20 * time.Second); inJob == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile(filepath.Join(root, "other", "cgroup.procs")); err == nil {
			inJob, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if inJob == 0 {
		t.Fatalf("the other job did not start:\n%s", busy.stderr())
	}
	zombie := exec.Command("/bin/true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // exited, not reaped
	defer zombie.Wait()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"1"}, "is the init process"},
		{[]string{strconv.Itoa(os.Getpid())}, "is an ancestor of rsup"},
		{[]string{"2"}, "is a kernel thread"},
		{[]string{"4000000"}, "no process with pid 4000000"},
		{[]string{strconv.Itoa(zombie.Process.Pid)}, "has already exited (zombie)"},
		{[]string{strconv.Itoa(inJob)}, "is already in job cgroup " + filepath.Join(root, "other")},
		{[]string{"abc"}, `"abc" is not a process id`},
		{[]string{"5", "5"}, "given twice"},
		{[]string{"--no-move", "--memory", "1G", "5"}, "--no-move moves nothing"},
	} {
		r := rsup(t, append([]string{"track", "--cgroup-root", root}, tc.args...)...)
		if r.code != 125 {
			t.Errorf("track %v: exit %d, want 125", tc.args, r.code)
		}
		mustContain(t, fmt.Sprintf("track %v", tc.args), r.stderr, tc.want)
		t.Logf("measured: track %v -> %d: %s", tc.args, r.code, strings.TrimSpace(r.stderr))
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if e.IsDir() && e.Name() != "other" {
			t.Errorf("a refusal left cgroup %s behind", e.Name())
		}
	}
	_ = busy.cmd.Process.Signal(unix.SIGTERM)
	busy.wait(t)
}

// track 5b. A process whose cgroup rsup may not write is refused, naming
// the file.
func TestTrackRefusesWithoutPermission(t *testing.T) {
	top := requireV2(t)
	mkCgroup(t, top)
	if err := enableControllers(top); err != nil {
		t.Fatal(err)
	}
	// A delegated root for the unprivileged rsup, and a root-owned cgroup
	// its target runs in.
	deleg := filepath.Join(top, "deleg")
	mkCgroup(t, deleg)
	for _, f := range []string{"", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"} {
		if err := os.Chown(filepath.Join(deleg, f), 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	locked := filepath.Join(top, "locked")
	mkCgroup(t, locked)
	target := startIn(t, locked, "sleep", "1m")
	cmd := exec.Command(rsupBin, "track", "--cgroup-root", deleg, strconv.Itoa(target.Process.Pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	r := rsupCmd(t, cmd)
	if r.code != 125 {
		t.Errorf("exit %d, want 125:\n%s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "no write permission on "+filepath.Join(locked, "cgroup.procs"))
	if cg := cgroupOf(t, target.Process.Pid); cg != strings.TrimPrefix(locked, cgroupMount) {
		t.Errorf("the target moved to %s", cg)
	}
	entries, _ := os.ReadDir(deleg)
	for _, e := range entries {
		if e.IsDir() {
			t.Errorf("the refusal left %s behind", e.Name())
		}
	}
	t.Logf("measured: unprivileged rsup -> %d: %s", r.code, strings.TrimSpace(r.stderr))
}

// track 7. --no-move supervises without writing any cgroup file: it runs
// with the cgroup file system mounted read-only.
func TestTrackNoMove(t *testing.T) {
	requireV2(t)
	sleeper := startHelper(t, "sleep", "2s")
	before := cgroupOf(t, sleeper.Process.Pid)
	cmd := exec.Command(testBin, rsupBin, "track", "--no-move", strconv.Itoa(sleeper.Process.Pid))
	cmd.Env = append(os.Environ(), helperEnv+"=ro-cgroup")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	done := make(chan result, 1)
	go func() { done <- rsupCmd(t, cmd) }()
	_ = sleeper.Wait()
	exited := time.Now()
	r := <-done
	if r.code != 0 {
		t.Errorf("exit %d:\n%s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "no limit is enforced")
	mustContain(t, "stderr", r.stderr, "exited")
	if after := cgroupOf(t, os.Getpid()); after == "" {
		t.Error("lost own cgroup")
	}
	t.Logf("measured: --no-move with /sys/fs/cgroup read-only: exit %d, %v after the process exited; it stayed in %s; %s",
		r.code, time.Since(exited).Round(time.Millisecond), before, strings.TrimSpace(r.stderr))
}

// track 6. Inside a pid namespace a tracked pid is freed and handed to a
// newcomer (forced with ns_last_pid); rsup never moves or signals it.
func TestTrackPidReuse(t *testing.T) {
	top := requireV2(t)
	mkCgroup(t, top)
	if err := enableControllers(top); err != nil {
		t.Fatal(err)
	}
	a, bdir := filepath.Join(top, "a"), filepath.Join(top, "b")
	mkCgroup(t, a)
	mkCgroup(t, bdir)
	root := filepath.Join(top, "jobs")
	script := `
set -u
mount -t proc proc /proc || exit 90
sleep 300 & P=$!
sleep 300 & Q=$!
rsup track -v --cgroup-root "$ROOT" --name reuse $P $Q 2>/tmp/track.err &
R=$!
n=0; until grep -q '/reuse' /proc/$P/cgroup; do sleep 0.05; n=$((n+1)); [ $n -gt 400 ] && { cat /tmp/track.err; exit 91; }; done
kill -9 $P; wait $P
n=0; until grep -q "pid $P (sleep) exited" /tmp/track.err; do sleep 0.05; n=$((n+1)); [ $n -gt 400 ] && { cat /tmp/track.err; exit 92; }; done
echo 0 > "$B/cgroup.procs"
echo $((P - 1)) > /proc/sys/kernel/ns_last_pid
sleep 300 & N=$!
echo "newcomer=$N"; echo "old=$P"
echo "newcomer-before=$(cat /proc/$N/cgroup)"
kill -INT $R; wait $R; echo "rsup-exit=$?"
echo "newcomer-after=$(cat /proc/$N/cgroup)"
kill -0 $N && echo "newcomer-alive=yes"
echo "q-after=$(cat /proc/$Q/cgroup)"
cat /tmp/track.err
kill $N $Q
`
	cmd := exec.Command(testBin, "/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), helperEnv+"=exec", "ROOT="+root, "B="+bdir, "PATH=/bin:/usr/bin:"+filepath.Dir(rsupBin))
	fd, err := unix.Open(a, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS, UseCgroupFD: true, CgroupFD: fd}
	r := rsupCmd(t, cmd)
	if r.code != 0 {
		t.Fatalf("pid namespace script: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	get := func(k string) string {
		for line := range strings.Lines(r.stdout) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), k+"="); ok {
				return v
			}
		}
		return ""
	}
	newcomer, _ := strconv.Atoi(get("newcomer"))
	old, _ := strconv.Atoi(get("old"))
	bRel := "0::" + strings.TrimPrefix(bdir, cgroupMount)
	if newcomer != old {
		t.Fatalf("the pid was not reused (newcomer %d, old %d): the test did not exercise reuse\n%s", newcomer, old, r.stdout)
	}
	if get("newcomer-before") != bRel || get("newcomer-after") != bRel {
		t.Errorf("the newcomer moved: before %q after %q, want %q", get("newcomer-before"), get("newcomer-after"), bRel)
	}
	if get("newcomer-alive") != "yes" {
		t.Error("the newcomer did not survive")
	}
	if want := "0::" + strings.TrimPrefix(a, cgroupMount); get("q-after") != want {
		t.Errorf("the other tracked process is in %q after Ctrl-C, want %q", get("q-after"), want)
	}
	if get("rsup-exit") != "0" {
		t.Errorf("rsup exited %s", get("rsup-exit"))
	}
	t.Logf("measured: pid %d reused by a newcomer in %s; after Ctrl-C it is still there and alive; the live tracked process returned to %s\n%s",
		old, bRel, get("q-after"), r.stdout)
}

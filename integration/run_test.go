//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// 1. The command, and 20 children it forks at once, run in the job cgroup.
func TestBornInJobCgroup(t *testing.T) {
	root := requireV2(t)
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--name", "born", "--"}, helper("fork", "20")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	want := strings.TrimPrefix(filepath.Join(root, "born"), cgroupMount)
	in, total := 0, 0
	for line := range strings.Lines(r.stdout) {
		if cg, ok := strings.CutPrefix(strings.TrimSpace(line), "cgroup "); ok {
			total++
			if cg == want {
				in++
			} else {
				t.Errorf("a process ran in %s, not in the job cgroup %s", cg, want)
			}
		}
	}
	t.Logf("measured: %d of %d processes (command + 20 children) reported cgroup %s", in, total, want)
	if total != 21 {
		t.Errorf("got %d cgroup reports, want 21:\n%s", total, r.stdout)
	}
}

// The limits asked for are the ones the kernel reports while the job runs.
func TestLimitsReadBack(t *testing.T) {
	root := requireV2(t)
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--cpu", "150%", "--cpu-period", "50ms", "--cpu-weight", "250",
		"--memory", "96M", "--memory-high", "80MiB", "--memory-low", "8M", "--pids", "64",
		"--io-write-bps", "/dev/ram0=4M", "--io-read-iops", "/dev/ram0=100", "--"},
		helper("files", "cpu.max", "cpu.weight", "memory.max", "memory.high", "memory.low", "memory.swap.max", "pids.max", "io.max")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var st unix.Stat_t
	if err := unix.Stat("/dev/ram0", &st); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	for _, want := range []string{
		"cpu.max: 75000 50000", "cpu.weight: 250", "memory.max: 100663296", "memory.high: 83886080",
		"memory.low: 8388608", "memory.swap.max: 0", "pids.max: 64",
		"io.max: " + dev + " rbps=max wbps=4194304 riops=100 wiops=max",
	} {
		mustContain(t, "limits read back from the job cgroup", r.stdout, want)
	}
	t.Logf("measured: limits read back:\n%s", r.stdout)
}

// The job inherits no descriptor of rsup's: no cgroup directory, pidfd or
// inotify descriptor, whether started by clone3 or through the shim.
func TestNoDescriptorLeaks(t *testing.T) {
	root := requireV2(t)
	// The shell lists its own descriptors: a Go helper could not, since
	// the Go runtime opens some of its own (epoll, and cpu.max since Go
	// 1.25).
	list := `exec ls -l /proc/self/fd/`
	var extra []string
	for _, shim := range []string{"", "shim"} {
		args := []string{"run", "--cgroup-root", root, "--", "/bin/sh", "-c", list}
		cmd := exec.Command(rsupBin, args...)
		if shim != "" {
			cmd.Env = append(os.Environ(), "RSUP_USE_SHIM=1")
		}
		r := rsupCmd(t, cmd)
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s", r.code, r.stderr)
		}
		// "lrwx------ 1 root root 64 Nov 27 21:00 3 -> /path": the
		// descriptor is the field before the arrow; ls's own descriptor
		// of the directory it lists is expected.
		for line := range strings.Lines(r.stdout) {
			f := strings.Fields(line)
			i := slices.Index(f, "->")
			if i < 1 || f[i-1] == "0" || f[i-1] == "1" || f[i-1] == "2" || strings.HasSuffix(f[len(f)-1], "/fd") {
				continue
			}
			extra = append(extra, shim+" "+strings.TrimSpace(line))
		}
		t.Logf("measured (%s): the job's descriptors:\n%s", cmp(shim, "clone3"), r.stdout)
	}
	if len(extra) > 0 {
		t.Errorf("the job inherited descriptors: %v", extra)
	}
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--"}, helper("owner")...)...)
	if !regexp.MustCompile(`(?m)^owner pid=\d+ start=\d+$`).MatchString(r.stdout) {
		t.Errorf("no owner mark on the job cgroup: %q %s", r.stdout, r.stderr)
	}
	t.Logf("measured: descriptors in the job beyond stdio: %d; owner mark %q", len(extra), strings.TrimSpace(r.stdout))
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// 2. A job that touches 256 MiB under --memory 64M is OOM-killed.
func TestMemoryLimitOOMKill(t *testing.T) {
	root := requireV2(t)
	r := rsup(t, append([]string{"run", "-v", "--cgroup-root", root, "--name", "hog", "--memory", "64M", "--"}, helper("alloc", "256M")...)...)
	if r.code != 137 {
		t.Errorf("exit %d, want 137 (SIGKILL by the OOM killer)", r.code)
	}
	if strings.Contains(r.stdout, "allocated all") {
		t.Errorf("the job allocated all 256 MiB under a 64 MiB limit:\n%s", r.stdout)
	}
	oomLine := regexp.MustCompile(`(?m)^rsup: job hog: killed by the kernel OOM killer at memory.max=64M \(67108864 bytes\), oom_kill=(\d+)$`)
	m := oomLine.FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("no OOM line on stderr:\n%s", r.stderr)
	}
	// The kernel lets a task that is being OOM-killed charge a few pages
	// past memory.max so that it can exit (mm/memcontrol.c, "force"), and
	// memory.peak records those pages too; more than that slack would mean
	// the limit did not hold.
	peak := summaryValue(t, r.stderr, "memory.peak")
	const slack = 64 << 10
	if peak > 64<<20+slack {
		t.Errorf("memory.peak %.0f is more than %d bytes above the 64 MiB limit", peak, slack)
	}
	t.Logf("measured: exit %d, oom_kill=%s, memory.peak=%.0f bytes (limit 67108864; %+.0f bytes forced by the dying task), last progress %q",
		r.code, m[1], peak, peak-64<<20, lastLine(r.stdout))
}

// 3. --cpu 50% holds two spinning threads to half a CPU.
func TestCPUQuota(t *testing.T) {
	root := requireV2(t)
	r := rsup(t, append([]string{"run", "-v", "--cgroup-root", root, "--cpu", "50%", "--"}, helper("spin", "2", "4s")...)...)
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
	t.Logf("measured: 2 threads under --cpu 50%%: cpu %ss / wall %ss = %.3f (job cgroup: cpu %.3fs over %.3fs = %.3f)",
		m[1], m[2], ratio, jobCPU, jobWall, jobCPU/jobWall)
	if ratio < 0.40 || ratio > 0.60 {
		t.Errorf("cpu/wall ratio %.3f outside 0.40..0.60", ratio)
	}
}

// 4. --pids 20 stops a fork bomb with EAGAIN; nothing of it survives.
func TestPidsForkBomb(t *testing.T) {
	root := requireV2(t)
	r := rsup(t, append([]string{"run", "-v", "--cgroup-root", root, "--pids", "20", "--"}, helper("forkbomb", "200")...)...)
	report, killed, lat := checkForkBomb(t, r)
	if n := countProcs("sleep"); n != 0 {
		t.Errorf("%d sleep processes of the bomb survive", n)
	}
	t.Logf("measured: %s; leftovers killed %d; rsup done in %v; /bin/true on the host took %v after the bomb",
		report, killed, r.wall.Round(time.Millisecond), lat.Round(time.Microsecond))
}

// checkForkBomb checks an rsup run -v of the forkbomb helper under --pids
// 20: exit 0, fewer than 20 started and the rest refused with EAGAIN,
// every sleeper killed as a leftover, and the host still starting a
// process quickly. It returns the bomb's report, the leftovers killed and
// how long /bin/true took.
func checkForkBomb(t *testing.T, r result) (report string, killed int, lat time.Duration) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	m := regexp.MustCompile(`started=(\d+) eagain=(\d+) other=(\d+)`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no forkbomb report:\n%s", r.stdout)
	}
	started, _ := strconv.Atoi(m[1])
	eagain, _ := strconv.Atoi(m[2])
	if started >= 20 || eagain == 0 || m[3] != "0" {
		t.Errorf("want fewer than 20 started and the rest refused with EAGAIN: %s", m[0])
	}
	killed = int(summaryValue(t, r.stderr, "killed"))
	if killed != started {
		t.Errorf("rsup killed %d leftovers, the bomb left %d sleepers", killed, started)
	}
	// The host stays responsive: starting a process outside the job is
	// quick right after the bomb.
	t0 := time.Now()
	if err := exec.Command("/bin/true").Run(); err != nil {
		t.Errorf("host could not start /bin/true after the bomb: %v", err)
	}
	return m[0], killed, time.Since(t0)
}

// 5. --io-write-bps /dev/ram0=4M makes 16 MiB of O_DIRECT writes take 4s.
func TestIOWriteThrottle(t *testing.T) {
	root := requireV2(t)
	if _, err := os.Stat("/dev/ram0"); err != nil {
		t.Skipf("needs /dev/ram0 (the brd module): %v", err)
	}
	r := rsup(t, append([]string{"run", "--cgroup-root", root, "--io-write-bps", "/dev/ram0=4M", "--"}, helper("odirect", "/dev/ram0", "16M")...)...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`wrote (\d+) bytes in ([0-9.]+)s`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("no write report:\n%s", r.stdout)
	}
	secs, _ := strconv.ParseFloat(m[2], 64)
	t.Logf("measured: 16 MiB O_DIRECT at 4 MiB/s took %.3fs (want 4s ±25%%)", secs)
	if secs < 3 || secs > 5 {
		t.Errorf("took %.3fs, want 3s..5s", secs)
	}
}

// 6. A setsid'd, double-forked daemon does not outlive rsup, and rsup does
// not wait for the pipe it holds.
func TestLeftoverDaemonKilled(t *testing.T) {
	root := requireV2(t)
	pidFile := filepath.Join(t.TempDir(), "daemon.pid")
	r := rsup(t, append([]string{"run", "-v", "--cgroup-root", root, "--name", "daemon", "--"}, helper("daemonize", pidFile)...)...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("daemon did not start: %v", err)
	}
	pid, _ := strconv.Atoi(string(b))
	alive := unix.Kill(pid, 0) == nil
	if alive {
		t.Errorf("daemon pid %d survived rsup", pid)
	}
	killed := summaryValue(t, r.stderr, "killed")
	if killed != 1 {
		t.Errorf("rsup reported %.0f leftovers killed, want 1", killed)
	}
	if _, err := os.Stat(filepath.Join(root, "daemon")); !os.IsNotExist(err) {
		t.Errorf("job cgroup remains: %v", err)
	}
	t.Logf("measured: daemon pid %d alive after rsup: %v; leftovers killed %.0f; rsup (and the daemon's pipe) done in %v",
		pid, alive, killed, r.wall.Round(time.Millisecond))
}

// 7. Exit statuses pass through.
func TestExitStatuses(t *testing.T) {
	root := requireV2(t)
	bad := 0
	start := time.Now()
	for code := 0; code <= 255; code++ {
		r := rsup(t, "run", "--cgroup-root", root, "--", "/bin/sh", "-c", "exit "+strconv.Itoa(code))
		if r.code != code {
			bad++
			t.Errorf("exit %d came back as %d: %s", code, r.code, r.stderr)
		}
	}
	t.Logf("measured: 256 exit codes, %d mismatches, %v per run", bad, (time.Since(start) / 256).Round(time.Millisecond))
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGKILL, unix.SIGUSR1, unix.SIGSEGV, unix.SIGABRT} {
		r := rsup(t, append([]string{"run", "--cgroup-root", root, "--"}, helper("raise", unix.SignalName(sig))...)...)
		if r.code != 128+int(sig) {
			t.Errorf("death by %v gave %d, want %d", sig, r.code, 128+int(sig))
		}
	}
	// An orphan the command leaves (reparented to rsup, the subreaper)
	// does not take the command's status.
	r := rsup(t, "run", "--cgroup-root", root, "--", "/bin/sh", "-c", "(sleep 0.3 &); exit 7")
	if r.code != 7 {
		t.Errorf("command with an orphan gave %d, want 7: %s", r.code, r.stderr)
	}
	r = rsup(t, "run", "--cgroup-root", root, "--", "/no/such/command")
	if r.code != 127 {
		t.Errorf("missing command gave %d, want 127: %s", r.code, r.stderr)
	}
	notExec := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = rsup(t, "run", "--cgroup-root", root, "--", notExec)
	if r.code != 126 {
		t.Errorf("non-executable command gave %d, want 126: %s", r.code, r.stderr)
	}
	marker := filepath.Join(t.TempDir(), "ran")
	for _, args := range [][]string{
		{"--memory", "lots"}, {"--cpu", "0.1%"}, {"--cpu-period", "2s", "--cpu", "50%"}, {"--cpu-weight", "0"},
		{"--pids", "-1"}, {"--name", "../x"}, {"--name", "memory.max"}, {"--io-write-bps", "/dev/null=1M"}, {"--bogus"},
	} {
		r := rsup(t, append(append([]string{"run", "--cgroup-root", root}, args...), "--", "/bin/touch", marker)...)
		if r.code != 125 {
			t.Errorf("%v gave %d, want 125", args, r.code)
		}
		if !strings.HasPrefix(r.stderr, "rsup: ") {
			t.Errorf("%v: no error message: %q", args, r.stderr)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Fatalf("%v: the command ran despite the bad flag", args)
		}
	}
	t.Logf("measured: 8 signal deaths map to 128+N, missing -> 127, not executable -> 126, 9 bad flags -> 125 with the command never run")
}

// 8. Each forwarded signal reaches the command exactly once.
func TestSignalsForwardedOnce(t *testing.T) {
	root := requireV2(t)
	got := checkSignalsForwardedOnce(t, exec.Command(rsupBin, append([]string{"run", "-v", "--cgroup-root", root, "--"}, helper("signals")...)...))
	t.Logf("measured: arrivals per signal sent to rsup: %v", got)
}

// checkSignalsForwardedOnce starts cmd, an rsup running the signals helper,
// sends it each forwarded signal and SIGURG and SIGCHLD, and checks that
// the first arrive exactly once and the last two never. It returns the
// arrivals by signal name.
func checkSignalsForwardedOnce(t *testing.T, cmd *exec.Cmd) map[string]int {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	abort := func(format string, a ...any) {
		t.Helper()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf(format+"; stderr:\n%s", append(a, stderr.String())...)
	}
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	select {
	case l := <-lines:
		if l != "ready" {
			abort("helper said %q, want ready", l)
		}
	case <-time.After(30 * time.Second):
		abort("the helper did not get ready")
	}
	sigs := []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGURG, unix.SIGCHLD, unix.SIGTERM}
	got := map[string]int{}
	for _, s := range sigs {
		if err := cmd.Process.Signal(s); err != nil {
			t.Fatal(err)
		}
		if s == unix.SIGURG || s == unix.SIGCHLD {
			continue // never forwarded, so nothing to wait for
		}
		select {
		case l := <-lines:
			got[strings.TrimPrefix(l, "got ")]++
		case <-time.After(10 * time.Second):
			abort("%v did not arrive", s)
		}
	}
	for l := range lines {
		if n, ok := strings.CutPrefix(l, "got "); ok {
			got[n]++
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("rsup: %v\n%s", err, stderr.String())
	}
	for _, s := range sigs {
		want := 1
		if s == unix.SIGURG || s == unix.SIGCHLD {
			want = 0
		}
		if got[unix.SignalName(s)] != want {
			t.Errorf("%s arrived %d times, want %d", unix.SignalName(s), got[unix.SignalName(s)], want)
		}
	}
	return got
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// countProcs counts processes whose comm is name.
func countProcs(name string) int {
	n := 0
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.TrimSpace(string(b)) == name {
			n++
		}
	}
	return n
}

//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/supervisor"
)

func openJob(t *testing.T, name string, res *cgroup.Resources) *cgroup.Job {
	t.Helper()
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	job, err := h.NewJob(name, res)
	if err != nil {
		t.Fatal(err)
	}
	return job
}

// runCapture runs cfg with stdout captured through a pipe.
func runCapture(t *testing.T, ctx context.Context, cfg supervisor.Config) (*supervisor.Result, string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Stdout, cfg.Stderr = w, w
	out := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	res, rerr := supervisor.Run(ctx, cfg)
	w.Close()
	s := <-out
	r.Close()
	return res, s, rerr
}

// The re-exec shim (the fallback where clone3 is refused) also runs the
// command inside the job cgroup, and reports exec failures with the right
// status.
func TestShimStartsInJobCgroup(t *testing.T) {
	job := openJob(t, "shim", &cgroup.Resources{MemoryMax: cgroup.Value(32 << 20)})
	want := strings.TrimPrefix(job.Path(), cgroupMount)
	res, out, err := runCapture(t, withTimeout(t, time.Minute), supervisor.Config{
		Args: []string{testBin}, Env: append(os.Environ(), helperEnv+"=cgroup"), Job: job, UseShim: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Shim || res.Status() != 0 {
		t.Errorf("shim=%v status=%d", res.Shim, res.Status())
	}
	mustContain(t, "output", out, "cgroup "+want)
	if strings.Contains(out, helperEnv) {
		t.Error("shim environment leaked")
	}

	job = openJob(t, "shim-missing", nil)
	_, _, err = runCapture(t, withTimeout(t, time.Minute), supervisor.Config{
		Path: "/no/such/binary", Args: []string{"x"}, Job: job, UseShim: true,
	})
	var se *supervisor.StartError
	if !errors.As(err, &se) || se.Code != 127 {
		t.Errorf("missing binary through the shim: %v, want StartError 127", err)
	}
	t.Logf("measured: shim start in %s ok; missing binary through the shim -> %v", want, err)
}

// A limit the kernel rejects undoes the limits written before it.
func TestApplyRollsBackOnKernelRejection(t *testing.T) {
	job := openJob(t, "rollback", nil)
	defer job.Remove(5 * time.Second)
	cpu, err := cgroup.ParseCPUPercent("50%", 0)
	if err != nil {
		t.Fatal(err)
	}
	// An io.max line for a device that does not exist passes rsup's own
	// checks when given to the library as a number, but not the kernel's
	// (ENODEV).
	bogus := cgroup.IOLimit{Device: cgroup.Device{Major: 250, Minor: 250}, WriteBPS: cgroup.Value(1 << 20)}
	err = job.Apply(&cgroup.Resources{CPU: &cpu, MemoryMax: cgroup.Value(32 << 20), PidsMax: cgroup.Value(64), IO: []cgroup.IOLimit{bogus}})
	if err == nil {
		t.Fatal("the kernel accepted io.max for device 250:250")
	}
	var fe *cgroup.FileError
	if !errors.As(err, &fe) || !strings.HasSuffix(fe.Path, "io.max") || fe.Value != "250:250 wbps=1048576" {
		t.Errorf("error does not name io.max and its value: %v", err)
	}
	got := map[string]string{}
	for _, f := range []string{"cpu.max", "memory.max", "memory.swap.max", "pids.max"} {
		got[f], _ = job.ReadFile(f)
	}
	for f, want := range map[string]string{"cpu.max": "max 100000", "memory.max": "max", "memory.swap.max": "max", "pids.max": "max"} {
		if got[f] != want {
			t.Errorf("%s is %q after the rollback, want %q", f, got[f], want)
		}
	}
	t.Logf("measured: kernel rejected: %v; after rollback %v", err, got)
}

// A signal that arrives while the job is being set up is not lost: the
// command is not started, the job cgroup is removed, and the status is
// 128+N.
func TestSignalDuringSetup(t *testing.T) {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, supervisor.Forwarded...)
	defer signal.Stop(sigs)
	job := openJob(t, "early", nil)
	if err := unix.Kill(os.Getpid(), unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	marker := filepath.Join(t.TempDir(), "ran")
	_, err := supervisor.Run(withTimeout(t, time.Minute), supervisor.Config{
		Args: []string{"/bin/touch", marker}, Job: job, ForwardSignals: true, Signals: sigs,
	})
	var se *supervisor.StartError
	if !errors.As(err, &se) || se.Code != 128+int(unix.SIGUSR1) {
		t.Errorf("got %v, want a StartError with status %d", err, 128+int(unix.SIGUSR1))
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran after the signal")
	}
	if _, err := os.Stat(job.Path()); !os.IsNotExist(err) {
		t.Errorf("job cgroup remains: %v", err)
	}
	t.Logf("measured: %v", err)
}

// The freezer fallback for kernels without cgroup.kill kills every process
// and always leaves the cgroup thawed.
func TestKillFrozen(t *testing.T) {
	job := openJob(t, "frozen", nil)
	var procs []*exec.Cmd
	for range 3 {
		procs = append(procs, startIn(t, job.Path(), "sleep", "1m"))
	}
	n, err := job.KillFrozen()
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Errorf("killed %d, want 3", n)
	}
	for _, p := range procs {
		err := p.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
			t.Errorf("pid %d: %v, want killed by SIGKILL", p.Process.Pid, err)
		}
	}
	if err := job.WaitEmpty(5*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	if v, _ := job.ReadFile("cgroup.freeze"); v != "0" {
		t.Errorf("cgroup.freeze is %q after the kill, want 0", v)
	}
	if err := job.Remove(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("measured: freezer kill of 3 sleepers, all SIGKILLed, cgroup thawed and removed")
}

// Cancelling the context sends the stop signal, and after the grace period
// kills the job through its cgroup.
func TestStopOnCancel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string
		want   int
	}{
		{"obeys", "sleep 30", 128 + int(unix.SIGTERM)},
		{"ignores", "trap '' TERM; sleep 30 & wait; sleep 30", 128 + int(unix.SIGKILL)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job := openJob(t, "stop-"+tc.name, nil)
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			res, _, err := runCapture(t, ctx, supervisor.Config{
				Args: []string{"/bin/sh", "-c", tc.script}, Job: job, StopGrace: 700 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if res.Status() != tc.want {
				t.Errorf("status %d, want %d", res.Status(), tc.want)
			}
			if el > 5*time.Second {
				t.Errorf("took %v", el)
			}
			if _, err := os.Stat(job.Path()); !os.IsNotExist(err) {
				t.Errorf("job cgroup remains")
			}
			t.Logf("measured: %s: status %d after %v", tc.name, res.Status(), el.Round(time.Millisecond))
		})
	}
}

// Ctrl-C on rsup's terminal reaches the command once: the command's group
// is the terminal's foreground group, and rsup does not forward a second
// copy.
func TestTerminalInterruptOnce(t *testing.T) {
	root := requireV2(t)
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("needs a pseudo-terminal (/dev/ptmx, devpts on /dev/pts): %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pty: %v", err)
	}
	// A helper plays the interactive shell: it leads the terminal's session
	// and runs rsup as a foreground job.
	pidFile := filepath.Join(t.TempDir(), "rsup.pid")
	cmd := exec.Command(testBin, append([]string{pidFile, rsupBin, "run", "-v", "--cgroup-root", root, "--"}, helper("signals")...)...)
	cmd.Env = append(os.Environ(), helperEnv+"=session")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	output := make(chan string, 1)
	var seen strings.Builder
	lines := make(chan string, 64)
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := master.Read(buf)
			seen.Write(buf[:n])
			for _, l := range strings.Split(string(buf[:n]), "\n") {
				if l = strings.TrimSpace(l); l != "" {
					lines <- l
				}
			}
			if err != nil {
				close(lines)
				output <- seen.String()
				return
			}
		}
	}()
	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case l := <-lines:
				if l == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %q from the job", want)
			}
		}
	}
	waitFor("ready")
	fg := func() int {
		p, _ := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPGRP)
		return p
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	rsupPid, _ := strconv.Atoi(string(b))
	jobPgrp := fg()
	if jobPgrp == rsupPid {
		t.Fatalf("the terminal's foreground group is rsup's (%d), not the command's", rsupPid)
	}

	// Ctrl-Z stops the command; rsup takes the terminal back and stops
	// too, as a shell expects of its job.
	if _, err := master.Write([]byte{26}); err != nil {
		t.Fatal(err)
	}
	waitState(t, rsupPid, 'T')
	if p := fg(); p != rsupPid {
		t.Errorf("after Ctrl-Z the terminal's foreground group is %d, want rsup's %d; output so far: %q", p, rsupPid, seen.String())
	}
	// fg: the shell continues rsup, which hands the terminal back to the
	// command and continues it.
	if err := unix.Kill(-rsupPid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitState(t, rsupPid, 'S')
	for deadline := time.Now().Add(10 * time.Second); fg() != jobPgrp; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after fg the terminal's foreground group is %d, want the command's %d", fg(), jobPgrp)
		}
	}

	if _, err := master.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	waitFor("got SIGINT")
	time.Sleep(300 * time.Millisecond)
	_ = unix.Kill(rsupPid, unix.SIGTERM)
	err = cmd.Wait()
	master.Close()
	out := <-output
	if err != nil {
		t.Errorf("rsup: %v\n%s", err, out)
	}
	if c := strings.Count(out, "got SIGINT"); c != 1 {
		t.Errorf("Ctrl-C reached the command %d times, want 1:\n%s", c, out)
	}
	t.Logf("measured: Ctrl-Z stopped the command and rsup and gave the terminal to rsup's group; fg gave it back to the command's group %d; Ctrl-C arrivals %d, SIGTERM arrivals %d",
		jobPgrp, strings.Count(out, "got SIGINT"), strings.Count(out, "got SIGTERM"))
}

// waitState waits until /proc/PID/stat shows the process in state.
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		// The state follows the parenthesised command name.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
			last = string(b[i+2])
			if b[i+2] == state {
				return
			}
		}
	}
	t.Fatalf("pid %d stayed in state %s, want %c", pid, last, state)
}

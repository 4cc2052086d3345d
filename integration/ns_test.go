//go:build integration

package integration

import (
	"fmt"
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

// startIn starts the test binary as helper mode inside cgroup dir, born
// there through clone3.
func startIn(t *testing.T, dir string, mode string, args ...string) *exec.Cmd {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(testBin, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %s in %s: %v", mode, dir, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// mkCgroup creates dir with every controller enabled for its children.
func mkCgroup(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(strings.TrimSpace(string(b)), "0::")
}

// 9a. rsup inside the cgroup it must enable controllers in moves itself
// into <root>/supervisor; another process there is refused unless
// --evacuate moves it into <root>/init; a busy job cgroup is refused.
func TestNoInternalProcesses(t *testing.T) {
	top := requireV2(t)
	mkCgroup(t, top)
	if err := enableControllers(top); err != nil {
		t.Fatal(err)
	}

	// rsup alone in its root: it moves itself out of the way.
	alone := filepath.Join(top, "alone")
	mkCgroup(t, alone)
	fd, err := unix.Open(alone, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rsupBin, append([]string{"run", "-v", "--cgroup-root", alone, "--memory", "32M", "--"}, helper("cgroup")...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	r := rsupCmd(t, cmd)
	unix.Close(fd)
	if r.code != 0 {
		t.Fatalf("rsup in its own root: exit %d:\n%s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "moved itself into "+filepath.Join(alone, "supervisor"))
	jobCg := strings.TrimPrefix(alone, cgroupMount) + "/"
	mustContain(t, "job output", r.stdout, "cgroup "+jobCg)

	// Another process in the root: refused, and left where it is.
	busy := filepath.Join(top, "busy")
	mkCgroup(t, busy)
	sleeper := startIn(t, busy, "sleep", "1m")
	marker := filepath.Join(t.TempDir(), "ran")
	r = rsup(t, "run", "--cgroup-root", busy, "--memory", "32M", "--", "/bin/touch", marker)
	if r.code != 125 {
		t.Errorf("busy root: exit %d, want 125", r.code)
	}
	mustContain(t, "stderr", r.stderr, "--evacuate")
	mustContain(t, "stderr", r.stderr, "pid "+strconv.Itoa(sleeper.Process.Pid))
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although rsup refused")
	}
	if cg := cgroupOf(t, sleeper.Process.Pid); cg != strings.TrimPrefix(busy, cgroupMount) {
		t.Errorf("the other process was moved to %s without --evacuate", cg)
	}

	// With --evacuate it is moved into <root>/init and the job runs.
	r = rsup(t, append([]string{"run", "-v", "--evacuate", "--cgroup-root", busy, "--memory", "32M", "--"}, helper("cgroup")...)...)
	if r.code != 0 {
		t.Fatalf("--evacuate: exit %d:\n%s", r.code, r.stderr)
	}
	if cg := cgroupOf(t, sleeper.Process.Pid); cg != strings.TrimPrefix(busy, cgroupMount)+"/init" {
		t.Errorf("evacuated process is in %s, want %s/init", cg, busy)
	}

	// A job cgroup that exists and holds processes is refused.
	jobDir := filepath.Join(busy, "taken")
	mkCgroup(t, jobDir)
	startIn(t, jobDir, "sleep", "1m")
	r = rsup(t, "run", "--cgroup-root", busy, "--name", "taken", "--", "/bin/touch", marker)
	if r.code != 125 {
		t.Errorf("busy job cgroup: exit %d, want 125", r.code)
	}
	mustContain(t, "stderr", r.stderr, "holds processes")
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran in a job cgroup that was in use")
	}
	t.Logf("measured: self-move into %s/supervisor ok; refusal with a process in the root (exit 125); --evacuate moved pid %d to init; busy job cgroup refused",
		alone, sleeper.Process.Pid)
}

// 9b. In a new cgroup namespace whose root holds another process (a
// privileged container's situation) rsup refuses without --evacuate and
// works with it.
func TestCgroupNamespaceRoot(t *testing.T) {
	top := requireV2(t)
	mkCgroup(t, top)
	if err := enableControllers(top); err != nil {
		t.Fatal(err)
	}
	for _, evacuate := range []bool{false, true} {
		nsroot := filepath.Join(top, fmt.Sprintf("ns-%v", evacuate))
		mkCgroup(t, nsroot)
		args := []string{rsupBin, "run", "-v", "--memory", "32M"}
		if evacuate {
			args = append(args, "--evacuate")
		}
		args = append(args, "--")
		args = append(args, helper("cgroup")...)
		// ns-holder is born in nsroot, stays there as the "other
		// process", and starts ns-run in a new cgroup and mount
		// namespace, which mounts cgroup2 and execs rsup.
		holder := exec.Command(testBin, args...)
		holder.Env = append(os.Environ(), helperEnv+"=ns-holder")
		fd, err := unix.Open(nsroot, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		holder.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
		r := rsupCmd(t, holder)
		unix.Close(fd)
		if !evacuate {
			if r.code != 125 {
				t.Errorf("namespace root with another process: exit %d, want 125:\n%s", r.code, r.stderr)
			}
			mustContain(t, "stderr", r.stderr, "--evacuate")
			mustContain(t, "stderr", r.stderr, "cgroup namespace")
			continue
		}
		if r.code != 0 {
			t.Fatalf("--evacuate in a namespace root: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		mustContain(t, "job output", r.stdout, "cgroup /rsup/")
		mustContain(t, "holder output", r.stdout, "holder was in /rsup/init")
		t.Logf("measured: namespace root refused without --evacuate; with it the holder moved to /rsup/init (namespace view) and the job ran in %s",
			strings.TrimSpace(lastLine(strings.Split(r.stdout, "holder")[0])))
	}
}

// nsHolder runs ns-run in new cgroup and mount namespaces and waits for it,
// then reports which cgroup it ended up in.
func nsHolder(args []string) int {
	c := exec.Command(testBinOrSelf(), args...)
	c.Env = append(os.Environ(), helperEnv+"=ns-run")
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWCGROUP | unix.CLONE_NEWNS}
	err := c.Run()
	if b, rerr := os.ReadFile("/proc/self/cgroup"); rerr == nil {
		// Read from inside our own (the parent) namespace: the view is
		// relative to the real root; print the tail after the ns root.
		cg := strings.TrimSpace(strings.TrimPrefix(string(b), "0::"))
		if i := strings.Index(cg, "/rsup/"); i >= 0 {
			cg = cg[i:]
		}
		fmt.Printf("holder was in %s\n", cg)
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ns-holder:", err)
		return 3
	}
	time.Sleep(0)
	return 0
}

// nsRun mounts a private cgroup2 view of its namespace root at
// /sys/fs/cgroup and execs the command.
func nsRun(args []string) int {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		fmt.Fprintln(os.Stderr, "ns-run: make mounts private:", err)
		return 3
	}
	// The inherited mount shows the whole hierarchy; a fresh mount in the
	// new cgroup namespace shows the namespace root, as in a container.
	if err := unix.Unmount("/sys/fs/cgroup", unix.MNT_DETACH); err != nil {
		fmt.Fprintln(os.Stderr, "ns-run: unmount the inherited cgroup2:", err)
		return 3
	}
	if err := unix.Mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""); err != nil {
		fmt.Fprintln(os.Stderr, "ns-run: mount cgroup2:", err)
		return 3
	}
	return execArgs(args)
}

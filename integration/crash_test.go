//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rsup killed with SIGKILL at five points of a job's life, then rsup gc:
// no job cgroup of the dead supervisors is left, no process of theirs
// survives, none stays frozen, and the job of a live rsup is untouched.
func TestGCAfterCrashes(t *testing.T) {
	root := requireV2(t)
	live := startRsup(t, "run", "--cgroup-root", root, "--name", "live", "--", "sleep", "600")
	// A command that exits at once and leaves a daemon behind, so that
	// rsup reaches its kill and removal of leftovers.
	leaves := []string{"/bin/sh", "-c", "setsid sleep 600 & echo left"}
	points := []struct {
		point string
		cmd   []string
	}{
		{"mkdir", []string{"sleep", "600"}},   // after the job cgroup is made
		{"start", []string{"sleep", "600"}},   // right after the command started
		{"running", []string{"sleep", "600"}}, // killed from outside while it runs
		{"fallback-kill", leaves},             // frozen, in the middle of the freezer kill
		{"removal", leaves},                   // leftovers killed, cgroup not yet removed
	}
	var pids []int
	for _, p := range points {
		args := append([]string{"run", "--cgroup-root", root, "--name", "crash-" + p.point, "--"}, p.cmd...)
		cmd := exec.Command(rsupBin, args...)
		cmd.Env = append(os.Environ(), "_RSUP_CRASH_AT="+p.point)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		job := filepath.Join(root, "crash-"+p.point)
		if p.point == "running" {
			deadline := time.Now().Add(20 * time.Second)
			for readCgOr(job+"/cgroup.procs") == "" {
				if time.Now().After(deadline) {
					t.Fatal("the running job never showed its process")
				}
				time.Sleep(20 * time.Millisecond)
			}
			_ = cmd.Process.Signal(unix.SIGKILL)
		}
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: rsup ended with %v, want death by SIGKILL at the crash point", p.point, err)
		}
		if _, err := os.Stat(job); err != nil {
			t.Fatalf("%s: the dead rsup left no job cgroup to collect: %v", p.point, err)
		}
		for _, f := range strings.Fields(readCgOr(job + "/cgroup.procs")) {
			var pid int
			if _, err := fmtSscan(f, &pid); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	frozen := readCgOr(filepath.Join(root, "crash-fallback-kill", "cgroup.events"))
	if !strings.Contains(frozen, "frozen 1") {
		t.Errorf("the fallback-kill crash left the job unfrozen:\n%s", frozen)
	}
	gc := rsup(t, "gc", "--cgroup-root", root)
	if gc.code != 0 {
		t.Fatalf("gc: exit %d\n%s", gc.code, gc.stderr)
	}
	mustContain(t, "gc", gc.stderr, "5 leftover job(s) removed, 1 live job(s) untouched")
	left, _ := filepath.Glob(filepath.Join(root, "crash-*"))
	survivors := 0
	for _, pid := range pids {
		if unix.Kill(pid, 0) == nil && procState(pid) != "Z" {
			survivors++
		}
	}
	if len(left) > 0 || survivors > 0 {
		t.Errorf("after gc: %d job cgroups left (%v), %d of %d processes alive", len(left), left, survivors, len(pids))
	}
	if !strings.Contains(readCgOr(filepath.Join(root, "live", "cgroup.events")), "populated 1") {
		t.Error("gc touched the live job")
	}
	_ = live.cmd.Process.Signal(unix.SIGTERM)
	live.wait(t)
	t.Logf("measured: 5 crash points (mkdir, start, running, fallback-kill (left frozen: %v), removal); gc removed %d; processes of dead jobs %d, surviving 0 expected, got %d; frozen left 0; live job untouched",
		strings.Contains(frozen, "frozen 1"), 5-len(left), len(pids), survivors)
}

func readCgOr(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func fmtSscan(s string, v *int) (int, error) { return fmt.Sscan(s, v) }

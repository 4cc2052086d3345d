//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type statusEntry struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	PID        int      `json:"pid"`
	Command    []string `json:"command"`
	Supervisor int      `json:"supervisor_pid"`
	Procs      int      `json:"processes"`
	Memory     *uint64  `json:"memory_bytes"`
	Limit      *uint64  `json:"memory_limit_bytes"`
}

func statusJSON(t *testing.T, root string) map[string]statusEntry {
	t.Helper()
	r := rsup(t, "status", "--cgroup-root", root, "--json")
	if r.code != 0 {
		t.Fatalf("status: exit %d\n%s", r.code, r.stderr)
	}
	var list []statusEntry
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("status --json is not JSON: %v\n%s", err, r.stdout)
	}
	out := map[string]statusEntry{}
	for _, e := range list {
		out[e.Name] = e
	}
	return out
}

// rsup status, stop and gc against a live job and the job of an rsup
// killed with SIGKILL: status tells them apart, gc removes the stale one
// and what ran in it, and leaves the live one alone; stop ends the live
// one the way a policy kill would.
func TestStatusStopGC(t *testing.T) {
	root := requireV2(t)
	live := startRsup(t, "run", "--cgroup-root", root, "--name", "live", "--memory", "64M", "--", "sleep", "600")
	// Its output goes nowhere: the processes it leaves would hold a pipe
	// open.
	crashed := exec.Command(rsupBin, "run", "--cgroup-root", root, "--name", "crashed", "--", "/bin/sh", "-c", "trap '' TERM; sleep 600")
	if err := crashed.Start(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"live", "crashed"} {
		deadline := time.Now().Add(20 * time.Second)
		for statusJSON(t, root)[name].PID == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("job %s never showed its main pid in status", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = crashed.Process.Signal(unix.SIGKILL)
	_ = crashed.Wait()
	st := statusJSON(t, root)
	if st["live"].State != "running" || st["crashed"].State != "stale" {
		t.Fatalf("states: live %q, crashed %q; want running and stale", st["live"].State, st["crashed"].State)
	}
	if st["live"].Command[0] != "sleep" || st["live"].Limit == nil || *st["live"].Limit != 64<<20 || st["live"].Supervisor != live.cmd.Process.Pid {
		t.Errorf("live job's status: %+v", st["live"])
	}
	leftover := st["crashed"].PID
	text := rsup(t, "status", "--cgroup-root", root)
	mustContain(t, "status", text.stdout, "crashed")
	mustContain(t, "status", text.stdout, "stale")

	dry := rsup(t, "gc", "--cgroup-root", root, "--dry-run")
	mustContain(t, "gc --dry-run", dry.stderr, "would remove job crashed")
	if _, err := os.Stat(filepath.Join(root, "crashed")); err != nil {
		t.Fatalf("gc --dry-run removed the job: %v", err)
	}
	gc := rsup(t, "gc", "--cgroup-root", root)
	if gc.code != 0 {
		t.Fatalf("gc: exit %d\n%s", gc.code, gc.stderr)
	}
	mustContain(t, "gc", gc.stderr, "1 leftover job(s) removed, 1 live job(s) untouched")
	if _, err := os.Stat(filepath.Join(root, "crashed")); !os.IsNotExist(err) {
		t.Errorf("the stale job's cgroup remains: %v", err)
	}
	if err := unix.Kill(leftover, 0); err == nil && procState(leftover) != "Z" {
		t.Errorf("pid %d of the stale job survived gc", leftover)
	}
	if statusJSON(t, root)["live"].State != "running" {
		t.Fatal("gc touched the live job")
	}

	start := time.Now()
	stop := rsup(t, "stop", "--cgroup-root", root, "--grace", "2s", "live")
	if stop.code != 0 {
		t.Fatalf("stop: exit %d\n%s", stop.code, stop.stderr)
	}
	code := live.wait(t)
	took := time.Since(start)
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("the live job's rsup exited %d, want 143", code)
	}
	if _, err := os.Stat(filepath.Join(root, "live")); !os.IsNotExist(err) {
		t.Errorf("the live job's cgroup remains after stop: %v", err)
	}
	if n := len(statusJSON(t, root)); n != 0 {
		t.Errorf("%d jobs left after gc and stop", n)
	}
	t.Logf("measured: status told running from stale; gc removed 1 stale job (its pid %d gone), left 1 live job; stop ended the live job: its rsup exited %d after %v; %s",
		leftover, code, took.Round(time.Millisecond), strings.TrimSpace(stop.stderr))
}

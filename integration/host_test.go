//go:build integration

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Asked for cgroup v2 on a hybrid or v1-only host, rsup fails closed: exit
// 125, a message that names the host's cgroup mode, and the command never
// runs. (By default such a host enforces through cgroup v1: v1_test.go.)
func TestHybridHostRefusesV2(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil {
		t.Skipf("statfs %s: %v", cgroupMount, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("%s is cgroup v2 (unified host): the refusal is tested on hybrid and v1 hosts", cgroupMount)
	}
	file := filepath.Join(t.TempDir(), "created")
	r := rsup(t, "run", "--cgroup-version", "2", "--memory", "64M", "--", "touch", file)
	if r.code != 125 {
		t.Errorf("exit %d, want 125", r.code)
	}
	mustContain(t, "stderr", r.stderr, "host cgroup mode: hybrid")
	mustContain(t, "stderr", r.stderr, "memory")
	if _, err := os.Stat(file); err == nil {
		t.Error("the command ran without its limits")
	}
	t.Logf("measured: exit %d; message: %s", r.code, r.stderr)
}

// On a hybrid host, monitor-only tracking still works: it needs no cgroup
// v2 at all.
func TestHybridHostTrackNoMove(t *testing.T) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil || st.Type == unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("%s is cgroup v2 or missing: this is the hybrid-host case", cgroupMount)
	}
	sleeper := exec.Command("sleep", "1")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan result, 1)
	go func() { done <- rsup(t, "track", "--no-move", strconv.Itoa(sleeper.Process.Pid)) }()
	_ = sleeper.Wait()
	r := <-done
	if r.code != 0 {
		t.Errorf("exit %d: %s", r.code, r.stderr)
	}
	mustContain(t, "stderr", r.stderr, "no limit is enforced")
	t.Logf("measured: --no-move on a hybrid host: exit %d in %v", r.code, r.wall.Round(time.Millisecond))
}

//go:build integration

package integration

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/supervisor"
)

const (
	cgroupMount = "/sys/fs/cgroup"
	// suiteDir holds every cgroup the suite creates, one directory per
	// test, all removed again.
	suiteDir = cgroupMount + "/rsup-integration"
)

var (
	rsupBin  string
	testBin  string
	buildDir string
)

func TestMain(m *testing.M) {
	// The shim joins the job cgroup first and then execs the helper.
	supervisor.RunShim()
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Args[1:]))
	}
	var err error
	if testBin, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: find test binary:", err)
		os.Exit(2)
	}
	rsupBin = os.Getenv("RSUP_BIN")
	if rsupBin == "" {
		if rsupBin, err = buildRsup(); err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			os.Exit(2)
		}
	}
	if err := leaveNamespaceRoot(); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		os.Exit(2)
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if v2Reason() == "" {
		os.Remove(suiteDir)
		if left := leftoverCgroups(); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "FAIL: cgroups of rsup remain after the suite: %s\n", strings.Join(left, ", "))
			code = 1
		} else {
			fmt.Println("suite: no cgroup of rsup's remains under", cgroupMount)
		}
	}
	os.Exit(code)
}

// leaveNamespaceRoot prepares a privileged container with its own cgroup
// namespace: there /sys/fs/cgroup is a non-root cgroup (it has cgroup.type)
// that holds the container's processes, so no controller can be enabled in
// it. Like docker-in-docker, the suite moves those processes into a leaf
// named "init" first. The real root cgroup (a VM, a host) is left alone.
func leaveNamespaceRoot() error {
	if v2Reason() != "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(cgroupMount, "cgroup.type")); err != nil {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(cgroupMount, "cgroup.procs"))
	if err != nil || len(strings.Fields(string(b))) == 0 {
		return err
	}
	leaf := filepath.Join(cgroupMount, "init")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create %s for the container's processes: %w", leaf, err)
	}
	for _, p := range strings.Fields(string(b)) {
		err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(p), 0)
		if err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("move pid %s into %s: %w", p, leaf, err)
		}
	}
	fmt.Printf("suite: moved %d process(es) of the cgroup namespace root into %s\n", len(strings.Fields(string(b))), leaf)
	return nil
}

// buildRsup builds the rsup command for host runs; in the VM RSUP_BIN
// points at a prebuilt one.
func buildRsup() (string, error) {
	dir, err := os.MkdirTemp("", "rsup-it-")
	if err != nil {
		return "", err
	}
	buildDir = dir
	out := filepath.Join(dir, "rsup")
	cmd := exec.Command("go", "build", "-o", out, "github.com/rsup/rsup/cmd/rsup")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build rsup (set RSUP_BIN to use a prebuilt one): %v\n%s", err, b)
	}
	return out, nil
}

// leftoverCgroups lists cgroups named like rsup's anywhere under the mount.
func leftoverCgroups() []string {
	var left []string
	_ = filepath.WalkDir(cgroupMount, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.HasPrefix(d.Name(), "rsup") && p != cgroupMount {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// v2Reason says why this host cannot run the cgroup v2 tests, or "".
func v2Reason() string {
	if os.Geteuid() != 0 {
		return "needs root to create cgroups"
	}
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil {
		return fmt.Sprintf("statfs %s: %v", cgroupMount, err)
	}
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		return fmt.Sprintf("%s is not cgroup v2 (a hybrid or v1 host; run these tests in the VM with `go run ./integration/vmrun`)", cgroupMount)
	}
	b, err := os.ReadFile(filepath.Join(cgroupMount, "cgroup.controllers"))
	if err != nil {
		return err.Error()
	}
	have := strings.Fields(string(b))
	for _, c := range []string{"cpu", "io", "memory", "pids"} {
		if !contains(have, c) {
			return fmt.Sprintf("controller %s is not available in %s/cgroup.controllers (%q)", c, cgroupMount, strings.TrimSpace(string(b)))
		}
	}
	return ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

var suiteOnce sync.Once
var suiteErr error

// requireV2 skips t unless the host has a usable cgroup v2, and returns a
// fresh cgroup directory for the test (not created: rsup creates it when
// given as --cgroup-root), removed when the test ends. The test fails if a
// job cgroup is left inside it.
func requireV2(t *testing.T) string {
	t.Helper()
	if r := v2Reason(); r != "" {
		t.Skip(r)
	}
	suiteOnce.Do(func() {
		suiteErr = enableControllers(cgroupMount)
		if suiteErr == nil {
			suiteErr = os.Mkdir(suiteDir, 0o755)
			if errors.Is(suiteErr, os.ErrExist) {
				suiteErr = nil
			}
		}
		if suiteErr == nil {
			suiteErr = enableControllers(suiteDir)
		}
	})
	if suiteErr != nil {
		t.Fatalf("prepare %s: %v", suiteDir, suiteErr)
	}
	root := filepath.Join(suiteDir, regexp.MustCompile(`[^A-Za-z0-9_-]`).ReplaceAllString(t.Name(), "_"))
	t.Cleanup(func() {
		// A job cgroup is one that carries rsup's owner mark.
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_, kept := unix.Lgetxattr(p, "user.rsup.kept", nil)
				if _, xerr := unix.Lgetxattr(p, "user.rsup.owner", nil); xerr == nil && kept != nil {
					t.Errorf("job cgroup %s was left behind", p)
				}
			}
			return nil
		})
		if err := removeCgroupTree(root); err != nil {
			t.Errorf("remove test cgroups: %v", err)
		}
	})
	return root
}

func enableControllers(dir string) error {
	return os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte("+cpu +io +memory +pids"), 0)
}

// removeCgroupTree removes a cgroup and its children, deepest first,
// killing anything still inside.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0)
	var rerr error
	for range 200 {
		if rerr = unix.Rmdir(dir); rerr == nil || errors.Is(rerr, unix.ENOENT) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("rmdir %s: %w", dir, rerr)
}

// result is one finished rsup run.
type result struct {
	code           int
	stdout, stderr string
	wall           time.Duration
}

// rsup runs the rsup command with args and waits for it.
func rsup(t *testing.T, args ...string) result {
	t.Helper()
	return rsupCmd(t, exec.Command(rsupBin, args...))
}

func rsupCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb strings.Builder
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &errb
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%v did not finish within 2 minutes", cmd.Args)
	}
	r := result{stdout: out.String(), stderr: errb.String(), wall: time.Since(start), code: cmd.ProcessState.ExitCode()}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("wait %v: %v", cmd.Args, err)
	}
	return r
}

// helper returns the command line that re-runs this test binary as the
// named helper.
func helper(mode string, args ...string) []string {
	return append([]string{"env", helperEnv + "=" + mode, testBin}, args...)
}

var summaryRe = regexp.MustCompile(`(\w[\w.]*) ([0-9.]+)s?`)

// summaryValue extracts a figure ("memory.peak", "cpu", "wall",
// "leftovers killed" as "killed") from rsup -v's closing line.
func summaryValue(t *testing.T, stderr, key string) float64 {
	t.Helper()
	for line := range strings.Lines(stderr) {
		if !strings.Contains(line, "oom_kill ") {
			continue
		}
		for _, m := range summaryRe.FindAllStringSubmatch(line, -1) {
			if m[1] == key {
				v, _ := strconv.ParseFloat(m[2], 64)
				return v
			}
		}
	}
	t.Fatalf("no %q in rsup's summary:\n%s", key, stderr)
	return 0
}

func mustContain(t *testing.T, what, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%s does not contain %q:\n%s", what, sub, s)
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

package supervisor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The re-exec shim is the fallback for hosts that refuse clone3 into a
// cgroup (seccomp profiles of older container runtimes): the supervisor
// starts its own executable with shimEnv set, the cgroup directory on
// descriptor shimCgroupFD and a status pipe on shimStatusFD; the shim moves
// itself into the cgroup and then execs the command, so the command's first
// instruction already runs inside it. Only the shim's few lines of Go run
// outside.
const (
	shimEnv      = "_RSUP_SHIM"
	shimCgroupFD = 3
	shimStatusFD = 4
)

// RunShim turns this process into the re-exec shim if it was started as
// one, and never returns in that case. Programs that embed the supervisor
// call it first thing in main (and in TestMain for tests); the rsup command
// does.
func RunShim() {
	if os.Getenv(shimEnv) != "1" {
		return
	}
	fail := func(code int, err error) {
		msg := strconv.Itoa(code) + " " + err.Error()
		_, _ = unix.Write(shimStatusFD, []byte(msg))
		os.Exit(code)
	}
	unix.CloseOnExec(shimCgroupFD)
	unix.CloseOnExec(shimStatusFD)
	if len(os.Args) < 3 {
		fail(ExitFailure, errors.New("rsup shim: missing command"))
	}
	fd, err := unix.Openat(shimCgroupFD, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		_, err = unix.Write(fd, []byte("0"))
		unix.Close(fd)
	}
	if err != nil {
		fail(ExitFailure, fmt.Errorf("rsup shim: join the job cgroup: %w", err))
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	err = unix.Exec(os.Args[1], os.Args[2:], env)
	code := ExitNotRunnable
	if errors.Is(err, unix.ENOENT) {
		code = ExitNotFound
	}
	fail(code, fmt.Errorf("start %s: %w", os.Args[1], err))
}

// startShim starts path through the re-exec shim and waits until the shim
// has either exec'd the command or reported why it could not.
func (s *run) startShim(path string, files []*os.File, attr *syscall.SysProcAttr) (*os.Process, error) {
	cgfd, err := unix.FcntlInt(uintptr(s.job.FD()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, fmt.Errorf("duplicate job cgroup descriptor for the shim: %w", err)
	}
	cg := os.NewFile(uintptr(cgfd), s.job.Path())
	defer cg.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create shim status pipe: %w", err)
	}
	defer r.Close()
	env := s.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	a := *attr
	a.UseCgroupFD, a.CgroupFD = false, 0
	proc, err := os.StartProcess("/proc/self/exe", append([]string{"rsup-shim", path}, s.cfg.Args...), &os.ProcAttr{
		Dir:   s.cfg.Dir,
		Env:   append(env[:len(env):len(env)], shimEnv+"=1"),
		Files: append(files[:3:3], cg, w),
		Sys:   &a,
	})
	w.Close()
	if err != nil {
		return nil, &StartError{Code: ExitFailure, Err: fmt.Errorf("start re-exec shim: %w", err)}
	}
	msg, _ := io.ReadAll(r)
	if len(msg) == 0 {
		return proc, nil // exec succeeded: the pipe closed on exec
	}
	var ws unix.WaitStatus
	_, _ = unix.Wait4(proc.Pid, &ws, 0, nil)
	_ = proc.Release()
	code, text, _ := strings.Cut(string(msg), " ")
	c, err := strconv.Atoi(code)
	if err != nil {
		c = ExitFailure
	}
	return nil, &StartError{Code: c, Err: errors.New(text)}
}

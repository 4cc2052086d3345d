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

// The re-exec shim starts the command where clone3 into a cgroup cannot:
// on hosts that refuse it (seccomp profiles of older container runtimes)
// and on cgroup v1, where a job has one directory per hierarchy. The
// supervisor starts its own executable with shimEnv set to the number of
// job directories, a status pipe on descriptor shimStatusFD and the
// directories on the descriptors after it; the shim moves itself into each
// and then execs the command, so the command's first instruction already
// runs inside the job. Only the shim's few lines of Go run outside.
const (
	shimEnv      = "_RSUP_SHIM"
	shimStatusFD = 3
	shimFirstDir = 4
)

// RunShim turns this process into the re-exec shim if it was started as
// one, and never returns in that case. Programs that embed the supervisor
// call it first thing in main (and in TestMain for tests); the rsup command
// does.
func RunShim() {
	dirs, err := strconv.Atoi(os.Getenv(shimEnv))
	if err != nil || dirs <= 0 {
		return
	}
	fail := func(code int, err error) {
		msg := strconv.Itoa(code) + " " + err.Error()
		_, _ = unix.Write(shimStatusFD, []byte(msg))
		os.Exit(code)
	}
	unix.CloseOnExec(shimStatusFD)
	for i := range dirs {
		unix.CloseOnExec(shimFirstDir + i)
	}
	if len(os.Args) < 3 {
		fail(ExitFailure, errors.New("rsup shim: missing command"))
	}
	for i := range dirs {
		fd, err := unix.Openat(shimFirstDir+i, "cgroup.procs", unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			_, err = unix.Write(fd, []byte("0"))
			unix.Close(fd)
		}
		if err != nil {
			fail(ExitFailure, fmt.Errorf("rsup shim: join the job cgroup (directory %d of %d): %w", i+1, dirs, err))
		}
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
	var dirs []*os.File
	defer func() {
		for _, f := range dirs {
			f.Close()
		}
	}()
	for _, fd := range s.job.JoinFDs() {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			return nil, fmt.Errorf("duplicate job cgroup descriptor for the shim: %w", err)
		}
		dirs = append(dirs, os.NewFile(uintptr(dup), s.job.Path()))
	}
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
		Env:   append(env[:len(env):len(env)], shimEnv+"="+strconv.Itoa(len(dirs))),
		Files: append(append(files[:3:3], w), dirs...),
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

package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// start starts the main process inside the job cgroup.
func (s *run) start() error {
	path := s.cfg.Path
	if path == "" {
		p, err := exec.LookPath(s.cfg.Args[0])
		if err != nil {
			return lookPathError(s.cfg.Args[0], err)
		}
		path = p
	}
	// Checked here so that a failure of clone3 into the cgroup, which Go
	// reports like a failed execve, is not taken for one.
	if err := unix.Access(path, unix.X_OK); err != nil {
		return lookPathError(path, &os.PathError{Op: "access", Path: path, Err: err})
	}
	files, closeFiles, err := s.stdio()
	if err != nil {
		return &StartError{Code: ExitFailure, Err: err}
	}
	defer closeFiles()

	s.tty = openTerminal()
	attr := &syscall.SysProcAttr{
		// Its own process group, so that a signal sent to rsup's group
		// reaches the command once, through rsup, and never twice.
		Setpgid: true,
	}
	// clone3(CLONE_INTO_CGROUP), Linux 5.7+: the child is born in the job
	// cgroup, so not one of its instructions runs outside it. Where that
	// is impossible (cgroup v1), the shim joins the job before it execs.
	cgfd, clone := s.job.CloneFD()
	if clone {
		attr.UseCgroupFD, attr.CgroupFD = true, cgfd
	}
	if s.tty.inForeground() {
		// The command's group takes the terminal, so keyboard signals
		// (Ctrl-C) go to it alone and not also to rsup, and it may read
		// the terminal even when rsup's stdin is a pipe.
		attr.Foreground = true
		attr.Ctty = s.tty.fd()
	}
	s.started = time.Now()
	var proc *os.Process
	if !s.cfg.UseShim && clone {
		proc, err = os.StartProcess(path, s.cfg.Args, &os.ProcAttr{Dir: s.cfg.Dir, Env: s.cfg.Env, Files: files, Sys: attr})
		if err != nil && cloneRefused(err) {
			s.cfg.Logf("clone3 into the job cgroup was refused (%v); starting through the re-exec shim instead", errors.Unwrap(err))
		}
	}
	if s.cfg.UseShim || !clone || err != nil && cloneRefused(err) {
		s.res.Shim = clone // on cgroup v1 the shim is the only way, not a fallback
		s.started = time.Now()
		proc, err = s.startShim(path, files, attr)
	}
	if err != nil {
		s.tty.takeBack(0)
		s.tty.close()
		var se *StartError
		if errors.As(err, &se) {
			return err
		}
		return execError(path, s.job.Path(), err)
	}
	s.pid = proc.Pid
	s.res.PID = proc.Pid
	// The process is reaped with wait4 by pid; release the handle (its
	// pidfd) without waiting.
	_ = proc.Release()
	return nil
}

// stdio returns the three standard files for the command, opening the null
// device for nil ones.
func (s *run) stdio() ([]*os.File, func(), error) {
	var opened []*os.File
	files := []*os.File{s.cfg.Stdin, s.cfg.Stdout, s.cfg.Stderr}
	for i, f := range files {
		if f != nil {
			continue
		}
		n, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return nil, nil, fmt.Errorf("open %s for the command's stdio: %w", os.DevNull, err)
		}
		opened = append(opened, n)
		files[i] = n
	}
	return files, func() {
		for _, o := range opened {
			o.Close()
		}
	}, nil
}

// cloneRefused tells whether a start failed because clone3 or
// CLONE_INTO_CGROUP is unavailable (seccomp filters commonly answer ENOSYS
// or EPERM; kernels 5.3-5.6 know clone3 but not CLONE_INTO_CGROUP and
// answer EINVAL), as opposed to a failed execve.
func cloneRefused(err error) bool {
	var pe *os.PathError
	if !errors.As(err, &pe) {
		return false
	}
	return errors.Is(pe.Err, unix.ENOSYS) || errors.Is(pe.Err, unix.EPERM) || errors.Is(pe.Err, unix.EINVAL)
}

func lookPathError(name string, err error) error {
	if errors.Is(err, fs.ErrPermission) || errors.Is(err, unix.EACCES) {
		return &StartError{Code: ExitNotRunnable, Err: fmt.Errorf("command %q is not executable: %w", name, err)}
	}
	return &StartError{Code: ExitNotFound, Err: fmt.Errorf("command %q not found: %w", name, unwrapExec(err))}
}

func unwrapExec(err error) error {
	var ee *exec.Error
	if errors.As(err, &ee) {
		return ee.Err
	}
	return err
}

func execError(path, cgroupPath string, err error) error {
	switch {
	case errors.Is(err, unix.EACCES):
		// The executable passed access(X_OK), so this is clone3 being
		// refused entry to the cgroup (delegation rules).
		return &StartError{Code: ExitFailure, Err: fmt.Errorf("start %s in job cgroup %s: %w (clone3 into the cgroup needs write access to cgroup.procs of it and of the common ancestor)", path, cgroupPath, unix.EACCES)}
	case errors.Is(err, unix.ENOENT):
		// The file exists (LookPath found it), so ENOENT is about its
		// interpreter or a missing shared loader.
		return &StartError{Code: ExitNotFound, Err: fmt.Errorf("start %s: %w (is its #! interpreter or dynamic loader missing?)", path, unix.ENOENT)}
	case errors.Is(err, unix.ENOEXEC), errors.Is(err, unix.EPERM),
		errors.Is(err, unix.ETXTBSY), errors.Is(err, unix.E2BIG), errors.Is(err, unix.ELOOP), errors.Is(err, unix.EISDIR):
		return &StartError{Code: ExitNotRunnable, Err: fmt.Errorf("start %s: %w", path, errors.Unwrap(err))}
	}
	return &StartError{Code: ExitFailure, Err: fmt.Errorf("start %s: %w", path, err)}
}

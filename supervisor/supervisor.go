// Package supervisor runs a command inside a job cgroup and sees it through
// to the end: it starts the command already inside the cgroup, forwards
// signals to it, reaps it and any orphans, kills whatever the command left
// behind in the cgroup, and removes the cgroup.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/internal/crashtest"
)

// Forwarded are the signals that Run passes on to the command when
// Config.ForwardSignals is set. SIGCHLD and SIGURG (the Go runtime's
// preemption signal) are never forwarded.
var Forwarded = []os.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// Config describes one supervised command. The zero value of each optional
// field is documented with it.
type Config struct {
	// Path is the executable to run; if empty, Args[0] is looked up in
	// PATH.
	Path string
	// Args is the command line, starting with argv[0]. Required.
	Args []string
	// Env is the command's environment; nil means the supervisor's own.
	Env []string
	// Dir is the working directory; empty means the supervisor's own.
	Dir string
	// Stdin, Stdout and Stderr are passed to the command as they are; nil
	// means the null device. They are never wrapped in pipes, so a
	// process left holding one cannot stall the supervisor.
	Stdin, Stdout, Stderr *os.File
	// Job is the cgroup the command runs in. Required. Run removes it.
	Job *cgroup.Job
	// Subreaper makes the calling process a child subreaper, so that
	// orphans of the command are reparented to it and reaped. Only a
	// program that owns all its children (such as the rsup command)
	// should set it: Run then reaps every child of the process.
	Subreaper bool
	// ForwardSignals passes the signals in Forwarded, when they reach
	// this process, on to the command.
	ForwardSignals bool
	// Signals, if set, is a channel the caller has already registered
	// with signal.Notify for Forwarded, early (before creating the job),
	// so that a signal arriving during setup is not lost: if one is
	// pending when Run starts, the command is not started and Run
	// returns a StartError with status 128+N. Run adds SIGCHLD to it and
	// stops all notification on it before returning.
	Signals chan os.Signal
	// StopSignal is sent to the command when ctx is cancelled; zero means
	// SIGTERM. After StopGrace (zero: 10s) every process in the job is
	// killed through the cgroup.
	StopSignal unix.Signal
	StopGrace  time.Duration
	// Teardown bounds the wait for the job cgroup to empty and be
	// removed; zero means 10s.
	Teardown time.Duration
	// UseShim starts the command through the re-exec shim (see RunShim)
	// even where clone3 into the cgroup works; the shim is otherwise only
	// a fallback for when clone3 is refused.
	UseShim bool
	// Started, if set, is called with the main process's pid once it
	// runs, before Run waits for it. The process is not reaped before
	// Started returns, so the pid is safe to pin with pidfd_open there.
	Started func(pid int)
	// Exited, if set, is called once the main process has exited and
	// before anything left in the job is killed and the cgroup removed:
	// the last moment the job's figures can be read.
	Exited func()
	// Logf receives diagnostics (fallbacks, leftovers); nil discards them.
	Logf func(format string, args ...any)
}

// Result is what Run learned about a finished job.
type Result struct {
	PID int
	// ExitCode is the command's exit code, or -1 if a signal killed it.
	ExitCode int
	// Signal is the signal that killed the command, or 0.
	Signal unix.Signal
	// Leftovers is the number of processes still in the job cgroup when
	// the command exited; they were killed.
	Leftovers int
	// OOMKills is memory.events' oom_kill count of the job.
	OOMKills uint64
	// MemoryPeak is memory.peak (Linux 5.19+), nil where unknown.
	MemoryPeak *uint64
	// CPU is the job's total CPU time (cpu.stat usage_usec), nil where
	// unknown.
	CPU *time.Duration
	// Wall is the time from start to the command's exit.
	Wall time.Duration
	// Forwarded counts signals passed on to the command.
	Forwarded int
	// Shim is set when the command was started through the re-exec shim
	// because clone3 into a cgroup was refused.
	Shim bool
}

// Status returns the exit status a shell would report: the exit code, or
// 128+N for death by signal N.
func (r *Result) Status() int {
	if r.Signal != 0 {
		return 128 + int(r.Signal)
	}
	return r.ExitCode
}

// StartError is returned when the command could not be started; Code is
// the conventional exit status for it (125, 126 or 127).
type StartError struct {
	Code int
	Err  error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Exit statuses for commands that could not be run, as in POSIX shells and
// env(1).
const (
	ExitFailure     = 125 // the supervisor failed before starting the command
	ExitNotRunnable = 126 // found, but could not be executed
	ExitNotFound    = 127
)

// Run starts the command in its job cgroup and supervises it until it has
// exited, every process it left in the cgroup is dead, and the cgroup is
// removed. It returns a *StartError if the command never ran; otherwise a
// Result, and an error if teardown did not complete.
//
// When ctx is cancelled, the command is sent StopSignal, and after StopGrace
// the whole job is killed.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Args) == 0 || cfg.Job == nil {
		return nil, &StartError{Code: ExitFailure, Err: errors.New("supervisor: Config needs Args and Job")}
	}
	cfg.setDefaults()
	s := &run{cfg: cfg, job: cfg.Job}
	defer s.removeJob()

	if cfg.Subreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			return nil, &StartError{Code: ExitFailure, Err: fmt.Errorf("become child subreaper: %w", err)}
		}
	}
	sigs := cfg.Signals
	if sigs == nil {
		sigs = make(chan os.Signal, 64)
	}
	notify := []os.Signal{unix.SIGCHLD}
	if cfg.ForwardSignals {
		notify = append(notify, Forwarded...)
	}
	signal.Notify(sigs, notify...)
	defer signal.Stop(sigs)
	if cfg.Signals != nil {
		select {
		case sig := <-sigs:
			// Only signals that would have ended rsup abort the start.
			if sig != unix.SIGCHLD && sig != unix.SIGWINCH {
				s.removeJob()
				return nil, &StartError{Code: 128 + int(sig.(unix.Signal)), Err: fmt.Errorf("received %v before the command started; it was not started", sig)}
			}
		default:
		}
	}

	if err := s.start(); err != nil {
		s.removeJob()
		if s.err != nil {
			s.cfg.Logf("%v", s.err)
		}
		return nil, err
	}
	if cfg.Started != nil {
		cfg.Started(s.pid)
	}
	s.supervise(ctx, sigs)
	return s.finish()
}

func (c *Config) setDefaults() {
	if c.StopSignal == 0 {
		c.StopSignal = unix.SIGTERM
	}
	if c.StopGrace == 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.Teardown == 0 {
		c.Teardown = 10 * time.Second
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
}

// run is the state of one Run call.
type run struct {
	cfg     Config
	job     *cgroup.Job
	res     Result
	pid     int
	exited  bool
	started time.Time
	tty     *terminal
	removed bool
	err     error
}

// supervise waits for the main process to exit, forwarding signals and
// reaping as they arrive.
func (s *run) supervise(ctx context.Context, sigs <-chan os.Signal) {
	var graceC <-chan time.Time
	done := ctx.Done()
	for !s.exited {
		select {
		case sig := <-sigs:
			if sig == unix.SIGCHLD {
				s.reap()
				continue
			}
			if err := unix.Kill(s.pid, sig.(unix.Signal)); err == nil {
				s.res.Forwarded++
			}
		case <-done:
			done = nil
			s.cfg.Logf("stopping: sending %v to pid %d, killing the job after %v", s.cfg.StopSignal, s.pid, s.cfg.StopGrace)
			_ = unix.Kill(s.pid, s.cfg.StopSignal)
			t := time.NewTimer(s.cfg.StopGrace)
			defer t.Stop()
			graceC = t.C
		case <-graceC:
			graceC = nil
			if _, err := s.job.Kill(); err != nil {
				s.cfg.Logf("kill job after stop grace: %v", err)
			}
		}
	}
}

// reap collects exited children without blocking. A subreaper collects
// every child (orphans of the job included) and picks out the main
// process's status; otherwise only the main process is waited for, so the
// embedding program's other children are left alone.
func (s *run) reap() {
	for {
		if s.exited && !s.cfg.Subreaper {
			return
		}
		target := s.pid
		if s.cfg.Subreaper {
			target = -1
		}
		var ws unix.WaitStatus
		pid, err := unix.Wait4(target, &ws, unix.WNOHANG|unix.WUNTRACED, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ws.Stopped() {
			if pid == s.pid {
				s.suspend(ws.StopSignal())
			}
			continue
		}
		if pid == s.pid {
			s.exited = true
			s.res.Wall = time.Since(s.started)
			if ws.Signaled() {
				s.res.ExitCode, s.res.Signal = -1, ws.Signal()
			} else {
				s.res.ExitCode = ws.ExitStatus()
			}
		}
	}
}

// reapLeftovers waits, briefly, for the last children of a subreaper: a
// process counts as gone from its cgroup a moment before it becomes a
// zombie, so the job can read empty while its killed processes still wait
// to be reaped, and without this they would be left to init as zombies.
func (s *run) reapLeftovers() {
	if !s.cfg.Subreaper {
		return
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR), err == nil && pid > 0:
			continue // reaped one; look for more at once
		case err != nil:
			return // ECHILD: no children left
		}
	}
}

// finish kills what the command left in its cgroup, collects the job's
// figures and removes the cgroup.
func (s *run) finish() (*Result, error) {
	s.tty.takeBack(s.pid)
	s.tty.close()
	if s.cfg.Exited != nil {
		s.cfg.Exited()
	}
	var errs []error
	if ev, err := s.job.MemoryEvents(); err == nil {
		s.res.OOMKills = ev["oom_kill"]
	}
	if n, err := s.job.MemoryPeak(); err == nil {
		s.res.MemoryPeak = &n
	}
	n, err := s.job.Kill()
	if err != nil {
		errs = append(errs, fmt.Errorf("kill processes left in job %s: %w", s.job.Path(), err))
	}
	s.res.Leftovers = n
	if n > 0 {
		s.cfg.Logf("killed %d process(es) left in job %s after its command exited", n, s.job.Name())
	}
	if err := s.job.WaitEmpty(s.cfg.Teardown, s.reap); err != nil {
		errs = append(errs, err)
	}
	s.reapLeftovers()
	crashtest.At("removal")
	// The usage is read after the leftovers are gone, so it includes them.
	if d, err := s.job.CPUUsage(); err == nil {
		s.res.CPU = &d
	}
	s.removeJob()
	if s.err != nil {
		errs = append(errs, s.err)
	}
	return &s.res, errors.Join(errs...)
}

func (s *run) removeJob() {
	if s.removed {
		return
	}
	s.removed = true
	if err := s.job.Remove(s.cfg.Teardown); err != nil {
		s.err = err
	}
}

package policy

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// CgroupJob is the Job of an engine acting on a real job cgroup. Signals
// go through pidfds, and only to processes that are in the job's cgroup
// (or below it) when the signal is sent.
type CgroupJob struct {
	*cgroup.Job
	proc string

	mu   sync.Mutex
	main []mainProc
}

type mainProc struct{ pid, fd int }

// NewCgroupJob returns the Job for job. proc is the proc file system
// ("/proc").
func NewCgroupJob(job *cgroup.Job, proc string) *CgroupJob {
	return &CgroupJob{Job: job, proc: proc}
}

// AddMain adds a main process (the target of "main" signals, whose process
// group is the target of "group" signals), pinned by a pidfd. pid must be
// a child not yet reaped, or a process the caller has pinned otherwise.
func (j *CgroupJob) AddMain(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("pin main process %d of job %s with pidfd_open: %w", pid, j.Name(), err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.main = append(j.main, mainProc{pid, fd})
	return nil
}

// AddMainPidfd adds a main process the caller has already pinned with
// pidfd; the descriptor is duplicated, and the caller keeps its own.
func (j *CgroupJob) AddMainPidfd(pid, pidfd int) error {
	fd, err := unix.FcntlInt(uintptr(pidfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("duplicate pidfd of main process %d of job %s: %w", pid, j.Name(), err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.main = append(j.main, mainProc{pid, fd})
	return nil
}

// Close releases the pidfds of the main processes.
func (j *CgroupJob) Close() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, m := range j.main {
		unix.Close(m.fd)
	}
	j.main = nil
}

// Signal sends sig to the target's processes in the job and returns how
// many it reached. For TargetGroup and TargetCgroup the job's processes are
// listed again until a pass finds no process not yet signalled, so that
// children forked during the pass are reached too.
func (j *CgroupJob) Signal(t Target, sig unix.Signal) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	switch t {
	case TargetMain:
		n := 0
		var errs []error
		for _, m := range j.main {
			ok, err := j.signalPinned(m.pid, m.fd, sig, nil)
			if ok {
				n++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
		return n, errors.Join(errs...)
	case TargetGroup:
		groups := map[int]bool{}
		for _, m := range j.main {
			pgid, err := unix.Getpgid(m.pid)
			// The pgid is the main process's only while its pidfd says
			// it has not exited.
			if err == nil && unix.PidfdSendSignal(m.fd, 0, nil, 0) == nil {
				groups[pgid] = true
			}
		}
		if len(groups) == 0 {
			return 0, nil
		}
		return j.signalAll(sig, func(pid int) bool {
			pgid, err := unix.Getpgid(pid)
			return err == nil && groups[pgid]
		})
	case TargetCgroup:
		return j.signalAll(sig, nil)
	}
	return 0, fmt.Errorf("unknown signal target %q", t)
}

// signalAll signals every process of the job that match accepts.
func (j *CgroupJob) signalAll(sig unix.Signal, match func(pid int) bool) (int, error) {
	done := map[int]bool{}
	var errs []error
	for range 16 {
		procs, err := j.Procs()
		if err != nil {
			return len(done), err
		}
		fresh := 0
		for _, p := range procs {
			pid := int(p)
			if done[pid] {
				continue
			}
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue // gone already
			}
			ok, err := j.signalPinned(pid, fd, sig, match)
			unix.Close(fd)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				done[pid] = true
				fresh++
			}
		}
		if fresh == 0 {
			break
		}
	}
	return len(done), errors.Join(errs...)
}

// signalPinned sends sig through fd to pid if the process is in the job
// and match (if any) accepts it. What was read about pid in /proc is
// trusted only because the pidfd shows the process alive after the read.
func (j *CgroupJob) signalPinned(pid, fd int, sig unix.Signal, match func(int) bool) (bool, error) {
	if in, err := j.Contains(j.proc, pid); err != nil || !in {
		return false, nil
	}
	if match != nil && !match(pid) {
		return false, nil
	}
	if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
		return false, nil
	}
	switch err := unix.PidfdSendSignal(fd, sig, nil, 0); {
	case errors.Is(err, unix.ESRCH):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("send %s to pid %d of job %s: %w", unix.SignalName(sig), pid, j.Name(), err)
	}
	return true, nil
}

package supervisor

import (
	"errors"
	"fmt"
	"os"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Target is a running process that rsup adopts without being its parent.
// It is pinned by a pidfd from the moment it is named, so that a pid that
// is freed and reused by an unrelated process is never mistaken for it.
type Target struct {
	PID   int
	Comm  string
	PPID  int
	Start uint64 // start time, clock ticks after boot
	// Origin is the cgroup the process was in before it was adopted,
	// relative to the cgroup2 mount.
	Origin string
	// RSS is VmRSS when it was adopted, in bytes.
	RSS uint64
	// Threads is the number of threads when it was adopted.
	Threads int

	fd     int
	exited bool
}

// ErrExited is returned for a target that has exited.
var ErrExited = errors.New("process has exited")

// kthreadFlag is PF_KTHREAD from include/linux/sched.h, in field 9 of
// /proc/PID/stat.
const kthreadFlag = 0x00200000

// OpenTarget pins pid with a pidfd and reads what rsup needs to know about
// it. Everything read from /proc is confirmed to belong to the pinned
// process: the pidfd is checked after the reads.
func OpenTarget(fs procfs.FS, pid int) (*Target, error) {
	fd, err := unix.PidfdOpen(pid, 0) // pidfds are close-on-exec
	if errors.Is(err, unix.ESRCH) {
		return nil, fmt.Errorf("no process with pid %d", pid)
	}
	if err != nil {
		return nil, fmt.Errorf("pin pid %d with pidfd_open (Linux 5.3+): %w", pid, err)
	}
	t := &Target{PID: pid, fd: fd}
	p, err := fs.Proc(pid)
	var st procfs.ProcStat
	if err == nil {
		st, err = p.Stat()
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	t.Comm, t.PPID, t.Start = st.Comm, st.PPID, st.Starttime
	t.Threads = st.NumThreads
	t.RSS = uint64(st.ResidentMemory())
	if st.State == "Z" || st.State == "X" {
		t.Close()
		return nil, fmt.Errorf("pid %d (%s) has already exited (zombie)", pid, t.Comm)
	}
	if st.Flags&kthreadFlag != 0 || pid == 2 || st.PPID == 2 {
		t.Close()
		return nil, fmt.Errorf("pid %d (%s) is a kernel thread: kernel threads stay in the root cgroup", pid, t.Comm)
	}
	if !t.Alive() {
		t.Close()
		return nil, fmt.Errorf("pid %d exited while rsup was reading it", pid)
	}
	return t, nil
}

// Alive reports whether the pinned process has not exited: its pidfd is
// not readable yet.
func (t *Target) Alive() bool {
	if t.exited || t.fd < 0 {
		return false
	}
	fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n > 0 {
			t.exited = true
			return false
		}
		return true
	}
}

// Signal sends sig to the pinned process, never to a process that reused
// its pid.
func (t *Target) Signal(sig unix.Signal) error {
	if t.fd < 0 {
		return ErrExited
	}
	err := unix.PidfdSendSignal(t.fd, sig, nil, 0)
	if errors.Is(err, unix.ESRCH) {
		return ErrExited
	}
	return err
}

// PidFD returns the pidfd that pins the process, or -1 once closed. It
// stays owned by the Target.
func (t *Target) PidFD() int { return t.fd }

// Close releases the pidfd.
func (t *Target) Close() {
	if t.fd >= 0 {
		unix.Close(t.fd)
		t.fd = -1
	}
}

// ancestors returns the chain of parent pids of pid, up to pid 1.
func ancestors(fs procfs.FS, pid int) map[int]bool {
	out := map[int]bool{}
	for i := 0; pid > 1 && i < 4096; i++ {
		p, err := fs.Proc(pid)
		if err != nil {
			break
		}
		st, err := p.Stat()
		if err != nil {
			break
		}
		out[pid] = true
		pid = st.PPID
	}
	return out
}

// CheckTarget refuses processes rsup must not adopt: init, rsup itself and
// its ancestors. The rest (kernel threads, exited processes) OpenTarget
// refuses.
func CheckTarget(fs procfs.FS, t *Target) error {
	switch {
	case t.PID == 1:
		return fmt.Errorf("pid 1 (%s) is the init process: rsup will not fence it", t.Comm)
	case t.PID == os.Getpid():
		return fmt.Errorf("pid %d is rsup itself", t.PID)
	case ancestors(fs, os.Getppid())[t.PID]:
		return fmt.Errorf("pid %d (%s) is an ancestor of rsup: fencing it would fence rsup too", t.PID, t.Comm)
	}
	return nil
}

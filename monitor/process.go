package monitor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// ProcessUsage is what /proc tells of one tracked process.
type ProcessUsage struct {
	PID  int
	Comm string
	// CPU is the process's CPU time so far (user + system), and
	// CPUUtilization its share of one CPU since the previous reading.
	CPU            time.Duration
	CPUUtilization float64
	// RSS is its resident set in bytes.
	RSS uint64
	// ReadBytes and WriteBytes are the storage bytes it caused to be read
	// and written (/proc/PID/io); nil where the kernel hides them.
	ReadBytes, WriteBytes *uint64
	// Exited is set once the process has exited; its last figures stay.
	Exited    bool
	Timestamp time.Time
}

// tracked is a process pinned by a pidfd, so that a reused pid is never
// read as if it were the same process.
type tracked struct {
	fd    int
	start uint64
	last  ProcessUsage
}

// TrackProcess adds pid to the processes whose usage each sample reads
// from /proc.
func (m *Monitor) TrackProcess(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return fmt.Errorf("track pid %d: %w", pid, err)
	}
	p, err := m.proc.Proc(pid)
	var st procfs.ProcStat
	if err == nil {
		st, err = p.Stat()
	}
	if err == nil && !pidfdAlive(fd) {
		err = errors.New("exited while being read")
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("track pid %d: %w", pid, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.procs[pid]; ok {
		unix.Close(old.fd)
	}
	m.procs[pid] = &tracked{fd: fd, start: st.Starttime, last: ProcessUsage{PID: pid, Comm: st.Comm}}
	return nil
}

// UntrackProcess stops reading pid.
func (m *Monitor) UntrackProcess(pid int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t, ok := m.procs[pid]; ok {
		unix.Close(t.fd)
		delete(m.procs, pid)
	}
}

// Processes returns the latest usage of every tracked process.
func (m *Monitor) Processes() []ProcessUsage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ProcessUsage, 0, len(m.procs))
	for _, t := range m.procs {
		out = append(out, t.last)
	}
	return out
}

// sampleProcessesLocked reads every tracked process that is still alive.
func (m *Monitor) sampleProcessesLocked(now time.Time) {
	for pid, t := range m.procs {
		if t.last.Exited {
			continue
		}
		u, err := readProcess(m.proc, pid, now)
		// The reading counts only if the pinned process was alive after
		// it: otherwise the pid may already be another process's.
		if err != nil || !pidfdAlive(t.fd) || u.start != t.start {
			t.last.Exited = true
			t.last.Timestamp = now
			continue
		}
		if prev := t.last; !prev.Timestamp.IsZero() && now.After(prev.Timestamp) {
			u.usage.CPUUtilization = float64(u.usage.CPU-prev.CPU) / float64(now.Sub(prev.Timestamp))
		}
		t.last = u.usage
	}
}

type procReading struct {
	usage ProcessUsage
	start uint64
}

func readProcess(fs procfs.FS, pid int, now time.Time) (procReading, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return procReading{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return procReading{}, err
	}
	u := ProcessUsage{PID: pid, Comm: st.Comm, CPU: time.Duration(st.CPUTime() * float64(time.Second)), RSS: uint64(st.ResidentMemory()), Timestamp: now}
	if io, err := p.IO(); err == nil {
		r, w := io.ReadBytes, io.WriteBytes
		u.ReadBytes, u.WriteBytes = &r, &w
	}
	return procReading{usage: u, start: st.Starttime}, nil
}

// pidfdAlive reports whether the process behind a pidfd has not exited.
func pidfdAlive(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		return err == nil && n == 0
	}
}

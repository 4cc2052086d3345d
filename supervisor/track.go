package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// TrackConfig describes the adoption of running processes.
type TrackConfig struct {
	// Targets are the processes named by the user, already checked.
	Targets []*Target
	// Hierarchy and Job are where the targets are moved. A nil Job means
	// monitor-only tracking: nothing is moved and no limit is written.
	Hierarchy *cgroup.Hierarchy
	Job       *cgroup.Job
	// Children also adopts every descendant of the targets.
	Children bool
	// Keep leaves the adopted processes in the job cgroup when tracking
	// is stopped, instead of returning them to where they came from.
	Keep bool
	// Signals is a channel registered with signal.Notify for the signals
	// that stop tracking (see Stop).
	Signals chan os.Signal
	// Proc is the proc file system.
	Proc procfs.FS
	// Logf receives progress and diagnostics; nil discards them.
	Logf func(format string, args ...any)
}

// TrackResult is what tracking did.
type TrackResult struct {
	// Adopted lists every process that was tracked, named or found as a
	// descendant; Moved counts those that rsup moved into the job.
	Adopted []*Target
	Moved   int
	// Stopped is the signal that ended tracking, or nil when every
	// tracked process exited.
	Stopped os.Signal
	// Returned counts processes moved back to their original cgroups.
	Returned int
	// OOMKills is the job's memory.events oom_kill count.
	OOMKills uint64
}

// Tracker adopts processes into a job cgroup and watches them until they
// exit or tracking is stopped.
type Tracker struct {
	cfg    TrackConfig
	res    TrackResult
	byPID  map[int]*Target
	jobRel string
}

// NewTracker prepares the adoption of cfg.Targets.
func NewTracker(cfg TrackConfig) *Tracker {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	tr := &Tracker{cfg: cfg, byPID: map[int]*Target{}}
	for _, t := range cfg.Targets {
		tr.byPID[t.PID] = t
		tr.res.Adopted = append(tr.res.Adopted, t)
	}
	if cfg.Job != nil {
		tr.jobRel = cfg.Hierarchy.Rel(cfg.Job)
	}
	return tr
}

// Adopt moves every target into the job cgroup (with Children, also their
// descendants, until a pass over the process table finds none left
// outside), checking each pidfd around each move. It returns how many
// processes it moved.
func (tr *Tracker) Adopt() (int, error) {
	if tr.cfg.Job == nil {
		return 0, nil
	}
	for _, t := range tr.cfg.Targets {
		if err := tr.move(t, tr.jobRel); err != nil {
			return tr.res.Moved, fmt.Errorf("adopt pid %d (%s): %w", t.PID, t.Comm, err)
		}
	}
	if !tr.cfg.Children {
		return tr.res.Moved, nil
	}
	for pass := 1; ; pass++ {
		added, err := tr.adoptChildren()
		if err != nil {
			return tr.res.Moved, err
		}
		if added == 0 {
			tr.cfg.Logf("descendant walk reached a fixed point after %d pass(es)", pass)
			return tr.res.Moved, nil
		}
		if pass == 1000 {
			return tr.res.Moved, errors.New("descendants keep appearing after 1000 passes (a fork bomb?); giving up the walk")
		}
	}
}

// move writes t into the cgroup rel. The pidfd is checked before and after
// the write: if t was alive after it, the write reached t; if t exited
// meanwhile, its pid may already name a newcomer, which is put back.
func (tr *Tracker) move(t *Target, rel string) error {
	if !t.Alive() {
		return ErrExited
	}
	err := tr.cfg.Hierarchy.Move(rel, t.PID)
	if t.Alive() {
		if err == nil && rel == tr.jobRel {
			tr.res.Moved++
		}
		return err
	}
	// t exited during the write. If its pid was reused at once and the
	// write moved the newcomer, undo that: a fresh process belongs in its
	// parent's cgroup.
	if cur, cerr := tr.cfg.Hierarchy.CgroupOf(t.PID); cerr == nil && cur == rel {
		if p, perr := tr.cfg.Proc.Proc(t.PID); perr == nil {
			if st, serr := p.Stat(); serr == nil && st.Starttime != t.Start {
				if parent, err := tr.cfg.Hierarchy.CgroupOf(st.PPID); err == nil {
					_ = tr.cfg.Hierarchy.Move(parent, t.PID)
					tr.cfg.Logf("pid %d was reused by a new process during the move; put it back into %s", t.PID, parent)
				}
			}
		}
	}
	return ErrExited
}

// adoptChildren adds the children of tracked processes that are not
// tracked yet, and moves those not in the job already. It returns how many
// it added.
func (tr *Tracker) adoptChildren() (int, error) {
	procs, err := tr.cfg.Proc.AllProcs()
	if err != nil {
		return 0, fmt.Errorf("list processes: %w", err)
	}
	added := 0
	for _, p := range procs {
		if _, ok := tr.byPID[p.PID]; ok {
			continue
		}
		st, err := p.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		parent, ok := tr.byPID[st.PPID]
		if !ok || !parent.Alive() || st.Starttime < parent.Start {
			continue
		}
		t, err := OpenTarget(tr.cfg.Proc, p.PID)
		if err != nil {
			continue // exited, or not adoptable; its children are not ours
		}
		if t.PPID != parent.PID || t.Start != st.Starttime || p.PID == os.Getpid() {
			t.Close()
			continue
		}
		cur, err := tr.cfg.Hierarchy.CgroupOf(t.PID)
		if err != nil || !t.Alive() {
			t.Close()
			continue
		}
		if job, o, ok := tr.cfg.Hierarchy.JobOwning(cur); ok && cur != tr.jobRel && !strings.HasPrefix(cur, tr.jobRel+"/") {
			tr.cfg.Logf("not adopting pid %d (%s): it is in job %s of the rsup running as pid %d", t.PID, t.Comm, filepath.Base(job), o.PID)
			t.Close()
			tr.byPID[t.PID] = t // do not look at it again
			continue
		}
		t.Origin = cur
		if cur == tr.jobRel || strings.HasPrefix(cur, tr.jobRel+"/") {
			// Born after its parent moved: already fenced; it goes
			// back with its parent.
			t.Origin = parent.Origin
		} else if err := tr.move(t, tr.jobRel); err != nil {
			t.Close()
			continue
		}
		tr.byPID[t.PID] = t
		tr.res.Adopted = append(tr.res.Adopted, t)
		added++
	}
	return added, nil
}

// Wait watches the tracked processes until all of them, and anything they
// started inside the job cgroup, have exited, or until a stop signal
// arrives on cfg.Signals or ctx ends. Exits are seen as the pidfds become
// readable, and the job's emptiness through inotify on cgroup.events.
func (tr *Tracker) Wait(ctx context.Context) (os.Signal, error) {
	wake, stop, err := tr.waker(ctx)
	if err != nil {
		return nil, err
	}
	defer stop()
	var ino int = -1
	// Without a file that says when the job empties (cgroup v1), its
	// emptiness is checked every pollEmpty.
	timeout := -1
	if tr.cfg.Job != nil {
		events, ok := tr.cfg.Job.EventsFile()
		if !ok {
			timeout = int(pollEmpty.Milliseconds())
		} else {
			ino, err = unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
			if err != nil {
				return nil, fmt.Errorf("inotify for %s: %w", tr.cfg.Job.Path(), err)
			}
			defer unix.Close(ino)
			if _, err := unix.InotifyAddWatch(ino, events, unix.IN_MODIFY); err != nil {
				return nil, fmt.Errorf("watch %s: %w", events, err)
			}
		}
	}
	buf := make([]byte, 4096)
	for {
		var fds []unix.PollFd
		var live []*Target
		for _, t := range tr.res.Adopted {
			if t.fd >= 0 && !t.exited {
				fds = append(fds, unix.PollFd{Fd: int32(t.fd), Events: unix.POLLIN})
				live = append(live, t)
			}
		}
		if len(live) == 0 && tr.jobEmpty() {
			return nil, nil
		}
		fds = append(fds, unix.PollFd{Fd: int32(wake.fd), Events: unix.POLLIN})
		if ino >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(ino), Events: unix.POLLIN})
		}
		if _, err := unix.Poll(fds, timeout); err != nil && !errors.Is(err, unix.EINTR) {
			return nil, fmt.Errorf("poll pidfds: %w", err)
		}
		for i, t := range live {
			if fds[i].Revents != 0 {
				t.exited = true
				t.Close()
				tr.cfg.Logf("pid %d (%s) exited; its exit status is not known to rsup, which is not its parent", t.PID, t.Comm)
			}
		}
		if ino >= 0 && fds[len(fds)-1].Revents != 0 {
			_, _ = unix.Read(ino, buf) // drain; emptiness is read from the file
		}
		if fds[len(live)].Revents != 0 {
			return wake.signal(), nil
		}
	}
}

// pollEmpty is how often Wait checks a job that cannot say when it empties.
const pollEmpty = 100 * time.Millisecond

// jobEmpty reports whether no process is left in the job cgroup (always
// true without one).
func (tr *Tracker) jobEmpty() bool {
	if tr.cfg.Job == nil {
		return true
	}
	ev, err := tr.cfg.Job.Events()
	return err != nil || ev["populated"] == 0
}

// Release returns every tracked process that is still alive, and any
// process born inside the job, to the cgroup it came from (its tracked
// ancestor's for those born inside), so that the job cgroup can be
// removed. It returns how many it moved.
func (tr *Tracker) Release() (int, error) {
	if tr.cfg.Job == nil {
		return 0, nil
	}
	var errs []error
	n := 0
	for _, t := range tr.res.Adopted {
		if !t.Alive() {
			continue
		}
		if err := tr.move(t, t.Origin); err != nil && !errors.Is(err, ErrExited) {
			errs = append(errs, fmt.Errorf("return pid %d (%s) to %s: %w", t.PID, t.Comm, t.Origin, err))
			continue
		}
		n++
	}
	// Processes born in the job after adoption have no pidfd yet.
	for range 10 {
		procs, err := tr.cfg.Job.Procs()
		if err != nil || len(procs) == 0 {
			break
		}
		for _, pid := range procs {
			t, err := OpenTarget(tr.cfg.Proc, int(pid))
			if err != nil {
				continue
			}
			cur, err := tr.cfg.Hierarchy.CgroupOf(t.PID)
			if err == nil && t.Alive() && (cur == tr.jobRel || strings.HasPrefix(cur, tr.jobRel+"/")) {
				dst := tr.originFor(t)
				if err := tr.move(t, dst); err == nil {
					n++
				} else if !errors.Is(err, ErrExited) {
					errs = append(errs, fmt.Errorf("move pid %d (%s) out of the job to %s: %w", t.PID, t.Comm, dst, err))
				}
			}
			t.Close()
		}
		if len(errs) > 0 {
			break
		}
	}
	tr.res.Returned = n
	return n, errors.Join(errs...)
}

// originFor picks the cgroup for a process born inside the job: that of its
// nearest tracked ancestor.
func (tr *Tracker) originFor(t *Target) string {
	pid := t.PPID
	for range 4096 {
		if a, ok := tr.byPID[pid]; ok && a.Origin != "" {
			return a.Origin
		}
		p, err := tr.cfg.Proc.Proc(pid)
		if err != nil {
			break
		}
		st, err := p.Stat()
		if err != nil || pid <= 1 {
			break
		}
		pid = st.PPID
	}
	return tr.cfg.Targets[0].Origin
}

// Result returns what tracking did so far.
func (tr *Tracker) Result() *TrackResult {
	if tr.cfg.Job != nil {
		if ev, err := tr.cfg.Job.MemoryEvents(); err == nil {
			tr.res.OOMKills = ev["oom_kill"]
		}
	}
	return &tr.res
}

// Close releases every pidfd.
func (tr *Tracker) Close() {
	for _, t := range tr.res.Adopted {
		t.Close()
	}
	for _, t := range tr.byPID {
		t.Close()
	}
}

// waker turns a stop signal or the end of ctx into a readable pipe that
// poll can wait on together with the pidfds. stop ends its goroutine and
// closes the pipe.
type waker struct {
	fd  int
	sig chan os.Signal
}

func (w *waker) signal() os.Signal { return <-w.sig }

func (tr *Tracker) waker(ctx context.Context) (*waker, func(), error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("create wake pipe: %w", err)
	}
	w := &waker{fd: p[0], sig: make(chan os.Signal, 1)}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case s := <-tr.cfg.Signals:
			w.sig <- s
		case <-ctx.Done():
			w.sig <- unix.SIGTERM
		case <-done:
			return
		}
		_, _ = unix.Write(p[1], []byte{1})
	}()
	return w, func() {
		close(done)
		<-finished
		unix.Close(p[0])
		unix.Close(p[1])
	}, nil
}

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/internal/crashtest"
)

// Job is the cgroup of one supervised job, held open from creation to
// removal.
type Job struct {
	name  string
	path  string
	d     *dir
	mgr   *cgroup2.Manager
	owner Owner
	v1    *v1Job // set, and d and mgr nil, on a cgroup v1 host
	// cgPath is the job's cgroup as /proc/PID/cgroup shows it (the memory
	// hierarchy's on v1).
	cgPath string
}

// ErrJobExists is returned when a job cgroup of the same name is in use.
var ErrJobExists = errors.New("job cgroup exists")

// NewJob creates the job cgroup root/name, marks it as owned by the calling
// process and applies res. Limits are validated before anything is created.
// On any failure nothing is left behind.
func (h *Hierarchy) NewJob(name string, res *Resources) (*Job, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := res.Validate(); err != nil {
		return nil, err
	}
	if h.v1 != nil {
		return h.newJobV1(name, res)
	}
	if miss := missing(res.Controllers(), h.enabled); len(miss) > 0 {
		return nil, fmt.Errorf("%w: controller(s) %s not enabled for children of %s", ErrNoCgroup2, strings.Join(miss, ", "), h.root)
	}
	path := filepath.Join(h.root, name)
	if err := mkdirCgroup(path); errors.Is(err, os.ErrExist) {
		if err := h.reclaim(path); err != nil {
			return nil, err
		}
		err = mkdirCgroup(path)
		if err != nil {
			return nil, fmt.Errorf("create job cgroup: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("create job cgroup: %w%s", err, permHint(err))
	}
	j, err := h.loadJob(name)
	if err == nil {
		j.owner, err = ownerOf(h.proc, os.Getpid())
	}
	if err == nil {
		err = setOwner(path, j.owner)
	}
	if err == nil {
		err = j.Apply(res)
	}
	if err != nil {
		if j != nil {
			j.d.close()
		}
		if rerr := removeTree(path, time.Second); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return nil, err
	}
	return j, nil
}

func (h *Hierarchy) loadJob(name string) (*Job, error) {
	path := filepath.Join(h.root, name)
	d, err := openDir(path)
	if err != nil {
		return nil, err
	}
	rel, err := filepath.Rel(h.mount, path)
	if err != nil {
		d.close()
		return nil, err
	}
	mgr, err := cgroup2.Load("/"+rel, cgroup2.WithMountpoint(h.mount))
	if err != nil {
		d.close()
		return nil, fmt.Errorf("load job cgroup %s: %w", path, err)
	}
	return &Job{name: name, path: path, d: d, mgr: mgr, cgPath: "/" + rel}, nil
}

// reclaim removes an existing job cgroup left behind by an rsup that is
// gone, killing what is left in it, as rsup gc does. A cgroup without an
// owner mark, whose owner still runs, or that was kept, is refused.
func (h *Hierarchy) reclaim(path string) error {
	ev, err := readFileAt(filepath.Join(path, "cgroup.events"))
	if err != nil {
		return err
	}
	kv, err := parseKeyed(ev)
	if err != nil {
		return fmt.Errorf("%s/cgroup.events: %w", path, err)
	}
	o, err := readOwner(path)
	_, kerr := unix.Lgetxattr(path, keptXattr, nil)
	switch {
	case errors.Is(err, ErrNoOwner):
		// Not marked: made by someone else, or by an rsup that has just
		// created it and not marked it yet. Never take it over.
		if kv["populated"] != 0 {
			return fmt.Errorf("%w: %s already exists and holds processes: choose another --name, or stop that job first", ErrJobExists, path)
		}
		return fmt.Errorf("%w: %s already exists and is not marked as an rsup job: choose another --name, or remove it (rmdir) if it is a leftover", ErrJobExists, path)
	case err != nil:
		return err
	case o.alive(h.proc):
		return fmt.Errorf("%w: %s belongs to the rsup running as pid %d: choose another --name", ErrJobExists, path, o.PID)
	case kerr == nil:
		return fmt.Errorf("%w: %s was kept (rsup track --keep): choose another --name, or end it with rsup stop %s", ErrJobExists, path, filepath.Base(path))
	}
	// Its owner is gone: a leftover of a crashed rsup.
	if kv["populated"] != 0 || kv["frozen"] != 0 {
		_, err := h.Collect(filepath.Base(path))
		return err
	}
	return removeTree(path, time.Second)
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// Path returns the job cgroup's absolute path.
func (j *Job) Path() string { return j.path }

// FD returns a descriptor of the job cgroup's directory (O_PATH, close on
// exec), for clone3(CLONE_INTO_CGROUP). It stays valid until Remove.
func (j *Job) FD() int {
	if j.v1 != nil {
		return -1
	}
	return j.d.fd
}

// CloneFD returns the descriptor to start a process in the job with
// clone3(CLONE_INTO_CGROUP), and false where that is not possible (cgroup
// v1): the process must then join the job itself (JoinFDs).
func (j *Job) CloneFD() (int, bool) {
	if j.v1 != nil {
		return -1, false
	}
	return j.d.fd, true
}

// JoinFDs returns the directories a process joins the job through, by
// writing 0 to cgroup.procs in each: one on cgroup v2, one per hierarchy
// on v1. They stay owned by the job.
func (j *Job) JoinFDs() []int {
	if j.v1 == nil {
		return []int{j.d.fd}
	}
	fds := make([]int, 0, len(j.v1.dirs))
	for _, vd := range j.v1.dirs {
		fds = append(fds, vd.d.fd)
	}
	return fds
}

// Owner returns the owner mark written on the job cgroup.
func (j *Job) Owner() Owner { return j.owner }

// ReadFile returns the content of one of the job's interface files.
func (j *Job) ReadFile(name string) (string, error) {
	if j.v1 != nil {
		vd, err := j.fileDirV1(name)
		if err != nil {
			return "", err
		}
		return vd.d.read(name)
	}
	return j.d.read(name)
}

// CPUUsage returns the CPU time the job's processes have used (cpu.stat
// usage_usec; cpuacct.usage on v1).
func (j *Job) CPUUsage() (time.Duration, error) {
	if j.v1 != nil {
		n, err := j.readUint("cpuacct.usage")
		return time.Duration(n), err
	}
	kv, err := j.keyed("cpu.stat")
	if err != nil {
		return 0, err
	}
	us, ok := kv["usage_usec"]
	if !ok {
		return 0, fmt.Errorf("cpu.stat of job %s has no usage_usec", j.path)
	}
	return time.Duration(us) * time.Microsecond, nil
}

// MemoryCurrent returns the memory charged to the job now (memory.current;
// memory.usage_in_bytes on v1).
func (j *Job) MemoryCurrent() (uint64, error) {
	if j.v1 != nil {
		return j.readUint("memory.usage_in_bytes")
	}
	return j.readUint("memory.current")
}

// MemoryPeak returns the most memory the job has used (memory.peak, Linux
// 5.19+; memory.max_usage_in_bytes on v1).
func (j *Job) MemoryPeak() (uint64, error) {
	if j.v1 != nil {
		return j.readUint("memory.max_usage_in_bytes")
	}
	return j.readUint("memory.peak")
}

// readUint reads an interface file that holds one number.
func (j *Job) readUint(file string) (uint64, error) {
	s, err := j.ReadFile(file)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s of job %s: %q is not a number", file, j.path, s)
	}
	return n, nil
}

// Apply writes res to the job cgroup as one set: every value is checked
// first, and if the kernel still rejects a write, the writes made before it
// are undone and the error names the file and the value.
func (j *Job) Apply(res *Resources) error {
	if j.v1 != nil {
		return j.applyV1(res)
	}
	if err := res.Validate(); err != nil {
		return err
	}
	type undo struct{ file, value string }
	var done []undo
	for _, s := range res.plan() {
		old, err := j.d.read(s.file)
		if err != nil && s.optional && errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			err = fmt.Errorf("cannot read %s before writing %q to it%s: %w", s.file, s.value, missingHint(s.file), err)
		} else {
			if s.device != nil {
				old = ioMaxLine(old, *s.device)
			}
			if err = j.d.write(s.file, s.value); err != nil {
				err = fmt.Errorf("the kernel rejected a limit: %w", err)
			}
		}
		if err != nil {
			var rb []error
			for _, u := range slices.Backward(done) {
				if rerr := j.d.write(u.file, u.value); rerr != nil {
					rb = append(rb, fmt.Errorf("roll back: %w", rerr))
				}
			}
			return errors.Join(append([]error{fmt.Errorf("apply limits to job %s (none was left in force): %w", j.name, err)}, rb...)...)
		}
		done = append(done, undo{s.file, old})
	}
	return nil
}

func missingHint(file string) string {
	if file == "memory.swap.max" {
		return " (the kernel has no swap accounting: boot with swapaccount=1, or pass --swap max)"
	}
	return ""
}

// ioMaxLine returns the io.max line to restore for dev: its current line,
// or no limits when the device has none.
func ioMaxLine(content string, dev Device) string {
	for line := range strings.Lines(content) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == dev.String() {
			return strings.TrimSpace(line)
		}
	}
	return dev.String() + " rbps=max wbps=max riops=max wiops=max"
}

// EventsFile returns the file that changes (inotify IN_MODIFY) when the job
// empties or freezes, cgroup.events, and false on cgroup v1, which has
// none.
func (j *Job) EventsFile() (string, bool) {
	if j.v1 != nil {
		return "", false
	}
	return filepath.Join(j.path, "cgroup.events"), true
}

// Events returns the keys of cgroup.events (populated, frozen).
func (j *Job) Events() (map[string]uint64, error) {
	if j.v1 != nil {
		return j.eventsV1()
	}
	return j.keyed("cgroup.events")
}

// MemoryEvents returns the counters of memory.events (low, high, max, oom,
// oom_kill, ...).
// On cgroup v1 only oom_kill (memory.oom_control) and max (memory.failcnt)
// exist.
func (j *Job) MemoryEvents() (map[string]uint64, error) {
	if j.v1 != nil {
		return j.memoryEventsV1()
	}
	return j.keyed("memory.events")
}

func (j *Job) keyed(file string) (map[string]uint64, error) {
	s, err := j.d.read(file)
	if err != nil {
		return nil, err
	}
	kv, err := parseKeyed(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(j.path, file), err)
	}
	return kv, nil
}

// Procs returns the processes in the job cgroup and its descendants.
func (j *Job) Procs() ([]uint64, error) {
	if j.v1 != nil {
		return j.procsV1()
	}
	p, err := j.mgr.Procs(true)
	if err != nil {
		return nil, fmt.Errorf("list processes of job %s: %w", j.path, err)
	}
	return p, nil
}

// Kill sends SIGKILL to every process in the job cgroup and returns how many
// there were. It uses cgroup.kill (Linux 5.14+), which also catches
// processes forked during the kill; on older kernels it falls back to
// KillFrozen.
func (j *Job) Kill() (int, error) {
	if j.v1 != nil {
		return j.killV1()
	}
	if os.Getenv(crashtest.Env) == "fallback-kill" {
		return j.KillFrozen() // the suite's way to reach the fallback
	}
	// The count is for reporting only: the kill must not depend on it.
	procs, _ := j.Procs()
	err := j.d.write("cgroup.kill", "1")
	if errors.Is(err, unix.ENOENT) {
		return j.KillFrozen()
	}
	return len(procs), err
}

// KillFrozen kills every process of the job through the freezer: it freezes
// the cgroup so no process can fork, sends SIGKILL to each, and thaws it
// again, also when anything fails (SIGKILL is delivered to frozen tasks, but
// they only die once thawed).
func (j *Job) KillFrozen() (n int, err error) {
	if j.v1 != nil {
		return j.killV1()
	}
	if err := j.d.write("cgroup.freeze", "1"); err != nil {
		return 0, err
	}
	defer func() {
		if terr := j.d.write("cgroup.freeze", "0"); terr != nil {
			err = errors.Join(err, fmt.Errorf("thaw job %s: %w", j.path, terr))
		}
	}()
	crashtest.At("fallback-kill")
	// Freezing completes asynchronously; wait for it, but never for long:
	// the kill below is still correct without it, just racier.
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if ev, err := j.Events(); err != nil || ev["frozen"] == 1 {
			break
		}
	}
	procs, err := j.Procs()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, p := range procs {
		if err := unix.Kill(int(p), unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", p, err))
		}
	}
	return len(procs), errors.Join(errs...)
}

// WaitEmpty waits until no process is left in the job cgroup ("populated 0"
// in cgroup.events), calling tick between polls (a subreaper reaps there).
// It gives up after timeout.
func (j *Job) WaitEmpty(timeout time.Duration, tick func()) error {
	deadline := time.Now().Add(timeout)
	delay := 500 * time.Microsecond
	for {
		if tick != nil {
			tick()
		}
		ev, err := j.Events()
		if err != nil {
			return err
		}
		if ev["populated"] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("job %s still has processes after %v", j.path, timeout)
		}
		time.Sleep(delay)
		delay = min(delay*2, 50*time.Millisecond)
	}
}

// Remove closes the job's descriptor and removes its cgroup and any
// children, retrying while the kernel still reports it busy.
func (j *Job) Remove(timeout time.Duration) error {
	if j.v1 != nil {
		return j.removeV1(timeout)
	}
	j.d.close()
	if err := removeTree(j.path, timeout); err != nil {
		return fmt.Errorf("remove job cgroup: %w", err)
	}
	return nil
}

package cgroup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// metaXattr holds what rsup status shows about a job: its main process,
// command line, policy and start time, as JSON.
const metaXattr = "user.rsup.job"

// JobMeta is what a supervising rsup records about its job.
type JobMeta struct {
	PID     int      `json:"pid,omitempty"`
	Command []string `json:"command,omitempty"`
	Policy  string   `json:"policy,omitempty"`
	Started int64    `json:"started,omitempty"` // Unix seconds
}

// SetMeta records m on the job's cgroup. On cgroup v1, which keeps no
// extended attributes, it does nothing.
func (j *Job) SetMeta(m JobMeta) error {
	if j.v1 != nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := unix.Lsetxattr(j.path, metaXattr, b, 0); err != nil {
		return &FileError{Op: "write", Path: j.path + " [xattr " + metaXattr + "]", Value: string(b), Err: err}
	}
	return nil
}

// JobInfo describes a job cgroup found in rsup's hierarchy.
type JobInfo struct {
	Name, Path string
	// Marked says the cgroup carries an owner mark; Owner and OwnerAlive
	// are only meaningful then.
	Marked     bool
	Owner      Owner
	OwnerAlive bool
	Kept       bool // left fenced on purpose (track --keep)
	Populated  bool
	Frozen     bool
	Procs      []uint64
	Meta       JobMeta
}

// Stale reports a job whose supervisor is gone and that nobody kept: a
// leftover of an rsup that was killed.
func (i JobInfo) Stale() bool { return i.Marked && !i.OwnerAlive && !i.Kept }

// Jobs lists the job cgroups in rsup's hierarchy, by name.
func (h *Hierarchy) Jobs() ([]JobInfo, error) {
	entries, err := os.ReadDir(h.root)
	if err != nil {
		return nil, fmt.Errorf("list jobs in %s: %w", h.root, err)
	}
	var out []JobInfo
	for _, e := range entries {
		if !e.IsDir() || (h.v1 == nil && (e.Name() == SupervisorLeaf || e.Name() == EvacuatedLeaf)) {
			continue
		}
		info, err := h.JobInfo(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b JobInfo) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// JobInfo describes the job cgroup name.
func (h *Hierarchy) JobInfo(name string) (JobInfo, error) {
	if err := ValidateName(name); err != nil {
		return JobInfo{}, err
	}
	j, err := h.LoadJob(name)
	if err != nil {
		return JobInfo{}, err
	}
	defer j.Close()
	info := JobInfo{Name: name, Path: j.path}
	if j.v1 == nil {
		switch o, err := readOwner(j.path); {
		case err == nil:
			info.Marked, info.Owner, info.OwnerAlive = true, o, o.alive(h.proc)
		case !errors.Is(err, ErrNoOwner):
			return JobInfo{}, err
		}
		_, kerr := unix.Lgetxattr(j.path, keptXattr, nil)
		info.Kept = kerr == nil
		buf := make([]byte, 4096)
		if n, err := unix.Lgetxattr(j.path, metaXattr, buf); err == nil {
			_ = json.Unmarshal(buf[:n], &info.Meta) // a damaged record only hides details
		}
	}
	ev, err := j.Events()
	if err != nil {
		return JobInfo{}, err
	}
	info.Populated, info.Frozen = ev["populated"] == 1, ev["frozen"] == 1
	if info.Procs, err = j.Procs(); err != nil {
		return JobInfo{}, err
	}
	return info, nil
}

// LoadJob opens the existing job cgroup name, to read or end it.
func (h *Hierarchy) LoadJob(name string) (*Job, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if h.v1 == nil {
		if _, err := os.Stat(filepath.Join(h.root, name)); err != nil {
			return nil, fmt.Errorf("job %s: %w", name, err)
		}
		j, err := h.loadJob(name)
		if err != nil {
			return nil, err
		}
		if o, err := readOwner(j.path); err == nil {
			j.owner = o
		}
		return j, nil
	}
	j := &Job{name: name, v1: &v1Job{}}
	byRoot := map[string][]string{}
	for c, r := range h.v1.roots {
		byRoot[r] = append(byRoot[r], c)
	}
	for root, ctls := range byRoot {
		path := filepath.Join(root, name)
		d, err := openDir(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			j.closeV1()
			return nil, err
		}
		slices.Sort(ctls)
		j.v1.dirs = append(j.v1.dirs, &v1Dir{ctls: ctls, path: path, d: d})
	}
	if len(j.v1.dirs) == 0 {
		return nil, fmt.Errorf("job %s: %w", name, os.ErrNotExist)
	}
	slices.SortFunc(j.v1.dirs, func(a, b *v1Dir) int {
		if a.path < b.path {
			return -1
		}
		return 1
	})
	j.path = h.root + "/" + name
	if d := j.v1.dir("memory"); d != nil {
		j.path = d.path
		j.cgPath = filepath.Join(h.v1.cgPaths["memory"], name)
	}
	return j, nil
}

// End ends every process of the job the way a policy kill does: sig to
// each, then, after grace, a kill of whatever is left. A frozen job is
// thawed first, so that it can act on sig. It returns how many processes
// got sig, and whether the final kill was needed.
func (j *Job) End(sig unix.Signal, grace time.Duration) (signalled int, killed bool, err error) {
	if ev, err := j.Events(); err == nil && ev["frozen"] == 1 {
		if err := j.Freeze(false); err != nil {
			return 0, false, fmt.Errorf("thaw job %s: %w", j.name, err)
		}
	}
	procs, err := j.Procs()
	if err != nil {
		return 0, false, err
	}
	for _, p := range procs {
		// pidfds: a pid listed a moment ago may be reused; the signal
		// goes only to a process still in the job.
		fd, err := unix.PidfdOpen(int(p), 0)
		if err != nil {
			continue
		}
		if in, err := j.Contains("/proc", int(p)); err == nil && in && unix.PidfdSendSignal(fd, sig, nil, 0) == nil {
			signalled++
		}
		unix.Close(fd)
	}
	if err := j.WaitEmpty(grace, nil); err == nil || errors.Is(err, os.ErrNotExist) {
		return signalled, false, nil // empty, or already removed by its rsup
	}
	if _, err := j.Kill(); errors.Is(err, os.ErrNotExist) {
		return signalled, false, nil
	} else if err != nil {
		return signalled, true, err
	}
	return signalled, true, j.WaitEmpty(5*time.Second, nil)
}

// Collect removes a stale job: thaws it, kills what is left in it and
// removes its cgroup. It refuses a job that is not stale.
func (h *Hierarchy) Collect(name string) (killed int, err error) {
	info, err := h.JobInfo(name)
	if err != nil {
		return 0, err
	}
	if !info.Stale() {
		return 0, fmt.Errorf("job %s is not a leftover (owner mark %v, owner alive %v, kept %v): use rsup stop", name, info.Marked, info.OwnerAlive, info.Kept)
	}
	j, err := h.LoadJob(name)
	if err != nil {
		return 0, err
	}
	if info.Frozen {
		if err := j.Freeze(false); err != nil {
			j.Close()
			return 0, fmt.Errorf("thaw job %s: %w", name, err)
		}
	}
	if info.Populated {
		if killed, err = j.Kill(); err != nil {
			j.Close()
			return killed, err
		}
		if err := j.WaitEmpty(5*time.Second, nil); err != nil {
			j.Close()
			return killed, err
		}
	}
	return killed, j.Remove(5 * time.Second)
}

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Path returns the absolute path of the cgroup whose path relative to the
// mount is rel, as /proc/PID/cgroup shows it ("0::/a/b").
func (h *Hierarchy) Path(rel string) string {
	return filepath.Join(h.mount, filepath.Clean("/"+rel))
}

// CgroupOf returns the cgroup v2 path of pid relative to the mount, as
// /proc/PID/cgroup shows it.
//
// On cgroup v1 it returns a placement instead: the process's cgroup in each
// hierarchy rsup uses, which Move and the other methods taking a cgroup
// accept the same way.
func (h *Hierarchy) CgroupOf(pid int) (string, error) {
	if h.v1 != nil {
		return h.placementOf(pid)
	}
	return ReadProcCgroup(h.procDir, pid)
}

// ReadProcCgroup returns the cgroup v2 path of pid from proc's
// PID/cgroup ("0::/path").
func ReadProcCgroup(proc string, pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("pid %d has no cgroup v2 entry in %s/%d/cgroup", pid, proc, pid)
}

// Move writes pid into the cgroup.procs of the cgroup at rel (relative to
// the mount). All threads of the process move with it.
func (h *Hierarchy) Move(rel string, pid int) error {
	if h.v1 != nil {
		return h.moveV1(rel, pid)
	}
	return writeFileAt(filepath.Join(h.Path(rel), "cgroup.procs"), strconv.Itoa(pid))
}

// Rel returns the path of job's cgroup relative to the mount.
func (h *Hierarchy) Rel(j *Job) string {
	if h.v1 != nil {
		return h.jobPlacement(j)
	}
	r, err := filepath.Rel(h.mount, j.path)
	if err != nil {
		return j.path
	}
	return "/" + r
}

// JobOwning returns the live rsup owner of the job cgroup that contains
// the cgroup rel, if any: rel itself or one of its ancestors carries an
// owner mark of a process that still runs.
func (h *Hierarchy) JobOwning(rel string) (string, Owner, bool) {
	if h.v1 != nil {
		// cgroup v1 keeps no owner marks: the job of a live rsup cannot
		// be told from any other cgroup.
		return "", Owner{}, false
	}
	for p := h.Path(rel); strings.HasPrefix(p, h.mount) && p != h.mount; p = filepath.Dir(p) {
		o, err := readOwner(p)
		if err == nil && o.alive(h.proc) {
			return p, o, true
		}
	}
	return "", Owner{}, false
}

// CanMove checks that this process may move pid from the cgroup rel to the
// job: the kernel wants write access to cgroup.procs of the source, of the
// destination and of their common ancestor. It names the first file it
// may not write.
func (h *Hierarchy) CanMove(rel string, j *Job) error {
	if h.v1 != nil {
		return h.canMoveV1(rel, j)
	}
	src := h.Path(rel)
	files := []string{filepath.Join(src, "cgroup.procs"), filepath.Join(h.root, "cgroup.procs")}
	if j != nil {
		files[1] = filepath.Join(j.path, "cgroup.procs")
	}
	anc := src
	for !strings.HasPrefix(h.root+"/", anc+"/") && anc != h.mount {
		anc = filepath.Dir(anc)
	}
	files = append(files, filepath.Join(anc, "cgroup.procs"))
	for _, f := range files {
		if err := unix.Access(f, unix.W_OK); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("%s does not exist", f)
			}
			return fmt.Errorf("no write permission on %s (%v): moving a process needs write access to cgroup.procs of its cgroup, of the destination and of their common ancestor", f, err)
		}
	}
	return nil
}

// Contains tells whether pid is in the job's cgroup or below it, from
// proc's PID/cgroup.
func (j *Job) Contains(proc string, pid int) (bool, error) {
	if j.v1 != nil {
		return j.containsV1(proc, pid)
	}
	rel, err := ReadProcCgroup(proc, pid)
	if err != nil {
		return false, err
	}
	return rel == j.cgPath || strings.HasPrefix(rel, j.cgPath+"/"), nil
}

// Keep marks the job as deliberately left running without a supervisor,
// so that a later clean-up does not take it for a crashed rsup's leftover.
func (j *Job) Keep() error {
	if j.v1 != nil {
		return errors.New("cgroup v1 keeps no extended attributes: the job cannot be marked as kept, and a later clean-up would take it for a leftover")
	}
	if err := unix.Lsetxattr(j.path, keptXattr, []byte("1"), 0); err != nil {
		return &FileError{Op: "write", Path: j.path + " [xattr " + keptXattr + "]", Value: "1", Err: err}
	}
	return nil
}

const keptXattr = "user.rsup.kept"

// Close releases the job's descriptor without removing the cgroup.
func (j *Job) Close() error {
	if j.v1 != nil {
		return j.closeV1()
	}
	return j.d.close()
}

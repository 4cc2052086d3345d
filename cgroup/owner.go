package cgroup

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// ownerXattr marks a job cgroup with the rsup process that supervises it.
// cgroupfs keeps user.* extended attributes since Linux 5.7, and the owner
// of a delegated cgroup may write them (trusted.* would need CAP_SYS_ADMIN).
const ownerXattr = "user.rsup.owner"

// Owner identifies a supervising process across pid reuse: its pid and its
// start time in clock ticks since boot (field 22 of /proc/PID/stat).
type Owner struct {
	PID       int
	StartTime uint64
}

func (o Owner) String() string { return fmt.Sprintf("pid=%d start=%d", o.PID, o.StartTime) }

func parseOwner(s string) (Owner, error) {
	var o Owner
	for f := range strings.FieldsSeq(s) {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "pid":
			o.PID, err = strconv.Atoi(v)
		case "start":
			o.StartTime, err = strconv.ParseUint(v, 10, 64)
		}
		if err != nil {
			return Owner{}, fmt.Errorf("bad owner mark %q: %w", s, err)
		}
	}
	if o.PID <= 0 {
		return Owner{}, fmt.Errorf("bad owner mark %q: no pid", s)
	}
	return o, nil
}

// ownerOf returns the Owner for pid from the proc file system.
func ownerOf(fs procfs.FS, pid int) (Owner, error) {
	p, err := fs.Proc(pid)
	if err != nil {
		return Owner{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return Owner{}, err
	}
	return Owner{PID: pid, StartTime: st.Starttime}, nil
}

// alive reports whether the owner still runs: the pid exists and started
// at the recorded time.
//
// The process is pinned with a pidfd while its start time is read, so
// that a pid reused meanwhile is not mistaken for the owner.
func (o Owner) alive(fs procfs.FS) bool {
	fd, err := unix.PidfdOpen(o.PID, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	cur, err := ownerOf(fs, o.PID)
	return err == nil && cur.StartTime == o.StartTime && unix.PidfdSendSignal(fd, 0, nil, 0) == nil
}

func setOwner(path string, o Owner) error {
	if err := unix.Lsetxattr(path, ownerXattr, []byte(o.String()), 0); err != nil {
		return &FileError{Op: "write", Path: path + " [xattr " + ownerXattr + "]", Value: o.String(), Err: err}
	}
	return nil
}

// readOwner returns the owner mark of the cgroup at path. It returns
// ErrNoOwner for a cgroup without one.
func readOwner(path string) (Owner, error) {
	buf := make([]byte, 128)
	n, err := unix.Lgetxattr(path, ownerXattr, buf)
	if errors.Is(err, unix.ENODATA) {
		return Owner{}, ErrNoOwner
	}
	if err != nil {
		return Owner{}, &FileError{Op: "read", Path: path + " [xattr " + ownerXattr + "]", Err: err}
	}
	return parseOwner(string(buf[:n]))
}

// ErrNoOwner means a cgroup carries no owner mark.
var ErrNoOwner = errors.New("no owner mark")

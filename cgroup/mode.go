package cgroup

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Mode is how a host arranges its cgroup hierarchies.
type Mode int

const (
	// ModeNone: no cgroup file system is mounted where expected.
	ModeNone Mode = iota
	// ModeLegacy: every controller is bound to a cgroup v1 hierarchy and
	// there is no cgroup v2 mount.
	ModeLegacy
	// ModeHybrid: controllers are bound to cgroup v1 hierarchies, with a
	// cgroup v2 mount (usually /sys/fs/cgroup/unified) for process
	// tracking only.
	ModeHybrid
	// ModeUnified: /sys/fs/cgroup is cgroup v2 alone.
	ModeUnified
)

func (m Mode) String() string {
	switch m {
	case ModeLegacy:
		return "legacy (cgroup v1 only)"
	case ModeHybrid:
		return "hybrid (controllers on cgroup v1, cgroup v2 without them)"
	case ModeUnified:
		return "unified (cgroup v2)"
	}
	return "none (no cgroup file system mounted)"
}

// ErrNoCgroup2 is returned when the cgroup v2 controllers that rsup needs
// are not available on this host.
var ErrNoCgroup2 = errors.New("cgroup v2 controllers unavailable")

// Filesystem magic numbers from statfs(2).
const (
	cgroup2Magic = unix.CGROUP2_SUPER_MAGIC
	cgroup1Magic = unix.CGROUP_SUPER_MAGIC
	tmpfsMagic   = unix.TMPFS_MAGIC
)

// fsTypeFunc returns the statfs f_type of a path. Tests substitute it.
type fsTypeFunc func(path string) (int64, error)

func statfsType(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Type, nil
}

// detectMode classifies the host the way systemd and runc do: by the file
// system type of the cgroup directory (sysfsCgroup, normally
// /sys/fs/cgroup) and of its "unified" child.
func detectMode(sysfsCgroup string, fsType fsTypeFunc) Mode {
	t, err := fsType(sysfsCgroup)
	if err != nil {
		return ModeNone
	}
	switch t {
	case cgroup2Magic:
		return ModeUnified
	case tmpfsMagic:
		if u, err := fsType(filepath.Join(sysfsCgroup, "unified")); err == nil && u == cgroup2Magic {
			return ModeHybrid
		}
		return ModeLegacy
	case cgroup1Magic:
		return ModeLegacy
	}
	return ModeNone
}

// findCgroup2Mount returns the mount point of the cgroup2 file system that
// contains path, or the first cgroup2 mount when path is empty.
func findCgroup2Mount(mounts []*procfs.MountInfo, path string) (string, error) {
	best := ""
	for _, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		if path == "" {
			return m.MountPoint, nil
		}
		if (path == m.MountPoint || strings.HasPrefix(path, strings.TrimSuffix(m.MountPoint, "/")+"/")) && len(m.MountPoint) > len(best) {
			best = m.MountPoint
		}
	}
	if best == "" {
		if path == "" {
			return "", errors.New("no cgroup2 file system is mounted (see /proc/self/mountinfo)")
		}
		return "", fmt.Errorf("%s is not on a cgroup2 file system", path)
	}
	return best, nil
}

// parseControllers splits a cgroup.controllers or cgroup.subtree_control
// line.
func parseControllers(s string) []string {
	f := strings.Fields(s)
	slices.Sort(f)
	return f
}

// missing returns the elements of want that are not in have.
func missing(want, have []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(have, w) {
			out = append(out, w)
		}
	}
	return out
}

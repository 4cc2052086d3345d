package cgroup

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/prometheus/procfs"
)

// DetectMode reports how the host arranges its cgroup hierarchies, judged
// by the file system type of cgroupFS (normally /sys/fs/cgroup) and of its
// "unified" child. A path that cannot be examined yields ModeNone.
func DetectMode(cgroupFS string) Mode {
	if cgroupFS == "" {
		cgroupFS = "/sys/fs/cgroup"
	}
	return detectMode(filepath.Clean(cgroupFS), statfsType)
}

// Cgroup2Controllers finds the cgroup2 mount in proc's self/mountinfo and
// returns it with the controllers listed in its cgroup.controllers, sorted.
// proc is the proc mount ("" means /proc) and cgroupFS the cgroup directory
// ("" means /sys/fs/cgroup): a cgroup2 mount at or above cgroupFS is
// preferred (unified hosts), then one below it (hybrid hosts, at
// cgroupFS/unified), then any other. On a hybrid host the list is usually
// empty, since the controllers are bound to cgroup v1.
//
// When no cgroup2 file system is mounted the error wraps ErrNoCgroup2, so
// that callers can tell that state of the host from a failure to read it.
func Cgroup2Controllers(cgroupFS string, proc string) (mount string, controllers []string, err error) {
	if cgroupFS == "" {
		cgroupFS = "/sys/fs/cgroup"
	}
	if proc == "" {
		proc = "/proc"
	}
	cgroupFS = filepath.Clean(cgroupFS)
	fs, err := procfs.NewFS(proc)
	if err != nil {
		return "", nil, fmt.Errorf("open proc file system at %s: %w", proc, err)
	}
	self, err := fs.Self()
	if err != nil {
		return "", nil, fmt.Errorf("read own process from %s: %w", proc, err)
	}
	mounts, err := self.MountInfo()
	if err != nil {
		return "", nil, fmt.Errorf("read mount table from %s: %w", filepath.Join(proc, "self", "mountinfo"), err)
	}
	mount = pickCgroup2Mount(mounts, cgroupFS)
	if mount == "" {
		return "", nil, fmt.Errorf("%w: no cgroup2 file system is mounted (according to %s)", ErrNoCgroup2, filepath.Join(proc, "self", "mountinfo"))
	}
	file := filepath.Join(mount, "cgroup.controllers")
	raw, err := readFileAt(file)
	if err != nil {
		return "", nil, fmt.Errorf("read the controllers of the cgroup2 mount from %s: %w", file, err)
	}
	return mount, parseControllers(raw), nil
}

// pickCgroup2Mount chooses among the cgroup2 mounts: the one holding
// cgroupFS, else the shallowest one below it, else the first one listed; ""
// when there is none.
func pickCgroup2Mount(mounts []*procfs.MountInfo, cgroupFS string) string {
	if m, err := findCgroup2Mount(mounts, cgroupFS); err == nil {
		return m
	}
	below, first := "", ""
	for _, m := range mounts {
		if m.FSType != "cgroup2" {
			continue
		}
		if first == "" {
			first = m.MountPoint
		}
		if strings.HasPrefix(m.MountPoint, strings.TrimSuffix(cgroupFS, "/")+"/") && (below == "" || len(m.MountPoint) < len(below)) {
			below = m.MountPoint
		}
	}
	if below != "" {
		return below
	}
	return first
}

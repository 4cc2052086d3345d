package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
)

// On hosts whose controllers are bound to cgroup v1 hierarchies (hybrid
// and legacy hosts), each controller has a tree of its own, mounted at
// /sys/fs/cgroup/<controller>. A job then has one directory per
// hierarchy, each nested under the cgroup rsup itself runs in there, so
// that the limits of rsup's own cgroups (a CI runner's, a container's)
// still hold over the job.

// v1Controllers are the cgroup v1 controllers rsup uses, by the cgroup v2
// controller they stand in for. freezer is used to kill a job.
var v1Controllers = map[string][]string{
	"cpu":    {"cpu", "cpuacct"},
	"memory": {"memory"},
	"pids":   {"pids"},
	"io":     {"blkio"},
}

// v1Hierarchy is rsup's root in each cgroup v1 hierarchy it uses.
type v1Hierarchy struct {
	roots map[string]string // v1 controller -> rsup's root directory in its hierarchy
	// cgPaths are the roots as /proc/PID/cgroup shows them.
	cgPaths map[string]string
}

// v1Mount finds the cgroup v1 mount that holds controller.
func v1Mount(mounts []*procfs.MountInfo, controller string) (*procfs.MountInfo, bool) {
	for _, m := range mounts {
		if m.FSType != "cgroup" {
			continue
		}
		if _, ok := m.SuperOptions[controller]; ok {
			return m, true
		}
	}
	return nil, false
}

// openV1 prepares rsup's roots in the cgroup v1 hierarchies: for each
// controller, the directory rootName under the cgroup this process is in.
func openV1(h *Hierarchy, cfg Config, mounts []*procfs.MountInfo, own []procfs.Cgroup, need []string) error {
	rootName := DefaultRootName
	if cfg.Root != "" {
		if filepath.IsAbs(cfg.Root) {
			return fmt.Errorf("cgroup root %q: on a cgroup v1 host the root is a path relative to rsup's own cgroup in each controller's hierarchy (such as ci/rsup), not an absolute one", cfg.Root)
		}
		rootName = filepath.Clean(cfg.Root)
		if strings.HasPrefix(rootName, "..") {
			return fmt.Errorf("cgroup root %q: must stay below rsup's own cgroup", cfg.Root)
		}
	}
	wanted := []string{"freezer"}
	for _, c := range need {
		v1, ok := v1Controllers[c]
		if !ok {
			return fmt.Errorf("%w: controller %q has no cgroup v1 counterpart", ErrNoCgroup, c)
		}
		wanted = append(wanted, v1...)
	}
	h.v1 = &v1Hierarchy{roots: map[string]string{}, cgPaths: map[string]string{}}
	var missingCtl []string
	for _, c := range wanted {
		m, ok := v1Mount(mounts, c)
		if !ok {
			if c != "freezer" {
				missingCtl = append(missingCtl, c)
			}
			continue
		}
		var path string
		for _, cg := range own {
			if slices.Contains(cg.Controllers, c) {
				path = cg.Path
			}
		}
		// A mount of part of the hierarchy (in a container) shows the
		// cgroup path relative to the hierarchy's root.
		rel := strings.TrimPrefix(path, m.Root)
		h.v1.roots[c] = filepath.Join(m.MountPoint, rel, rootName)
		h.v1.cgPaths[c] = filepath.Join("/", path, rootName)
	}
	if len(missingCtl) > 0 {
		return fmt.Errorf("%w: no cgroup v1 hierarchy has controller(s) %s (host cgroup mode: %s)", ErrNoCgroup, strings.Join(missingCtl, ", "), h.mode)
	}
	for _, c := range slices.Sorted(maps.Keys(h.v1.roots)) {
		if err := os.MkdirAll(h.v1.roots[c], 0o755); err != nil {
			return fmt.Errorf("create rsup's cgroup root in the %s hierarchy: %w%s", c, err, permHint(err))
		}
	}
	h.root = h.v1.roots["memory"]
	if h.root == "" {
		h.root = h.v1.roots[wanted[len(wanted)-1]]
	}
	for _, c := range Controllers {
		ok := true
		for _, v := range v1Controllers[c] {
			if _, have := h.v1.roots[v]; !have {
				ok = false
			}
		}
		if ok {
			h.enabled = append(h.enabled, c)
		}
	}
	return nil
}

// distinct returns the distinct root directories: co-mounted
// controllers (cpu,cpuacct) share one.
func (v *v1Hierarchy) distinct() []string {
	var out []string
	for _, c := range slices.Sorted(maps.Keys(v.roots)) {
		if r := v.roots[c]; !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// ErrNoCgroup is returned when neither cgroup v2 nor cgroup v1 offers the
// controllers rsup needs.
var ErrNoCgroup = errors.New("no usable cgroup controllers")

package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
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
	// mounts are the hierarchies' mount points and the cgroup each shows
	// at its top (not / in a container).
	mounts, mountRoots map[string]string
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
	h.v1 = &v1Hierarchy{roots: map[string]string{}, cgPaths: map[string]string{}, mounts: map[string]string{}, mountRoots: map[string]string{}}
	var missingCtl []string
	for _, c := range wanted {
		m, ok := v1Mount(mounts, c)
		if ok {
			// The mount table also lists mounts that another one now
			// hides (an empty tmpfs over /sys/fs/cgroup).
			if t, err := cfg.fsType(m.MountPoint); err != nil || t != cgroup1Magic {
				ok = false
			}
		}
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
		h.v1.mounts[c], h.v1.mountRoots[c] = m.MountPoint, m.Root
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

// A placement is where a process is on cgroup v1: its cgroup in each
// hierarchy rsup uses, as "ctl:/path;ctl:/path" in controller order.

// placementOf reads pid's placement from /proc/PID/cgroup.
func (h *Hierarchy) placementOf(pid int) (string, error) {
	b, err := os.ReadFile(filepath.Join(h.procDir, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return "", err
	}
	paths := map[string]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if _, ok := h.v1.roots[c]; ok {
				paths[c] = f[2]
			}
		}
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(h.v1.roots)) {
		p, ok := paths[c]
		if !ok {
			return "", fmt.Errorf("pid %d is in no %s cgroup (%s/%d/cgroup)", pid, c, h.procDir, pid)
		}
		parts = append(parts, c+":"+p)
	}
	return strings.Join(parts, ";"), nil
}

// jobPlacement is the placement of a process in job j.
func (h *Hierarchy) jobPlacement(j *Job) string {
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(h.v1.roots)) {
		parts = append(parts, c+":"+filepath.Join(h.v1.cgPaths[c], j.name))
	}
	return strings.Join(parts, ";")
}

// placementDirs turns a placement into the cgroup directory per hierarchy.
func (h *Hierarchy) placementDirs(placement string) (map[string]string, error) {
	dirs := map[string]string{}
	for _, part := range strings.Split(placement, ";") {
		c, p, ok := strings.Cut(part, ":")
		mount, known := h.v1.mounts[c]
		if !ok || !known {
			return nil, fmt.Errorf("%q is not a cgroup v1 placement of this host", placement)
		}
		dirs[c] = filepath.Join(mount, strings.TrimPrefix(p, h.v1.mountRoots[c]))
	}
	return dirs, nil
}

// moveV1 writes pid into its cgroup of placement in every hierarchy.
// Co-mounted controllers share a directory, written once.
func (h *Hierarchy) moveV1(placement string, pid int) error {
	dirs, err := h.placementDirs(placement)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, c := range slices.Sorted(maps.Keys(dirs)) {
		d := dirs[c]
		if done[d] {
			continue
		}
		done[d] = true
		if err := writeFileAt(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// canMoveV1 checks write access to cgroup.procs of the source and of the
// destination in every hierarchy (v1 asks no more than that of root).
func (h *Hierarchy) canMoveV1(placement string, j *Job) error {
	src, err := h.placementDirs(placement)
	if err != nil {
		return err
	}
	var files []string
	for _, c := range slices.Sorted(maps.Keys(src)) {
		files = append(files, filepath.Join(src[c], "cgroup.procs"))
	}
	if j != nil {
		for _, vd := range j.v1.dirs {
			files = append(files, filepath.Join(vd.path, "cgroup.procs"))
		}
	}
	for _, f := range files {
		if err := unix.Access(f, unix.W_OK); err != nil {
			return fmt.Errorf("no write permission on %s (%v): moving a process on cgroup v1 needs write access to cgroup.procs of its cgroup and of the job in every hierarchy", f, err)
		}
	}
	return nil
}

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Controllers are the cgroup v2 controllers rsup enables for its jobs.
var Controllers = []string{"cpu", "io", "memory", "pids"}

// DefaultRootName is the directory under the cgroup2 mount that holds rsup's
// hierarchy when no root is given.
const DefaultRootName = "rsup"

// Config says where rsup's hierarchy lives. The zero value means the host's
// defaults.
type Config struct {
	// CgroupFS is the directory where cgroup file systems are mounted,
	// used to tell the host's mode. Default "/sys/fs/cgroup".
	CgroupFS string
	// ProcFS is the proc mount. Default "/proc".
	ProcFS string
	// Root is the cgroup directory that holds rsup's job cgroups. Default
	// "<cgroup2 mount>/rsup". A given root is treated as delegated: rsup
	// writes cgroup.subtree_control only in it and below.
	Root string
	// Evacuate allows rsup to move the processes of a cgroup namespace root
	// (or any cgroup it must enable controllers in) into <Root>/init, so
	// that the no-internal-processes rule lets controllers be enabled.
	Evacuate bool
	// Need lists the controllers that must be available; Open fails
	// without them. Default: all of Controllers.
	Need []string
	// Version chooses the cgroup version: 1, 2, or 0 for cgroup v2 where
	// it has the controllers and cgroup v1 on hybrid and legacy hosts.
	Version int

	fsType fsTypeFunc
}

// Hierarchy is rsup's dedicated cgroup v2 subtree.
type Hierarchy struct {
	mode    Mode
	mount   string
	root    string
	enabled []string     // controllers enabled in root's cgroup.subtree_control
	v1      *v1Hierarchy // set on a cgroup v1 host
	proc    procfs.FS
	procDir string
	// Moved reports what Open had to move to obey the
	// no-internal-processes rule.
	Moved Moves
}

// Moves records processes Open moved out of the way.
type Moves struct {
	Self      string // cgroup rsup moved itself into, if any
	Evacuated []int  // pids moved into <root>/init
}

// Mode returns the host's cgroup mode.
func (h *Hierarchy) Mode() Mode { return h.mode }

// Root returns the absolute path of the hierarchy's root cgroup.
func (h *Hierarchy) Root() string { return h.root }

// Mount returns the cgroup2 mount point.
func (h *Hierarchy) Mount() string { return h.mount }

// Features that not every cgroup version has.
const (
	FeatureMemoryHigh = "memory.high" // a throttling threshold below the hard limit
	FeaturePSI        = "psi"         // pressure stall information per job
	FeatureMarks      = "marks"       // owner and kept marks (extended attributes) on job cgroups
)

// Supports tells whether jobs of this hierarchy have a feature: cgroup v1
// has no memory.high, no pressure files per cgroup and no user extended
// attributes.
func (h *Hierarchy) Supports(feature string) bool {
	return h.v1 == nil
}

// Enabled returns the controllers available to job cgroups.
func (h *Hierarchy) Enabled() []string { return slices.Clone(h.enabled) }

// Open finds the cgroup v2 mount, checks that the needed controllers are
// available, and makes sure rsup's root exists with the controllers enabled
// for its children. It fails closed with ErrNoCgroup2 when cgroup v2 cannot
// enforce the limits.
func Open(cfg Config) (*Hierarchy, error) {
	if cfg.CgroupFS == "" {
		cfg.CgroupFS = "/sys/fs/cgroup"
	}
	if cfg.ProcFS == "" {
		cfg.ProcFS = "/proc"
	}
	if cfg.fsType == nil {
		cfg.fsType = statfsType
	}
	need := cfg.Need
	if need == nil {
		need = Controllers
	}
	proc, err := procfs.NewFS(cfg.ProcFS)
	if err != nil {
		return nil, fmt.Errorf("open proc file system at %s: %w", cfg.ProcFS, err)
	}
	h := &Hierarchy{mode: detectMode(cfg.CgroupFS, cfg.fsType), proc: proc, procDir: cfg.ProcFS}

	self, err := proc.Self()
	if err != nil {
		return nil, fmt.Errorf("read own process from %s: %w", cfg.ProcFS, err)
	}
	mounts, err := self.MountInfo()
	if err != nil {
		return nil, fmt.Errorf("read mount table from %s/self/mountinfo: %w", cfg.ProcFS, err)
	}
	openV1Here := func() (*Hierarchy, error) {
		own, err := self.Cgroups()
		if err != nil {
			return nil, fmt.Errorf("read own cgroups from %s/self/cgroup: %w", cfg.ProcFS, err)
		}
		if err := openV1(h, cfg, mounts, own, need); err != nil {
			return nil, err
		}
		return h, nil
	}
	relativeRoot := cfg.Root != "" && !filepath.IsAbs(cfg.Root)
	switch cfg.Version {
	case 1:
		return openV1Here()
	case 0:
		// A relative root is a cgroup v1 root (below rsup's own cgroup).
		if relativeRoot && (h.mode == ModeHybrid || h.mode == ModeLegacy) {
			return openV1Here()
		}
	case 2:
	default:
		return nil, fmt.Errorf("cgroup version %d: want 1, 2, or 0 for the host's own", cfg.Version)
	}
	v2, err := openV2(h, cfg, mounts, need)
	if err != nil && cfg.Version == 0 && errors.Is(err, ErrNoCgroup2) && (h.mode == ModeHybrid || h.mode == ModeLegacy) {
		h1, err1 := openV1Here()
		if err1 != nil {
			return nil, errors.Join(err, err1)
		}
		return h1, nil
	}
	return v2, err
}

// openV2 opens rsup's hierarchy in cgroup v2.
func openV2(h *Hierarchy, cfg Config, mounts []*procfs.MountInfo, need []string) (*Hierarchy, error) {
	var err error
	root := ""
	if cfg.Root != "" {
		if !filepath.IsAbs(cfg.Root) {
			return nil, fmt.Errorf("cgroup root %q must be an absolute path", cfg.Root)
		}
		root = filepath.Clean(cfg.Root)
	}
	h.mount, err = findCgroup2Mount(mounts, root)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (host cgroup mode: %s)%s", ErrNoCgroup2, err, h.mode, modeHint(h.mode))
	}
	if cfg.Root == "" {
		root = filepath.Join(h.mount, DefaultRootName)
	}
	h.root = root

	// The controllers a new child of the top of our chain can get.
	top := h.mount
	if cfg.Root != "" {
		top = filepath.Dir(root)
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
			top = root
		}
	}
	if _, err := os.Stat(top); err != nil && cfg.Root != "" {
		return nil, fmt.Errorf("the parent of --cgroup-root %s does not exist (%w): create it, or choose another root", root, err)
	}
	availRaw, err := readFileAt(filepath.Join(top, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup2, err)
	}
	avail := parseControllers(availRaw)
	if cfg.Root != "" && top != root {
		// A child of top gets top's subtree_control, not its controllers.
		sub, err := readFileAt(filepath.Join(top, "cgroup.subtree_control"))
		if err != nil {
			return nil, err
		}
		avail = parseControllers(sub)
	}
	if miss := missing(need, avail); len(miss) > 0 {
		return nil, fmt.Errorf("%w: controller(s) %s not available in the cgroup v2 hierarchy at %s (host cgroup mode: %s)%s",
			ErrNoCgroup2, strings.Join(miss, ", "), top, h.mode, modeHint(h.mode))
	}
	want := intersect(Controllers, avail)

	chain := []string{root}
	if cfg.Root == "" {
		chain = []string{h.mount, root}
	}
	if err := mkdirCgroup(root); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create rsup's cgroup root: %w%s", err, permHint(err))
	}
	for _, c := range chain {
		if err := h.enable(c, want, cfg.Evacuate); err != nil {
			return nil, err
		}
	}
	sub, err := readFileAt(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		return nil, err
	}
	h.enabled = parseControllers(sub)
	return h, nil
}

// enable makes sure the controllers are on in c's cgroup.subtree_control.
// The kernel refuses that in a non-root cgroup that holds processes (the
// no-internal-processes rule), so rsup first moves itself into
// <root>/supervisor, and, only when allowed, any other process into
// <root>/init.
func (h *Hierarchy) enable(c string, want []string, evacuate bool) error {
	cur, err := readFileAt(filepath.Join(c, "cgroup.subtree_control"))
	if err != nil {
		return err
	}
	add := missing(want, parseControllers(cur))
	if len(add) == 0 {
		return nil
	}
	// Only non-root cgroups have cgroup.type; the root cgroup is exempt
	// from the rule.
	if _, err := os.Stat(filepath.Join(c, "cgroup.type")); err == nil {
		if err := h.vacate(c, evacuate); err != nil {
			return err
		}
	}
	for i := range add {
		add[i] = "+" + add[i]
	}
	if err := writeFileAt(filepath.Join(c, "cgroup.subtree_control"), strings.Join(add, " ")); err != nil {
		return fmt.Errorf("enable controllers for rsup's jobs: %w%s", err, permHint(err))
	}
	return nil
}

// vacate empties cgroup c of processes so that controllers can be enabled
// in it.
func (h *Hierarchy) vacate(c string, evacuate bool) error {
	self := os.Getpid()
	for range 100 {
		pids, err := readPids(filepath.Join(c, "cgroup.procs"))
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		others := slices.DeleteFunc(slices.Clone(pids), func(p int) bool { return p == self })
		if len(others) > 0 && !evacuate {
			return fmt.Errorf("%w: cgroup %s holds %d other process(es) (%s), so the kernel will not enable controllers in it (no internal processes rule). "+
				"This is usual at the root of a container's cgroup namespace. Run rsup with --evacuate to move them into %s, "+
				"or give --cgroup-root a cgroup that has no processes of its own", ErrBusyRoot, c, len(others), pidList(others), filepath.Join(h.root, EvacuatedLeaf))
		}
		if len(others) > 0 {
			dst := filepath.Join(h.root, EvacuatedLeaf)
			if err := mkdirCgroup(dst); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			for _, p := range others {
				err := writeFileAt(filepath.Join(dst, "cgroup.procs"), strconv.Itoa(p))
				// A process that exited meanwhile is not an error.
				if err != nil && !errors.Is(err, unix.ESRCH) {
					return fmt.Errorf("evacuate pid %d: %w", p, err)
				}
				if err == nil {
					h.Moved.Evacuated = append(h.Moved.Evacuated, p)
				}
			}
		}
		if slices.Contains(pids, self) {
			dst := filepath.Join(h.root, SupervisorLeaf)
			if err := mkdirCgroup(dst); err != nil && !errors.Is(err, os.ErrExist) {
				return err
			}
			if err := writeFileAt(filepath.Join(dst, "cgroup.procs"), strconv.Itoa(self)); err != nil {
				return fmt.Errorf("move rsup itself out of %s: %w", c, err)
			}
			h.Moved.Self = dst
		}
	}
	return fmt.Errorf("cgroup %s keeps gaining processes; cannot enable controllers in it", c)
}

// ErrBusyRoot is returned when rsup would have to move other processes to
// enable controllers and was not allowed to.
var ErrBusyRoot = errors.New("cgroup holds other processes")

func mkdirCgroup(path string) error {
	err := os.Mkdir(path, 0o755)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return &FileError{Op: "mkdir", Path: path, Err: errors.Unwrap(err)}
	}
	return err
}

func readPids(path string) ([]int, error) {
	s, err := readFileAt(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(s) {
		p, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse %s: bad pid %q", path, f)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

func pidList(p []int) string {
	s := make([]string, 0, len(p))
	for i, v := range p {
		if i == 5 {
			s = append(s, "...")
			break
		}
		s = append(s, strconv.Itoa(v))
	}
	return "pid " + strings.Join(s, ", ")
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

func modeHint(m Mode) string {
	switch m {
	case ModeHybrid, ModeLegacy:
		return ". On this host cpu, memory, io and pids are bound to cgroup v1 hierarchies under /sys/fs/cgroup/<controller>: use --cgroup-version auto or 1 to enforce through them, or boot the host with systemd.unified_cgroup_hierarchy=1 for cgroup v2"
	case ModeNone:
		return ". Mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup)"
	}
	return ". Enable them in the parent's cgroup.subtree_control, or point --cgroup-root at a delegated cgroup that has them"
}

func permHint(err error) string {
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EROFS) {
		return " (rsup needs write access to the cgroup tree: run it as root, or give --cgroup-root a cgroup delegated to your user)"
	}
	return ""
}

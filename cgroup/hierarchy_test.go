package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// loadManager returns the containerd manager of a fake cgroup directory,
// taking its parent as the mount point.
func loadManager(t *testing.T, path string) *cgroup2.Manager {
	t.Helper()
	m, err := cgroup2.Load("/"+filepath.Base(path), cgroup2.WithMountpoint(filepath.Dir(path)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// fakeHost is a fake cgroup host: cgroup file systems under cgfs, with the
// cgroup2 one at mount, and a proc directory whose mountinfo says so.
type fakeHost struct {
	cgfs, mount, proc string
	fsType            fsTypeFunc
}

const mountinfoHead = `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
23 1 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
`

// unifiedHost is a host with cgroup v2 alone, at cgfs. files are created
// below the mount.
func unifiedHost(t *testing.T, files map[string]string) fakeHost {
	t.Helper()
	cgfs := filepath.Join(t.TempDir(), "cgroup")
	writeFiles(t, cgfs, files)
	mi := mountinfoHead + fmt.Sprintf("25 23 0:23 / %s rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n", cgfs)
	return fakeHost{
		cgfs:   cgfs,
		mount:  cgfs,
		proc:   fakeProcFS(t, os.Getpid(), 4242, mi),
		fsType: fakeFSType(map[string]int64{cgfs: unix.CGROUP2_SUPER_MAGIC}),
	}
}

// hybridHost is a host with controllers on cgroup v1 and a cgroup v2 mount
// at cgfs/unified; files are created below that mount.
func hybridHost(t *testing.T, files map[string]string) fakeHost {
	t.Helper()
	cgfs := filepath.Join(t.TempDir(), "cgroup")
	mount := filepath.Join(cgfs, "unified")
	writeFiles(t, mount, files)
	mi := mountinfoHead + strings.NewReplacer("CG", cgfs).Replace(
		`25 23 0:23 / CG ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:24 / CG/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / CG/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
28 25 0:26 / CG/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / CG/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
30 25 0:28 / CG/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
31 25 0:29 / CG/blkio rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,blkio
`)
	return fakeHost{
		cgfs:  cgfs,
		mount: mount,
		proc:  fakeProcFS(t, os.Getpid(), 4242, mi),
		fsType: fakeFSType(map[string]int64{
			cgfs:                               unix.TMPFS_MAGIC,
			mount:                              unix.CGROUP2_SUPER_MAGIC,
			filepath.Join(cgfs, "memory"):      unix.CGROUP_SUPER_MAGIC,
			filepath.Join(cgfs, "cpu,cpuacct"): unix.CGROUP_SUPER_MAGIC,
			filepath.Join(cgfs, "pids"):        unix.CGROUP_SUPER_MAGIC,
			filepath.Join(cgfs, "blkio"):       unix.CGROUP_SUPER_MAGIC,
			filepath.Join(cgfs, "freezer"):     unix.CGROUP_SUPER_MAGIC,
		}),
	}
}

func (h fakeHost) config() Config {
	return Config{CgroupFS: h.cgfs, ProcFS: h.proc, fsType: h.fsType}
}

// rootCgroupFiles are the files of the host's root cgroup that Open reads.
func rootCgroupFiles(controllers string) map[string]string {
	return map[string]string{
		"cgroup.controllers":     controllers,
		"cgroup.subtree_control": "",
		"cgroup.procs":           "1\n2\n",
	}
}

// childCgroupFiles returns the files of a non-root cgroup under prefix.
func childCgroupFiles(prefix, controllers, subtree, procs string) map[string]string {
	return map[string]string{
		prefix + "/cgroup.controllers":     controllers,
		prefix + "/cgroup.subtree_control": subtree,
		prefix + "/cgroup.type":            "domain\n",
		prefix + "/cgroup.procs":           procs,
		prefix + "/cgroup.events":          "populated 0\nfrozen 0\n",
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func TestOpenHybridFailsClosed(t *testing.T) {
	t.Parallel()
	// On a hybrid host the v2 hierarchy has no (or only stray)
	// controllers: the v1 hierarchies hold cpu, memory, io and pids.
	for _, controllers := range []string{"hugetlb\n", "\n", ""} {
		t.Run(strconv.Quote(controllers), func(t *testing.T) {
			t.Parallel()
			host := hybridHost(t, rootCgroupFiles(controllers))
			h, err := Open(host.config())
			if !errors.Is(err, ErrNoCgroup2) {
				t.Fatalf("Open = %v, %v; want ErrNoCgroup2", h, err)
			}
			errorContains(t, err, "controller(s) cpu, io, memory, pids not available", host.mount,
				"hybrid", "systemd.unified_cgroup_hierarchy=1")
			if _, err := os.Stat(filepath.Join(host.mount, DefaultRootName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Open created rsup's root on a host it refused: %v", err)
			}
			checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "")
		})
	}
}

func TestOpenNoCgroup2Mount(t *testing.T) {
	t.Parallel()
	host := hybridHost(t, rootCgroupFiles("cpu io memory pids\n"))
	// A legacy host: the same v1 mounts, no cgroup2.
	mi := readTestFile(t, filepath.Join(host.proc, "self/mountinfo"))
	var kept []string
	for l := range strings.Lines(mi) {
		if !strings.Contains(l, " - cgroup2 ") {
			kept = append(kept, l)
		}
	}
	writeFiles(t, host.proc, map[string]string{strconv.Itoa(os.Getpid()) + "/mountinfo": strings.Join(kept, "")})
	cfg := host.config()
	cfg.fsType = fakeFSType(map[string]int64{host.cgfs: unix.TMPFS_MAGIC})

	_, err := Open(cfg)
	if !errors.Is(err, ErrNoCgroup2) {
		t.Fatalf("Open: %v, want ErrNoCgroup2", err)
	}
	errorContains(t, err, "no cgroup2 file system is mounted", "legacy (cgroup v1 only)")

	cfg.fsType = fakeFSType(nil)
	_, err = Open(cfg)
	errorContains(t, err, "none (no cgroup file system mounted)", "mount -t cgroup2")
}

func TestOpenUnified(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		rootCgroupFiles("cpuset cpu io memory hugetlb pids rdma misc\n"),
		childCgroupFiles(DefaultRootName, "", "", ""),
	))
	h, err := Open(host.config())
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(host.mount, DefaultRootName)
	if h.Mode() != ModeUnified || h.Mount() != host.mount || h.Root() != root {
		t.Errorf("Open = mode %v, mount %s, root %s; want unified, %s, %s", h.Mode(), h.Mount(), h.Root(), host.mount, root)
	}
	// Both the mount's root cgroup and rsup's root enable the
	// controllers for their children, in one write each.
	checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "", "+cpu +io +memory +pids")
	checkWrites(t, filepath.Join(root, "cgroup.subtree_control"), "", "+cpu +io +memory +pids")
	if h.Moved.Self != "" || h.Moved.Evacuated != nil {
		t.Errorf("Moved = %+v, want nothing moved", h.Moved)
	}
	for _, leaf := range []string{SupervisorLeaf, EvacuatedLeaf} {
		if _, err := os.Stat(filepath.Join(root, leaf)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open made %s without a reason: %v", leaf, err)
		}
	}
}

func TestOpenAlreadyEnabled(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		map[string]string{"cgroup.controllers": "cpuset cpu io memory pids\n", "cgroup.subtree_control": "cpu io memory pids\n"},
		childCgroupFiles(DefaultRootName, "cpu io memory pids\n", "cpu io memory pids\n", "4711\n"),
	))
	h, err := Open(host.config())
	if err != nil {
		t.Fatal(err)
	}
	// Nothing to enable, so nothing is written, and the processes of a
	// cgroup that needs no change are left alone.
	checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "cpu io memory pids\n")
	checkWrites(t, filepath.Join(host.mount, DefaultRootName, "cgroup.subtree_control"), "cpu io memory pids\n")
	if got, want := h.Enabled(), []string{"cpu", "io", "memory", "pids"}; !slices.Equal(got, want) {
		t.Errorf("Enabled() = %q, want %q", got, want)
	}
	// Enabled returns a copy.
	h.Enabled()[0] = "x"
	if h.Enabled()[0] != "cpu" {
		t.Error("Enabled() returns the hierarchy's own slice")
	}
}

func TestOpenPartlyEnabled(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		map[string]string{"cgroup.controllers": "cpu io memory pids\n", "cgroup.subtree_control": "cpu memory\n"},
		childCgroupFiles(DefaultRootName, "cpu memory\n", "memory\n", ""),
	))
	if _, err := Open(host.config()); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "cpu memory\n", "+io +pids")
	checkWrites(t, filepath.Join(host.mount, DefaultRootName, "cgroup.subtree_control"), "memory\n", "+cpu +io +pids")
}

func TestOpenNeed(t *testing.T) {
	t.Parallel()
	files := merge(rootCgroupFiles("cpu memory pids\n"), childCgroupFiles(DefaultRootName, "", "", ""))

	host := unifiedHost(t, files)
	cfg := host.config()
	cfg.Need = []string{"memory", "pids"}
	if _, err := Open(cfg); err != nil {
		t.Fatalf("Open with the needed controllers present: %v", err)
	}
	// What is available of Controllers is enabled, not only what is
	// needed.
	checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "", "+cpu +memory +pids")

	host = unifiedHost(t, files)
	_, err := Open(host.config())
	if !errors.Is(err, ErrNoCgroup2) {
		t.Fatalf("Open without io: %v, want ErrNoCgroup2", err)
	}
	errorContains(t, err, "controller(s) io not available", "unified (cgroup v2)", "Enable them in the parent's cgroup.subtree_control")
}

func TestOpenConfigErrors(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, rootCgroupFiles("cpu io memory pids\n"))

	cfg := host.config()
	cfg.Root = "rsup"
	_, err := Open(cfg)
	errorContains(t, err, `cgroup root "rsup" must be an absolute path`)

	cfg.Root = filepath.Join(filepath.Dir(host.cgfs), "elsewhere")
	_, err = Open(cfg)
	if !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("root outside the cgroup2 mount: %v, want ErrNoCgroup2", err)
	}
	errorContains(t, err, cfg.Root+" is not on a cgroup2 file system")

	cfg = host.config()
	cfg.ProcFS = filepath.Join(host.proc, "missing")
	_, err = Open(cfg)
	errorContains(t, err, "open proc file system at "+cfg.ProcFS)

	cfg.ProcFS = t.TempDir() // no self
	_, err = Open(cfg)
	errorContains(t, err, "read own process from "+cfg.ProcFS)

	cfg.ProcFS = fakeProcFS(t, os.Getpid(), 1, "this is not a mountinfo line\n")
	_, err = Open(cfg)
	errorContains(t, err, "read mount table from "+cfg.ProcFS+"/self/mountinfo")

	// The mount's cgroup.controllers cannot be read.
	bare := unifiedHost(t, map[string]string{"cgroup.procs": ""})
	_, err = Open(bare.config())
	if !errors.Is(err, ErrNoCgroup2) {
		t.Errorf("Open without cgroup.controllers: %v, want ErrNoCgroup2", err)
	}
	errorContains(t, err, filepath.Join(bare.mount, "cgroup.controllers"), "no such file or directory")
}

// A root given in the configuration is delegated: only it and its children
// are changed.
func TestOpenDelegatedRoot(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("user.slice/rsup", "cpu io memory pids\n", "", ""),
	))
	cfg := host.config()
	cfg.Root = filepath.Join(host.mount, "user.slice", "rsup") + "/"
	h, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(host.mount, "user.slice/rsup"); h.Root() != want {
		t.Errorf("Root() = %s, want %s", h.Root(), want)
	}
	checkWrites(t, filepath.Join(h.Root(), "cgroup.subtree_control"), "", "+cpu +io +memory +pids")
	checkWrites(t, filepath.Join(host.mount, "cgroup.subtree_control"), "")
}

// A root that does not exist yet gets what its parent enables for its
// children, so a parent without the controllers fails closed before
// anything is created.
func TestOpenNewRootUnderParentWithoutControllers(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("user.slice", "cpu io memory pids\n", "cpu memory\n", ""),
	))
	cfg := host.config()
	cfg.Root = filepath.Join(host.mount, "user.slice", "rsup")
	_, err := Open(cfg)
	if !errors.Is(err, ErrNoCgroup2) {
		t.Fatalf("Open: %v, want ErrNoCgroup2", err)
	}
	errorContains(t, err, "controller(s) io, pids not available", filepath.Join(host.mount, "user.slice"))
	if _, err := os.Stat(cfg.Root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created %s: %v", cfg.Root, err)
	}
}

// TestOpenBusyRoot is the root of a container's cgroup namespace: the
// container's processes sit in the cgroup rsup must enable controllers in.
func TestOpenBusyRoot(t *testing.T) {
	t.Parallel()
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, procs, pids string
		defaultRoot       bool
	}{
		{"given root", "999999\n", "pid 999999", false},
		{"given root with rsup in it", "999999\n" + self + "\n999998\n", "pid 999999, 999998", false},
		{"mount is a namespace root", "999999\n", "pid 999999", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var host fakeHost
			cfg := Config{}
			var busy string
			if tt.defaultRoot {
				host = unifiedHost(t, merge(
					childCgroupFiles(".", "cpu io memory pids\n", "", tt.procs),
					childCgroupFiles(DefaultRootName, "", "", ""),
				))
				cfg = host.config()
				busy = host.mount
			} else {
				host = unifiedHost(t, merge(
					rootCgroupFiles("cpu io memory pids\n"),
					childCgroupFiles("ns", "cpu io memory pids\n", "", tt.procs),
				))
				cfg = host.config()
				cfg.Root = filepath.Join(host.mount, "ns")
				busy = cfg.Root
			}
			_, err := Open(cfg)
			if !errors.Is(err, ErrBusyRoot) {
				t.Fatalf("Open: %v, want ErrBusyRoot", err)
			}
			root := busy
			if tt.defaultRoot {
				root = filepath.Join(host.mount, DefaultRootName)
			}
			errorContains(t, err, "cgroup "+busy+" holds", tt.pids, "--evacuate", filepath.Join(root, EvacuatedLeaf))
			if strings.Contains(err.Error(), self) {
				t.Errorf("error counts rsup itself among the other processes: %v", err)
			}
			checkWrites(t, filepath.Join(busy, "cgroup.subtree_control"), "")
			for _, leaf := range []string{EvacuatedLeaf, SupervisorLeaf} {
				if _, err := os.Stat(filepath.Join(root, leaf)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("Open made %s although it moved nothing: %v", leaf, err)
				}
			}
		})
	}
}

// With Evacuate, the other processes go to <root>/init and rsup to
// <root>/supervisor before the controllers are enabled. cgroup.procs is a
// FIFO so that it can list the processes first and none after the moves,
// as the kernel's would.
func TestOpenEvacuates(t *testing.T) {
	t.Parallel()
	self := strconv.Itoa(os.Getpid())
	files := merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("ns", "cpu io memory pids\n", "", ""),
		map[string]string{"ns/init/cgroup.procs": "", "ns/supervisor/cgroup.procs": ""},
	)
	delete(files, "ns/cgroup.procs")
	host := unifiedHost(t, files)
	root := filepath.Join(host.mount, "ns")
	procs := serveFIFO(t, filepath.Join(root, "cgroup.procs"), []fifoStep{
		{content: "999999\n" + self + "\n999998\n"},
		{content: ""},
	})
	cfg := host.config()
	cfg.Root = root
	cfg.Evacuate = true
	h, err := Open(cfg)
	procs.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{999999, 999998}; !slices.Equal(h.Moved.Evacuated, want) {
		t.Errorf("Moved.Evacuated = %v, want %v", h.Moved.Evacuated, want)
	}
	if want := filepath.Join(root, SupervisorLeaf); h.Moved.Self != want {
		t.Errorf("Moved.Self = %q, want %q", h.Moved.Self, want)
	}
	// One pid per write, as the kernel wants.
	checkWrites(t, filepath.Join(root, "init/cgroup.procs"), "", "999999", "999998")
	checkWrites(t, filepath.Join(root, "supervisor/cgroup.procs"), "", self)
	checkWrites(t, filepath.Join(root, "cgroup.subtree_control"), "", "+cpu +io +memory +pids")
}

// Without Evacuate rsup still moves itself out of the way.
func TestOpenMovesItself(t *testing.T) {
	t.Parallel()
	self := strconv.Itoa(os.Getpid())
	files := merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("ns", "cpu io memory pids\n", "", ""),
		map[string]string{"ns/supervisor/cgroup.procs": ""},
	)
	delete(files, "ns/cgroup.procs")
	host := unifiedHost(t, files)
	root := filepath.Join(host.mount, "ns")
	procs := serveFIFO(t, filepath.Join(root, "cgroup.procs"), []fifoStep{{content: self + "\n"}, {content: ""}})
	cfg := host.config()
	cfg.Root = root
	h, err := Open(cfg)
	procs.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	if h.Moved.Self != filepath.Join(root, SupervisorLeaf) || h.Moved.Evacuated != nil {
		t.Errorf("Moved = %+v, want only rsup itself moved", h.Moved)
	}
	checkWrites(t, filepath.Join(root, "supervisor/cgroup.procs"), "", self)
	if _, err := os.Stat(filepath.Join(root, EvacuatedLeaf)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open made %s although there was nothing to evacuate: %v", EvacuatedLeaf, err)
	}
}

// A cgroup that never empties (processes keep arriving) is given up on.
func TestOpenEvacuateGivesUp(t *testing.T) {
	t.Parallel()
	host := unifiedHost(t, merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("ns", "cpu io memory pids\n", "", "999999\n"),
		map[string]string{"ns/init/cgroup.procs": ""},
	))
	cfg := host.config()
	cfg.Root = filepath.Join(host.mount, "ns")
	cfg.Evacuate = true
	_, err := Open(cfg)
	errorContains(t, err, "cgroup "+cfg.Root+" keeps gaining processes")
	checkWrites(t, filepath.Join(cfg.Root, "cgroup.subtree_control"), "")
}

func TestOpenEvacuateWriteFails(t *testing.T) {
	t.Parallel()
	// <root>/init exists but has no cgroup.procs to write to.
	host := unifiedHost(t, merge(
		rootCgroupFiles("cpu io memory pids\n"),
		childCgroupFiles("ns", "cpu io memory pids\n", "", "999999\n"),
		map[string]string{"ns/init/cgroup.type": "domain\n"},
	))
	cfg := host.config()
	cfg.Root = filepath.Join(host.mount, "ns")
	cfg.Evacuate = true
	_, err := Open(cfg)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "999999" || fe.Path != filepath.Join(cfg.Root, "init/cgroup.procs") {
		t.Fatalf("Open: %#v, want a write error for init/cgroup.procs", err)
	}
	errorContains(t, err, "evacuate pid 999999")
}

// fakeHierarchy is a Hierarchy over a fake tree with every controller
// enabled, whose proc knows the test process with start time 4242.
func fakeHierarchy(t *testing.T) *Hierarchy {
	t.Helper()
	mount := t.TempDir()
	userXattrs(t, mount)
	root := filepath.Join(mount, DefaultRootName)
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	proc := fakeProcFS(t, os.Getpid(), 4242, "")
	fs, err := procfs.NewFS(proc)
	if err != nil {
		t.Fatal(err)
	}
	return &Hierarchy{mode: ModeUnified, mount: mount, root: root, enabled: slices.Clone(Controllers), proc: fs, procDir: proc}
}

func dirEntries(t *testing.T, path string) []string {
	t.Helper()
	es, err := os.ReadDir(path)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestNewJob(t *testing.T) {
	t.Parallel()
	h := fakeHierarchy(t)
	j, err := h.NewJob("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(h.root, "web")
	if j.Name() != "web" || j.Path() != path {
		t.Errorf("job %q at %s, want web at %s", j.Name(), j.Path(), path)
	}
	want := Owner{PID: os.Getpid(), StartTime: 4242}
	if j.Owner() != want {
		t.Errorf("Owner() = %+v, want %+v", j.Owner(), want)
	}
	if got, err := readOwner(path); err != nil || got != want {
		t.Errorf("owner mark = %+v, %v; want %+v", got, err, want)
	}
	var st, dst unix.Stat_t
	if err := unix.Fstat(j.FD(), &st); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &dst); err != nil || st.Ino != dst.Ino {
		t.Errorf("FD is not the job directory: %v", err)
	}
	if procs, err := j.Procs(); err != nil || len(procs) != 0 {
		t.Errorf("Procs of the new job = %v, %v", procs, err)
	}
	if err := j.Remove(0); err != nil {
		t.Fatal(err)
	}
	if names := dirEntries(t, h.root); len(names) != 0 {
		t.Errorf("root holds %q after Remove", names)
	}
}

// Whatever makes NewJob fail, it leaves nothing behind.
func TestNewJobFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		job     string
		res     *Resources
		prepare func(h *Hierarchy)
		check   func(t *testing.T, err error)
	}{
		{"bad name", "memory.max", nil, nil, func(t *testing.T, err error) {
			errorContains(t, err, `invalid job name "memory.max"`)
		}},
		{"bad limits", "j", &Resources{PidsMax: Value(0)}, nil, func(t *testing.T, err error) {
			errorContains(t, err, "pids limit 0")
		}},
		{"controller not enabled", "j", &Resources{PidsMax: Value(5), IO: []IOLimit{{Device: Device{8, 0}, ReadBPS: Value(1)}}},
			func(h *Hierarchy) { h.enabled = []string{"cpu", "memory"} },
			func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoCgroup2) {
					t.Errorf("error %v is not ErrNoCgroup2", err)
				}
				errorContains(t, err, "controller(s) io, pids not enabled")
			}},
		{"limit write fails", "j", &Resources{MemoryMax: Value(1 << 20)}, nil, func(t *testing.T, err error) {
			// The fake cgroup has no interface files.
			var fe *FileError
			if !errors.As(err, &fe) || !strings.HasSuffix(fe.Path, "/j/memory.max") {
				t.Errorf("error %#v does not name memory.max", err)
			}
		}},
		{"owner unknown", "j", nil, func(h *Hierarchy) {
			fs, err := procfs.NewFS(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			h.proc = fs
		}, func(t *testing.T, err error) {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("error %v, want the missing /proc/PID", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := fakeHierarchy(t)
			if tt.prepare != nil {
				tt.prepare(h)
			}
			j, err := h.NewJob(tt.job, tt.res)
			if err == nil {
				t.Fatalf("NewJob = %v, want an error", j)
			}
			tt.check(t, err)
			if names := dirEntries(t, h.root); len(names) != 0 {
				t.Errorf("NewJob left %q behind", names)
			}
		})
	}
}

func TestNewJobMissingRoot(t *testing.T) {
	t.Parallel()
	h := fakeHierarchy(t)
	h.root = filepath.Join(h.mount, "absent")
	_, err := h.NewJob("j", nil)
	errorContains(t, err, "create job cgroup", filepath.Join(h.root, "j"))
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("error %v, want ENOENT", err)
	}
}

func TestNewJobExisting(t *testing.T) {
	t.Parallel()
	self := os.Getpid()
	tests := []struct {
		name   string
		events string
		owner  *Owner
		msg    string
	}{
		{"holds processes", "populated 1\nfrozen 0\n", nil, "already exists and holds processes"},
		{"owner runs", "populated 0\nfrozen 0\n", &Owner{PID: self, StartTime: 4242}, "belongs to the rsup running as pid " + strconv.Itoa(self)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := fakeHierarchy(t)
			path := filepath.Join(h.root, "j")
			writeFiles(t, path, map[string]string{"cgroup.events": tt.events})
			if tt.owner != nil {
				if err := setOwner(path, *tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			_, err := h.NewJob("j", nil)
			if !errors.Is(err, ErrJobExists) {
				t.Fatalf("NewJob: %v, want ErrJobExists", err)
			}
			errorContains(t, err, path, tt.msg, "choose another --name")
			checkWrites(t, filepath.Join(path, "cgroup.events"), tt.events)
		})
	}
}

// An empty job cgroup whose owner is gone is a leftover and is replaced.
// Its cgroup.events is a FIFO that the test unlinks once NewJob has opened
// it: a temp dir, unlike cgroupfs, cannot be removed while files are in it.
func TestNewJobReclaimsLeftover(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		owner *Owner
	}{
		{"owner gone", &Owner{PID: 1 << 22, StartTime: 1}},
		{"owner pid reused", &Owner{PID: os.Getpid(), StartTime: 4241}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := fakeHierarchy(t)
			path := filepath.Join(h.root, "j")
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.owner != nil {
				if err := setOwner(path, *tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Mkdir(filepath.Join(path, "child"), 0o755); err != nil {
				t.Fatal(err)
			}
			events := filepath.Join(path, "cgroup.events")
			f := serveFIFO(t, events, []fifoStep{{content: "populated 0\nfrozen 0\n", before: func() {
				if err := os.Remove(events); err != nil {
					t.Error(err)
				}
			}}})
			j, err := h.NewJob("j", nil)
			f.wait(t)
			if err != nil {
				t.Fatalf("NewJob: %v", err)
			}
			if names := dirEntries(t, path); len(names) != 0 {
				t.Errorf("the new job cgroup holds %q from the old one", names)
			}
			if got, err := readOwner(path); err != nil || got != (Owner{PID: os.Getpid(), StartTime: 4242}) {
				t.Errorf("owner mark = %+v, %v; want this process", got, err)
			}
			j.d.close()
		})
	}
}

// An existing empty cgroup without an owner mark is never taken over: it
// may be another tool's, or an rsup's that has not marked it yet.
func TestNewJobRefusesUnmarked(t *testing.T) {
	t.Parallel()
	h := fakeHierarchy(t)
	path := filepath.Join(h.root, "j")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := h.NewJob("j", nil)
	if !errors.Is(err, ErrJobExists) {
		t.Fatalf("NewJob over an unmarked cgroup: %v, want ErrJobExists", err)
	}
	errorContains(t, err, path, "not marked as an rsup job")
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the unmarked cgroup was removed: %v", err)
	}
}

// A dead owner's leftover is removed; where the removal fails, the error
// says so and is not ErrJobExists.
func TestNewJobReclaimRemoveFails(t *testing.T) {
	t.Parallel()
	h := fakeHierarchy(t)
	path := filepath.Join(h.root, "j")
	writeFiles(t, path, map[string]string{"cgroup.events": "populated 0\nfrozen 0\n"})
	if err := setOwner(path, Owner{PID: 1 << 22, StartTime: 1}); err != nil {
		t.Fatal(err)
	}
	_, err := h.NewJob("j", nil)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "remove" || fe.Path != path || errors.Is(err, ErrJobExists) {
		t.Errorf("NewJob: %#v, want a remove error for %s", err, path)
	}

	writeFiles(t, path, map[string]string{"cgroup.events": "populated\n"})
	_, err = h.NewJob("j", nil)
	errorContains(t, err, filepath.Join(path, "cgroup.events"), `malformed line "populated"`)
}

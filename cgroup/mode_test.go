package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// fakeFSType returns the statfs type of the paths in m and ENOENT for any
// other path.
func fakeFSType(m map[string]int64) fsTypeFunc {
	return func(path string) (int64, error) {
		if t, ok := m[path]; ok {
			return t, nil
		}
		return 0, &os.PathError{Op: "statfs", Path: path, Err: unix.ENOENT}
	}
}

func TestDetectMode(t *testing.T) {
	t.Parallel()
	const cg = "/sys/fs/cgroup"
	tests := []struct {
		name string
		fs   map[string]int64
		want Mode
	}{
		{"unified", map[string]int64{cg: unix.CGROUP2_SUPER_MAGIC}, ModeUnified},
		{"hybrid", map[string]int64{cg: unix.TMPFS_MAGIC, cg + "/unified": unix.CGROUP2_SUPER_MAGIC, cg + "/memory": unix.CGROUP_SUPER_MAGIC}, ModeHybrid},
		{"legacy: tmpfs without unified", map[string]int64{cg: unix.TMPFS_MAGIC, cg + "/memory": unix.CGROUP_SUPER_MAGIC}, ModeLegacy},
		{"legacy: unified is cgroup1", map[string]int64{cg: unix.TMPFS_MAGIC, cg + "/unified": unix.CGROUP_SUPER_MAGIC}, ModeLegacy},
		{"legacy: unified is a plain tmpfs dir", map[string]int64{cg: unix.TMPFS_MAGIC, cg + "/unified": unix.TMPFS_MAGIC}, ModeLegacy},
		{"legacy: cgroup1 mounted directly", map[string]int64{cg: unix.CGROUP_SUPER_MAGIC}, ModeLegacy},
		{"none: not mounted", map[string]int64{}, ModeNone},
		{"none: some other file system", map[string]int64{cg: unix.EXT4_SUPER_MAGIC, cg + "/unified": unix.CGROUP2_SUPER_MAGIC}, ModeNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := detectMode(cg, fakeFSType(tt.fs)); got != tt.want {
				t.Errorf("detectMode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestModeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m         Mode
		has, hasN []string
	}{
		{ModeUnified, []string{"unified", "cgroup v2"}, []string{"v1"}},
		{ModeHybrid, []string{"hybrid", "cgroup v1", "cgroup v2"}, nil},
		{ModeLegacy, []string{"legacy", "cgroup v1"}, []string{"v2"}},
		{ModeNone, []string{"none"}, []string{"v1", "v2"}},
		{Mode(42), []string{"none"}, nil},
	}
	for _, tt := range tests {
		s := tt.m.String()
		for _, h := range tt.has {
			if !strings.Contains(s, h) {
				t.Errorf("Mode(%d).String() = %q, want it to mention %q", int(tt.m), s, h)
			}
		}
		for _, h := range tt.hasN {
			if strings.Contains(s, h) {
				t.Errorf("Mode(%d).String() = %q, should not mention %q", int(tt.m), s, h)
			}
		}
	}
}

func TestStatfsType(t *testing.T) {
	t.Parallel()
	if typ, err := statfsType(t.TempDir()); err != nil || typ == 0 {
		t.Errorf("statfsType(temp dir) = %#x, %v; want a file system type", typ, err)
	}
	if _, err := statfsType(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, unix.ENOENT) {
		t.Errorf("statfsType(missing) error = %v, want ENOENT", err)
	}
}

// hybridMounts is the cgroup part of /proc/self/mountinfo on a hybrid host,
// as procfs parses it.
func hybridMounts(extra ...*procfs.MountInfo) []*procfs.MountInfo {
	m := []*procfs.MountInfo{
		{MountID: 23, MountPoint: "/sys", FSType: "sysfs", Source: "sysfs"},
		{MountID: 25, MountPoint: "/sys/fs/cgroup", FSType: "tmpfs", Source: "tmpfs"},
		{MountID: 26, MountPoint: "/sys/fs/cgroup/unified", FSType: "cgroup2", Source: "cgroup2"},
		{MountID: 27, MountPoint: "/sys/fs/cgroup/systemd", FSType: "cgroup", Source: "cgroup"},
		{MountID: 30, MountPoint: "/sys/fs/cgroup/memory", FSType: "cgroup", Source: "cgroup"},
		{MountID: 31, MountPoint: "/sys/fs/cgroup/cpu,cpuacct", FSType: "cgroup", Source: "cgroup"},
	}
	return append(m, extra...)
}

func TestFindCgroup2Mount(t *testing.T) {
	t.Parallel()
	inner := &procfs.MountInfo{MountID: 90, MountPoint: "/sys/fs/cgroup/unified/ctr", FSType: "cgroup2"}
	tests := []struct {
		name   string
		mounts []*procfs.MountInfo
		path   string
		want   string
	}{
		{"empty path: first cgroup2 mount", hybridMounts(), "", "/sys/fs/cgroup/unified"},
		{"empty path: first of two", hybridMounts(inner), "", "/sys/fs/cgroup/unified"},
		{"the mount point itself", hybridMounts(), "/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified"},
		{"below the mount", hybridMounts(), "/sys/fs/cgroup/unified/rsup/job", "/sys/fs/cgroup/unified"},
		{"nested mount listed after", hybridMounts(inner), "/sys/fs/cgroup/unified/ctr/rsup", "/sys/fs/cgroup/unified/ctr"},
		{"nested mount listed first", append([]*procfs.MountInfo{inner}, hybridMounts()...), "/sys/fs/cgroup/unified/ctr/rsup", "/sys/fs/cgroup/unified/ctr"},
		{"outer mount beside nested", hybridMounts(inner), "/sys/fs/cgroup/unified/other", "/sys/fs/cgroup/unified"},
		{"prefix of nested name is not nested", hybridMounts(inner), "/sys/fs/cgroup/unified/ctrl", "/sys/fs/cgroup/unified"},
		{"mounted at /", []*procfs.MountInfo{{MountPoint: "/", FSType: "cgroup2"}}, "/rsup", "/"},
		{"unified host", []*procfs.MountInfo{{MountPoint: "/sys/fs/cgroup", FSType: "cgroup2"}}, "/sys/fs/cgroup/rsup", "/sys/fs/cgroup"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := findCgroup2Mount(tt.mounts, tt.path)
			if err != nil {
				t.Fatalf("findCgroup2Mount(%q): %v", tt.path, err)
			}
			if got != tt.want {
				t.Errorf("findCgroup2Mount(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

func TestFindCgroup2MountErrors(t *testing.T) {
	t.Parallel()
	legacy := []*procfs.MountInfo{
		{MountPoint: "/sys/fs/cgroup", FSType: "tmpfs"},
		{MountPoint: "/sys/fs/cgroup/memory", FSType: "cgroup"},
	}
	tests := []struct {
		name   string
		mounts []*procfs.MountInfo
		path   string
		msg    string
	}{
		{"v1 controller mount", hybridMounts(), "/sys/fs/cgroup/memory/rsup", "/sys/fs/cgroup/memory/rsup is not on a cgroup2 file system"},
		{"tmpfs", hybridMounts(), "/sys/fs/cgroup/rsup", "/sys/fs/cgroup/rsup is not on a cgroup2 file system"},
		{"prefix trap", hybridMounts(), "/sys/fs/cgroup/unifiedX/a", "/sys/fs/cgroup/unifiedX/a is not on a cgroup2 file system"},
		{"prefix trap exact", hybridMounts(), "/sys/fs/cgroup/unifiedX", "unifiedX is not on a cgroup2"},
		{"parent of the mount", hybridMounts(), "/sys/fs", "/sys/fs is not on a cgroup2"},
		{"legacy host, empty path", legacy, "", "no cgroup2 file system is mounted"},
		{"legacy host", legacy, "/sys/fs/cgroup/memory/x", "/sys/fs/cgroup/memory/x is not on a cgroup2 file system"},
		{"no mounts", nil, "", "no cgroup2 file system is mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := findCgroup2Mount(tt.mounts, tt.path)
			if err == nil {
				t.Fatalf("findCgroup2Mount(%q) = %q, want an error", tt.path, got)
			}
			errorContains(t, err, tt.msg)
		})
	}
}

func TestParseControllers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{"cpuset cpu io memory hugetlb pids rdma misc\n", []string{"cpu", "cpuset", "hugetlb", "io", "memory", "misc", "pids", "rdma"}},
		{"memory pids", []string{"memory", "pids"}},
		{"\n", []string{}},
		{"", []string{}},
	}
	for _, tt := range tests {
		got := parseControllers(tt.in)
		if !slices.Equal(got, tt.want) {
			t.Errorf("parseControllers(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMissingAndIntersect(t *testing.T) {
	t.Parallel()
	have := []string{"cpu", "memory"}
	if got, want := missing(Controllers, have), []string{"io", "pids"}; !slices.Equal(got, want) {
		t.Errorf("missing = %q, want %q", got, want)
	}
	if got := missing([]string{"memory", "cpu"}, have); got != nil {
		t.Errorf("missing of available controllers = %q, want nil", got)
	}
	if got, want := intersect(Controllers, []string{"pids", "hugetlb", "cpu"}), []string{"cpu", "pids"}; !slices.Equal(got, want) {
		t.Errorf("intersect = %q, want %q (in the order of the first list)", got, want)
	}
	if got := intersect(Controllers, nil); got != nil {
		t.Errorf("intersect with nothing = %q, want nil", got)
	}
}

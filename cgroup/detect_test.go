package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDetectModeStatfs(t *testing.T) {
	t.Parallel()
	if got := DetectMode(filepath.Join(t.TempDir(), "absent")); got != ModeNone {
		t.Errorf("DetectMode(missing directory) = %v, want %v", got, ModeNone)
	}
	// A plain directory is never a cgroup2 mount, whatever file system
	// holds the temporary directory (tmpfs reads as legacy, others none).
	if got := DetectMode(t.TempDir()); got == ModeUnified || got == ModeHybrid {
		t.Errorf("DetectMode(plain directory) = %v, want legacy or none", got)
	}
	const sys = "/sys/fs/cgroup"
	if got, want := DetectMode(""), detectMode(sys, statfsType); got != want {
		t.Errorf("DetectMode(\"\") = %v, want the mode of %s, %v", got, sys, want)
	}
}

func TestCgroup2Controllers(t *testing.T) {
	t.Parallel()
	unified := unifiedHost(t, map[string]string{"cgroup.controllers": "pids memory io cpuset cpu\n"})
	hybrid := hybridHost(t, map[string]string{"cgroup.controllers": "\n"})

	// A cgroup2 mount outside the cgroup directory (systemd-less hosts
	// sometimes mount it at /run/cgroup2 or the like).
	elsewhere := t.TempDir()
	other := filepath.Join(elsewhere, "cgroup2")
	writeFiles(t, other, map[string]string{"cgroup.controllers": "memory pids\n"})
	elsewhereProc := fakeProcFS(t, os.Getpid(), 1, mountinfoHead+
		"30 23 0:30 / "+filepath.Join(elsewhere, "cgroup")+" rw - tmpfs tmpfs rw\n"+
		"31 30 0:31 / "+filepath.Join(elsewhere, "cgroup", "memory")+" rw - cgroup cgroup rw,memory\n"+
		"32 1 0:32 / "+other+" rw - cgroup2 cgroup2 rw\n")

	tests := []struct {
		name, cgfs, proc string
		mount            string
		want             []string
	}{
		{"unified", unified.cgfs, unified.proc, unified.mount, []string{"cpu", "cpuset", "io", "memory", "pids"}},
		{"hybrid", hybrid.cgfs, hybrid.proc, hybrid.mount, []string{}},
		{"mounted elsewhere", filepath.Join(elsewhere, "cgroup"), elsewhereProc, other, []string{"memory", "pids"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mount, got, err := Cgroup2Controllers(tt.cgfs, tt.proc)
			if err != nil {
				t.Fatal(err)
			}
			if mount != tt.mount {
				t.Errorf("mount = %q, want %q", mount, tt.mount)
			}
			if !slices.Equal(got, tt.want) || got == nil {
				t.Errorf("controllers = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestCgroup2ControllersPrefersMountAtCgroupFS(t *testing.T) {
	t.Parallel()
	h := unifiedHost(t, map[string]string{"cgroup.controllers": "cpu\n"})
	other := filepath.Join(t.TempDir(), "cgroup2")
	writeFiles(t, other, map[string]string{"cgroup.controllers": "memory\n"})
	// The foreign mount is listed first; the one at cgroupFS still wins.
	mi := readTestFile(t, filepath.Join(h.proc, "self", "mountinfo"))
	mi = "40 1 0:40 / " + other + " rw - cgroup2 cgroup2 rw\n" + mi
	proc := fakeProcFS(t, os.Getpid(), 1, mi)
	mount, got, err := Cgroup2Controllers(h.cgfs, proc)
	if err != nil {
		t.Fatal(err)
	}
	if mount != h.mount || !slices.Equal(got, []string{"cpu"}) {
		t.Errorf("Cgroup2Controllers = %q, %v; want %q, [cpu]", mount, got, h.mount)
	}
}

func TestCgroup2ControllersErrors(t *testing.T) {
	t.Parallel()
	legacyCG := filepath.Join(t.TempDir(), "cgroup")
	legacy := fakeProcFS(t, os.Getpid(), 1, mountinfoHead+
		"30 23 0:30 / "+legacyCG+" rw - tmpfs tmpfs rw\n"+
		"31 30 0:31 / "+filepath.Join(legacyCG, "memory")+" rw - cgroup cgroup rw,memory\n")

	noControllers := unifiedHost(t, nil) // mounted, but cgroup.controllers is missing

	noSelf := t.TempDir()

	tests := []struct {
		name, cgfs, proc string
		noCgroup2        bool
		says             []string
	}{
		{"legacy host", legacyCG, legacy, true, []string{"no cgroup2 file system", "mountinfo"}},
		{"controllers unreadable", noControllers.cgfs, noControllers.proc, false, []string{"cgroup.controllers"}},
		{"proc without self", legacyCG, noSelf, false, []string{"own process", noSelf}},
		{"proc missing", legacyCG, filepath.Join(noSelf, "absent"), false, []string{"proc file system", "absent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mount, got, err := Cgroup2Controllers(tt.cgfs, tt.proc)
			if err == nil {
				t.Fatalf("Cgroup2Controllers = %q, %v; want an error", mount, got)
			}
			if errors.Is(err, ErrNoCgroup2) != tt.noCgroup2 {
				t.Errorf("errors.Is(%v, ErrNoCgroup2) = %v, want %v", err, !tt.noCgroup2, tt.noCgroup2)
			}
			errorContains(t, err, tt.says...)
		})
	}
}

// TestCgroup2ControllersHost reads this host's own mount table.
func TestCgroup2ControllersHost(t *testing.T) {
	t.Parallel()
	mount, got, err := Cgroup2Controllers("", "")
	if errors.Is(err, ErrNoCgroup2) {
		t.Skipf("this host has no cgroup2 mount: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(mount) {
		t.Errorf("mount %q is not absolute", mount)
	}
	raw, err := os.ReadFile(filepath.Join(mount, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	if want := parseControllers(string(raw)); !slices.Equal(got, want) {
		t.Errorf("controllers = %v, want %v", got, want)
	}
	for _, c := range got {
		if c == "" || strings.ContainsAny(c, " \n") {
			t.Errorf("controller name %q", c)
		}
	}
}

package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeSysfs lays out the part of sysfs that ResolveDevice reads: sda (8:0)
// with its partition sda1 (8:1), and nvme0n1 (259:0), each linked from
// dev/block/MAJ:MIN the way the kernel links them.
func fakeSysfs(t *testing.T) string {
	t.Helper()
	sys := t.TempDir()
	const sda = "devices/pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block/sda"
	const nvme = "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
	writeFiles(t, sys, map[string]string{
		sda + "/dev":                  "8:0\n",
		sda + "/size":                 "976773168\n",
		sda + "/sda1/dev":             "8:1\n",
		sda + "/sda1/partition":       "1\n",
		sda + "/sda1/start":           "2048\n",
		nvme + "/dev":                 "259:0\n",
		nvme + "/nvme0n1p1/dev":       "259:1\n",
		nvme + "/nvme0n1p1/partition": "1\n",
	})
	links := map[string]string{
		"8:0":   "../../" + sda,
		"8:1":   "../../" + sda + "/sda1",
		"259:0": "../../" + nvme,
		"259:1": "../../" + nvme + "/nvme0n1p1",
	}
	if err := os.MkdirAll(filepath.Join(sys, "dev/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(sys, "dev/block", name)); err != nil {
			t.Fatal(err)
		}
	}
	return sys
}

func TestResolveDeviceNumbers(t *testing.T) {
	t.Parallel()
	sys := fakeSysfs(t)
	for _, tt := range []struct {
		spec string
		want Device
	}{
		{"8:0", Device{8, 0}},
		{"259:0", Device{259, 0}},
		{"008:000", Device{8, 0}},
	} {
		got, err := ResolveDevice(tt.spec, sys)
		if err != nil {
			t.Errorf("ResolveDevice(%q): %v", tt.spec, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ResolveDevice(%q) = %v, want %v", tt.spec, got, tt.want)
		}
	}
}

func TestResolveDeviceRejects(t *testing.T) {
	t.Parallel()
	sys := fakeSysfs(t)
	// A partition whose disk cannot be found from sysfs.
	writeFiles(t, sys, map[string]string{"dev/block/8:2/partition": "2\n"})
	regular := filepath.Join(t.TempDir(), "disk.img")
	writeFiles(t, filepath.Dir(regular), map[string]string{"disk.img": ""})
	tests := []struct {
		name, spec string
		msgs       []string
		is         error
	}{
		{"partition", "8:1", []string{`device "8:1" (8:1) is a partition`, "whole disk", "give sda (8:0) instead"}, nil},
		{"nvme partition", "259:1", []string{`device "259:1" (259:1) is a partition`, "give nvme0n1 (259:0) instead"}, nil},
		{"partition of an unknown disk", "8:2", []string{`device "8:2" (8:2) is a partition`, "give its disk instead"}, nil},
		{"no such block device", "9:9", []string{`device "9:9" (9:9): no such block device in ` + filepath.Join(sys, "dev/block")}, nil},
		{"bad major", "abc:1", []string{`invalid device "abc:1"`, "MAJ:MIN"}, nil},
		{"bad minor", "8:x", []string{`invalid device "8:x"`}, nil},
		{"negative", "-8:0", []string{`invalid device "-8:0"`}, nil},
		{"three fields", "8:0:1", []string{`invalid device "8:0:1"`}, nil},
		{"major too big", "4294967296:0", []string{`invalid device "4294967296:0"`}, nil},
		{"empty major", ":0", []string{`invalid device ":0"`}, nil},
		{"regular file", regular, []string{`device "` + regular + `" is not a block device`, "/dev/sda"}, nil},
		{"directory", sys, []string{"is not a block device"}, nil},
		{"missing path", filepath.Join(sys, "no-such-disk"), []string{`device "` + filepath.Join(sys, "no-such-disk") + `"`}, unix.ENOENT},
		{"empty", "", []string{`device ""`}, unix.ENOENT},
		{"char device", "/dev/null", []string{`device "/dev/null" is not a block device`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.spec == "/dev/null" {
				if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
					t.Skip("/dev/null is not a character device on this machine")
				}
			}
			got, err := ResolveDevice(tt.spec, sys)
			if err == nil {
				t.Fatalf("ResolveDevice(%q) = %v, want an error", tt.spec, got)
			}
			errorContains(t, err, tt.msgs...)
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

// mknod makes a block device node, which needs CAP_MKNOD.
func mknod(t *testing.T, path string, major, minor uint32) {
	t.Helper()
	err := unix.Mknod(path, unix.S_IFBLK|0o600, int(unix.Mkdev(major, minor)))
	if errors.Is(err, unix.EPERM) {
		t.Skipf("mknod %s: %v: this test needs CAP_MKNOD to make a block device node", path, err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestResolveDevicePath(t *testing.T) {
	t.Parallel()
	sys := fakeSysfs(t)
	dev := t.TempDir()
	mknod(t, filepath.Join(dev, "sda"), 8, 0)
	mknod(t, filepath.Join(dev, "sda1"), 8, 1)
	mknod(t, filepath.Join(dev, "sdz"), 65, 160)
	// Like /dev/disk/by-id/..., a symlink to the node.
	if err := os.Symlink("sda", filepath.Join(dev, "by-id")); err != nil {
		t.Fatal(err)
	}

	for _, p := range []string{"sda", "by-id"} {
		got, err := ResolveDevice(filepath.Join(dev, p), sys)
		if err != nil {
			t.Errorf("ResolveDevice(%s): %v", p, err)
		} else if got != (Device{8, 0}) {
			t.Errorf("ResolveDevice(%s) = %v, want 8:0", p, got)
		}
	}

	_, err := ResolveDevice(filepath.Join(dev, "sda1"), sys)
	errorContains(t, err, filepath.Join(dev, "sda1"), "(8:1) is a partition", "give sda (8:0) instead")

	_, err = ResolveDevice(filepath.Join(dev, "sdz"), sys)
	errorContains(t, err, "(65:160): no such block device")
}

func TestDeviceString(t *testing.T) {
	t.Parallel()
	if got := (Device{Major: 259, Minor: 3}).String(); got != "259:3" {
		t.Errorf("Device.String() = %q, want 259:3", got)
	}
	if got := (Device{}).String(); got != "0:0" {
		t.Errorf("Device{}.String() = %q, want 0:0", got)
	}
}

package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Device is a block device number as io.max spells it: "MAJ:MIN".
type Device struct {
	Major, Minor uint32
}

func (d Device) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ResolveDevice turns a device path ("/dev/sda") or a "MAJ:MIN" pair into
// the whole block device that io.max throttles. sysfs is the sysfs mount
// ("/sys"); it tells whole disks from partitions. io.max only accepts whole
// devices: the kernel rejects a partition with ENODEV.
func ResolveDevice(spec, sysfs string) (Device, error) {
	var d Device
	if maj, min, ok := strings.Cut(spec, ":"); ok && !strings.ContainsRune(spec, '/') {
		ma, err1 := strconv.ParseUint(maj, 10, 32)
		mi, err2 := strconv.ParseUint(min, 10, 32)
		if err1 != nil || err2 != nil {
			return Device{}, fmt.Errorf("invalid device %q: want a block device path or MAJ:MIN", spec)
		}
		d = Device{Major: uint32(ma), Minor: uint32(mi)}
	} else {
		var st unix.Stat_t
		if err := unix.Stat(spec, &st); err != nil {
			return Device{}, fmt.Errorf("device %q: %w", spec, err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return Device{}, fmt.Errorf("device %q is not a block device: io limits apply to whole disks such as /dev/sda or /dev/nvme0n1", spec)
		}
		d = Device{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	}
	sys := filepath.Join(sysfs, "dev", "block", d.String())
	if _, err := os.Stat(sys); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Device{}, fmt.Errorf("device %q (%s): no such block device in %s", spec, d, filepath.Dir(sys))
		}
		return Device{}, fmt.Errorf("device %q (%s): %w", spec, d, err)
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		whole := "its disk"
		// /sys/dev/block/MAJ:MIN links to the partition's directory,
		// which sits inside its disk's.
		if target, err := filepath.EvalSymlinks(sys); err == nil {
			disk := filepath.Dir(target)
			if dev, err := os.ReadFile(filepath.Join(disk, "dev")); err == nil {
				whole = fmt.Sprintf("%s (%s)", filepath.Base(disk), strings.TrimSpace(string(dev)))
			}
		}
		return Device{}, fmt.Errorf("device %q (%s) is a partition: the kernel throttles io only per whole disk, give %s instead", spec, d, whole)
	}
	return d, nil
}

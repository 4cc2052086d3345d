package monitor

import (
	"fmt"
	"math/bits"
	"time"

	"golang.org/x/sys/unix"
)

// DiskUsage returns the usage of the file system holding path, figured as
// df(1) does: Total is the file system's size, Available what an
// unprivileged user can still write (blocks reserved for root excluded),
// Used what is allocated, and Utilization Used over Used+Available (df's
// Use%). State is left for the caller to classify.
func DiskUsage(path string, now time.Time) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("disk usage of %s: statfs: %w", path, err)
	}
	return diskUsageOf(path, diskBlocks{
		blocks: st.Blocks, free: st.Bfree, avail: st.Bavail,
		frsize: uint64(st.Frsize), bsize: uint64(st.Bsize), fsType: int64(st.Type),
	}, now)
}

// diskBlocks are the statfs figures DiskUsage uses, apart so that tests can
// feed in what a real statfs would not return.
type diskBlocks struct {
	blocks, free, avail uint64
	frsize, bsize       uint64
	fsType              int64
}

func diskUsageOf(path string, b diskBlocks, now time.Time) (Usage, error) {
	// Block counts are in fragments. Linux before 2.6 left f_frsize 0;
	// glibc's statvfs then uses f_bsize, and so does this.
	unit := b.frsize
	if unit == 0 {
		unit = b.bsize
	}
	if b.blocks == 0 || unit == 0 {
		return Usage{}, fmt.Errorf("disk usage of %s: the file system (type %#x) reports no size; it holds no data (proc, sysfs, cgroup and the like), so monitor a path on a disk instead", path, b.fsType)
	}
	if b.free > b.blocks || b.avail > b.blocks {
		return Usage{}, fmt.Errorf("disk usage of %s: statfs reports %d free and %d available blocks out of %d", path, b.free, b.avail, b.blocks)
	}
	total, err := blockBytes(path, b.blocks, unit)
	if err != nil {
		return Usage{}, err
	}
	// Neither can overflow: both block counts are at most b.blocks.
	used := (b.blocks - b.free) * unit
	avail := b.avail * unit
	u := Usage{
		Resource:  Disk,
		Used:      used,
		Available: avail,
		Total:     total,
		Timestamp: now,
	}
	if used == 0 && avail == 0 {
		// Every free block is reserved for root: nothing is used, and
		// nothing can be written either.
		u.Utilization = 1
	} else {
		u.Utilization = float64(used) / (float64(used) + float64(avail))
	}
	return u, nil
}

func blockBytes(path string, n, unit uint64) (uint64, error) {
	hi, lo := bits.Mul64(n, unit)
	if hi != 0 {
		return 0, fmt.Errorf("disk usage of %s: %d blocks of %d bytes do not fit in 64 bits", path, n, unit)
	}
	return lo, nil
}

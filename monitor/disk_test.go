package monitor

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDiskUsageOf(t *testing.T) {
	t.Parallel()
	const ext4 = 0xef53
	tests := []struct {
		name string
		b    diskBlocks
		want Usage // Resource and Timestamp are filled in below
	}{
		{
			// df: 1000 blocks, 300 free of which 50 are reserved for root.
			name: "part used, some reserved",
			b:    diskBlocks{blocks: 1000, free: 300, avail: 250, frsize: 4096, bsize: 4096, fsType: ext4},
			want: Usage{Used: 700 * 4096, Available: 250 * 4096, Total: 1000 * 4096, Utilization: 700.0 / 950},
		},
		{
			name: "nothing reserved",
			b:    diskBlocks{blocks: 1000, free: 600, avail: 600, frsize: 4096, bsize: 4096},
			want: Usage{Used: 400 * 4096, Available: 600 * 4096, Total: 1000 * 4096, Utilization: 0.4},
		},
		{
			name: "empty",
			b:    diskBlocks{blocks: 1000, free: 1000, avail: 1000, frsize: 4096, bsize: 4096},
			want: Usage{Used: 0, Available: 1000 * 4096, Total: 1000 * 4096, Utilization: 0},
		},
		{
			name: "full",
			b:    diskBlocks{blocks: 1000, free: 0, avail: 0, frsize: 4096, bsize: 4096},
			want: Usage{Used: 1000 * 4096, Available: 0, Total: 1000 * 4096, Utilization: 1},
		},
		{
			// Only root's reserve is left: df reports 100%.
			name: "only the reserve left",
			b:    diskBlocks{blocks: 1000, free: 50, avail: 0, frsize: 4096, bsize: 4096},
			want: Usage{Used: 950 * 4096, Available: 0, Total: 1000 * 4096, Utilization: 1},
		},
		{
			// All of it free but reserved: nothing is used and nothing
			// can be written.
			name: "all reserved",
			b:    diskBlocks{blocks: 1000, free: 1000, avail: 0, frsize: 4096, bsize: 4096},
			want: Usage{Used: 0, Available: 0, Total: 1000 * 4096, Utilization: 1},
		},
		{
			// Counts are in fragments, not in the preferred I/O size.
			name: "fragment size differs from block size",
			b:    diskBlocks{blocks: 2000, free: 500, avail: 500, frsize: 1024, bsize: 65536},
			want: Usage{Used: 1500 * 1024, Available: 500 * 1024, Total: 2000 * 1024, Utilization: 0.75},
		},
		{
			// Linux before 2.6 left f_frsize 0: f_bsize stands in.
			name: "no fragment size",
			b:    diskBlocks{blocks: 2000, free: 500, avail: 500, frsize: 0, bsize: 512},
			want: Usage{Used: 1500 * 512, Available: 500 * 512, Total: 2000 * 512, Utilization: 0.75},
		},
		{
			name: "one byte blocks",
			b:    diskBlocks{blocks: 3, free: 1, avail: 1, frsize: 1},
			want: Usage{Used: 2, Available: 1, Total: 3, Utilization: 2.0 / 3},
		},
		{
			// 2^40 blocks of 2^23 bytes: 2^63 bytes, which still fits.
			name: "8 EiB",
			b:    diskBlocks{blocks: 1 << 40, free: 1 << 39, avail: 1 << 38, frsize: 1 << 23},
			want: Usage{Used: 1 << 62, Available: 1 << 61, Total: 1 << 63, Utilization: 2.0 / 3},
		},
		{
			name: "largest size that fits",
			b:    diskBlocks{blocks: math.MaxUint64, free: math.MaxUint64 - 1, avail: 0, frsize: 1},
			want: Usage{Used: 1, Available: 0, Total: math.MaxUint64, Utilization: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := diskUsageOf("/data", tt.b, hostT0)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Resource, want.Timestamp = Disk, hostT0
			if got != want {
				t.Errorf("diskUsageOf(%+v) =\n %+v\nwant\n %+v", tt.b, got, want)
			}
		})
	}
}

func TestDiskUsageOfErrors(t *testing.T) {
	t.Parallel()
	const procMagic = 0x9fa0
	tests := []struct {
		name string
		b    diskBlocks
		says []string
	}{
		{name: "no blocks (proc)", b: diskBlocks{frsize: 4096, bsize: 4096, fsType: procMagic},
			says: []string{"reports no size", "0x9fa0"}},
		{name: "no block size", b: diskBlocks{blocks: 1000, free: 10, avail: 10},
			says: []string{"reports no size"}},
		{name: "more free than there are", b: diskBlocks{blocks: 1000, free: 1001, avail: 10, frsize: 4096},
			says: []string{"1001 free", "out of 1000"}},
		{name: "more available than there are", b: diskBlocks{blocks: 1000, free: 10, avail: 1001, frsize: 4096},
			says: []string{"1001 available", "out of 1000"}},
		{name: "size past 64 bits", b: diskBlocks{blocks: 1 << 41, free: 1, avail: 1, frsize: 1 << 23},
			says: []string{"do not fit in 64 bits"}},
		{name: "size just past 64 bits", b: diskBlocks{blocks: math.MaxUint64, free: 1, avail: 1, frsize: 2},
			says: []string{"do not fit in 64 bits"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := diskUsageOf("/srv/data", tt.b, hostT0)
			if err == nil {
				t.Fatalf("diskUsageOf(%+v) = %+v, want an error", tt.b, got)
			}
			if got != (Usage{}) {
				t.Errorf("diskUsageOf returned %+v along with error %v", got, err)
			}
			errorSays(t, err, "/srv/data")
			errorSays(t, err, tt.says...)
		})
	}
}

// TestDiskUsageTempDir runs a real statfs on a temporary directory and on a
// file in it, which statfs also accepts.
func TestDiskUsageTempDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	for _, path := range []string{dir, file} {
		u, err := DiskUsage(path, hostT0)
		if err != nil {
			t.Fatal(err)
		}
		if u.Resource != Disk || !u.Timestamp.Equal(hostT0) || u.State != 0 {
			t.Errorf("%s: Resource %v, Timestamp %v, State %v", path, u.Resource, u.Timestamp, u.State)
		}
		// The size of a file system does not change under a test; what
		// is used may, as other tests write.
		if want := st.Blocks * unit; u.Total != want {
			t.Errorf("%s: Total = %d, want %d (%d blocks of %d bytes)", path, u.Total, want, st.Blocks, unit)
		}
		if u.Total == 0 || u.Used+u.Available > u.Total {
			t.Errorf("%s: Used %d + Available %d against Total %d", path, u.Used, u.Available, u.Total)
		}
		if u.Utilization < 0 || u.Utilization > 1 || math.IsNaN(u.Utilization) {
			t.Errorf("%s: Utilization = %v", path, u.Utilization)
		}
		if u.Used%unit != 0 || u.Available%unit != 0 {
			t.Errorf("%s: Used %d and Available %d are not whole %d-byte blocks", path, u.Used, u.Available, unit)
		}
	}
}

func TestDiskUsageMissingPath(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no", "such", "dir")
	u, err := DiskUsage(missing, hostT0)
	if err == nil {
		t.Fatalf("DiskUsage(%s) = %+v, want an error", missing, u)
	}
	if u != (Usage{}) {
		t.Errorf("DiskUsage returned %+v along with error %v", u, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	errorSays(t, err, missing, "statfs")
}

// TestDiskUsageProc points DiskUsage at a file system that holds no data.
func TestDiskUsageProc(t *testing.T) {
	t.Parallel()
	u, err := DiskUsage("/proc", hostT0)
	if err == nil {
		t.Fatalf("DiskUsage(/proc) = %+v, want an error", u)
	}
	errorSays(t, err, "/proc", "reports no size", "0x9fa0")
}

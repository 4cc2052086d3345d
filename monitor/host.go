package monitor

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/prometheus/procfs"
)

// Host reads host-wide CPU and memory figures from a proc mount.
type Host struct {
	proc procfs.FS
	root string
}

// NewHost returns a Host that reads the proc file system mounted at
// procRoot ("" means /proc). Tests point it at a fixture tree.
func NewHost(procRoot string) (*Host, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return nil, fmt.Errorf("open proc file system at %s: %w", procRoot, err)
	}
	return &Host{proc: fs, root: procRoot}, nil
}

// Read takes one HostSample stamped now, from stat and meminfo.
//
// CPUTotal and CPUIdle are in time.Duration, whose nanoseconds run out
// after 292 CPU-years (a 1024-CPU host gets there in 104 days of uptime).
// Past that they wrap around like any kernel counter, so only the
// difference between two samples is meaningful; HostCPUUsage takes
// differences that survive the wrap.
func (h *Host) Read(now time.Time) (HostSample, error) {
	cpu, err := readHostCPU(h.proc, h.root)
	if err != nil {
		return HostSample{}, err
	}
	total, avail, err := readHostMemory(h.proc, h.root, true)
	if err != nil {
		return HostSample{}, err
	}
	return HostSample{
		Time:         now,
		CPUTotal:     cpu.total,
		CPUIdle:      cpu.idle,
		CPUs:         cpu.cpus,
		MemTotal:     total,
		MemAvailable: avail,
	}, nil
}

// hostCPUTimes are the figures Read takes from /proc/stat.
type hostCPUTimes struct {
	total, idle time.Duration
	cpus        int
}

// procUserHZ is the tick rate of the times in /proc/stat. The kernel
// reports them in USER_HZ, which is 100 wherever procfs runs, and procfs
// divides by that fixed 100 to give seconds; multiplying back yields whole
// ticks again, free of floating-point residue.
const procUserHZ = 100

// readHostCPU reads the aggregate "cpu" line of /proc/stat and counts the
// per-CPU lines, which the kernel prints for online CPUs only.
func readHostCPU(fs procfs.FS, root string) (hostCPUTimes, error) {
	file := filepath.Join(root, "stat")
	st, err := fs.Stat()
	if err != nil {
		return hostCPUTimes{}, fmt.Errorf("read host CPU times from %s: %w", file, err)
	}
	if len(st.CPU) == 0 {
		return hostCPUTimes{}, fmt.Errorf("read host CPU times from %s: no per-CPU lines (cpu0, cpu1, ...)", file)
	}
	c := st.CPUTotal
	// Guest and guest_nice are left out: since Linux 2.6.24 the kernel
	// charges guest time to user (and guest_nice to nice) as well, so
	// adding them would count it twice.
	fields := [...]struct {
		name string
		sec  float64
	}{
		{"user", c.User}, {"nice", c.Nice}, {"system", c.System}, {"idle", c.Idle},
		{"iowait", c.Iowait}, {"irq", c.IRQ}, {"softirq", c.SoftIRQ}, {"steal", c.Steal},
	}
	var ticks [len(fields)]uint64
	var sum uint64
	for i, f := range fields {
		t := math.Round(f.sec * procUserHZ)
		// 2^61 ticks is far beyond any uptime; the bound keeps the sum
		// of eight fields from overflowing.
		if !(t >= 0 && t < 1<<61) {
			return hostCPUTimes{}, fmt.Errorf("read host CPU times from %s: %s time of the \"cpu\" line is %v ticks, want a count from 0 up", file, f.name, t)
		}
		ticks[i] = uint64(t)
		sum += ticks[i]
	}
	if sum == 0 {
		return hostCPUTimes{}, fmt.Errorf("read host CPU times from %s: the aggregate \"cpu\" line is missing or all zero", file)
	}
	idle := ticks[3] + ticks[4] // idle + iowait
	return hostCPUTimes{total: ticksToDuration(sum), idle: ticksToDuration(idle), cpus: len(st.CPU)}, nil
}

// ticksToDuration converts USER_HZ ticks to a Duration, wrapping around
// past 2^63 nanoseconds (see Host.Read).
func ticksToDuration(ticks uint64) time.Duration {
	return time.Duration(ticks * uint64(time.Second/procUserHZ))
}

// readHostMemory returns MemTotal and, when needAvailable is set,
// MemAvailable from meminfo, in bytes.
func readHostMemory(fs procfs.FS, root string, needAvailable bool) (total, available uint64, err error) {
	file := filepath.Join(root, "meminfo")
	mi, err := fs.Meminfo()
	if err != nil {
		return 0, 0, fmt.Errorf("read host memory from %s: %w", file, err)
	}
	if mi.MemTotalBytes == nil || *mi.MemTotalBytes == 0 {
		return 0, 0, fmt.Errorf("read host memory from %s: MemTotal is missing or 0", file)
	}
	total = *mi.MemTotalBytes
	if !needAvailable {
		return total, 0, nil
	}
	if mi.MemAvailableBytes == nil {
		return 0, 0, fmt.Errorf("read host memory from %s: MemAvailable is missing (the kernel added it in Linux 3.14; rsup needs it to tell reclaimable cache from used memory)", file)
	}
	available = *mi.MemAvailableBytes
	if available > total {
		return 0, 0, fmt.Errorf("read host memory from %s: MemAvailable %d bytes exceeds MemTotal %d bytes", file, available, total)
	}
	return total, available, nil
}

// HostCPUUsage returns the share of all CPUs' time that was busy (not idle
// or waiting for I/O) between two samples, from 0 to 1. It fails when cur
// was not taken after prev, or when no CPU time was accounted in between.
func HostCPUUsage(prev, cur HostSample) (float64, error) {
	if !cur.Time.After(prev.Time) {
		return 0, fmt.Errorf("host CPU usage: sample at %s is not after the one at %s", cur.Time.Format(time.RFC3339Nano), prev.Time.Format(time.RFC3339Nano))
	}
	// Differences of wrapping counters (see Host.Read): Go's signed
	// arithmetic wraps, so cur-prev is right across a wrap.
	total := cur.CPUTotal - prev.CPUTotal
	idle := cur.CPUIdle - prev.CPUIdle
	if total <= 0 {
		return 0, errors.New("host CPU usage: no CPU time was accounted between the two samples; take them further apart (the kernel counts in 10ms ticks)")
	}
	busy := float64(total-idle) / float64(total)
	// iowait is not monotonic: the kernel documents that it can decrease
	// (Documentation/filesystems/proc.rst), which can push the idle
	// difference below 0 or above the total for one interval.
	return min(max(busy, 0), 1), nil
}

// HostCPU returns the host's CPU usage between two samples: Used is busy
// CPU time in microseconds per second of wall time, Total the CPU count
// times 1e6 (see Usage). State is left for the caller to classify.
func HostCPU(prev, cur HostSample) (Usage, error) {
	busy, err := HostCPUUsage(prev, cur)
	if err != nil {
		return Usage{}, err
	}
	if cur.CPUs <= 0 {
		return Usage{}, fmt.Errorf("host CPU usage: sample has %d CPUs", cur.CPUs)
	}
	total := uint64(cur.CPUs) * 1_000_000
	used := uint64(math.Round(busy * float64(total)))
	return Usage{
		Resource:    CPU,
		Utilization: busy,
		Used:        used,
		Available:   total - used,
		Total:       total,
		Timestamp:   cur.Time,
	}, nil
}

// HostMemory returns the host's memory usage in a sample: Used is MemTotal
// less MemAvailable, so reclaimable cache does not count as used. State is
// left for the caller to classify.
func HostMemory(s HostSample) Usage {
	avail := min(s.MemAvailable, s.MemTotal)
	u := Usage{
		Resource:  Memory,
		Used:      s.MemTotal - avail,
		Available: avail,
		Total:     s.MemTotal,
		Timestamp: s.Time,
	}
	if u.Total > 0 {
		u.Utilization = float64(u.Used) / float64(u.Total)
	}
	return u
}

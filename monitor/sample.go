package monitor

import "time"

// PSI is one line of a pressure file ("some avg10=0.00 avg60=0.00
// avg300=0.00 total=0"): averages in percent, total in microseconds.
type PSI struct {
	Avg10, Avg60, Avg300 float64
	Total                uint64
}

// Pressure is a *.pressure file. Full is nil where the kernel has no "full"
// line (cpu.pressure before Linux 5.13).
type Pressure struct {
	Some PSI
	Full *PSI
}

// MemoryEvents are the counters of memory.events.
type MemoryEvents struct {
	Low, High, Max, OOM, OOMKill uint64
}

// CgroupSample is one reading of a job cgroup's interface files. Limits
// that are "max" are nil; figures whose file is missing (a controller not
// enabled, an older kernel) are nil too, never 0.
type CgroupSample struct {
	Time time.Time

	// cpu.stat and cpu.max
	CPUUsage     time.Duration  // usage_usec
	CPUThrottled *time.Duration // throttled_usec (cpu controller)
	NrThrottled  *uint64
	CPUQuota     *time.Duration // nil: max
	CPUPeriod    time.Duration  // 0 when cpu.max is missing (no cpu controller)

	// memory.*
	MemoryCurrent *uint64
	MemoryMax     *uint64 // nil: max
	MemoryPeak    *uint64 // Linux 5.19+
	InactiveFile  *uint64 // from memory.stat, only when asked for
	MemoryEvents  *MemoryEvents

	// pids.*
	PidsCurrent *uint64
	PidsMax     *uint64 // nil: max
	PidsPeak    *uint64 // pids.peak, Linux 6.1+; nil where missing

	// io.stat, summed over devices
	IORBytes, IOWBytes, IORIOs, IOWIOs *uint64

	// *.pressure
	CPUPressure, MemoryPressure, IOPressure *Pressure
}

// HostSample is one reading of host-wide figures.
type HostSample struct {
	Time time.Time
	// CPU time of all CPUs from /proc/stat, and how much of it was idle
	// (idle + iowait).
	CPUTotal, CPUIdle time.Duration
	CPUs              int
	// From /proc/meminfo, in bytes.
	MemTotal, MemAvailable uint64
}

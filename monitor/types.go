// Package monitor samples the host and job cgroups, classifies each
// resource as normal, warning or critical against thresholds, keeps a
// bounded history and peak statistics, and calls back on state changes.
//
// Figures come from the kernel: /proc through github.com/prometheus/procfs
// (rooted at an injectable path), statfs for disks, and a job cgroup's own
// interface files. Between samples, the kernel's own notifications (inotify
// on memory.events and cgroup.events, PSI triggers on *.pressure) wake the
// monitor early, so a crossing the kernel reports is seen in milliseconds.
package monitor

import (
	"fmt"
	"time"
)

// Resource names a monitored resource.
type Resource int

// The resources. CPU, Memory and Disk exist for the host and for jobs; the
// rest only for job cgroups.
const (
	CPU Resource = iota + 1
	Memory
	Disk
	Pids
	IO
	CPUPressure
	MemoryPressure
	IOPressure
)

var resourceNames = [...]string{"", "cpu", "memory", "disk", "pids", "io", "cpu_pressure", "memory_pressure", "io_pressure"}

// Resources lists every resource in order.
func Resources() []Resource {
	return []Resource{CPU, Memory, Disk, Pids, IO, CPUPressure, MemoryPressure, IOPressure}
}

func (r Resource) String() string {
	if r <= 0 || int(r) >= len(resourceNames) {
		return fmt.Sprintf("resource(%d)", int(r))
	}
	return resourceNames[r]
}

// ParseResource parses a resource name as String returns it.
func ParseResource(s string) (Resource, error) {
	for i, n := range resourceNames {
		if i > 0 && n == s {
			return Resource(i), nil
		}
	}
	return 0, fmt.Errorf("unknown resource %q: want one of cpu, memory, disk, pids, io, cpu_pressure, memory_pressure, io_pressure", s)
}

// State is a resource's classification against its thresholds.
type State int

// The states, in order of severity.
const (
	Normal State = iota
	Warning
	Critical
)

func (s State) String() string {
	switch s {
	case Normal:
		return "normal"
	case Warning:
		return "warning"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// ParseState parses "normal", "warning" or "critical".
func ParseState(s string) (State, error) {
	for _, st := range []State{Normal, Warning, Critical} {
		if st.String() == s {
			return st, nil
		}
	}
	return 0, fmt.Errorf("unknown state %q: want normal, warning or critical", s)
}

// Usage is one reading of one resource.
//
// Units of Used, Available and Total by resource:
//   - CPU: CPU time per second of wall time, in microseconds (one full CPU
//     is 1e6); Total is the job's cpu.max quota rate, or the host's CPU
//     count when unlimited.
//   - Memory: bytes; for a job Total is memory.max, or the host's MemTotal
//     when unlimited.
//   - Disk: bytes of the file system holding the monitored path (as df).
//   - Pids: tasks; Total is pids.max, or the kernel's pid_max when
//     unlimited.
//   - IO: bytes the job has read and written since it started; Total is the
//     job's write cap (the disk limit) when one is set, else 0.
//   - *Pressure: Utilization is the PSI "some avg10" share; Used, Available
//     and Total are 0.
type Usage struct {
	Resource Resource
	// Utilization is Used over Total, from 0 to 1 (CPU may pass 1 for a
	// moment when the kernel lets a burst through).
	Utilization float64
	State       State
	Used        uint64
	Available   uint64
	Total       uint64
	// WorkingSet is, for a job's memory, memory.current minus the
	// inactive file cache that the kernel reclaims first; 0 elsewhere or
	// when memory.stat is not read.
	WorkingSet uint64
	Timestamp  time.Time
}

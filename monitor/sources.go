package monitor

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure a Monitor. The zero value of each field is documented
// with it.
type Options struct {
	// Interval between samples; zero means 1s.
	Interval time.Duration
	// History is how many samples are kept per resource; zero means 3600.
	History int
	// Proc is the proc file system; empty means "/proc".
	Proc string
	// DiskPath is the path whose file system is the Disk resource; empty
	// means "/".
	DiskPath string
	// Cgroup is the directory of a job cgroup to monitor; empty means the
	// host.
	Cgroup string
	// CgroupV1 is, for a job on a cgroup v1 or hybrid host, the job's
	// directory in each v1 hierarchy by controller name ("cpu",
	// "cpuacct", "memory", "pids", "blkio"; see NewCgroupV1Reader). When
	// it is set the monitor samples these directories and does not read
	// Cgroup. Events then wakes the monitor on OOM only, and PSITriggers
	// are ignored: v1 has no pressure files.
	CgroupV1 map[string]string
	// MemoryStat also reads memory.stat for the working set. It is the
	// most expensive file to read, so it is off by default.
	MemoryStat bool
	// Events wakes the monitor on the kernel's own notifications about the
	// job (memory.events, cgroup.events, and PSITriggers) besides the
	// interval.
	Events      bool
	PSITriggers []PSITrigger
	// WriteCap is the disk limit of a job: the bytes it may write (summed
	// from io.stat). The IO resource's utilization is written bytes over
	// WriteCap; zero means none. The kernel does not enforce it: the
	// caller acts on the IO state.
	WriteCap uint64
	// Logger receives state changes and sampling errors; nil discards them.
	Logger *slog.Logger
}

// New returns a monitor of the host, or of the job cgroup o.Cgroup. It does
// not start sampling: call Start, or SampleNow for single readings.
func New(o Options) (*Monitor, error) {
	if o.Interval == 0 {
		o.Interval = time.Second
	}
	if o.Interval < 0 {
		return nil, fmt.Errorf("monitor interval %v: must be positive", o.Interval)
	}
	if o.History == 0 {
		o.History = 3600
	}
	if o.History < 0 {
		return nil, fmt.Errorf("monitor history %d: must be positive", o.History)
	}
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.DiskPath == "" {
		o.DiskPath = "/"
	}
	host, err := NewHost(o.Proc)
	if err != nil {
		return nil, err
	}
	first, err := host.Read(time.Now())
	if err != nil {
		return nil, err
	}
	var src source = &hostSource{host: host, disk: o.DiskPath, prev: first}
	var w *watcher
	if o.Cgroup != "" || len(o.CgroupV1) > 0 {
		cg, err := openJobCgroup(o)
		if err != nil {
			return nil, err
		}
		js := &jobSource{cg: cg, disk: o.DiskPath, cpus: first.CPUs, memTotal: first.MemTotal, pidMax: pidMax(o.Proc)}
		js.writeCap.Store(o.WriteCap)
		if len(o.CgroupV1) > 0 && len(o.PSITriggers) > 0 && o.Logger != nil {
			o.Logger.Warn("PSI triggers need cgroup v2: ignored, and pressure is not sampled", "triggers", len(o.PSITriggers))
		}
		if o.Events && len(o.CgroupV1) > 0 {
			// OOM notification through memory.oom_control; a job
			// without a memory hierarchy gets a watcher that never
			// fires.
			w, err = newWatcherV1(o.CgroupV1["memory"])
			if err != nil {
				cg.Close()
				return nil, err
			}
			js.watcher = w
		} else if o.Events {
			w, err = newWatcher(o.Cgroup, o.PSITriggers)
			if err != nil && len(o.PSITriggers) > 0 {
				// Kernels without PSI (CONFIG_PSI off, or psi=0 as
				// some distributions boot) have no pressure files:
				// pressure is then read at the interval, or not at all.
				if o.Logger != nil {
					o.Logger.Warn("PSI triggers unavailable: pressure is only sampled at the interval", "error", err)
				}
				w, err = newWatcher(o.Cgroup, nil)
			}
			if err != nil {
				cg.Close()
				return nil, err
			}
			js.watcher = w
		}
		src = js
	}
	m := newMonitor(src, o.Interval, o.History, o.Logger)
	m.proc = host.proc
	if w != nil {
		m.wake = w.wake
	}
	return m, nil
}

// cgroupSampler reads a job's cgroup: a *CgroupReader on cgroup v2, a
// *CgroupV1Reader on v1.
type cgroupSampler interface {
	Read(now time.Time) (CgroupSample, error)
	Path() string
	Close() error
}

// openJobCgroup opens the reader of the job cgroup o names: its v1
// directories where given, else its v2 directory.
func openJobCgroup(o Options) (cgroupSampler, error) {
	// Each branch returns a nil interface on failure, never an
	// interface holding a nil pointer.
	opts := CgroupReadOptions{MemoryStat: o.MemoryStat}
	if len(o.CgroupV1) > 0 {
		r, err := NewCgroupV1Reader(o.CgroupV1, opts)
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r, err := NewCgroupReader(o.Cgroup, opts)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// pidMax is the kernel's pid_max, the bound of an unlimited pids.max.
func pidMax(proc string) uint64 {
	b, err := os.ReadFile(filepath.Join(proc, "sys", "kernel", "pid_max"))
	if err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			return n
		}
	}
	return 4 * 1024 * 1024 // PID_MAX_LIMIT on 64-bit
}

// hostSource samples the host.
type hostSource struct {
	host *Host
	disk string
	prev HostSample
}

func (s *hostSource) sample(now time.Time) (sampled, error) {
	cur, err := s.host.Read(now)
	if err != nil {
		return sampled{}, err
	}
	var out sampled
	// The first sample, or one taken within the kernel's 10ms tick of the
	// last, has no CPU figure yet.
	if u, err := HostCPU(s.prev, cur); err == nil {
		out.usages = append(out.usages, u)
		s.prev = cur
	}
	out.usages = append(out.usages, HostMemory(cur))
	d, err := DiskUsage(s.disk, now)
	if err != nil {
		return out, err
	}
	out.usages = append(out.usages, d)
	return out, nil
}

func (s *hostSource) close() error { return nil }

// jobSource samples a job cgroup.
type jobSource struct {
	cg       cgroupSampler
	watcher  *watcher
	disk     string
	cpus     int
	memTotal uint64
	pidMax   uint64
	writeCap atomic.Uint64
	prev     *CgroupSample
}

func (s *jobSource) sample(now time.Time) (sampled, error) {
	cur, err := s.cg.Read(now)
	if err != nil {
		return sampled{}, err
	}
	out := sampled{usages: jobUsages(s.prev, cur, s.cpus, s.memTotal, s.pidMax, s.writeCap.Load()), raw: &cur}
	s.prev = &cur
	if cur.MemoryEvents != nil {
		k := cur.MemoryEvents.OOMKill
		out.oomKills = &k
	}
	d, err := DiskUsage(s.disk, now)
	if err != nil {
		return out, err
	}
	out.usages = append(out.usages, d)
	return out, nil
}

func (s *jobSource) close() error {
	return errors.Join(s.watcher.close(), s.cg.Close())
}

// jobUsages turns two consecutive samples of a job cgroup into usages. CPU
// needs both; the others only the current one.
func jobUsages(prev *CgroupSample, cur CgroupSample, cpus int, memTotal, pidMax, writeCap uint64) []Usage {
	var out []Usage
	now := cur.Time
	if prev != nil && cur.Time.After(prev.Time) && cur.CPUUsage >= prev.CPUUsage {
		// CPU time per second of wall time, in microseconds.
		rate := float64(cur.CPUUsage-prev.CPUUsage) / float64(cur.Time.Sub(prev.Time)) * 1e6
		total := uint64(cpus) * 1e6
		if cur.CPUQuota != nil && cur.CPUPeriod > 0 {
			total = uint64(float64(*cur.CPUQuota) / float64(cur.CPUPeriod) * 1e6)
		}
		used := uint64(rate)
		out = append(out, Usage{Resource: CPU, Utilization: ratio(used, total), Used: used, Total: total, Available: total - min(used, total), Timestamp: now})
	}
	if cur.MemoryCurrent != nil {
		total := memTotal
		if cur.MemoryMax != nil {
			total = *cur.MemoryMax
		}
		u := Usage{Resource: Memory, Used: *cur.MemoryCurrent, Total: total, Timestamp: now}
		u.Utilization = ratio(u.Used, total)
		u.Available = total - min(u.Used, total)
		if cur.InactiveFile != nil {
			u.WorkingSet = u.Used - min(*cur.InactiveFile, u.Used)
		}
		out = append(out, u)
	}
	if cur.PidsCurrent != nil {
		total := pidMax
		if cur.PidsMax != nil {
			total = *cur.PidsMax
		}
		out = append(out, Usage{Resource: Pids, Used: *cur.PidsCurrent, Total: total, Available: total - min(*cur.PidsCurrent, total), Utilization: ratio(*cur.PidsCurrent, total), Timestamp: now})
	}
	if cur.IORBytes != nil && cur.IOWBytes != nil {
		u := Usage{Resource: IO, Used: *cur.IORBytes + *cur.IOWBytes, Total: writeCap, Timestamp: now}
		if writeCap > 0 {
			u.Utilization = ratio(*cur.IOWBytes, writeCap)
			u.Available = writeCap - min(*cur.IOWBytes, writeCap)
		}
		out = append(out, u)
	}
	for _, p := range []struct {
		r Resource
		v *Pressure
	}{{CPUPressure, cur.CPUPressure}, {MemoryPressure, cur.MemoryPressure}, {IOPressure, cur.IOPressure}} {
		if p.v != nil {
			out = append(out, Usage{Resource: p.r, Utilization: p.v.Some.Avg10 / 100, Timestamp: now})
		}
	}
	return out
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

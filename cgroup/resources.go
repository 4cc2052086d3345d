package cgroup

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// CPU bandwidth bounds enforced by the kernel for cpu.max (kernel/sched/core.c:
// the quota is at least 1ms, the period between 1ms and 1s).
const (
	MinCPUQuota      = time.Millisecond
	MinCPUPeriod     = time.Millisecond
	MaxCPUPeriod     = time.Second
	DefaultCPUPeriod = 100 * time.Millisecond
	// MaxCPUQuota is the kernel's max_cfs_quota_period bound on the quota,
	// (1<<44)-1 microseconds.
	MaxCPUQuota = time.Duration(1<<44-1) * time.Microsecond
)

// MaxPids is the largest pids.max the kernel accepts: PID_MAX_LIMIT on
// 64-bit kernels (kernel/cgroup/pids.c).
const MaxPids = 4 * 1024 * 1024

// CPUMax is a cpu.max setting. A zero Quota means no bandwidth limit
// ("max"); a zero Period means DefaultCPUPeriod.
type CPUMax struct {
	Quota  time.Duration
	Period time.Duration
}

// ParseCPUPercent parses a CPU share in the sense of systemd's CPUQuota=:
// "50%" is half of one CPU, "250%" two and a half CPUs. The percent sign is
// optional; "max" means no limit.
func ParseCPUPercent(s string, period time.Duration) (CPUMax, error) {
	if period == 0 {
		period = DefaultCPUPeriod
	}
	t := strings.TrimSpace(s)
	if strings.EqualFold(t, "max") {
		c := CPUMax{Period: period}
		return c, c.validate()
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || math.IsNaN(pct) || math.IsInf(pct, 0) || pct <= 0 {
		return CPUMax{}, fmt.Errorf("invalid CPU share %q: want a positive percentage of one CPU such as 50%% or 250%%, or \"max\"", s)
	}
	quota := time.Duration(pct / 100 * float64(period))
	if quota/time.Microsecond == 0 || pct/100*float64(period) > float64(math.MaxInt64/2) {
		return CPUMax{}, fmt.Errorf("invalid CPU share %q: out of range", s)
	}
	c := CPUMax{Quota: quota.Truncate(time.Microsecond), Period: period}
	return c, c.validate()
}

func (c CPUMax) validate() error {
	p := c.Period
	if p == 0 {
		p = DefaultCPUPeriod
	}
	if p < MinCPUPeriod || p > MaxCPUPeriod {
		return fmt.Errorf("cpu period %v out of range: the kernel accepts %v to %v", p, MinCPUPeriod, MaxCPUPeriod)
	}
	if c.Quota > MaxCPUQuota {
		return fmt.Errorf("cpu quota %v per %v period is above the kernel's maximum of %v", c.Quota, p, MaxCPUQuota)
	}
	if c.Quota != 0 && c.Quota < MinCPUQuota {
		return fmt.Errorf("cpu quota %v per %v period is below the kernel's minimum of %v: raise the share or lengthen the period", c.Quota, p, MinCPUQuota)
	}
	return nil
}

// String returns the value written to cpu.max: "QUOTA PERIOD" in
// microseconds.
func (c CPUMax) String() string {
	p := c.Period
	if p == 0 {
		p = DefaultCPUPeriod
	}
	q := "max"
	if c.Quota != 0 {
		q = strconv.FormatInt(c.Quota.Microseconds(), 10)
	}
	return q + " " + strconv.FormatInt(p.Microseconds(), 10)
}

// IOLimit throttles one whole block device through io.max. Nil fields are
// left as they are.
type IOLimit struct {
	Device    Device
	ReadBPS   *Limit
	WriteBPS  *Limit
	ReadIOPS  *Limit
	WriteIOPS *Limit
}

func (l IOLimit) String() string {
	var b strings.Builder
	b.WriteString(l.Device.String())
	for _, kv := range []struct {
		k string
		v *Limit
	}{{"rbps", l.ReadBPS}, {"wbps", l.WriteBPS}, {"riops", l.ReadIOPS}, {"wiops", l.WriteIOPS}} {
		if kv.v != nil {
			b.WriteString(" " + kv.k + "=" + kv.v.String())
		}
	}
	return b.String()
}

// Resources is the set of limits of one job cgroup. Nil fields are not
// written; the kernel's default (no limit) stays in force.
type Resources struct {
	CPU        *CPUMax
	CPUWeight  *uint64 // cpu.weight, 1..10000
	MemoryMax  *Limit
	MemoryHigh *Limit
	MemoryLow  *Limit
	// SwapMax is memory.swap.max. When MemoryMax is set and SwapMax is
	// nil, rsup writes 0, so that the memory limit ends in the OOM killer
	// rather than in swapping.
	SwapMax *Limit
	PidsMax *Limit // pids.max; the kernel counts threads, not processes
	IO      []IOLimit
}

// Validate checks every value against the ranges the kernel accepts, so
// that a set of limits is rejected as a whole before anything is written.
func (r *Resources) Validate() error {
	if r == nil {
		return nil
	}
	var errs []error
	if r.CPU != nil {
		if err := r.CPU.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if r.CPUWeight != nil && (*r.CPUWeight < 1 || *r.CPUWeight > 10000) {
		errs = append(errs, fmt.Errorf("cpu weight %d out of range: the kernel accepts 1 to 10000", *r.CPUWeight))
	}
	if r.PidsMax != nil && !r.PidsMax.Max && r.PidsMax.N == 0 {
		errs = append(errs, errors.New("pids limit 0 would stop the command itself from starting: use 1 or more"))
	}
	if r.PidsMax != nil && !r.PidsMax.Max && r.PidsMax.N > MaxPids {
		errs = append(errs, fmt.Errorf("pids limit %d above the kernel's maximum of %d: use \"max\" for no limit", r.PidsMax.N, MaxPids))
	}
	for _, lim := range []struct {
		name string
		l    *Limit
	}{{"memory", r.MemoryMax}, {"memory-high", r.MemoryHigh}, {"memory-low", r.MemoryLow}, {"swap", r.SwapMax}} {
		if lim.l != nil && !lim.l.Max && lim.l.N > math.MaxInt64 {
			errs = append(errs, fmt.Errorf("%s %d out of range", lim.name, lim.l.N))
		}
	}
	if r.MemoryLow != nil && r.MemoryLow.Max {
		errs = append(errs, errors.New(`memory-low "max" would protect all of the job's memory from reclaim; give a size`))
	}
	seen := map[Device]bool{}
	for _, l := range r.IO {
		if seen[l.Device] {
			errs = append(errs, fmt.Errorf("device %s is given twice in the io limits: combine them", l.Device))
		}
		seen[l.Device] = true
		for _, v := range []*Limit{l.ReadBPS, l.WriteBPS, l.ReadIOPS, l.WriteIOPS} {
			if v != nil && !v.Max && v.N == 0 {
				errs = append(errs, fmt.Errorf("io limit 0 on device %s would block all io: use a positive rate or \"max\"", l.Device))
				break
			}
		}
	}
	return errors.Join(errs...)
}

// Controllers lists the cgroup v2 controllers these limits need.
func (r *Resources) Controllers() []string {
	if r == nil {
		return nil
	}
	var c []string
	if r.CPU != nil || r.CPUWeight != nil {
		c = append(c, "cpu")
	}
	if r.MemoryMax != nil || r.MemoryHigh != nil || r.MemoryLow != nil || r.SwapMax != nil {
		c = append(c, "memory")
	}
	if len(r.IO) > 0 {
		c = append(c, "io")
	}
	if r.PidsMax != nil {
		c = append(c, "pids")
	}
	return c
}

// Writes returns the interface file writes that apply r, in order, as
// "file=value" strings (for reports).
func (r *Resources) Writes() []string {
	var out []string
	for _, s := range r.plan() {
		out = append(out, s.file+"="+s.value)
	}
	return out
}

// setting is one write of a limit to an interface file.
type setting struct {
	file  string
	value string
	// optional settings may be skipped when the kernel lacks the file,
	// because writing them would not change anything.
	optional bool
	// device is set for io.max, whose old value is per device.
	device *Device
}

// plan turns the limits into the ordered list of interface file writes.
func (r *Resources) plan() []setting {
	if r == nil {
		return nil
	}
	var s []setting
	if r.CPU != nil {
		s = append(s, setting{file: "cpu.max", value: r.CPU.String()})
	}
	if r.CPUWeight != nil {
		s = append(s, setting{file: "cpu.weight", value: strconv.FormatUint(*r.CPUWeight, 10)})
	}
	if r.MemoryLow != nil {
		s = append(s, setting{file: "memory.low", value: r.MemoryLow.String()})
	}
	if r.MemoryHigh != nil {
		s = append(s, setting{file: "memory.high", value: r.MemoryHigh.String()})
	}
	if r.MemoryMax != nil {
		s = append(s, setting{file: "memory.max", value: r.MemoryMax.String()})
	}
	switch {
	case r.SwapMax != nil:
		// Without swap accounting (CONFIG_MEMCG_SWAP off or
		// swapaccount=0) memory.swap.max does not exist; "max" is then
		// what the kernel does anyway, so only that value may be skipped.
		s = append(s, setting{file: "memory.swap.max", value: r.SwapMax.String(), optional: r.SwapMax.Max})
	case r.MemoryMax != nil:
		s = append(s, setting{file: "memory.swap.max", value: "0"})
	}
	if r.PidsMax != nil {
		s = append(s, setting{file: "pids.max", value: r.PidsMax.String()})
	}
	for _, l := range r.IO {
		s = append(s, setting{file: "io.max", value: l.String(), device: &l.Device})
	}
	return s
}

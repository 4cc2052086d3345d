package cgroup

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ParseCPUMax parses the content of cpu.max: "QUOTA PERIOD" in
// microseconds, QUOTA being "max" for no limit.
func ParseCPUMax(s string) (CPUMax, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return CPUMax{}, fmt.Errorf("cpu.max %q: want \"QUOTA PERIOD\"", s)
	}
	period, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil || period == 0 {
		return CPUMax{}, fmt.Errorf("cpu.max %q: period %q is not a positive number of microseconds", s, f[1])
	}
	c := CPUMax{Period: time.Duration(period) * time.Microsecond}
	if f[0] != "max" {
		q, err := strconv.ParseUint(f[0], 10, 63)
		if err != nil || q == 0 {
			return CPUMax{}, fmt.Errorf("cpu.max %q: quota %q is neither \"max\" nor a positive number of microseconds", s, f[0])
		}
		c.Quota = time.Duration(q) * time.Microsecond
	}
	return c, nil
}

// Rate returns the CPUs' worth of time the setting allows per second of
// wall time; +Inf for no limit.
func (c CPUMax) Rate() float64 {
	if c.Quota == 0 {
		return math.Inf(1)
	}
	p := c.Period
	if p == 0 {
		p = DefaultCPUPeriod
	}
	return float64(c.Quota) / float64(p)
}

// ParseIOMax returns dev's limits from the content of io.max. A device
// without a line has every limit at max.
func ParseIOMax(content string, dev Device) (IOLimit, error) {
	l := IOLimit{Device: dev, ReadBPS: ptr(Max), WriteBPS: ptr(Max), ReadIOPS: ptr(Max), WriteIOPS: ptr(Max)}
	line := ioMaxLine(content, dev)
	fields := strings.Fields(line)
	for _, kv := range fields[1:] {
		k, v, ok := strings.Cut(kv, "=")
		n, err := ParseCount(v)
		if !ok || err != nil {
			return IOLimit{}, fmt.Errorf("io.max line %q: %q is not KEY=NUMBER or KEY=max", line, kv)
		}
		switch k {
		case "rbps":
			l.ReadBPS = &n
		case "wbps":
			l.WriteBPS = &n
		case "riops":
			l.ReadIOPS = &n
		case "wiops":
			l.WriteIOPS = &n
		}
	}
	return l, nil
}

func ptr[T any](v T) *T { return &v }

// CPUMax returns the job's cpu.max.
func (j *Job) CPUMax() (CPUMax, error) {
	if j.v1 != nil {
		return j.cpuMaxV1()
	}
	s, err := j.d.read("cpu.max")
	if err != nil {
		return CPUMax{}, err
	}
	c, err := ParseCPUMax(s)
	if err != nil {
		return CPUMax{}, fmt.Errorf("%s: %w", filepath.Join(j.path, "cpu.max"), err)
	}
	return c, nil
}

// MemoryHigh returns the job's memory.high.
func (j *Job) MemoryHigh() (Limit, error) {
	if j.v1 != nil {
		return Limit{}, errors.New("memory.high is cgroup v2 only: a throttle of memory_high cannot run on this cgroup v1 host")
	}
	s, err := j.d.read("memory.high")
	if err != nil {
		return Limit{}, err
	}
	l, err := ParseCount(s)
	if err != nil {
		return Limit{}, fmt.Errorf("%s: %w", filepath.Join(j.path, "memory.high"), err)
	}
	return l, nil
}

// IOMax returns the job's io.max limits of dev; every limit is max where
// the device has none.
func (j *Job) IOMax(dev Device) (IOLimit, error) {
	if j.v1 != nil {
		return j.ioMaxV1(dev)
	}
	s, err := j.d.read("io.max")
	if err != nil {
		return IOLimit{}, err
	}
	l, err := ParseIOMax(s, dev)
	if err != nil {
		return IOLimit{}, fmt.Errorf("%s: %w", filepath.Join(j.path, "io.max"), err)
	}
	return l, nil
}

// Freeze freezes (true) or thaws (false) every process in the job through
// cgroup.freeze. Freezing completes asynchronously: "frozen 1" in
// cgroup.events says when it has.
func (j *Job) Freeze(frozen bool) error {
	if j.v1 != nil {
		return j.freezeV1(frozen)
	}
	v := "0"
	if frozen {
		v = "1"
	}
	return j.d.write("cgroup.freeze", v)
}

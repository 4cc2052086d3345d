package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/cgroup"
)

// limitFlags are the flags that set a job's limits; run (and later track)
// share them.
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cpu", EnvVars: []string{"RSUP_CPU"}, Usage: "CPU bandwidth as a `PERCENT` of one CPU: 50% is half a CPU, 250% two and a half (cpu.max)", Category: "Limits"},
		&cli.DurationFlag{Name: "cpu-period", EnvVars: []string{"RSUP_CPU_PERIOD"}, Value: cgroup.DefaultCPUPeriod, Usage: "`PERIOD` of the CPU bandwidth limit, 1ms to 1s", Category: "Limits"},
		&cli.StringFlag{Name: "cpu-weight", EnvVars: []string{"RSUP_CPU_WEIGHT"}, Usage: "relative CPU `WEIGHT`, 1 to 10000 (cpu.weight; the kernel's default is 100)", Category: "Limits"},
		&cli.StringFlag{Name: "memory", EnvVars: []string{"RSUP_MEMORY"}, Usage: "hard memory limit `SIZE` (memory.max); beyond it the kernel OOM-kills the job. Also sets memory.swap.max=0 unless --swap is given", Category: "Limits"},
		&cli.StringFlag{Name: "memory-high", EnvVars: []string{"RSUP_MEMORY_HIGH"}, Usage: "memory throttling threshold `SIZE` (memory.high)", Category: "Limits"},
		&cli.StringFlag{Name: "memory-low", EnvVars: []string{"RSUP_MEMORY_LOW"}, Usage: "`SIZE` of memory protected from reclaim (memory.low)", Category: "Limits"},
		&cli.StringFlag{Name: "swap", EnvVars: []string{"RSUP_SWAP"}, Usage: "swap limit `SIZE` (memory.swap.max)", Category: "Limits"},
		&cli.StringFlag{Name: "pids", EnvVars: []string{"RSUP_PIDS"}, Usage: "maximum `NUMBER` of tasks (pids.max); the kernel counts threads, not only processes", Category: "Limits"},
		&cli.StringSliceFlag{Name: "io-read-bps", EnvVars: []string{"RSUP_IO_READ_BPS"}, Usage: "read bandwidth limit `DEV=RATE` (io.max rbps); DEV is a whole-disk device path or MAJ:MIN; repeatable", Category: "Limits"},
		&cli.StringSliceFlag{Name: "io-write-bps", EnvVars: []string{"RSUP_IO_WRITE_BPS"}, Usage: "write bandwidth limit `DEV=RATE` (io.max wbps); repeatable", Category: "Limits"},
		&cli.StringSliceFlag{Name: "io-read-iops", EnvVars: []string{"RSUP_IO_READ_IOPS"}, Usage: "read operations per second `DEV=N` (io.max riops); repeatable", Category: "Limits"},
		&cli.StringSliceFlag{Name: "io-write-iops", EnvVars: []string{"RSUP_IO_WRITE_IOPS"}, Usage: "write operations per second `DEV=N` (io.max wiops); repeatable", Category: "Limits"},
	}
}

// flagValues is what resourcesFromFlags reads; it is satisfied by
// *cli.Context and by tests.
type flagValues interface {
	IsSet(name string) bool
	String(name string) string
	StringSlice(name string) []string
	Duration(name string) time.Duration
}

// resourcesFromFlags builds and validates the job's limits. Every error
// names the flag and the value it could not use.
func resourcesFromFlags(c flagValues, sysfs string) (*cgroup.Resources, error) {
	r := &cgroup.Resources{}
	var errs []error
	bad := func(flag, value string, err error) {
		errs = append(errs, fmt.Errorf("invalid value %q for --%s: %w", value, flag, err))
	}
	if c.IsSet("cpu") {
		v := c.String("cpu")
		cpu, err := cgroup.ParseCPUPercent(v, c.Duration("cpu-period"))
		if err != nil {
			bad("cpu", v, err)
		} else {
			r.CPU = &cpu
		}
	} else if c.IsSet("cpu-period") {
		errs = append(errs, errors.New("--cpu-period needs --cpu"))
	}
	if c.IsSet("cpu-weight") {
		v := c.String("cpu-weight")
		w, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil || w < 1 || w > 10000 {
			bad("cpu-weight", v, errors.New("want a whole number from 1 to 10000"))
		} else {
			r.CPUWeight = &w
		}
	}
	for _, f := range []struct {
		name string
		dst  **cgroup.Limit
	}{{"memory", &r.MemoryMax}, {"memory-high", &r.MemoryHigh}, {"memory-low", &r.MemoryLow}, {"swap", &r.SwapMax}} {
		if !c.IsSet(f.name) {
			continue
		}
		v := c.String(f.name)
		l, err := cgroup.ParseBytes(v)
		if err != nil {
			bad(f.name, v, err)
			continue
		}
		*f.dst = &l
	}
	if c.IsSet("pids") {
		v := c.String("pids")
		l, err := cgroup.ParseCount(v)
		if err != nil {
			bad("pids", v, err)
		} else {
			r.PidsMax = &l
		}
	}
	io, err := ioLimits(c, sysfs)
	errs = append(errs, err)
	r.IO = io
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// ioLimits merges the --io-* flags into one io.max line per device.
func ioLimits(c flagValues, sysfs string) ([]cgroup.IOLimit, error) {
	var out []cgroup.IOLimit
	index := map[cgroup.Device]int{}
	var errs []error
	for _, f := range []struct {
		name  string
		parse func(string) (cgroup.Limit, error)
		field func(*cgroup.IOLimit) **cgroup.Limit
	}{
		{"io-read-bps", cgroup.ParseBytes, func(l *cgroup.IOLimit) **cgroup.Limit { return &l.ReadBPS }},
		{"io-write-bps", cgroup.ParseBytes, func(l *cgroup.IOLimit) **cgroup.Limit { return &l.WriteBPS }},
		{"io-read-iops", cgroup.ParseCount, func(l *cgroup.IOLimit) **cgroup.Limit { return &l.ReadIOPS }},
		{"io-write-iops", cgroup.ParseCount, func(l *cgroup.IOLimit) **cgroup.Limit { return &l.WriteIOPS }},
	} {
		for _, v := range c.StringSlice(f.name) {
			dev, rate, ok := strings.Cut(v, "=")
			if !ok || dev == "" || rate == "" {
				errs = append(errs, fmt.Errorf("invalid value %q for --%s: want DEV=VALUE, such as /dev/sda=10M", v, f.name))
				continue
			}
			d, err := cgroup.ResolveDevice(dev, sysfs)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for --%s: %w", v, f.name, err))
				continue
			}
			l, err := f.parse(rate)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for --%s: %w", v, f.name, err))
				continue
			}
			i, ok := index[d]
			if !ok {
				i = len(out)
				index[d] = i
				out = append(out, cgroup.IOLimit{Device: d})
			}
			p := f.field(&out[i])
			if *p != nil {
				errs = append(errs, fmt.Errorf("--%s is given twice for device %s", f.name, d))
				continue
			}
			*p = &l
		}
	}
	return out, errors.Join(errs...)
}

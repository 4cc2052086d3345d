package monitor

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/rsup/rsup/cgroup"
)

// Limits are the ResourceManager's set_resource_limits for a job. CPU,
// memory and pids are written to the job's cgroup and enforced by the
// kernel. Disk space cannot be enforced by cgroups, so the disk limit is a
// cap on the bytes the job writes (io.stat wbytes): the monitor enforces it
// by killing the job once a sample finds the cap reached. Zero fields are
// left as they are.
type Limits struct {
	// CPUPercent is a share of one CPU: 50 is half a CPU, 250 two and a
	// half (cpu.max).
	CPUPercent float64
	// Memory is memory.max in bytes (with memory.swap.max 0).
	Memory uint64
	// Pids is pids.max (the kernel counts threads).
	Pids uint64
	// DiskWrite is the write cap in bytes, enforced by the monitor.
	DiskWrite uint64
}

// SetLimits applies l to job, which must be the job cgroup this monitor
// watches. Kernel limits are validated and written as a set (see
// cgroup.Job.Apply); the write cap takes effect at the next sample.
func (m *Monitor) SetLimits(job *cgroup.Job, l Limits) error {
	js, ok := m.src.(*jobSource)
	if !ok || job == nil || js.cg.Path() != job.Path() {
		return errors.New("set limits: the monitor does not watch this job's cgroup")
	}
	res := &cgroup.Resources{}
	if l.CPUPercent != 0 {
		if math.IsNaN(l.CPUPercent) || l.CPUPercent < 0 {
			return fmt.Errorf("set limits: cpu %v%%: want a positive share", l.CPUPercent)
		}
		cpu, err := cgroup.ParseCPUPercent(fmt.Sprintf("%g%%", l.CPUPercent), 0)
		if err != nil {
			return fmt.Errorf("set limits: %w", err)
		}
		res.CPU = &cpu
	}
	if l.Memory != 0 {
		res.MemoryMax = cgroup.Value(l.Memory)
	}
	if l.Pids != 0 {
		res.PidsMax = cgroup.Value(l.Pids)
	}
	if err := job.Apply(res); err != nil {
		return fmt.Errorf("set limits: %w", err)
	}
	if l.DiskWrite != 0 {
		js.writeCap.Store(l.DiskWrite)
		m.mu.Lock()
		m.enforce = job
		m.mu.Unlock()
	}
	return nil
}

// enforceLocked kills the job when a sample finds its write cap reached;
// it returns the kill to run once the lock is released.
func (m *Monitor) enforceLocked(u Usage) func() {
	if m.enforce == nil || u.Resource != IO || u.Total == 0 || u.Utilization < 1 || m.stats.WriteCapKills > 0 {
		return nil
	}
	m.stats.WriteCapKills++
	job := m.enforce
	return func() {
		m.log.Error("write cap reached: killing the job", "written", u.Used, "cap", u.Total, "at", u.Timestamp.Format(time.RFC3339Nano))
		if _, err := job.Kill(); err != nil {
			m.log.Error("kill the job past its write cap", "error", err)
		}
	}
}

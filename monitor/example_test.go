package monitor_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// The ResourceManager's get_resource_manager, start_monitoring(interval)
// and stop_monitoring: a monitor of the host, sampled every second until
// stopped.
func Example() {
	m, err := monitor.New(monitor.Options{Interval: time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close() // shutdown_resource_manager: releases every goroutine and descriptor
	if err := m.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	// ... the application runs ...
	m.Stop() // returns once sampling has stopped
	u, ok := m.Usage(monitor.Memory)
	fmt.Println(ok, u.Total > 0)
	// Output: true true
}

// get_cpu_usage, get_memory_usage and get_disk_usage(path): usage values
// with utilization, state, used/available/total and a timestamp.
func ExampleMonitor_Usage() {
	m, err := monitor.New(monitor.Options{DiskPath: os.TempDir()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	_ = m.SampleNow()
	time.Sleep(50 * time.Millisecond) // CPU usage is a rate between two samples
	_ = m.SampleNow()
	for _, r := range []monitor.Resource{monitor.CPU, monitor.Memory, monitor.Disk} {
		u, ok := m.Usage(r)
		fmt.Println(r, ok, u.Utilization >= 0 && u.Utilization <= 1, u.Used+u.Available <= u.Total+1, !u.Timestamp.IsZero())
	}
	// Output:
	// cpu true true true true
	// memory true true true true
	// disk true true true true
}

// get_disk_usage(path) on its own, as df computes it.
func ExampleDiskUsage() {
	u, err := monitor.DiskUsage(os.TempDir(), time.Now())
	fmt.Println(err == nil, u.Resource, u.Total > 0)
	// Output: true disk true
}

// get_system_info: platform, kernel release, processor, CPU count, memory
// and the cgroup mode and controllers.
func ExampleReadSystemInfo() {
	info, err := monitor.ReadSystemInfo("/proc", "/sys/fs/cgroup")
	fmt.Println(err == nil, info.Platform, info.CPUs > 0, info.MemoryTotal > 0, info.CgroupMode != "")
	// Output: true linux true true true
}

// set_thresholds(type, warning, critical), validated.
func ExampleMonitor_SetThresholds() {
	m, err := monitor.New(monitor.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	fmt.Println(m.SetThresholds(monitor.CPU, monitor.Thresholds{Warning: 0.7, Critical: 0.9}))
	fmt.Println(m.SetThresholds(monitor.Memory, monitor.Thresholds{Warning: 0.8, Critical: 0.95, Clear: 0.7}))
	fmt.Println(m.SetThresholds(monitor.Disk, monitor.Thresholds{Warning: 0.95, Critical: 0.85}) != nil)
	// Output:
	// <nil>
	// <nil>
	// true
}

// register_callback(fn, state) and unregister_callback: called on the
// transition into a state, off the sampling path.
func ExampleMonitor_OnState() {
	m, err := monitor.New(monitor.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	// Every host is "critical" against these thresholds.
	_ = m.SetThresholds(monitor.Memory, monitor.Thresholds{Warning: 1e-9, Critical: 2e-9})
	unregister := m.OnState(monitor.Critical, func(e monitor.Event) {
		if e.Usage.Resource == monitor.Memory { // a busy host's cpu may be critical too
			fmt.Printf("%s: %s -> %s\n", e.Usage.Resource, e.From, e.To)
		}
	})
	_ = m.SampleNow()
	unregister()
	// Output: memory: normal -> critical
}

// get_usage_history(type, count) and get_stats / reset_stats.
func ExampleMonitor_History() {
	m, err := monitor.New(monitor.Options{History: 3})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	for range 5 {
		_ = m.SampleNow()
	}
	fmt.Println(len(m.History(monitor.Memory, 0)), len(m.History(monitor.Memory, 2)))
	st := m.Stats()
	fmt.Println(st.Samples, st.Peak[monitor.Memory] > 0, st.PeakUsed[monitor.Memory] > 0)
	m.ResetStats()
	fmt.Println(m.Stats().Samples)
	// Output:
	// 3 2
	// 5 true true
	// 0
}

// track_process(pid) and untrack_process(pid): per-process usage from
// /proc, pinned by a pidfd.
func ExampleMonitor_TrackProcess() {
	m, err := monitor.New(monitor.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	if err := m.TrackProcess(os.Getpid()); err != nil {
		fmt.Println(err)
		return
	}
	_ = m.SampleNow()
	p := m.Processes()[0]
	fmt.Println(p.PID == os.Getpid(), p.RSS > 0, p.Exited)
	m.UntrackProcess(os.Getpid())
	fmt.Println(len(m.Processes()))
	// Output:
	// true true false
	// 0
}

// set_resource_limits(cpu_limit=50.0, memory_limit, disk_limit) for a job:
// cpu and memory are written to its cgroup and enforced by the kernel; the
// disk limit is a cap on the bytes the job writes, which the monitor
// enforces by killing the job. (Needs root and cgroup v2, so it is not run
// as a test; the integration suite runs the same calls.)
func ExampleMonitor_SetLimits() {
	h, err := cgroup.Open(cgroup.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	job, err := h.NewJob("batch", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer job.Remove(5 * time.Second)
	m, err := monitor.New(monitor.Options{Cgroup: job.Path(), Events: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	err = m.SetLimits(job, monitor.Limits{CPUPercent: 50, Memory: 1 << 30, DiskWrite: 10 << 30})
	fmt.Println(err)
}

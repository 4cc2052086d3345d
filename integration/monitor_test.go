//go:build integration

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// stepper is a helper in a job cgroup that holds as much memory, or spins
// with as much duty, as it is told on its stdin.
type stepperProc struct {
	cmd *exec.Cmd
	in  io.Writer
	out *bufio.Reader
}

func startStepper(t *testing.T, dir string) *stepperProc {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command(testBin)
	cmd.Env = append(os.Environ(), helperEnv+"=stepper")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &stepperProc{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// do sends one command ("mem 40" MiB, "duty 80" percent of one CPU) and
// waits for its acknowledgement.
func (s *stepperProc) do(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		t.Fatal(err)
	}
	line, err := s.out.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ok") {
		t.Fatalf("stepper %q: %q %v", cmd, line, err)
	}
}

// waitState samples until r is in state want.
func waitMonitorState(t *testing.T, m *monitor.Monitor, r monitor.Resource, want monitor.State, within time.Duration) monitor.Usage {
	t.Helper()
	var u monitor.Usage
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if u, _ = m.Usage(r); u.State == want {
			return u
		}
	}
	t.Fatalf("%s stayed %s (utilization %.3f), want %s", r, u.State, u.Utilization, want)
	return u
}

// A job is driven across normal, warning, critical and back for memory and
// cpu; states, callbacks, history, peaks and event counts are checked
// against the cgroup's own files.
func TestMonitorDrivesStates(t *testing.T) {
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	cpu, _ := cgroup.ParseCPUPercent("100%", 0)
	job, err := h.NewJob("watched", &cgroup.Resources{MemoryMax: cgroup.Value(64 << 20), CPU: &cpu})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the helper's clean-up, so it runs after it.
	t.Cleanup(func() { job.Remove(5 * time.Second) })
	m, err := monitor.New(monitor.Options{Cgroup: job.Path(), Interval: 200 * time.Millisecond, History: 50, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SetThresholds(monitor.Memory, monitor.Thresholds{Warning: 0.6, Critical: 0.85, Clear: 0.5}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetThresholds(monitor.CPU, monitor.Thresholds{Warning: 0.45, Critical: 0.8}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	for _, st := range []monitor.State{monitor.Normal, monitor.Warning, monitor.Critical} {
		m.OnState(st, func(e monitor.Event) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, fmt.Sprintf("%s:%s>%s", e.Usage.Resource, e.From, e.To))
		})
	}
	s := startStepper(t, job.Path())
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Memory: the helper's runtime takes a few MiB of its own.
	waitMonitorState(t, m, monitor.Memory, monitor.Normal, 5*time.Second)
	s.do(t, "mem 44")
	w := waitMonitorState(t, m, monitor.Memory, monitor.Warning, 5*time.Second)
	s.do(t, "mem 58")
	waitMonitorState(t, m, monitor.Memory, monitor.Critical, 5*time.Second)
	// A fresh reading, next to the kernel's own figure.
	_ = m.SampleNow()
	c, _ := m.Usage(monitor.Memory)
	cur, _ := job.ReadFile("memory.current")
	s.do(t, "mem 0")
	n := waitMonitorState(t, m, monitor.Memory, monitor.Normal, 5*time.Second)
	t.Logf("measured: memory warning at %.3f (%d bytes), critical at %.3f (memory.current %s), normal at %.3f", w.Utilization, w.Used, c.Utilization, cur, n.Utilization)
	curN, _ := strconv.ParseUint(cur, 10, 64)
	if c.Total != 64<<20 || c.Used > curN+8<<20 || c.Used+8<<20 < curN {
		t.Errorf("critical reading %d/%d does not match memory.current %d of memory.max %d", c.Used, c.Total, curN, 64<<20)
	}

	// CPU: a duty cycle of one CPU against a quota of one CPU.
	s.do(t, "duty 60")
	wc := waitMonitorState(t, m, monitor.CPU, monitor.Warning, 10*time.Second)
	s.do(t, "duty 100")
	cc := waitMonitorState(t, m, monitor.CPU, monitor.Critical, 10*time.Second)
	s.do(t, "duty 0")
	nc := waitMonitorState(t, m, monitor.CPU, monitor.Normal, 10*time.Second)
	t.Logf("measured: cpu warning at %.3f, critical at %.3f, normal at %.3f of cpu.max 1 CPU", wc.Utilization, cc.Utilization, nc.Utilization)
	m.Stop()

	st := m.Stats()
	mu.Lock()
	defer mu.Unlock()
	// Each resource went warning, then critical, then normal, in that
	// order (the helper's start-up may add a CPU spike before).
	for _, r := range []string{"memory", "cpu"} {
		next := 0
		order := []string{"warning", "critical", "normal"}
		for _, e := range seen {
			if next < len(order) && strings.HasPrefix(e, r+":") && strings.HasSuffix(e, ">"+order[next]) {
				next++
			}
		}
		if next < len(order) {
			t.Errorf("%s callbacks did not go warning, critical, normal in order: %v", r, seen)
		}
	}
	if st.WarningEvents < 2 || st.CriticalEvents < 2 {
		t.Errorf("event counts: %d warning, %d critical", st.WarningEvents, st.CriticalEvents)
	}
	if st.Peak[monitor.Memory] < 0.85 || st.PeakUsed[monitor.Memory] < 50<<20 {
		t.Errorf("memory peak %.3f / %d bytes", st.Peak[monitor.Memory], st.PeakUsed[monitor.Memory])
	}
	peakFile, _ := job.ReadFile("memory.peak")
	if p, _ := strconv.ParseUint(peakFile, 10, 64); p < st.PeakUsed[monitor.Memory] {
		t.Errorf("memory.peak %d below the peak the monitor saw %d", p, st.PeakUsed[monitor.Memory])
	}
	hist := m.History(monitor.Memory, 0)
	if len(hist) == 0 || len(hist) > 50 || !sort.SliceIsSorted(hist, func(i, j int) bool { return hist[i].Timestamp.Before(hist[j].Timestamp) }) {
		t.Errorf("history of %d samples, not capped at 50 or not oldest first", len(hist))
	}
	t.Logf("measured: transitions %v; %d samples, %d warning and %d critical events; memory peak %.3f (%d bytes; memory.peak %s)",
		seen, st.Samples, st.WarningEvents, st.CriticalEvents, st.Peak[monitor.Memory], st.PeakUsed[monitor.Memory], peakFile)
}

// The kernel's own notifications wake the monitor long before its interval
// (a minute here): the latency from the change to the state callback, for
// cgroup.events (a process enters the job) and memory.events (a process
// outgrows memory.max and is OOM-killed).
func TestMonitorEventLatency(t *testing.T) {
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	job, err := h.NewJob("latency", &cgroup.Resources{MemoryMax: cgroup.Value(32 << 20), PidsMax: cgroup.Value(20)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { job.Remove(5 * time.Second) })
	m, err := monitor.New(monitor.Options{Cgroup: job.Path(), Interval: time.Minute, Events: true})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	// Any task in the job is a warning for pids; memory is critical from
	// 90% of memory.max.
	if err := m.SetThresholds(monitor.Pids, monitor.Thresholds{Warning: 0.01, Critical: 0.9}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetThresholds(monitor.Memory, monitor.Thresholds{Warning: 0.5, Critical: 0.9}); err != nil {
		t.Fatal(err)
	}
	pidsWarn := make(chan time.Time, 16)
	memCrit := make(chan time.Time, 16)
	m.OnState(monitor.Warning, func(e monitor.Event) {
		if e.Usage.Resource == monitor.Pids {
			pidsWarn <- time.Now()
		}
	})
	m.OnState(monitor.Critical, func(e monitor.Event) {
		if e.Usage.Resource == monitor.Memory {
			memCrit <- time.Now()
		}
	})
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait := func(c chan time.Time, start time.Time, what string) time.Duration {
		t.Helper()
		select {
		case at := <-c:
			return at.Sub(start)
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s warning within 20s with a 1m interval: the kernel event did not wake the monitor", what)
		}
		return 0
	}
	pct := func(d []time.Duration, p int) time.Duration {
		slices.Sort(d)
		return d[min(len(d)-1, len(d)*p/100)]
	}

	// cgroup.events: populated 0 -> 1.
	var popLat []time.Duration
	for range 10 {
		start := time.Now()
		p := startIn(t, job.Path(), "sleep", "1m")
		popLat = append(popLat, wait(pidsWarn, start, "pids"))
		_ = p.Process.Kill()
		_ = p.Wait()
		if err := job.WaitEmpty(5*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		_ = m.SampleNow() // back to normal
	}
	t.Logf("measured: cgroup.events -> callback latency over %d runs: p50 %v, p95 %v (interval 1m)", len(popLat), pct(popLat, 50), pct(popLat, 95))

	// memory.events: a process that outgrows memory.max makes the kernel
	// count max, oom and oom_kill events; the latency runs from its start.
	var memLat []time.Duration
	for range 5 {
		_ = m.SampleNow()
		drain(pidsWarn)
		drain(memCrit)
		start := time.Now()
		hog := startIn(t, job.Path(), "alloc", "128M")
		memLat = append(memLat, wait(memCrit, start, "memory"))
		_ = hog.Wait()
		if err := job.WaitEmpty(5*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
	ev, _ := job.MemoryEvents()
	t.Logf("measured: memory.events (oom_kill=%d) -> callback latency from the hog's start over %d runs: p50 %v, p95 %v (interval 1m)", ev["oom_kill"], len(memLat), pct(memLat, 50), pct(memLat, 95))
}

func drain(c chan time.Time) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// A PSI trigger on memory.pressure wakes the monitor when a job stalls on
// memory (an allocation far above memory.high is throttled by the kernel,
// which counts the sleep as memory stall). The state follows PSI's avg10,
// which the kernel updates every 2s, so the latency to the callback is
// bounded by that, not by the interval (a minute).
func TestMonitorPSILatency(t *testing.T) {
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	var lat []time.Duration
	for i := range 3 {
		job, err := h.NewJob(fmt.Sprintf("psi-%d", i), &cgroup.Resources{MemoryMax: cgroup.Value(256 << 20), MemoryHigh: cgroup.Value(16 << 20)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { job.Remove(5 * time.Second) })
		m, err := monitor.New(monitor.Options{Cgroup: job.Path(), Interval: time.Minute, Events: true,
			PSITriggers: []monitor.PSITrigger{{Resource: monitor.MemoryPressure, StallUS: 50_000, WindowUS: 500_000}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetThresholds(monitor.MemoryPressure, monitor.Thresholds{Warning: 0.0001, Critical: 0.99}); err != nil {
			t.Fatal(err)
		}
		got := make(chan time.Time, 4)
		m.OnState(monitor.Warning, func(e monitor.Event) {
			if e.Usage.Resource == monitor.MemoryPressure {
				got <- time.Now()
			}
		})
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		hog := startIn(t, job.Path(), "alloc", "64M")
		select {
		case at := <-got:
			lat = append(lat, at.Sub(start))
		case <-time.After(30 * time.Second):
			t.Fatal("no memory_pressure warning within 30s with a 1m interval: the PSI trigger did not wake the monitor")
		}
		_ = hog.Process.Kill()
		_ = hog.Wait()
		m.Close()
	}
	slices.Sort(lat)
	t.Logf("measured: PSI trigger (memory some 50ms/500ms) -> callback latency from the hog's start over %d runs: p50 %v, max %v (interval 1m; avg10 is updated every 2s)",
		len(lat), lat[len(lat)/2], lat[len(lat)-1])
}

// monitor.SetLimits writes cpu, memory and pids through the job's cgroup.
func TestMonitorSetLimits(t *testing.T) {
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	job, err := h.NewJob("limited", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { job.Remove(5 * time.Second) })
	m, err := monitor.New(monitor.Options{Cgroup: job.Path()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.SetLimits(job, monitor.Limits{CPUPercent: 50, Memory: 64 << 20, Pids: 30, DiskWrite: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range []string{"cpu.max", "memory.max", "memory.swap.max", "pids.max"} {
		got[f], _ = job.ReadFile(f)
	}
	want := map[string]string{"cpu.max": "50000 100000", "memory.max": "67108864", "memory.swap.max": "0", "pids.max": "30"}
	for f, v := range want {
		if got[f] != v {
			t.Errorf("%s = %q, want %q", f, got[f], v)
		}
	}
	_ = m.SampleNow()
	if u, ok := m.Usage(monitor.IO); !ok || u.Total != 1<<30 {
		t.Errorf("IO usage against the write cap: %+v %v", u, ok)
	}
	other, err := h.NewJob("other", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Remove(5 * time.Second) })
	if err := m.SetLimits(other, monitor.Limits{Memory: 1 << 20}); err == nil {
		t.Error("SetLimits accepted a job the monitor does not watch")
	}
	t.Logf("measured: limits read back %v", got)
}

package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// fakeJob records what the engine does to it, and holds cgroup values the
// way the kernel would.
type fakeJob struct {
	mu         sync.Mutex
	calls      []string
	cpu        cgroup.CPUMax
	memoryHigh cgroup.Limit
	io         map[cgroup.Device]cgroup.IOLimit
	frozen     bool
	failApply  error
}

func newFakeJob() *fakeJob {
	return &fakeJob{memoryHigh: cgroup.Max, io: map[cgroup.Device]cgroup.IOLimit{}}
}

func (f *fakeJob) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakeJob) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeJob) Signal(t Target, sig unix.Signal) (int, error) {
	f.record("signal %s %s", unix.SignalName(sig), t)
	return 1, nil
}
func (f *fakeJob) CPUMax() (cgroup.CPUMax, error)    { return f.cpu, nil }
func (f *fakeJob) MemoryHigh() (cgroup.Limit, error) { return f.memoryHigh, nil }
func (f *fakeJob) IOMax(dev cgroup.Device) (cgroup.IOLimit, error) {
	if l, ok := f.io[dev]; ok {
		return l, nil
	}
	m := cgroup.Max
	return cgroup.IOLimit{Device: dev, ReadBPS: &m, WriteBPS: &m, ReadIOPS: &m, WriteIOPS: &m}, nil
}
func (f *fakeJob) Apply(r *cgroup.Resources) error {
	if f.failApply != nil {
		return f.failApply
	}
	for _, w := range r.Writes() {
		f.record("write %s", w)
	}
	if r.CPU != nil {
		f.cpu = *r.CPU
	}
	if r.MemoryHigh != nil {
		f.memoryHigh = *r.MemoryHigh
	}
	for _, l := range r.IO {
		f.io[l.Device] = l
	}
	return nil
}
func (f *fakeJob) Freeze(frozen bool) error {
	f.frozen = frozen
	f.record("freeze %v", frozen)
	return nil
}
func (f *fakeJob) Kill() (int, error) {
	f.record("kill")
	return 1, nil
}

// harness drives an engine's state machine by hand, with a made-up clock.
type harness struct {
	t    *testing.T
	e    *Engine
	job  *fakeJob
	logs *bytes.Buffer
	t0   time.Time
	pol  *Policy
	prev map[monitor.Resource]monitor.State
}

func newHarness(t *testing.T, src string, dry bool) *harness {
	t.Helper()
	p, err := Parse("test.toml", []byte(src), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, job: newFakeJob(), logs: &bytes.Buffer{}, pol: p,
		t0: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), prev: map[monitor.Resource]monitor.State{}}
	log := slog.New(slog.NewJSONHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.e = NewEngine(p, h.job, EngineOptions{Logger: log, DryRun: dry})
	h.e.clock = func() time.Time { return time.Time{} } // the observations' own times
	return h
}

// at returns the made-up time s seconds after the start.
func (h *harness) at(s float64) time.Time {
	return h.t0.Add(time.Duration(s * float64(time.Second)))
}

// value observes resource r at utilization v at second s, classified by
// the policy's thresholds as the monitor would.
func (h *harness) value(s float64, r monitor.Resource, v float64) {
	st := h.e.thr(r).Classify(h.prev[r], v)
	h.prev[r] = st
	h.e.observe(Observation{Time: h.at(s), Usages: []monitor.Usage{{Resource: r, Utilization: v, State: st, Timestamp: h.at(s)}}})
}

func (h *harness) oom(s float64, kills uint64) {
	h.e.observe(Observation{Time: h.at(s), OOMKills: kills})
}

func (h *harness) tick(s float64) { h.e.tick(h.at(s)) }

// next returns the seconds after the start when the engine wants to act
// next, or -1.
func (h *harness) next() float64 {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	n := h.e.nextLocked()
	if n.IsZero() {
		return -1
	}
	return n.Sub(h.t0).Seconds()
}

func (h *harness) wantCalls(want ...string) {
	h.t.Helper()
	got := h.job.Calls()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		h.t.Fatalf("calls:\n got  %q\n want %q\nlog:\n%s", got, want, h.logs)
	}
}

// records returns the log records whose msg starts with prefix.
func (h *harness) records(prefix string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(h.logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			h.t.Fatalf("log line %q: %v", line, err)
		}
		if strings.HasPrefix(rec["msg"].(string), prefix) {
			out = append(out, rec)
		}
	}
	return out
}

func (h *harness) fired(rule string) int { return h.e.Firings()[rule] }

const warnSignal = `
[thresholds]
memory = { warning = 0.8, critical = 0.95, clear = 0.7 }
[[rule]]
name = "warn"
resource = "memory"
state = "warning"
for = "5s"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" } ]
`

// A rule fires once its condition has held for "for", and once per
// episode.
func TestEngineSustainOncePerEpisode(t *testing.T) {
	h := newHarness(t, warnSignal, false)
	h.value(0, monitor.Memory, 0.85)
	if n := h.next(); n != 5 {
		t.Fatalf("next action at %vs, want 5s (start of the episode plus for)", n)
	}
	h.value(2, monitor.Memory, 0.9)
	h.tick(4.999)
	h.wantCalls()
	h.tick(5)
	h.wantCalls("signal SIGUSR1 main")
	for s := 6.0; s < 30; s++ {
		h.value(s, monitor.Memory, 0.9)
		h.tick(s + 0.5)
	}
	h.wantCalls("signal SIGUSR1 main")
	if n := h.next(); n != -1 {
		t.Fatalf("a fired rule without cooldown wants to act again at %vs", n)
	}
	// Hysteresis: 0.75 is below warning but above clear, so the episode
	// goes on; 0.6 ends it.
	h.value(30, monitor.Memory, 0.75)
	h.value(31, monitor.Memory, 0.85)
	h.tick(40)
	h.wantCalls("signal SIGUSR1 main")
	h.value(41, monitor.Memory, 0.6)
	h.value(42, monitor.Memory, 0.85)
	h.tick(46.9)
	h.wantCalls("signal SIGUSR1 main")
	h.tick(47)
	h.wantCalls("signal SIGUSR1 main", "signal SIGUSR1 main")
	if got := h.fired("warn"); got != 2 {
		t.Fatalf("Firings = %d, want 2", got)
	}
}

// A condition that breaks before "for" starts the sustain again.
func TestEngineSustainBroken(t *testing.T) {
	h := newHarness(t, warnSignal, false)
	h.value(0, monitor.Memory, 0.85)
	h.value(3, monitor.Memory, 0.5)
	h.value(4, monitor.Memory, 0.85)
	h.tick(5)
	h.wantCalls()
	h.tick(8.9)
	h.wantCalls()
	h.tick(9)
	h.wantCalls("signal SIGUSR1 main")
}

// With a cooldown a rule fires again while the episode lasts, and never
// sooner than the cooldown after its last firing, even in a new episode.
func TestEngineCooldown(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "hot"
resource = "cpu"
state = "critical"
cooldown = "10s"
actions = [ { type = "signal", signal = "SIGUSR2", target = "group" } ]
`, false)
	h.value(0, monitor.CPU, 0.95)
	h.wantCalls("signal SIGUSR2 group")
	h.value(5, monitor.CPU, 0.95)
	if n := h.next(); n != 10 {
		t.Fatalf("next firing at %vs, want 10s", n)
	}
	h.tick(10)
	h.wantCalls("signal SIGUSR2 group", "signal SIGUSR2 group")
	h.value(11, monitor.CPU, 0.1)
	h.value(12, monitor.CPU, 0.95) // new episode, but within the cooldown
	h.wantCalls("signal SIGUSR2 group", "signal SIGUSR2 group")
	h.tick(20)
	h.wantCalls("signal SIGUSR2 group", "signal SIGUSR2 group", "signal SIGUSR2 group")
	// A warning is not "critical or worse".
	h.value(21, monitor.CPU, 0.75)
	h.tick(40)
	if got := h.fired("hot"); got != 3 {
		t.Fatalf("Firings = %d, want 3", got)
	}
}

// A rule at warning also holds at critical; rules are independent, and the
// actions of one rule run in order.
func TestEngineRulesIndependentActionsInOrder(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "w"
resource = "pids"
state = "warning"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" }, { type = "signal", signal = "SIGHUP", target = "cgroup" } ]
[[rule]]
name = "c"
resource = "pids"
state = "critical"
actions = [ { type = "signal", signal = "SIGUSR2", target = "main" } ]
`, false)
	h.value(0, monitor.Pids, 0.99)
	h.wantCalls("signal SIGUSR1 main", "signal SIGHUP cgroup", "signal SIGUSR2 main")
	h.value(1, monitor.Pids, 0.85) // still warning: "w" holds, "c" ends
	h.value(2, monitor.Pids, 0.99) // "c" starts a new episode
	h.wantCalls("signal SIGUSR1 main", "signal SIGHUP cgroup", "signal SIGUSR2 main", "signal SIGUSR2 main")
	if a := h.e.Actions(); a["w"]["signal"] != 2 || a["c"]["signal"] != 2 || len(a["c"]) != 1 {
		t.Errorf("Actions = %v, want w: 2 signals (one firing), c: 2 signals", a)
	}
}

// A throttle lowers cpu.max while the resource is not normal and puts the
// old value back when it is.
func TestEngineThrottleUntilClear(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "tame"
resource = "cpu"
state = "warning"
actions = [ { type = "throttle", cpu = "50%" } ]
`, false)
	h.job.cpu = cgroup.CPUMax{Period: 100 * time.Millisecond}
	h.value(0, monitor.CPU, 0.8)
	h.wantCalls("write cpu.max=50000 100000")
	h.value(1, monitor.CPU, 0.9)
	h.value(2, monitor.CPU, 0.5) // below warning, no clear: normal
	h.wantCalls("write cpu.max=50000 100000", "write cpu.max=max 100000")
	if len(h.e.knobs) != 0 || len(h.e.holds) != 0 {
		t.Fatalf("after release: %d knobs, %d holds left", len(h.e.knobs), len(h.e.holds))
	}
}

// A throttle with a duration ends when it is up; firing again renews it.
func TestEngineThrottleDuration(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "tame"
resource = "memory"
state = "critical"
cooldown = "3s"
actions = [ { type = "throttle", memory_high = "100M", until = "5s" } ]
`, false)
	h.value(0, monitor.Memory, 0.99)
	h.wantCalls("write memory.high=104857600")
	h.value(3, monitor.Memory, 0.99) // fires again: renewed until 8s
	h.value(4, monitor.Memory, 0.1)  // normal, but the throttle has a duration
	if n := h.next(); n != 8 {
		t.Fatalf("next action at %vs, want 8s", n)
	}
	h.tick(7.9)
	h.wantCalls("write memory.high=104857600")
	h.tick(8)
	h.wantCalls("write memory.high=104857600", "write memory.high=max")
}

// Throttles of one limit combine to the lowest, never raise a limit, and
// the original comes back after the last.
func TestEngineThrottlesCombine(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "a"
resource = "cpu"
state = "warning"
actions = [ { type = "throttle", cpu = "150%", io = [ { device = "/dev/fakedisk", write_bps = "10M" } ] } ]
[[rule]]
name = "b"
resource = "memory"
state = "warning"
actions = [ { type = "throttle", cpu = "20%", io = [ { device = "/dev/fakedisk", write_bps = "20M", read_iops = 100 } ] } ]
`, false)
	h.job.cpu = cgroup.CPUMax{Quota: 100 * time.Millisecond, Period: 100 * time.Millisecond} // one CPU
	h.value(0, monitor.CPU, 0.8)
	// 150% is above the job's own 100%: cpu.max stays as it was.
	h.wantCalls("write cpu.max=100000 100000", "write io.max=253:0 rbps=max wbps=10485760 riops=max wiops=max")
	h.value(1, monitor.Memory, 0.85)
	h.value(2, monitor.CPU, 0.1) // "a" ends; "b" still holds
	h.value(3, monitor.Memory, 0.1)
	h.wantCalls(
		"write cpu.max=100000 100000",
		"write io.max=253:0 rbps=max wbps=10485760 riops=max wiops=max",
		"write cpu.max=20000 100000",
		"write io.max=253:0 rbps=max wbps=10485760 riops=100 wiops=max",
		"write io.max=253:0 rbps=max wbps=20971520 riops=100 wiops=max",
		"write cpu.max=100000 100000",
		"write io.max=253:0 rbps=max wbps=max riops=max wiops=max",
	)
}

// A kill signals the job, kills the cgroup after the grace period, and is
// never sent twice.
func TestEngineKill(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "big"
resource = "memory"
state = "critical"
actions = [ { type = "kill", signal = "SIGTERM", grace = "10s" } ]
[[rule]]
name = "many"
resource = "pids"
state = "critical"
actions = [ { type = "log", level = "warn" }, { type = "kill", signal = "SIGINT", grace = "0s" } ]
`, false)
	h.value(0, monitor.Memory, 0.99)
	h.wantCalls("signal SIGTERM cgroup")
	if n := h.next(); n != 10 {
		t.Fatalf("cgroup kill at %vs, want 10s", n)
	}
	h.value(1, monitor.Pids, 0.99)
	h.tick(10)
	h.wantCalls("signal SIGTERM cgroup", "kill")
	h.tick(20)
	h.wantCalls("signal SIGTERM cgroup", "kill")
	rule, sig, ok := h.e.KilledBy()
	if !ok || rule != "big" || sig != unix.SIGTERM {
		t.Fatalf("KilledBy = %q, %v, %v; want big, SIGTERM, true", rule, sig, ok)
	}
	if n := len(h.records("policy action: kill already under way")); n != 1 {
		t.Fatalf("%d records of a kill not sent again, want 1:\n%s", n, h.logs)
	}
}

// A kill with no grace kills the cgroup at once.
func TestEngineKillNoGrace(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "now"
resource = "pids"
state = "critical"
actions = [ { type = "kill", signal = "SIGKILL", grace = "0s" } ]
`, false)
	h.value(0, monitor.Pids, 1)
	h.wantCalls("signal SIGKILL cgroup", "kill")
	if n := h.next(); n != -1 {
		t.Fatalf("engine wants to act at %vs after an immediate kill", n)
	}
}

// A freeze thaws when the resource is normal again, and a kill thaws a
// frozen job before signalling it.
func TestEngineFreeze(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "pause"
resource = "io_pressure"
state = "warning"
actions = [ { type = "freeze" } ]
[[rule]]
name = "stop"
resource = "io_pressure"
state = "critical"
for = "2s"
actions = [ { type = "kill", signal = "SIGTERM", grace = "1s" } ]
`, false)
	h.value(0, monitor.IOPressure, 0.2)
	h.value(1, monitor.IOPressure, 0.05)
	h.wantCalls("freeze true", "freeze false")
	h.value(2, monitor.IOPressure, 0.5)
	h.tick(4)
	h.wantCalls("freeze true", "freeze false", "freeze true", "freeze false", "signal SIGTERM cgroup")
	// The freeze rule firing again (it does not: one episode) would not
	// freeze a job being killed either.
	h.tick(5)
	h.wantCalls("freeze true", "freeze false", "freeze true", "freeze false", "signal SIGTERM cgroup", "kill")
}

// An oom rule fires on each rise of oom_kill, subject to its cooldown.
func TestEngineOOM(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "oom"
resource = "oom"
cooldown = "10s"
actions = [ { type = "signal", signal = "SIGUSR1", target = "cgroup" } ]
`, false)
	h.oom(0, 0)
	h.wantCalls()
	h.oom(1, 1)
	h.wantCalls("signal SIGUSR1 cgroup")
	h.oom(2, 1)
	h.oom(3, 2) // within the cooldown: held back, and not fired later
	h.tick(20)
	h.wantCalls("signal SIGUSR1 cgroup")
	h.oom(21, 3)
	h.wantCalls("signal SIGUSR1 cgroup", "signal SIGUSR1 cgroup")
	if n := len(h.records("policy rule held back")); n != 1 {
		t.Fatalf("%d held-back records, want 1:\n%s", n, h.logs)
	}
}

// A log action writes one record at its level with the rule, resource,
// state, value and threshold.
func TestEngineLogAction(t *testing.T) {
	h := newHarness(t, `
[thresholds]
memory = { warning = 0.6, critical = 0.9 }
[[rule]]
name = "note"
resource = "memory"
state = "warning"
actions = [ { type = "log", level = "warn" } ]
`, false)
	h.value(0, monitor.Memory, 0.75)
	recs := h.records("policy: note")
	if len(recs) != 1 {
		t.Fatalf("%d records from the log action, want 1:\n%s", len(recs), h.logs)
	}
	r := recs[0]
	if r["level"] != "WARN" || r["rule"] != "note" || r["resource"] != "memory" || r["state"] != "warning" ||
		r["value"] != 0.75 || r["threshold"] != 0.6 {
		t.Fatalf("log record %v", r)
	}
	h.wantCalls()
}

// A dry run decides the same and acts on nothing, saying so in every
// record, including kills not sent twice, cooldowns and a grace period cut
// short by the job's end.
func TestEngineDryRun(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "all"
resource = "memory"
state = "warning"
actions = [
  { type = "log", level = "warn" },
  { type = "signal", signal = "SIGUSR1", target = "main" },
  { type = "throttle", cpu = "10%", memory_high = "1M" },
  { type = "freeze", until = "1s" },
  { type = "kill", signal = "SIGTERM", grace = "10s" },
]
[[rule]]
name = "second-kill"
resource = "memory"
state = "warning"
actions = [ { type = "kill", signal = "SIGKILL", grace = "0s" } ]
[[rule]]
name = "oom"
resource = "oom"
cooldown = "1m"
actions = [ { type = "log" } ]
`, true)
	h.value(0, monitor.Memory, 0.9)
	h.oom(0.5, 1)
	h.oom(0.6, 2) // held back by the cooldown
	h.tick(1)
	h.value(2, monitor.Memory, 0.1)
	if err := h.e.Stop(); err != nil { // within the kill's grace
		t.Fatal(err)
	}
	h.wantCalls()
	if _, _, ok := h.e.KilledBy(); ok {
		t.Fatal("KilledBy reports a kill in a dry run")
	}
	all := h.records("")
	for _, msg := range []string{"policy action: kill already under way", "policy rule held back",
		"policy kill not needed", "policy action: signal", "policy action: throttle", "policy action ended: restored cpu.max",
		"policy action: freeze", "policy: all"} {
		if len(h.records(msg)) == 0 {
			t.Errorf("no %q record:\n%s", msg, h.logs)
		}
	}
	for _, r := range all {
		if r["dry_run"] != true {
			t.Errorf("record without dry_run=true: %v", r)
		}
	}
}

// Stop puts back every throttle and thaws the job; failed writes are
// returned.
func TestEngineStopRestores(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "hold"
resource = "memory"
state = "warning"
actions = [ { type = "throttle", memory_high = "64M" }, { type = "freeze" } ]
`, false)
	h.value(0, monitor.Memory, 0.9)
	if err := h.e.Stop(); err != nil {
		t.Fatal(err)
	}
	h.wantCalls("write memory.high=67108864", "freeze true", "write memory.high=max", "freeze false")
	if h.job.frozen || !h.job.memoryHigh.Max {
		t.Fatalf("after Stop: frozen=%v memory.high=%v", h.job.frozen, h.job.memoryHigh)
	}

	h = newHarness(t, `
[[rule]]
name = "hold"
resource = "cpu"
state = "warning"
actions = [ { type = "throttle", cpu = "10%" } ]
`, false)
	h.job.failApply = errors.New("no such file")
	h.value(0, monitor.CPU, 0.9)
	if err := h.e.Stop(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("Stop = %v, want the failed write", err)
	}
}

// The engine's own goroutine fires sustained rules on its timer and ends
// with Stop.
func TestEngineLoop(t *testing.T) {
	p, err := Parse("loop.toml", []byte(`
[[rule]]
name = "soon"
resource = "cpu"
state = "warning"
for = "50ms"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" } ]
`), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	job := newFakeJob()
	e := NewEngine(p, job, EngineOptions{})
	e.Start()
	now := time.Now()
	e.Observe(Observation{Time: now, Usages: []monitor.Usage{{Resource: monitor.CPU, Utilization: 0.8, State: monitor.Warning}}})
	deadline := time.Now().Add(10 * time.Second)
	for len(job.Calls()) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := job.Calls(); !slices.Equal(got, []string{"signal SIGUSR1 main"}) {
		t.Fatalf("calls %q", got)
	}
	if elapsed := time.Since(now); elapsed < 50*time.Millisecond {
		t.Fatalf("fired after %v, before its 50ms sustain", elapsed)
	}
	e.Observe(Observation{Time: time.Now()}) // after Stop: returns at once
}

// BenchmarkEngineObserve measures one observation of all eight job
// resources against ten rules that hold but have already fired: the cost
// the engine adds to every sample in steady state.
func BenchmarkEngineObserve(b *testing.B) {
	var src strings.Builder
	for i, r := range monitor.Resources() {
		fmt.Fprintf(&src, "[[rule]]\nname = \"r%d\"\nresource = %q\nstate = \"warning\"\nactions = [ { type = \"log\", level = \"debug\" } ]\n", i, r)
	}
	src.WriteString("[[rule]]\nname = \"oom\"\nresource = \"oom\"\nactions = [ { type = \"log\" } ]\n")
	src.WriteString("[[rule]]\nname = \"crit\"\nresource = \"memory\"\nstate = \"critical\"\nfor = \"1h\"\nactions = [ { type = \"log\" } ]\n")
	p, err := Parse("bench.toml", []byte(src.String()), testOptions)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(p, newFakeJob(), EngineOptions{})
	now := time.Now()
	var us []monitor.Usage
	for _, r := range monitor.Resources() {
		us = append(us, monitor.Usage{Resource: r, Utilization: 0.97, State: monitor.Critical, Timestamp: now})
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.observe(Observation{Time: now.Add(time.Duration(i) * time.Millisecond), Usages: us})
	}
}

// A sample that reaches the engine late starts its episode at the sample's
// time, but what the engine does is timed from when it does it.
func TestEngineLateSample(t *testing.T) {
	h := newHarness(t, `
[[rule]]
name = "pause"
resource = "pids"
state = "warning"
for = "1s"
actions = [ { type = "freeze", until = "2s" } ]
`, false)
	h.e.clock = func() time.Time { return h.at(1.5) }
	h.value(0, monitor.Pids, 0.9) // seen at 1.5s: held 1.5s already
	h.wantCalls("freeze true")
	if n := h.next(); n != 3.5 {
		t.Fatalf("thaw at %vs, want 3.5s (2s from the freeze, not from the sample)", n)
	}
}

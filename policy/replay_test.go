package policy

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rsup/rsup/monitor"
)

const replayPolicy = `
[thresholds]
memory = { warning = 0.8, critical = 0.95, clear = 0.7 }

[[rule]]
name = "memory-warning"
resource = "memory"
state = "warning"
for = "3s"
cooldown = "5s"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" } ]

[[rule]]
name = "memory-throttle"
resource = "memory"
state = "critical"
actions = [ { type = "throttle", memory_high = "1G", until = "clear" } ]

[[rule]]
name = "memory-kill"
resource = "memory"
state = "critical"
for = "4s"
actions = [ { type = "log", level = "warn" }, { type = "kill", signal = "SIGTERM", grace = "3s" } ]
`

// memoryRamp is a memory utilization per second: up through warning to
// critical, a dip back to warning, critical again, and down through the
// clear band to normal.
var memoryRamp = []float64{0.50, 0.60, 0.82, 0.85, 0.88, 0.90, 0.96, 0.97, 0.93, 0.97,
	0.98, 0.99, 0.99, 0.99, 0.85, 0.75, 0.72, 0.60, 0.50}

var replayT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func secondsAt(s float64) time.Time { return replayT0.Add(time.Duration(s * float64(time.Second))) }

// rampSamples are memoryRamp as observations, with states that the replay
// must ignore.
func rampSamples() []Observation {
	var obs []Observation
	for i, v := range memoryRamp {
		t := secondsAt(float64(i))
		obs = append(obs, Observation{Time: t, Usages: []monitor.Usage{
			{Resource: monitor.Memory, Utilization: v, State: monitor.Critical, Timestamp: t},
			{Resource: monitor.CPU, Utilization: 0.1, Timestamp: t},
		}})
	}
	return obs
}

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse("replay.toml", []byte(src), testOptions)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decisionLines renders decisions compactly for comparison.
func decisionLines(ds []Decision) []string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%gs %s #%d %s %s %.2f/%.2f kills=%v: %s", d.Time.Sub(replayT0).Seconds(), d.Rule, d.Firing,
			d.Resource, d.State, d.Value, d.Threshold, d.KillsJob, d.Action))
	}
	return out
}

func wantDecisions(t *testing.T, got []Decision, want ...string) {
	t.Helper()
	g := decisionLines(got)
	if !slices.Equal(g, want) {
		t.Fatalf("decisions:\n  %s\nwant:\n  %s", strings.Join(g, "\n  "), strings.Join(want, "\n  "))
	}
}

// The ramp through a policy with a sustain, a cooldown, a throttle until
// clear and a kill with a grace period: every decision and its time.
func TestReplayRamp(t *testing.T) {
	ds, err := Replay(mustParse(t, replayPolicy), rampSamples(), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDecisions(t, ds,
		// Warning from 2s; for 3s: due at 5s, which runs before the 5s
		// sample, so the value is the 4s one.
		"5s memory-warning #1 memory warning 0.88/0.80 kills=false: send SIGUSR1 to main",
		"6s memory-throttle #1 memory critical 0.96/0.95 kills=false: lower memory.high to 1073741824 until clear",
		// Back to warning at 8s ends the critical episode, but not the
		// throttle: it holds until memory is normal.
		"9s memory-throttle #2 memory critical 0.97/0.95 kills=false: lower memory.high to 1073741824 until clear (already in force: renewed)",
		"10s memory-warning #2 memory critical 0.97/0.80 kills=false: send SIGUSR1 to main",
		// The first critical episode (6s-8s) was too short for the kill's
		// 4s; the second, from 9s, is not.
		"13s memory-kill #1 memory critical 0.99/0.95 kills=false: log at level WARN; kill: SIGTERM, cgroup kill after 3s",
		// 0.75 at 15s is under warning but above clear: still warning.
		"15s memory-warning #3 memory warning 0.85/0.80 kills=false: send SIGUSR1 to main",
		"16s memory-kill #0 memory warning 0.75/0.95 kills=true: grace period over: kill the cgroup",
		"17s memory-throttle #0 memory normal 0.60/0.95 kills=false: throttle of memory.high ends: memory is back to normal",
	)
}

// The same recording under other thresholds: the states are classified
// again, so the rules fire at other times.
func TestReplayReclassifies(t *testing.T) {
	p := mustParse(t, replayPolicy)
	ds, err := Replay(p, rampSamples(), ReplayOptions{Thresholds: func(r monitor.Resource) monitor.Thresholds {
		if r == monitor.Memory {
			return monitor.Thresholds{Warning: 0.86, Critical: 0.95}
		}
		return monitor.DefaultThresholds(r)
	}})
	if err != nil {
		t.Fatal(err)
	}
	var warn []string
	for _, d := range ds {
		if d.Rule == "memory-warning" || d.Firing == 0 {
			warn = append(warn, fmt.Sprintf("%gs %s #%d", d.Time.Sub(replayT0).Seconds(), d.Rule, d.Firing))
		}
	}
	// Warning from 4s (0.88) instead of 2s, and no clear band: normal
	// again at 14s (0.85), which ends the throttle there.
	want := []string{"7s memory-warning #1", "12s memory-warning #2", "14s memory-throttle #0", "16s memory-kill #0"}
	if !slices.Equal(warn, want) {
		t.Fatalf("with warning 0.86 and no clear: %q, want %q", warn, want)
	}

	// The policy's own thresholds change it the same way.
	p2 := mustParse(t, strings.Replace(replayPolicy, "warning = 0.8, critical = 0.95, clear = 0.7", "warning = 0.86, critical = 0.95", 1))
	ds2, err := Replay(p2, rampSamples(), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if g, w := decisionLines(ds2), decisionLines(ds); !slices.Equal(g, w) {
		t.Fatalf("policy thresholds and option thresholds differ:\n%q\n%q", g, w)
	}
}

// Samples are replayed in time order whatever order they come in, and
// bad samples are refused.
func TestReplayInput(t *testing.T) {
	p := mustParse(t, replayPolicy)
	want, err := Replay(p, rampSamples(), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	shuffled := rampSamples()
	slices.Reverse(shuffled)
	got, err := Replay(p, shuffled, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(decisionLines(got), decisionLines(want)) {
		t.Fatalf("reversed samples: %q", decisionLines(got))
	}
	for name, bad := range map[string]Observation{
		"no time":  {Usages: []monitor.Usage{{Resource: monitor.Memory}}},
		"NaN":      {Time: replayT0, Usages: []monitor.Usage{{Resource: monitor.Memory, Utilization: math.NaN()}}},
		"resource": {Time: replayT0, Usages: []monitor.Usage{{Resource: 0, Utilization: 0.5}}},
	} {
		if _, err := Replay(p, []Observation{bad}, ReplayOptions{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Replay(nil, nil, ReplayOptions{}); err == nil {
		t.Error("no policy: no error")
	}
	if ds, err := Replay(p, nil, ReplayOptions{}); err != nil || len(ds) != 0 {
		t.Errorf("no samples: %v, %v", ds, err)
	}
}

// Timed throttles and freezes end at their deadline between samples, a
// kill thaws a frozen job, a second kill is not sent, and oom rules fire
// when the samples carry oom_kill counts.
func TestReplayHoldsKillsOOM(t *testing.T) {
	p := mustParse(t, `
[[rule]]
name = "slow"
resource = "cpu"
state = "warning"
actions = [ { type = "throttle", cpu = "50%", until = "2500ms" } ]
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
actions = [ { type = "kill", signal = "SIGTERM", grace = "0s" } ]
[[rule]]
name = "stop-too"
resource = "io_pressure"
state = "critical"
for = "2s"
actions = [ { type = "kill", signal = "SIGKILL", grace = "1s" } ]
[[rule]]
name = "oom"
resource = "oom"
actions = [ { type = "signal", signal = "SIGUSR2", target = "group" } ]
`)
	obs := func(s float64, cpu, io float64, oom uint64) Observation {
		return Observation{Time: secondsAt(s), OOMKills: oom, Usages: []monitor.Usage{
			{Resource: monitor.CPU, Utilization: cpu}, {Resource: monitor.IOPressure, Utilization: io}}}
	}
	ds, err := Replay(p, []Observation{
		obs(0, 0.8, 0.2, 0),
		obs(1, 0.1, 0.5, 0),
		obs(5, 0.1, 0.5, 1),
	}, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantDecisions(t, ds,
		"0s slow #1 cpu warning 0.80/0.70 kills=false: lower cpu.max to 50000 100000 for 2.5s",
		"0s pause #1 io_pressure warning 0.20/0.10 kills=false: freeze the job until clear",
		"2.5s slow #0 cpu normal 0.10/0.70 kills=false: throttle of cpu.max ends: its 2.5s are up",
		"3s stop #1 io_pressure critical 0.50/0.40 kills=true: thaw the job, then kill: SIGTERM, cgroup kill at once",
		"3s stop-too #1 io_pressure critical 0.50/0.40 kills=false: kill already under way (by rule stop), not sent again",
		"5s oom #1 oom normal 1.00/0.00 kills=false: send SIGUSR2 to group",
	)
}

// What Replay reports is what the engine does when driven live: the same
// observations through the test harness, with a timer that fires every
// 100ms the way the engine's own timer would, give the same firings at
// the same times, and the job sees the kill and the end of the throttle
// when Replay says so.
func TestReplayMatchesEngine(t *testing.T) {
	ds, err := Replay(mustParse(t, replayPolicy), rampSamples(), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range ds {
		if d.Firing > 0 {
			want = append(want, fmt.Sprintf("%.1fs %s #%d", d.Time.Sub(replayT0).Seconds(), d.Rule, d.Firing))
		}
		if d.KillsJob {
			want = append(want, fmt.Sprintf("%.1fs job: kill", d.Time.Sub(replayT0).Seconds()))
		}
		if strings.Contains(d.Action, "throttle of memory.high ends") {
			want = append(want, fmt.Sprintf("%.1fs job: write memory.high=max", d.Time.Sub(replayT0).Seconds()))
		}
	}

	h := newHarness(t, replayPolicy, false)
	h.t0 = replayT0
	var got []string
	counts := map[string]int{}
	seen := 0
	step := func(s float64, f func()) {
		f()
		for _, r := range h.pol.Rules() {
			if n := h.fired(r.Name); n != counts[r.Name] {
				counts[r.Name] = n
				got = append(got, fmt.Sprintf("%.1fs %s #%d", s, r.Name, n))
			}
		}
		calls := h.job.Calls()
		for _, c := range calls[seen:] {
			if c == "kill" || c == "write memory.high=max" {
				got = append(got, fmt.Sprintf("%.1fs job: %s", s, c))
			}
		}
		seen = len(calls)
	}
	for i := 0; i < len(memoryRamp)*10; i++ {
		s := float64(i) / 10
		step(s, func() { h.tick(s) })
		if i%10 == 0 {
			step(s, func() { h.value(s, monitor.Memory, memoryRamp[i/10]) })
		}
	}
	// The harness reports the job's calls after the firings of a step;
	// order both the same way.
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("engine driven live:\n  %s\nReplay:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(want) < 8 {
		t.Fatalf("too few events to compare: %q", want)
	}
}

package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// ReplayOptions configure Replay. The zero value replays with the
// policy's own thresholds and discards the engine's log.
type ReplayOptions struct {
	// Thresholds returns the thresholds that classify a resource during
	// the replay; nil means the policy's, or the defaults for resources
	// it leaves out.
	Thresholds func(monitor.Resource) monitor.Thresholds
	// Logger receives the engine's dry-run records, as rsup run
	// --dry-run would log them; nil discards them.
	Logger *slog.Logger
}

// Decision is one thing the engine would have done during a replay: a
// rule firing, or a later consequence of a firing (a throttle or freeze
// ending, the cgroup kill after a kill's grace period).
type Decision struct {
	// Time is when the engine would have acted: a sample's time, or a
	// deadline of the engine's between two samples.
	Time time.Time
	Rule string
	// Resource is what the rule watches: a resource name, or "oom".
	Resource string
	// State and Value are the watched resource's state, as the replay
	// classified it, and its utilization at Time. For an oom rule, State
	// is Normal and Value is the job's oom_kill count.
	State monitor.State
	Value float64
	// Threshold is the threshold of the rule's state (its warning or
	// critical value) in force during the replay; 0 for an oom rule.
	Threshold float64
	// Firing counts the rule's firings from 1; it is 0 for a consequence
	// of an earlier firing.
	Firing int
	// Action says in words what the engine would have done, the actions
	// of one firing joined by "; ".
	Action string
	// KillsJob is set on the decision that would have killed the job's
	// cgroup: a kill without grace, or the end of a kill's grace period.
	// The replay goes on after it as the recording does, though the job
	// would have been gone.
	KillsJob bool
}

// Replay runs the policy's rules over a recorded history of a job, in an
// engine that acts on nothing, and returns what it would have done, in
// time order.
//
// The samples are taken in time order. Their states are ignored: each
// utilization is classified again with the replay's thresholds (with the
// hysteresis of their clear value, from the resource's state at the sample
// before), so that a policy's thresholds can be tried against a recording
// made with others. Between two samples the engine's timers (sustained
// conditions, cooldowns, throttle and freeze durations, a kill's grace
// period) run at the moments the engine asks for, and a timer due at a
// sample's time runs before that sample, as it would live: a sample
// reaches the engine a little after the moment it is stamped with. The
// replay ends with the last sample; what would have happened after it is
// not reported.
//
// What a replay cannot know: a throttle's effect on the utilization that
// follows it (the recording shows the job as it ran), and, when the
// samples carry no OOMKills counts, the firings of oom rules.
func Replay(p *Policy, samples []Observation, o ReplayOptions) ([]Decision, error) {
	if p == nil {
		return nil, errors.New("replay: no policy")
	}
	obs := slices.Clone(samples)
	slices.SortStableFunc(obs, func(a, b Observation) int { return a.Time.Compare(b.Time) })
	for i, ob := range obs {
		if ob.Time.IsZero() {
			return nil, fmt.Errorf("replay: sample %d has no time", i+1)
		}
		for _, u := range ob.Usages {
			if u.Resource < monitor.CPU || u.Resource > monitor.IOPressure {
				return nil, fmt.Errorf("replay: sample at %s: unknown resource %d", ob.Time.Format(time.RFC3339Nano), int(u.Resource))
			}
			if math.IsNaN(u.Utilization) || math.IsInf(u.Utilization, 0) || u.Utilization < 0 {
				return nil, fmt.Errorf("replay: sample at %s: %s utilization %v is not a fraction", ob.Time.Format(time.RFC3339Nano), u.Resource, u.Utilization)
			}
		}
	}
	thr := o.Thresholds
	if thr == nil {
		thr = func(r monitor.Resource) monitor.Thresholds {
			if t, ok := p.thresholds[r]; ok {
				return t
			}
			return monitor.DefaultThresholds(r)
		}
	}
	var now time.Time
	e := NewEngine(p, replayJob{limits: p.limits}, EngineOptions{Logger: o.Logger, DryRun: true, Thresholds: thr})
	// Actions are timed from the recorded clock, not the wall clock.
	e.clock = func() time.Time { return now }
	rp := &replayer{e: e}
	prev := map[monitor.Resource]monitor.State{}
	for _, ob := range obs {
		for {
			e.mu.Lock()
			next := e.nextLocked()
			e.mu.Unlock()
			if next.IsZero() || next.After(ob.Time) {
				break
			}
			if next.Before(now) {
				next = now // overdue: run it now
			}
			if next.Equal(now) && rp.ticked {
				// Each tick moves the engine on; asking again for a time
				// already handled would loop for ever.
				return rp.out, fmt.Errorf("replay: the engine asks again for %s", next.Format(time.RFC3339Nano))
			}
			now, rp.ticked = next, true
			rp.step(now, true, func() { e.tick(next) })
		}
		us := make([]monitor.Usage, len(ob.Usages))
		for i, u := range ob.Usages {
			u.State = thr(u.Resource).Classify(prev[u.Resource], u.Utilization)
			prev[u.Resource] = u.State
			if u.Timestamp.IsZero() {
				u.Timestamp = ob.Time
			}
			us[i] = u
		}
		now, rp.ticked = ob.Time, false
		rp.step(now, false, func() { e.observe(Observation{Time: ob.Time, Usages: us, OOMKills: ob.OOMKills}) })
	}
	return rp.out, nil
}

// replayer turns what changed in the engine during each step (an
// observation or a tick) into Decisions. The dry-run engine sends nothing
// to its job, so its decisions are read from its state: the rules' firing
// counts, the holds in force and the kill under way.
type replayer struct {
	e      *Engine
	out    []Decision
	ticked bool // the last step was a tick at the current time
}

func (rp *replayer) step(now time.Time, tick bool, run func()) {
	e := rp.e
	e.mu.Lock()
	counts := make([]int, len(e.rules))
	for i, r := range e.rules {
		counts[i] = r.count
	}
	holds := slices.Clone(e.holds)
	until := make(map[*hold]time.Time, len(holds))
	for _, h := range holds {
		until[h] = h.until
	}
	killBefore := e.kill
	var graceBefore time.Time
	if killBefore != nil {
		graceBefore = killBefore.deadline
	}
	e.mu.Unlock()

	run()

	e.mu.Lock()
	defer e.mu.Unlock()
	killStarted := killBefore == nil && e.kill != nil
	thawedForKill := false
	// What ended before the rules were evaluated: holds whose time was
	// up or whose resource is back to normal, and the kill's grace.
	for _, h := range holds {
		if slices.Contains(e.holds, h) {
			continue
		}
		r := replayRule(e, h.rule)
		var why string
		switch {
		case tick && !until[h].IsZero() && !now.Before(until[h]):
			why = "its time is up"
			if r != nil && h.action < len(r.Actions) {
				switch a := r.Actions[h.action].(type) {
				case ThrottleAction:
					why = fmt.Sprintf("its %v are up", a.Until)
				case FreezeAction:
					why = fmt.Sprintf("its %v are up", a.Until)
				}
			}
		case !tick && until[h].IsZero() && e.latest[h.resource].State == monitor.Normal:
			why = h.resource.String() + " is back to normal"
		case h.freeze && killStarted:
			thawedForKill = true
			continue // told with the kill
		default:
			why = "ended"
		}
		what := "throttle of " + knobList(h)
		if h.freeze {
			what = "freeze"
		}
		rp.add(rp.decision(r, now, 0, what+" ends: "+why))
	}
	if tick && killBefore != nil && !graceBefore.IsZero() && e.kill.deadline.IsZero() {
		d := rp.decision(replayRule(e, killBefore.rule), now, 0, "grace period over: kill the cgroup")
		d.KillsJob = true
		rp.add(d)
	}
	// The rules that fired, in file order, as the engine fires them.
	killing := killBefore != nil
	for i, r := range e.rules {
		if r.count == counts[i] {
			continue
		}
		var acts []string
		for j, a := range r.Actions {
			acts = append(acts, describeReplayAction(a, j, r, holds, e, &killing, thawedForKill && e.kill != nil && e.kill.rule == r.Name))
		}
		d := rp.decision(r, r.last, r.count, strings.Join(acts, "; "))
		// A kill without grace kills the cgroup as it starts.
		d.KillsJob = killStarted && e.kill.rule == r.Name && e.kill.deadline.IsZero()
		rp.add(d)
	}
}

func (rp *replayer) add(d Decision) { rp.out = append(rp.out, d) }

// decision describes r's resource as the engine sees it at now.
func (rp *replayer) decision(r *ruleState, now time.Time, firing int, action string) Decision {
	e := rp.e
	d := Decision{Time: now, Firing: firing, Action: action}
	if r == nil {
		return d
	}
	d.Rule, d.Resource = r.Name, r.Trigger()
	if r.OOM {
		d.Value = float64(e.oom)
		return d
	}
	u := e.latest[r.Resource]
	d.State, d.Value = u.State, u.Utilization
	t := e.thr(r.Resource)
	d.Threshold = t.Warning
	if r.State == monitor.Critical {
		d.Threshold = t.Critical
	}
	return d
}

func replayRule(e *Engine, name string) *ruleState {
	for _, r := range e.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// describeReplayAction says what the i-th action of r did when r fired.
// before are the holds in force before the step; killing says whether a
// kill is under way, and is set by a kill that begins.
func describeReplayAction(a Action, i int, r *ruleState, before []*hold, e *Engine, killing *bool, thawed bool) string {
	renewed := func() string {
		for _, h := range before {
			if h.rule == r.Name && h.action == i && slices.Contains(e.holds, h) {
				return " (already in force: renewed)"
			}
		}
		return ""
	}
	switch a := a.(type) {
	case LogAction:
		return a.String()
	case SignalAction:
		return a.String()
	case ThrottleAction:
		return "lower " + throttleList(a) + " " + untilWords(a.Until) + renewed()
	case FreezeAction:
		return "freeze the job " + untilWords(a.Until) + renewed()
	case KillAction:
		if *killing {
			by := ""
			if e.kill != nil {
				by = fmt.Sprintf(" (by rule %s)", e.kill.rule)
			}
			return "kill already under way" + by + ", not sent again"
		}
		*killing = true
		s := "kill: " + unix.SignalName(a.Signal)
		if thawed {
			s = "thaw the job, then " + s
		}
		if a.Grace == 0 {
			return s + ", cgroup kill at once"
		}
		return fmt.Sprintf("%s, cgroup kill after %v", s, a.Grace)
	}
	return a.Type()
}

func untilWords(d time.Duration) string {
	if d == 0 {
		return "until clear"
	}
	return fmt.Sprintf("for %v", d)
}

// throttleList names the limits a throttle lowers and their values.
func throttleList(a ThrottleAction) string {
	var what []string
	if a.CPU != nil {
		what = append(what, "cpu.max to "+a.CPU.String())
	}
	if a.MemoryHigh != nil {
		what = append(what, "memory.high to "+a.MemoryHigh.String())
	}
	for _, l := range a.IO {
		what = append(what, "io.max to "+l.String())
	}
	return joinWords(what)
}

// knobList names the files a hold lowers.
func knobList(h *hold) string {
	var what []string
	for _, k := range h.keys() {
		what = append(what, k.String())
	}
	return joinWords(what)
}

func joinWords(s []string) string {
	if len(s) <= 1 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// replayJob is the job a replay's engine stands on. The engine runs dry,
// so only the reads of the limits a throttle lowers reach it; they answer
// with the policy's [limits], as the job would have started with them.
type replayJob struct{ limits *cgroup.Resources }

func (replayJob) Signal(Target, unix.Signal) (int, error) { return 0, nil }
func (replayJob) Apply(*cgroup.Resources) error           { return nil }
func (replayJob) Freeze(bool) error                       { return nil }
func (replayJob) Kill() (int, error)                      { return 0, nil }

func (j replayJob) CPUMax() (cgroup.CPUMax, error) {
	if j.limits != nil && j.limits.CPU != nil {
		return *j.limits.CPU, nil
	}
	return cgroup.CPUMax{}, nil
}

func (j replayJob) MemoryHigh() (cgroup.Limit, error) {
	if j.limits != nil && j.limits.MemoryHigh != nil {
		return *j.limits.MemoryHigh, nil
	}
	return cgroup.Max, nil
}

func (j replayJob) IOMax(dev cgroup.Device) (cgroup.IOLimit, error) {
	m := cgroup.Max
	l := cgroup.IOLimit{Device: dev, ReadBPS: &m, WriteBPS: &m, ReadIOPS: &m, WriteIOPS: &m}
	if j.limits != nil {
		for _, c := range j.limits.IO {
			if c.Device == dev {
				for _, f := range []struct{ dst, src **cgroup.Limit }{{&l.ReadBPS, &c.ReadBPS}, {&l.WriteBPS, &c.WriteBPS}, {&l.ReadIOPS, &c.ReadIOPS}, {&l.WriteIOPS, &c.WriteIOPS}} {
					if *f.src != nil {
						v := **f.src
						*f.dst = &v
					}
				}
			}
		}
	}
	return l, nil
}

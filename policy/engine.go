package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// Job is what an Engine acts on. CgroupJob is the implementation on a real
// job cgroup.
type Job interface {
	// Signal sends sig to the target's processes, only ever to processes
	// inside the job, and returns how many it reached.
	Signal(t Target, sig unix.Signal) (int, error)
	// CPUMax, MemoryHigh and IOMax read the limits a throttle lowers, so
	// that they can be put back.
	CPUMax() (cgroup.CPUMax, error)
	MemoryHigh() (cgroup.Limit, error)
	IOMax(dev cgroup.Device) (cgroup.IOLimit, error)
	// Apply writes limits to the job's cgroup.
	Apply(res *cgroup.Resources) error
	// Freeze freezes or thaws the job.
	Freeze(frozen bool) error
	// Kill kills every process in the job (cgroup.kill).
	Kill() (int, error)
}

// Observation is what one sample of the job tells the engine.
type Observation struct {
	Time   time.Time
	Usages []monitor.Usage
	// OOMKills is the job's oom_kill count so far (memory.events).
	OOMKills uint64
}

// EngineOptions configure an Engine. The zero value of each field is
// documented with it.
type EngineOptions struct {
	// Logger receives every decision; nil discards them.
	Logger *slog.Logger
	// DryRun logs every decision and acts on nothing: no signal is sent
	// and no cgroup file is written.
	DryRun bool
	// Thresholds returns the thresholds in force for a resource, for the
	// logs; nil means the policy's own, or the defaults.
	Thresholds func(monitor.Resource) monitor.Thresholds
}

// Engine runs a policy's rules against the observations of one job. Its
// methods are safe for concurrent use.
//
// The semantics, which the README states as the spec:
//   - A rule's condition holds while its resource is at the rule's state
//     or worse. The thresholds' clear value gives hysteresis: a resource
//     above warning stays at warning until it drops below clear.
//   - An episode is a stretch of observations during which the condition
//     holds. A rule fires once the condition has held for its "for"
//     duration, once per episode; with a cooldown it fires again after
//     each cooldown while the episode lasts, and never sooner than the
//     cooldown after its previous firing.
//   - An oom rule fires each time the job's oom_kill count rises, subject
//     to the cooldown.
//   - A rule's actions run in order; rules are independent of each other.
//   - A throttle or freeze with until = "clear" holds until the rule's
//     resource (memory for oom rules) is back to normal; with a duration,
//     until it has passed. Several throttles of one limit combine to the
//     lowest value, and the value before the first is restored after the
//     last.
//   - A kill signals every process in the job, then kills the cgroup
//     after the grace period. Once a kill has begun no other is sent.
type Engine struct {
	p   *Policy
	job Job
	log *slog.Logger
	dry bool
	thr func(monitor.Resource) monitor.Thresholds
	// clock is the time actions are taken at; tests replace it.
	clock func() time.Time
	obs   chan Observation
	quit  chan struct{}
	done  chan struct{}

	startOnce, stopOnce sync.Once

	mu     sync.Mutex
	rules  []*ruleState
	latest map[monitor.Resource]monitor.Usage
	oom    uint64
	holds  []*hold
	knobs  map[knobKey]*knobState
	frozen bool
	kill   *killState
	errs   []error
}

type ruleState struct {
	Rule
	active bool      // the condition holds
	since  time.Time // start of the episode
	fired  bool      // fired in this episode
	last   time.Time // last firing
	count  int
	// actions counts the actions run, by type.
	actions map[string]int
}

// clearResource is the resource whose return to normal ends the rule's
// "until clear" actions.
func (r *ruleState) clearResource() monitor.Resource {
	if r.OOM {
		return monitor.Memory
	}
	return r.Resource
}

type killState struct {
	rule     string
	signal   unix.Signal
	deadline time.Time // when the cgroup is killed; zero once it has been
}

// NewEngine returns an engine for p acting on job. It does nothing until
// Start.
func NewEngine(p *Policy, job Job, o EngineOptions) *Engine {
	e := &Engine{p: p, job: job, log: o.Logger, dry: o.DryRun, thr: o.Thresholds, clock: time.Now,
		obs: make(chan Observation, 64), quit: make(chan struct{}), done: make(chan struct{}),
		latest: map[monitor.Resource]monitor.Usage{}, knobs: map[knobKey]*knobState{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.thr == nil {
		e.thr = func(r monitor.Resource) monitor.Thresholds {
			if t, ok := p.thresholds[r]; ok {
				return t
			}
			return monitor.DefaultThresholds(r)
		}
	}
	if e.dry {
		e.job = dryJob{job}
	}
	for _, r := range p.rules {
		e.rules = append(e.rules, &ruleState{Rule: r.clone()})
	}
	return e
}

// Start runs the engine's goroutine, which handles observations and the
// timers of sustained conditions, cooldowns, throttles, freezes and kill
// grace periods, until Stop.
func (e *Engine) Start() {
	e.startOnce.Do(func() { go e.loop() })
}

// Observe hands the engine a sample. It returns at once unless the engine
// is more than a few dozen samples behind.
func (e *Engine) Observe(o Observation) {
	select {
	case e.obs <- o:
	case <-e.quit:
	}
}

// Stop ends the engine's goroutine, undoes the throttles and freezes still
// in force and cancels a pending cgroup kill. It returns the errors of the
// actions that failed since the start, and of the undoing.
func (e *Engine) Stop() error {
	e.stopOnce.Do(func() {
		close(e.quit)
		e.startOnce.Do(func() { close(e.done) }) // never started
		<-e.done
		e.mu.Lock()
		defer e.mu.Unlock()
		for len(e.holds) > 0 {
			e.releaseLocked(e.holds[0], "the job ended")
		}
		if e.kill != nil && !e.kill.deadline.IsZero() {
			e.actionLog(slog.LevelInfo, "policy kill not needed: the job ended during the grace period", nil, "rule", e.kill.rule)
			e.kill.deadline = time.Time{}
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	return errors.Join(e.errs...)
}

// Actions returns how many actions of each type each rule has run (in a
// dry run: would have run), by rule name and action type.
func (e *Engine) Actions() map[string]map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]map[string]int, len(e.rules))
	for _, r := range e.rules {
		m := make(map[string]int, len(r.actions))
		for k, v := range r.actions {
			m[k] = v
		}
		out[r.Name] = m
	}
	return out
}

// KilledBy returns the rule whose kill action ended the job, and false if
// no kill action ran (or the engine runs dry).
func (e *Engine) KilledBy() (rule string, sig unix.Signal, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.kill == nil || e.dry {
		return "", 0, false
	}
	return e.kill.rule, e.kill.signal, true
}

// Firings returns how often each rule has fired, by name.
func (e *Engine) Firings() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]int, len(e.rules))
	for _, r := range e.rules {
		out[r.Name] = r.count
	}
	return out
}

func (e *Engine) loop() {
	defer close(e.done)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		next := e.nextLocked()
		e.mu.Unlock()
		var tc <-chan time.Time
		if !next.IsZero() {
			t.Reset(time.Until(next))
			tc = t.C
		}
		select {
		case o := <-e.obs:
			e.observe(o)
		case now := <-tc:
			e.tick(now)
		case <-e.quit:
			return
		}
		t.Stop()
	}
}

// observe updates the resources' states from o and acts on them.
func (e *Engine) observe(o Observation) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, u := range o.Usages {
		e.latest[u.Resource] = u
	}
	// The job's cgroup is new, so its count starts at 0.
	oomRose := o.OOMKills > e.oom
	e.oom = max(e.oom, o.OOMKills)
	for _, r := range e.rules {
		if r.OOM {
			if oomRose {
				r.active, r.since, r.fired = true, o.Time, false
			}
			continue
		}
		u, ok := e.latest[r.Resource]
		if !ok {
			continue
		}
		switch held := u.State >= r.State; {
		case held && !r.active:
			r.active, r.since, r.fired = true, o.Time, false
		case !held && r.active:
			r.active = false
		}
	}
	for _, h := range append([]*hold(nil), e.holds...) {
		if h.until.IsZero() {
			if u, ok := e.latest[h.resource]; ok && u.State == monitor.Normal {
				e.releaseLocked(h, h.resource.String()+" is back to normal")
			}
		}
	}
	// Episodes start at the sample's time; what is done now is timed
	// from now, which may be later when the sample took a while.
	now := e.clock()
	if now.Before(o.Time) {
		now = o.Time
	}
	e.evaluateLocked(now)
	for _, r := range e.rules {
		if r.OOM && r.active {
			// An OOM kill is an event: it fires now or not at all.
			if !r.fired {
				e.actionLog(slog.LevelInfo, "policy rule held back by its cooldown", nil, "rule", r.Name, "resource", "oom", "cooldown", r.Cooldown)
			}
			r.active = false
		}
	}
}

// tick runs what is due at now: expired throttles and freezes, the kill
// after its grace, and rules whose condition has now held long enough.
func (e *Engine) tick(now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range append([]*hold(nil), e.holds...) {
		if !h.until.IsZero() && !now.Before(h.until) {
			e.releaseLocked(h, "its time is up")
		}
	}
	if k := e.kill; k != nil && !k.deadline.IsZero() && !now.Before(k.deadline) {
		k.deadline = time.Time{}
		n, err := e.job.Kill()
		e.actionLog(slog.LevelWarn, "policy kill: grace period over, killing the job's cgroup", err,
			"rule", k.rule, "action", "kill", "processes", n)
	}
	e.evaluateLocked(now)
}

// nextLocked returns when the engine must next act without a new
// observation, or the zero time.
func (e *Engine) nextLocked() time.Time {
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, r := range e.rules {
		if t, ok := r.due(); ok {
			earliest(t)
		}
	}
	for _, h := range e.holds {
		earliest(h.until)
	}
	if e.kill != nil {
		earliest(e.kill.deadline)
	}
	return next
}

// due returns when the rule may fire next, and false when it may not fire
// in the current episode.
func (r *ruleState) due() (time.Time, bool) {
	if !r.active || (r.fired && r.Cooldown == 0) {
		return time.Time{}, false
	}
	at := r.since.Add(r.For)
	if r.Cooldown > 0 && !r.last.IsZero() {
		if c := r.last.Add(r.Cooldown); c.After(at) {
			at = c
		}
	}
	return at, true
}

func (e *Engine) evaluateLocked(now time.Time) {
	for _, r := range e.rules {
		if at, ok := r.due(); ok && !now.Before(at) {
			e.fireLocked(r, now)
		}
	}
}

func (e *Engine) fireLocked(r *ruleState, now time.Time) {
	r.fired, r.last = true, now
	r.count++
	attrs := e.ruleAttrs(r)
	attrs = append(attrs, "held", now.Sub(r.since).Round(time.Millisecond), "firing", r.count)
	e.log.Info("policy rule fired", attrs...)
	for i, a := range r.Actions {
		if r.actions == nil {
			r.actions = map[string]int{}
		}
		r.actions[a.Type()]++
		e.act(r, i, a, now)
	}
}

// ruleAttrs are the attributes every record about r carries.
func (e *Engine) ruleAttrs(r *ruleState) []any {
	attrs := []any{"rule", r.Name, "resource", r.Trigger()}
	if e.dry {
		attrs = append(attrs, "dry_run", true)
	}
	if r.OOM {
		return append(attrs, "oom_kills", e.oom)
	}
	u := e.latest[r.Resource]
	th := e.thr(r.Resource)
	threshold := th.Warning
	if r.State == monitor.Critical {
		threshold = th.Critical
	}
	return append(attrs, "state", u.State.String(), "value", u.Utilization, "threshold", threshold)
}

// actionLog logs the outcome of an action, and keeps its error for Stop.
func (e *Engine) actionLog(level slog.Level, msg string, err error, attrs ...any) {
	if e.dry {
		attrs = append(attrs, "dry_run", true)
	}
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s: %w", msg, err))
		attrs = append(attrs, "error", err.Error())
		level = slog.LevelError
	}
	e.log.Log(context.Background(), level, msg, attrs...)
}

func (e *Engine) act(r *ruleState, i int, a Action, now time.Time) {
	switch a := a.(type) {
	case LogAction:
		e.log.Log(context.Background(), a.Level, "policy: "+r.Name, e.ruleAttrs(r)...)
	case SignalAction:
		n, err := e.job.Signal(a.Target, a.Signal)
		e.actionLog(slog.LevelInfo, "policy action: signal", err, "rule", r.Name, "action", "signal",
			"signal", unix.SignalName(a.Signal), "target", string(a.Target), "processes", n)
	case ThrottleAction:
		e.throttleLocked(r, i, a, now)
	case FreezeAction:
		e.holdLocked(&hold{rule: r.Name, action: i, resource: r.clearResource(), until: deadline(now, a.Until), freeze: true}, now)
	case KillAction:
		if k := e.kill; k != nil {
			e.actionLog(slog.LevelInfo, "policy action: kill already under way, not sent again", nil, "rule", r.Name, "action", "kill", "killing_rule", k.rule)
			return
		}
		e.kill = &killState{rule: r.Name, signal: a.Signal}
		// A frozen job cannot act on a signal: thaw it first.
		for _, h := range append([]*hold(nil), e.holds...) {
			if h.freeze {
				e.releaseLocked(h, "the job is being killed")
			}
		}
		n, err := e.job.Signal(TargetCgroup, a.Signal)
		e.actionLog(slog.LevelWarn, "policy action: kill", err, "rule", r.Name, "action", "kill",
			"signal", unix.SignalName(a.Signal), "processes", n, "grace", a.Grace)
		if a.Grace == 0 {
			n, err := e.job.Kill()
			e.actionLog(slog.LevelWarn, "policy kill: killing the job's cgroup", err, "rule", r.Name, "action", "kill", "processes", n)
			return
		}
		e.kill.deadline = now.Add(a.Grace)
	}
}

func deadline(now time.Time, d time.Duration) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return now.Add(d)
}

// dryJob reads through to the job and acts on nothing.
type dryJob struct{ Job }

func (dryJob) Signal(Target, unix.Signal) (int, error) { return 0, nil }
func (dryJob) Apply(*cgroup.Resources) error           { return nil }
func (dryJob) Freeze(bool) error                       { return nil }
func (dryJob) Kill() (int, error)                      { return 0, nil }

// Package policy reads rsup's TOML policy files: the limits to put on a
// job, how to monitor it, the thresholds that classify each resource, and
// the rules whose actions (log, signal, throttle, freeze, kill) run when a
// resource stays in a state.
//
// Decoding is strict: the file is decoded into raw structs, every key the
// decoder did not use is an error, and the values are then checked and
// turned into a Policy that cannot be changed afterwards. All errors are
// reported at once, each with the file position it concerns, and each
// wraps ErrInvalid. Nothing here touches a cgroup or a process.
package policy

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// Policy is a validated policy file. It has no methods that change it, and
// its accessors return copies.
type Policy struct {
	file       string
	name       string
	limits     *cgroup.Resources
	mon        Monitor
	thresholds map[monitor.Resource]monitor.Thresholds
	rules      []Rule
}

// File returns the name the policy was parsed under.
func (p *Policy) File() string { return p.file }

// Name returns the default job name, or "" when the file gives none.
func (p *Policy) Name() string { return p.name }

// Limits returns the limits of [limits], or nil when the file has none.
func (p *Policy) Limits() *cgroup.Resources { return cloneResources(p.limits) }

// Monitor returns the [monitor] settings.
func (p *Policy) Monitor() Monitor { return p.mon }

// Thresholds returns the thresholds the file sets, by resource. Resources
// it leaves out keep their defaults (monitor.DefaultThresholds).
func (p *Policy) Thresholds() map[monitor.Resource]monitor.Thresholds {
	return maps.Clone(p.thresholds)
}

// Rules returns the rules in file order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i, r := range p.rules {
		out[i] = r.clone()
	}
	return out
}

// Monitor holds the [monitor] settings. A zero field was not set, and the
// monitor's own default applies.
type Monitor struct {
	Interval time.Duration
	History  int    // samples kept per resource
	DiskPath string // the path whose file system is the "disk" resource
}

// Rule is one [[rule]]: when Resource has been at State or worse for For,
// run Actions in order.
type Rule struct {
	Name string
	// Resource is the watched resource; zero when OOM is set.
	Resource monitor.Resource
	// OOM makes the rule fire on the kernel's OOM kills in the job instead
	// of on a resource's state.
	OOM   bool
	State monitor.State
	For   time.Duration
	// Cooldown is the least time between two firings within one episode;
	// 0 means the rule fires once per episode.
	Cooldown time.Duration
	Actions  []Action
}

// Trigger names what the rule watches: a resource name or "oom".
func (r Rule) Trigger() string {
	if r.OOM {
		return "oom"
	}
	return r.Resource.String()
}

func (r Rule) clone() Rule {
	r.Actions = slices.Clone(r.Actions)
	for i, a := range r.Actions {
		if t, ok := a.(ThrottleAction); ok {
			r.Actions[i] = t.clone()
		}
	}
	return r
}

// Action is one of LogAction, SignalAction, ThrottleAction, FreezeAction
// and KillAction.
type Action interface {
	// Type returns the action's type as the file spells it.
	Type() string
	action()
}

// LogAction writes a structured log record.
type LogAction struct {
	Level slog.Level
}

// Target says which processes a SignalAction reaches.
type Target string

// The signal targets.
const (
	TargetMain   Target = "main"   // the job's main process
	TargetGroup  Target = "group"  // the main process's process group
	TargetCgroup Target = "cgroup" // every process in the job's cgroup
)

// SignalAction sends a signal to processes of the job.
type SignalAction struct {
	Signal unix.Signal
	Target Target
}

// ThrottleAction lowers limits of the job's cgroup for a while. Nil fields
// are left alone.
type ThrottleAction struct {
	CPU        *cgroup.CPUMax
	MemoryHigh *cgroup.Limit
	IO         []cgroup.IOLimit
	// Until is how long the throttle holds; 0 means until the resource
	// returns to normal.
	Until time.Duration
}

func (t ThrottleAction) clone() ThrottleAction {
	if t.CPU != nil {
		c := *t.CPU
		t.CPU = &c
	}
	t.MemoryHigh = cloneLimit(t.MemoryHigh)
	t.IO = cloneIO(t.IO)
	return t
}

// FreezeAction freezes the job's cgroup, and thaws it after Until, or when
// the resource returns to normal if Until is 0.
type FreezeAction struct {
	Until time.Duration
}

// KillAction sends Signal to the job, then kills the whole cgroup
// (cgroup.kill) after Grace.
type KillAction struct {
	Signal unix.Signal
	Grace  time.Duration
}

func (LogAction) Type() string      { return "log" }
func (SignalAction) Type() string   { return "signal" }
func (ThrottleAction) Type() string { return "throttle" }
func (FreezeAction) Type() string   { return "freeze" }
func (KillAction) Type() string     { return "kill" }

func (LogAction) action()      {}
func (SignalAction) action()   {}
func (ThrottleAction) action() {}
func (FreezeAction) action()   {}
func (KillAction) action()     {}

func (a LogAction) String() string { return fmt.Sprintf("log at level %s", a.Level) }
func (a SignalAction) String() string {
	return fmt.Sprintf("send %s to %s", unix.SignalName(a.Signal), a.Target)
}
func (a KillAction) String() string {
	return fmt.Sprintf("send %s, then kill the cgroup after %v", unix.SignalName(a.Signal), a.Grace)
}

func cloneLimit(l *cgroup.Limit) *cgroup.Limit {
	if l == nil {
		return nil
	}
	c := *l
	return &c
}

func cloneIO(in []cgroup.IOLimit) []cgroup.IOLimit {
	if in == nil {
		return nil
	}
	out := make([]cgroup.IOLimit, len(in))
	for i, l := range in {
		out[i] = cgroup.IOLimit{
			Device:    l.Device,
			ReadBPS:   cloneLimit(l.ReadBPS),
			WriteBPS:  cloneLimit(l.WriteBPS),
			ReadIOPS:  cloneLimit(l.ReadIOPS),
			WriteIOPS: cloneLimit(l.WriteIOPS),
		}
	}
	return out
}

func cloneResources(r *cgroup.Resources) *cgroup.Resources {
	if r == nil {
		return nil
	}
	c := &cgroup.Resources{
		MemoryMax:  cloneLimit(r.MemoryMax),
		MemoryHigh: cloneLimit(r.MemoryHigh),
		MemoryLow:  cloneLimit(r.MemoryLow),
		SwapMax:    cloneLimit(r.SwapMax),
		PidsMax:    cloneLimit(r.PidsMax),
		IO:         cloneIO(r.IO),
	}
	if r.CPU != nil {
		v := *r.CPU
		c.CPU = &v
	}
	if r.CPUWeight != nil {
		v := *r.CPUWeight
		c.CPUWeight = &v
	}
	return c
}

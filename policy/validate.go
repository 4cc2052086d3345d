package policy

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// The raw structs mirror the file. Values are decoded as `any` (nil when
// absent) so that a wrong type is one more error in the list, not the end
// of decoding, and so that sizes may be written as numbers or strings.

type rawPolicy struct {
	Name       any                      `toml:"name"`
	Limits     *rawLimits               `toml:"limits"`
	Monitor    *rawMonitor              `toml:"monitor"`
	Thresholds map[string]rawThresholds `toml:"thresholds"`
	Rules      []rawRule                `toml:"rule"`
}

type rawLimits struct {
	CPU        any     `toml:"cpu"`
	CPUWeight  any     `toml:"cpu_weight"`
	Memory     any     `toml:"memory"`
	MemoryHigh any     `toml:"memory_high"`
	MemoryLow  any     `toml:"memory_low"`
	Swap       any     `toml:"swap"`
	Pids       any     `toml:"pids"`
	IO         []rawIO `toml:"io"`
}

type rawIO struct {
	Device    any `toml:"device"`
	ReadBPS   any `toml:"read_bps"`
	WriteBPS  any `toml:"write_bps"`
	ReadIOPS  any `toml:"read_iops"`
	WriteIOPS any `toml:"write_iops"`
}

type rawMonitor struct {
	Interval any `toml:"interval"`
	History  any `toml:"history"`
	DiskPath any `toml:"disk_path"`
}

type rawThresholds struct {
	Warning  any `toml:"warning"`
	Critical any `toml:"critical"`
	Clear    any `toml:"clear"`
}

type rawRule struct {
	Name     any         `toml:"name"`
	Resource any         `toml:"resource"`
	State    any         `toml:"state"`
	For      any         `toml:"for"`
	Cooldown any         `toml:"cooldown"`
	Actions  []rawAction `toml:"actions"`
}

// rawAction holds the keys of every action type; which of them an action
// may have depends on its type.
type rawAction struct {
	Type       any     `toml:"type"`
	Level      any     `toml:"level"`
	Signal     any     `toml:"signal"`
	Target     any     `toml:"target"`
	CPU        any     `toml:"cpu"`
	MemoryHigh any     `toml:"memory_high"`
	IO         []rawIO `toml:"io"`
	Until      any     `toml:"until"`
	Grace      any     `toml:"grace"`
}

// MaxHistory bounds [monitor] history, so that a typo cannot ask for
// gigabytes of samples.
const MaxHistory = 1 << 20

func (v *validator) policy(raw *rawPolicy) *Policy {
	p := &Policy{file: v.file, thresholds: map[monitor.Resource]monitor.Thresholds{}}
	if raw.Name != nil {
		if s, ok := v.str("name", raw.Name, "a job name string"); ok {
			if err := cgroup.ValidateName(s); err != nil {
				v.errf("name", "%v", err)
			}
			p.name = s
		}
	}
	if raw.Limits != nil {
		p.limits = v.limits(raw.Limits)
	}
	if raw.Monitor != nil {
		p.mon = v.monitor(raw.Monitor)
	}
	for name, t := range raw.Thresholds {
		path := "thresholds." + name
		r, err := monitor.ParseResource(name)
		if err != nil {
			v.errf(path, "%v", err)
			continue
		}
		if th, ok := v.thresholds(path, t); ok {
			p.thresholds[r] = th
		}
	}
	seen := map[string]string{}
	for i, rr := range raw.Rules {
		path := fmt.Sprintf("rule[%d]", i)
		r := v.rule(path, rr)
		if r.Name != "" {
			if first, dup := seen[r.Name]; dup {
				v.errf(path+".name", "rule name %q is already used by %s: rule names must be unique", r.Name, first)
			}
			seen[r.Name] = path
		}
		p.rules = append(p.rules, r)
	}
	return p
}

func (v *validator) limits(raw *rawLimits) *cgroup.Resources {
	r := &cgroup.Resources{}
	before := len(v.errs)
	if raw.CPU != nil {
		if s, ok := v.str("limits.cpu", raw.CPU, `a CPU share such as "150%" or "max"`); ok {
			if c, err := cgroup.ParseCPUPercent(s, 0); err != nil {
				v.errf("limits.cpu", "%v", err)
			} else {
				r.CPU = &c
			}
		}
	}
	if raw.CPUWeight != nil {
		if n, ok := v.integer("limits.cpu_weight", raw.CPUWeight, 1, 10000); ok {
			w := uint64(n)
			r.CPUWeight = &w
		}
	}
	for _, f := range []struct {
		key string
		val any
		dst **cgroup.Limit
	}{
		{"memory", raw.Memory, &r.MemoryMax},
		{"memory_high", raw.MemoryHigh, &r.MemoryHigh},
		{"memory_low", raw.MemoryLow, &r.MemoryLow},
		{"swap", raw.Swap, &r.SwapMax},
	} {
		if f.val != nil {
			if l, ok := v.size("limits."+f.key, f.val); ok {
				*f.dst = l
			}
		}
	}
	if r.MemoryLow != nil && r.MemoryLow.Max {
		v.errf("limits.memory_low", `"max" would protect all of the job's memory from reclaim: give a size`)
	}
	if raw.Pids != nil {
		if l, ok := v.count("limits.pids", raw.Pids); ok {
			switch {
			case !l.Max && l.N == 0:
				v.errf("limits.pids", "0 would stop the command itself from starting: want 1 to %d or \"max\"", cgroup.MaxPids)
			case !l.Max && l.N > cgroup.MaxPids:
				v.errf("limits.pids", "%d is above the kernel's maximum: want 1 to %d or \"max\"", l.N, cgroup.MaxPids)
			default:
				r.PidsMax = l
			}
		}
	}
	r.IO = v.io("limits.io", raw.IO, false)
	if len(v.errs) == before {
		// The per-key checks above should have caught everything; this
		// keeps the policy in step with what the cgroup package enforces.
		if err := r.Validate(); err != nil {
			v.errf("limits", "%v", err)
		}
	}
	return r
}

// io checks a list of io.max entries. A throttle may not lift a limit, so
// there "max" is refused.
func (v *validator) io(path string, raw []rawIO, throttle bool) []cgroup.IOLimit {
	var out []cgroup.IOLimit
	seen := map[cgroup.Device]string{}
	for i, e := range raw {
		p := fmt.Sprintf("%s[%d]", path, i)
		var l cgroup.IOLimit
		ok := true
		if e.Device == nil {
			v.errf(p, `device is required: a block device path such as "/dev/sda", or "MAJ:MIN"`)
			ok = false
		} else if spec, good := v.str(p+".device", e.Device, `a block device path such as "/dev/sda", or "MAJ:MIN"`); !good {
			ok = false
		} else if d, err := v.resolveDevice(spec); err != nil {
			v.errf(p+".device", "%v", err)
			ok = false
		} else {
			l.Device = d
			if first, dup := seen[d]; dup {
				v.errf(p+".device", "device %s is already limited in %s: combine the two entries", d, first)
				ok = false
			}
			seen[d] = p
		}
		given := false
		for _, f := range []struct {
			key   string
			val   any
			bytes bool
			dst   **cgroup.Limit
		}{
			{"read_bps", e.ReadBPS, true, &l.ReadBPS},
			{"write_bps", e.WriteBPS, true, &l.WriteBPS},
			{"read_iops", e.ReadIOPS, false, &l.ReadIOPS},
			{"write_iops", e.WriteIOPS, false, &l.WriteIOPS},
		} {
			if f.val == nil {
				continue
			}
			given = true
			var lim *cgroup.Limit
			var good bool
			if f.bytes {
				lim, good = v.size(p+"."+f.key, f.val)
			} else {
				lim, good = v.count(p+"."+f.key, f.val)
			}
			switch {
			case !good:
				ok = false
			case !lim.Max && lim.N == 0:
				v.errf(p+"."+f.key, `0 would block all io: want a positive rate or "max"`)
				ok = false
			case lim.Max && throttle:
				v.errf(p+"."+f.key, `a throttle lowers limits: want a rate, not "max"`)
				ok = false
			default:
				*f.dst = lim
			}
		}
		if !given {
			v.errf(p, "no limit given: want at least one of read_bps, write_bps, read_iops, write_iops")
			ok = false
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

func (v *validator) duration(path string, val any) (time.Duration, bool) {
	s, ok := v.str(path, val, `a duration such as "500ms", "10s" or "5m"`)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.errf(path, `invalid duration %q: want a number with a unit, such as "500ms", "10s" or "5m"`, s)
		return 0, false
	}
	if d < 0 {
		v.errf(path, "negative duration %q: want 0 or more", s)
		return 0, false
	}
	return d, true
}

func (v *validator) monitor(raw *rawMonitor) Monitor {
	var m Monitor
	if raw.Interval != nil {
		if d, ok := v.duration("monitor.interval", raw.Interval); ok {
			if d <= 0 {
				v.errf("monitor.interval", `interval must be positive, such as "1s"`)
			}
			m.Interval = d
		}
	}
	if raw.History != nil {
		if n, ok := v.integer("monitor.history", raw.History, 1, MaxHistory); ok {
			m.History = int(n)
		}
	}
	if raw.DiskPath != nil {
		if s, ok := v.str("monitor.disk_path", raw.DiskPath, "an absolute path"); ok {
			if !filepath.IsAbs(s) {
				v.errf("monitor.disk_path", "%q is not an absolute path", s)
			}
			m.DiskPath = s
		}
	}
	return m
}

func (v *validator) thresholds(path string, raw rawThresholds) (monitor.Thresholds, bool) {
	var t monitor.Thresholds
	ok := true
	for _, f := range []struct {
		key      string
		val      any
		dst      *float64
		required bool
	}{
		{"warning", raw.Warning, &t.Warning, true},
		{"critical", raw.Critical, &t.Critical, true},
		{"clear", raw.Clear, &t.Clear, false},
	} {
		if f.val == nil {
			if f.required {
				v.errf(path, "%s is required: want warning and critical as fractions, such as { warning = 0.8, critical = 0.95 }", f.key)
				ok = false
			}
			continue
		}
		x, good := v.fraction(path+"."+f.key, f.val)
		ok = ok && good
		*f.dst = x
	}
	if !ok {
		return t, false
	}
	switch {
	case t.Warning >= t.Critical:
		v.errf(path+".warning", "warning %g is not below critical %g: want 0 < warning < critical <= 1", t.Warning, t.Critical)
		return t, false
	case raw.Clear != nil && t.Clear >= t.Warning:
		v.errf(path+".clear", "clear %g is not below warning %g: want 0 <= clear < warning", t.Clear, t.Warning)
		return t, false
	}
	if err := t.Validate(); err != nil {
		v.errf(path, "%v", err)
		return t, false
	}
	return t, true
}

func (v *validator) rule(path string, raw rawRule) Rule {
	var r Rule
	if raw.Name == nil {
		v.errf(path, "name is required")
	} else if s, ok := v.str(path+".name", raw.Name, "a rule name"); ok {
		if strings.TrimSpace(s) == "" {
			v.errf(path+".name", "rule name is empty")
		}
		r.Name = s
	}
	if raw.Resource == nil {
		v.errf(path, "resource is required: want one of %s", resourceList)
	} else if s, ok := v.str(path+".resource", raw.Resource, "a resource name"); ok {
		if s == "oom" {
			r.OOM = true
		} else if res, err := monitor.ParseResource(s); err != nil {
			v.errf(path+".resource", "unknown resource %q: want one of %s", s, resourceList)
		} else {
			r.Resource = res
		}
	}
	switch {
	case raw.State == nil && r.OOM:
		r.State = monitor.Critical
	case raw.State == nil:
		v.errf(path, `state is required: want "warning" or "critical"`)
	default:
		if s, ok := v.str(path+".state", raw.State, `"warning" or "critical"`); ok {
			st, err := monitor.ParseState(s)
			switch {
			case err != nil || st == monitor.Normal:
				v.errf(path+".state", `unknown state %q: want "warning" or "critical"`, s)
			case r.OOM && st != monitor.Critical:
				v.errf(path+".state", `an oom rule fires on the kernel's OOM kills: leave state out or set "critical"`)
			default:
				r.State = st
			}
		}
	}
	if raw.For != nil && r.OOM {
		v.errf(path+".for", "an oom rule fires on each OOM kill, which has no duration: leave for out (a cooldown limits how often it fires)")
	} else if raw.For != nil {
		r.For, _ = v.duration(path+".for", raw.For)
	}
	if raw.Cooldown != nil {
		r.Cooldown, _ = v.duration(path+".cooldown", raw.Cooldown)
	}
	if len(raw.Actions) == 0 {
		v.errf(path, `actions is empty: want at least one of { type = "log" }, "signal", "throttle", "freeze" or "kill"`)
	}
	for i, a := range raw.Actions {
		if act := v.action(fmt.Sprintf("%s.actions[%d]", path, i), a); act != nil {
			r.Actions = append(r.Actions, act)
		}
	}
	return r
}

const resourceList = "cpu, memory, disk, pids, io, cpu_pressure, memory_pressure, io_pressure, oom"

// actionKeys lists the keys each action type takes besides "type".
var actionKeys = map[string][]string{
	"log":      {"level"},
	"signal":   {"signal", "target"},
	"throttle": {"cpu", "memory_high", "io", "until"},
	"freeze":   {"until"},
	"kill":     {"signal", "grace"},
}

func (v *validator) action(path string, raw rawAction) Action {
	if raw.Type == nil {
		v.errf(path, `type is required: want "log", "signal", "throttle", "freeze" or "kill"`)
		return nil
	}
	typ, ok := v.str(path+".type", raw.Type, `"log", "signal", "throttle", "freeze" or "kill"`)
	if !ok {
		return nil
	}
	allowed, known := actionKeys[typ]
	if !known {
		v.errf(path+".type", `unknown action type %q: want "log", "signal", "throttle", "freeze" or "kill"`, typ)
		return nil
	}
	before := len(v.errs)
	present := map[string]bool{
		"level": raw.Level != nil, "signal": raw.Signal != nil, "target": raw.Target != nil,
		"cpu": raw.CPU != nil, "memory_high": raw.MemoryHigh != nil, "io": raw.IO != nil,
		"until": raw.Until != nil, "grace": raw.Grace != nil,
	}
	for _, k := range []string{"level", "signal", "target", "cpu", "memory_high", "io", "until", "grace"} {
		if present[k] && !contains(allowed, k) {
			v.errf(path+"."+k, "a %s action does not take %s: want %s", typ, k, strings.Join(allowed, ", "))
		}
	}
	var act Action
	switch typ {
	case "log":
		a := LogAction{Level: slog.LevelInfo}
		if raw.Level != nil {
			if s, ok := v.str(path+".level", raw.Level, `"debug", "info", "warn" or "error"`); ok {
				switch s {
				case "debug":
					a.Level = slog.LevelDebug
				case "info":
				case "warn":
					a.Level = slog.LevelWarn
				case "error":
					a.Level = slog.LevelError
				default:
					v.errf(path+".level", `unknown level %q: want "debug", "info", "warn" or "error"`, s)
				}
			}
		}
		act = a
	case "signal":
		a := SignalAction{Target: TargetMain}
		if raw.Signal == nil {
			v.errf(path, `signal is required, such as "SIGUSR1"`)
		} else {
			a.Signal, _ = v.signal(path+".signal", raw.Signal)
		}
		if raw.Target != nil {
			if s, ok := v.str(path+".target", raw.Target, `"main", "group" or "cgroup"`); ok {
				switch t := Target(s); t {
				case TargetMain, TargetGroup, TargetCgroup:
					a.Target = t
				default:
					v.errf(path+".target", `unknown target %q: want "main", "group" or "cgroup"`, s)
				}
			}
		}
		act = a
	case "throttle":
		var a ThrottleAction
		if raw.CPU != nil {
			if s, ok := v.str(path+".cpu", raw.CPU, `a CPU share such as "50%"`); ok {
				c, err := cgroup.ParseCPUPercent(s, 0)
				switch {
				case err != nil:
					v.errf(path+".cpu", "%v", err)
				case c.Quota == 0:
					v.errf(path+".cpu", `a throttle lowers limits: want a CPU share such as "50%%", not "max"`)
				default:
					a.CPU = &c
				}
			}
		}
		if raw.MemoryHigh != nil {
			if l, ok := v.size(path+".memory_high", raw.MemoryHigh); ok {
				if l.Max {
					v.errf(path+".memory_high", `a throttle lowers limits: want a size such as "1500M", not "max"`)
				} else {
					a.MemoryHigh = l
				}
			}
		}
		a.IO = v.io(path+".io", raw.IO, true)
		if raw.CPU == nil && raw.MemoryHigh == nil && len(raw.IO) == 0 {
			v.errf(path, "a throttle needs at least one of cpu, memory_high, io")
		}
		a.Until, _ = v.until(path+".until", raw.Until)
		act = a
	case "freeze":
		var a FreezeAction
		a.Until, _ = v.until(path+".until", raw.Until)
		act = a
	case "kill":
		a := KillAction{Signal: unix.SIGTERM, Grace: DefaultGrace}
		if raw.Signal != nil {
			a.Signal, _ = v.signal(path+".signal", raw.Signal)
		}
		if raw.Grace != nil {
			a.Grace, _ = v.duration(path+".grace", raw.Grace)
		}
		act = a
	}
	if len(v.errs) != before {
		return nil
	}
	return act
}

// DefaultGrace is how long a kill action waits between its signal and
// cgroup.kill when the file does not say.
const DefaultGrace = 10 * time.Second

// until reads "clear" (0) or a positive duration; absent is "clear".
func (v *validator) until(path string, val any) (time.Duration, bool) {
	if val == nil {
		return 0, true
	}
	if s, ok := val.(string); ok && s == "clear" {
		return 0, true
	}
	if _, ok := val.(string); !ok {
		v.errf(path, `want "clear" or a duration such as "30s", got %s`, describe(val))
		return 0, false
	}
	s := val.(string)
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.errf(path, `invalid until %q: want "clear" or a positive duration such as "30s"`, s)
		return 0, false
	}
	return d, true
}

// signal reads a signal name, with or without "SIG" ("SIGTERM", "TERM").
func (v *validator) signal(path string, val any) (unix.Signal, bool) {
	s, ok := v.str(path, val, `a signal name such as "SIGTERM"`)
	if !ok {
		return 0, false
	}
	name := s
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		v.errf(path, `unknown signal %q: want a signal name such as "SIGTERM", "SIGINT", "SIGUSR1" or "SIGKILL"`, s)
		return 0, false
	}
	return sig, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

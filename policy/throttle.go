package policy

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// A hold is one throttle or freeze action in force. Holds on the same
// limit (a knob) combine: the lowest value wins, and the value the knob had
// before the first hold is written back after the last one ends.
type hold struct {
	rule     string
	action   int
	resource monitor.Resource // its return to normal ends an until-clear hold
	until    time.Time        // zero: until the resource is normal

	cpu        *cgroup.CPUMax
	memoryHigh *cgroup.Limit
	io         []cgroup.IOLimit
	freeze     bool
}

type knobKind int

const (
	knobCPU knobKind = iota
	knobMemoryHigh
	knobIO
	knobFreeze
)

// knobKey names one limit a hold lowers: cpu.max, memory.high, one
// device's line of io.max, or cgroup.freeze.
type knobKey struct {
	kind knobKind
	dev  cgroup.Device
}

func (k knobKey) String() string {
	switch k.kind {
	case knobCPU:
		return "cpu.max"
	case knobMemoryHigh:
		return "memory.high"
	case knobIO:
		return "io.max " + k.dev.String()
	}
	return "cgroup.freeze"
}

// knobState is a knob under at least one hold.
type knobState struct {
	base    any    // cgroup.CPUMax, cgroup.Limit or cgroup.IOLimit before the first hold
	applied string // the value last written
}

func (h *hold) keys() []knobKey {
	var k []knobKey
	if h.cpu != nil {
		k = append(k, knobKey{kind: knobCPU})
	}
	if h.memoryHigh != nil {
		k = append(k, knobKey{kind: knobMemoryHigh})
	}
	for _, l := range h.io {
		k = append(k, knobKey{kind: knobIO, dev: l.Device})
	}
	if h.freeze {
		k = append(k, knobKey{kind: knobFreeze})
	}
	return k
}

func untilText(t time.Time, now time.Time) any {
	if t.IsZero() {
		return "clear"
	}
	return t.Sub(now).Round(time.Millisecond)
}

func (e *Engine) throttleLocked(r *ruleState, i int, a ThrottleAction, now time.Time) {
	a = a.clone()
	e.holdLocked(&hold{rule: r.Name, action: i, resource: r.clearResource(), until: deadline(now, a.Until),
		cpu: a.CPU, memoryHigh: a.MemoryHigh, io: a.IO}, now)
}

// holdLocked puts h in force. The same action of the same rule firing
// again only moves its deadline.
func (e *Engine) holdLocked(h *hold, now time.Time) {
	kind := "throttle"
	if h.freeze {
		kind = "freeze"
	}
	for _, old := range e.holds {
		if old.rule == h.rule && old.action == h.action {
			old.until = h.until
			e.actionLog(slog.LevelInfo, "policy action: "+kind+" already in force, renewed", nil,
				"rule", h.rule, "action", kind, "until", untilText(h.until, now))
			return
		}
	}
	for _, k := range h.keys() {
		if _, ok := e.knobs[k]; ok {
			continue
		}
		base, err := e.readKnob(k)
		if err != nil {
			e.actionLog(slog.LevelError, "policy action: "+kind, fmt.Errorf("read %s before lowering it: %w", k, err),
				"rule", h.rule, "action", kind)
			return
		}
		e.knobs[k] = &knobState{base: base}
	}
	e.holds = append(e.holds, h)
	for _, k := range h.keys() {
		e.applyKnob(k, h.rule, kind, untilText(h.until, now))
	}
}

// releaseLocked ends h and puts each of its knobs to the lowest remaining
// hold, or back to the value it had before.
func (e *Engine) releaseLocked(h *hold, why string) {
	i := slices.Index(e.holds, h)
	if i < 0 {
		return
	}
	e.holds = slices.Delete(e.holds, i, i+1)
	kind := "throttle"
	if h.freeze {
		kind = "freeze"
	}
	for _, k := range h.keys() {
		e.applyKnob(k, h.rule, kind+" ended: "+why, nil)
	}
}

func (e *Engine) readKnob(k knobKey) (any, error) {
	switch k.kind {
	case knobCPU:
		return e.job.CPUMax()
	case knobMemoryHigh:
		return e.job.MemoryHigh()
	case knobIO:
		return e.job.IOMax(k.dev)
	}
	return false, nil
}

// applyKnob writes k's effective value when it changed.
func (e *Engine) applyKnob(k knobKey, rule, what string, until any) {
	ks := e.knobs[k]
	if ks == nil {
		return
	}
	held := false
	var res cgroup.Resources
	var value string
	frozen := false
	switch k.kind {
	case knobCPU:
		c := ks.base.(cgroup.CPUMax)
		for _, h := range e.holds {
			if h.cpu != nil {
				held = true
				if h.cpu.Rate() < c.Rate() {
					c = *h.cpu
				}
			}
		}
		res.CPU, value = &c, c.String()
	case knobMemoryHigh:
		l := ks.base.(cgroup.Limit)
		for _, h := range e.holds {
			if h.memoryHigh != nil {
				held = true
				l = lower(l, *h.memoryHigh)
			}
		}
		res.MemoryHigh, value = &l, l.String()
	case knobIO:
		l := ks.base.(cgroup.IOLimit)
		l = cgroup.IOLimit{Device: l.Device, ReadBPS: l.ReadBPS, WriteBPS: l.WriteBPS, ReadIOPS: l.ReadIOPS, WriteIOPS: l.WriteIOPS}
		for _, h := range e.holds {
			for _, hl := range h.io {
				if hl.Device != k.dev {
					continue
				}
				held = true
				l.ReadBPS = lowerPtr(l.ReadBPS, hl.ReadBPS)
				l.WriteBPS = lowerPtr(l.WriteBPS, hl.WriteBPS)
				l.ReadIOPS = lowerPtr(l.ReadIOPS, hl.ReadIOPS)
				l.WriteIOPS = lowerPtr(l.WriteIOPS, hl.WriteIOPS)
			}
		}
		res.IO, value = []cgroup.IOLimit{l}, l.String()
	case knobFreeze:
		for _, h := range e.holds {
			held = held || h.freeze
		}
		frozen, value = held, "0"
		if held {
			value = "1"
		}
	}
	if !held {
		delete(e.knobs, k)
		if ks.applied == "" {
			return // released before anything was written
		}
	}
	if value == ks.applied {
		return
	}
	var err error
	if k.kind == knobFreeze {
		err = e.job.Freeze(frozen)
	} else {
		err = e.job.Apply(&res)
	}
	ks.applied = value
	attrs := []any{"rule", rule, "action", what, "file", k.String(), "value", value}
	if until != nil {
		attrs = append(attrs, "until", until)
	}
	msg := "policy action: " + what
	if !held {
		msg = "policy action ended: restored " + k.String()
	}
	e.actionLog(slog.LevelInfo, msg, err, attrs...)
}

// lower returns the lower of two limits; max is the highest.
func lower(a, b cgroup.Limit) cgroup.Limit {
	switch {
	case a.Max:
		return b
	case b.Max:
		return a
	case b.N < a.N:
		return b
	}
	return a
}

func lowerPtr(a, b *cgroup.Limit) *cgroup.Limit {
	switch {
	case b == nil:
		return a
	case a == nil:
		c := *b
		return &c
	}
	l := lower(*a, *b)
	return &l
}

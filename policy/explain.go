package policy

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/monitor"
)

// Explain writes, in plain words, what the policy will do.
func (p *Policy) Explain(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Policy %s", p.file)
	if p.name != "" {
		fmt.Fprintf(&b, " (default job name %q)", p.name)
	}
	b.WriteString("\n\n")
	if w := p.limits.Writes(); len(w) > 0 {
		b.WriteString("Before the command starts, the kernel is told to enforce:\n")
		for _, s := range w {
			fmt.Fprintf(&b, "  %s\n", s)
		}
	} else {
		b.WriteString("No limits: the job only gets its own cgroup.\n")
	}
	if p.mon.Interval > 0 {
		fmt.Fprintf(&b, "\nThe job is sampled every %v", p.mon.Interval)
	} else {
		b.WriteString("\nThe job is sampled at rsup's --interval (default 1s)")
	}
	if p.mon.DiskPath != "" {
		fmt.Fprintf(&b, "; the disk resource is the file system of %s", p.mon.DiskPath)
	}
	b.WriteString(".\n")
	if len(p.thresholds) > 0 {
		b.WriteString("\nThresholds (fractions of the limit, or of the host's capacity without one):\n")
		rs := make([]monitor.Resource, 0, len(p.thresholds))
		for r := range p.thresholds {
			rs = append(rs, r)
		}
		slices.Sort(rs)
		for _, r := range rs {
			t := p.thresholds[r]
			fmt.Fprintf(&b, "  %s: warning from %g, critical from %g", r, t.Warning, t.Critical)
			if t.Clear > 0 {
				fmt.Fprintf(&b, ", back to normal only below %g", t.Clear)
			}
			b.WriteString("\n")
		}
	}
	for _, r := range p.rules {
		fmt.Fprintf(&b, "\nRule %q: ", r.Name)
		if r.OOM {
			b.WriteString("when the kernel's OOM killer kills a process of the job")
		} else {
			fmt.Fprintf(&b, "when %s is %s or worse", r.Resource, r.State)
			if r.For > 0 {
				fmt.Fprintf(&b, " for %v", r.For)
			}
		}
		if r.Cooldown > 0 {
			fmt.Fprintf(&b, ", at most every %v while it lasts", r.Cooldown)
		} else {
			b.WriteString(", once each time it happens")
		}
		b.WriteString(":\n")
		for i, a := range r.Actions {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, describeAction(a))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func describeAction(a Action) string {
	switch a := a.(type) {
	case LogAction:
		return fmt.Sprintf("log it at level %s", strings.ToLower(a.Level.String()))
	case SignalAction:
		who := map[Target]string{TargetMain: "the main process", TargetGroup: "the main process's process group", TargetCgroup: "every process in the job's cgroup"}[a.Target]
		return fmt.Sprintf("send %s to %s", unix.SignalName(a.Signal), who)
	case ThrottleAction:
		until := "until the resource is back to normal"
		if a.Until > 0 {
			until = fmt.Sprintf("for %v", a.Until)
		}
		return fmt.Sprintf("lower %s, %s", throttleList(a), until)
	case FreezeAction:
		until := "until the resource is back to normal"
		if a.Until > 0 {
			until = fmt.Sprintf("for %v", a.Until)
		}
		return "freeze the job " + until
	case KillAction:
		return fmt.Sprintf("send %s to every process of the job, and kill what is left through cgroup.kill after %v", unix.SignalName(a.Signal), a.Grace)
	}
	return a.Type()
}

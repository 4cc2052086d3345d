package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// policyFlags are the flags of the commands that run a policy.
func policyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "policy", EnvVars: []string{"RSUP_POLICY"}, Usage: "apply the TOML policy `FILE`: its limits (limit flags given here win), monitoring settings, thresholds and rules", Category: "Policy"},
		&cli.BoolFlag{Name: "dry-run", EnvVars: []string{"RSUP_DRY_RUN"}, Usage: "with --policy: log every decision of the rules, but send no signal and write no throttle, freeze or kill", Category: "Policy"},
	}
}

// loadPolicy reads --policy, before any cgroup is made: a file that does
// not validate ends rsup with status 2.
func loadPolicy(c *cli.Context) (*policy.Policy, error) {
	if !c.IsSet("policy") {
		if c.Bool("dry-run") {
			return nil, usageError(errors.New("--dry-run needs --policy: without a policy there are no decisions to log"))
		}
		return nil, nil
	}
	p, err := policy.Load(c.String("policy"))
	if err != nil {
		if errors.Is(err, policy.ErrInvalid) {
			return nil, policyError(err)
		}
		return nil, usageError(fmt.Errorf("--policy: %w", err))
	}
	return p, nil
}

// checkPolicyOn refuses a policy that needs what the host's cgroups lack,
// rather than letting its rules never fire or fail when they do.
func checkPolicyOn(h *cgroup.Hierarchy, p *policy.Policy) error {
	if p == nil {
		return nil
	}
	var errs []error
	for _, r := range p.Rules() {
		switch r.Resource {
		case monitor.CPUPressure, monitor.MemoryPressure, monitor.IOPressure:
			if !h.Supports(cgroup.FeaturePSI) {
				errs = append(errs, fmt.Errorf("%s: rule %q watches %s, but this host's cgroups (v1) have no pressure stall information per job: drop the rule, or run on a cgroup v2 host", p.File(), r.Name, r.Resource))
			}
		}
		for _, a := range r.Actions {
			if t, ok := a.(policy.ThrottleAction); ok && t.MemoryHigh != nil && !h.Supports(cgroup.FeatureMemoryHigh) {
				errs = append(errs, fmt.Errorf("%s: rule %q throttles memory_high, which is cgroup v2 only (v1 has no threshold below the hard limit): throttle cpu or io instead, or run on a cgroup v2 host", p.File(), r.Name))
			}
		}
	}
	return errors.Join(errs...)
}

// mergeLimits returns the policy's limits with those given as flags in
// their place. io limits are merged per device and per field.
func mergeLimits(file, flags *cgroup.Resources) *cgroup.Resources {
	if file == nil {
		return flags
	}
	out := *file
	if flags.CPU != nil {
		out.CPU = flags.CPU
	}
	if flags.CPUWeight != nil {
		out.CPUWeight = flags.CPUWeight
	}
	if flags.MemoryMax != nil {
		out.MemoryMax = flags.MemoryMax
	}
	if flags.MemoryHigh != nil {
		out.MemoryHigh = flags.MemoryHigh
	}
	if flags.MemoryLow != nil {
		out.MemoryLow = flags.MemoryLow
	}
	if flags.SwapMax != nil {
		out.SwapMax = flags.SwapMax
	}
	if flags.PidsMax != nil {
		out.PidsMax = flags.PidsMax
	}
	out.IO = slices.Clone(file.IO)
	for _, f := range flags.IO {
		i := slices.IndexFunc(out.IO, func(l cgroup.IOLimit) bool { return l.Device == f.Device })
		if i < 0 {
			out.IO = append(out.IO, f)
			continue
		}
		l := out.IO[i]
		for _, p := range []struct {
			dst **cgroup.Limit
			src *cgroup.Limit
		}{
			{&l.ReadBPS, f.ReadBPS}, {&l.WriteBPS, f.WriteBPS}, {&l.ReadIOPS, f.ReadIOPS}, {&l.WriteIOPS, f.WriteIOPS},
		} {
			if p.src != nil {
				*p.dst = p.src
			}
		}
		out.IO[i] = l
	}
	return &out
}

// pressureTriggers returns a PSI trigger for memory pressure, which wakes
// the monitor for the OOM line and the report, and for every other
// pressure resource a policy watches, so that its rules act on the
// kernel's notice instead of waiting for the interval.
func pressureTriggers(p *policy.Policy, psi bool) []monitor.PSITrigger {
	if !psi {
		return nil // cgroup v1: checkPolicyOn has refused pressure rules
	}
	want := map[monitor.Resource]bool{monitor.MemoryPressure: true}
	if p != nil {
		for _, r := range p.Rules() {
			switch r.Resource {
			case monitor.CPUPressure, monitor.IOPressure:
				want[r.Resource] = true
			}
		}
	}
	var out []monitor.PSITrigger
	for _, r := range []monitor.Resource{monitor.CPUPressure, monitor.MemoryPressure, monitor.IOPressure} {
		if want[r] {
			out = append(out, monitor.PSITrigger{Resource: r, StallUS: 100_000, WindowUS: 1_000_000})
		}
	}
	return out
}

// killedLine is what rsup prints when a policy's kill action ended the
// job.
func killedLine(name string, w *jobWatch) (string, bool) {
	if w.eng == nil {
		return "", false
	}
	rule, sig, ok := w.eng.KilledBy()
	if !ok {
		return "", false
	}
	var grace string
	for _, r := range w.pol.Rules() {
		if r.Name != rule {
			continue
		}
		for _, a := range r.Actions {
			if k, ok := a.(policy.KillAction); ok {
				grace = k.Grace.String()
			}
		}
	}
	return fmt.Sprintf("rsup: job %s: killed by policy rule %q of %s (%s, then %s after %s)",
		name, rule, w.pol.File(), unix.SignalName(sig), w.job.KillMethod(), grace), true
}

func printKilled(name string, w *jobWatch) {
	if line, ok := killedLine(name, w); ok {
		fmt.Fprintln(os.Stderr, line)
	}
}

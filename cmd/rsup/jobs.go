package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

// hierarchyFlags choose the hierarchy that status, stop and gc look at.
func hierarchyFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cgroup-root", EnvVars: []string{"RSUP_CGROUP_ROOT"}, Usage: "the `DIRECTORY` that holds the job cgroups, as given to rsup run"},
		&cli.StringFlag{Name: "cgroup-version", EnvVars: []string{"RSUP_CGROUP_VERSION"}, Value: "auto", Usage: "cgroup `VERSION`: auto, 1 or 2"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Hidden: true},
		&cli.BoolFlag{Name: "evacuate", Hidden: true},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:      "status",
		Usage:     "list the jobs in rsup's hierarchy: running, stale (supervisor gone) or frozen",
		ArgsUsage: "[NAME...]",
		Flags: append(hierarchyFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print the jobs as a JSON array"},
			&cli.DurationFlag{Name: "watch", Usage: "refresh every `INTERVAL` until Ctrl-C"},
		),
		OnUsageError: onUsageError,
		Action:       statusAction,
	}
}

// jobStatus is one line of rsup status, and one object of --json.
type jobStatus struct {
	Name        string            `json:"name"`
	Cgroup      string            `json:"cgroup"`
	State       string            `json:"state"`
	PID         int               `json:"pid,omitempty"`
	Command     []string          `json:"command,omitempty"`
	AgeSeconds  float64           `json:"age_seconds,omitempty"`
	Supervisor  int               `json:"supervisor_pid,omitempty"`
	Procs       int               `json:"processes"`
	CPUPercent  *float64          `json:"cpu_percent,omitempty"`
	MemoryBytes *uint64           `json:"memory_bytes,omitempty"`
	MemoryLimit *uint64           `json:"memory_limit_bytes,omitempty"`
	Pids        *uint64           `json:"pids,omitempty"`
	States      map[string]string `json:"resource_states,omitempty"`
	Policy      string            `json:"policy,omitempty"`
}

func statusAction(c *cli.Context) error {
	h, err := openHierarchy(c, func(string, ...any) {})
	if err != nil {
		return err
	}
	names := c.Args().Slice()
	show := func(w io.Writer) error {
		st, err := collectStatus(h, names)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			if st == nil {
				st = []jobStatus{}
			}
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		}
		return printStatus(w, st)
	}
	every := c.Duration("watch")
	if every <= 0 {
		return show(os.Stdout)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	defer signal.Stop(sigs)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var b strings.Builder
		if err := show(&b); err != nil {
			return err
		}
		// Home the cursor and clear the screen, then draw.
		fmt.Fprint(os.Stdout, "\x1b[H\x1b[2J"+b.String())
		select {
		case <-sigs:
			return nil
		case <-t.C:
		}
	}
}

// collectStatus reads every job, or the named ones. The CPU share is
// measured over 200ms.
func collectStatus(h *cgroup.Hierarchy, names []string) ([]jobStatus, error) {
	infos, err := h.Jobs()
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		var errs []error
		for _, n := range names {
			if !slices.ContainsFunc(infos, func(i cgroup.JobInfo) bool { return i.Name == n }) {
				errs = append(errs, fmt.Errorf("no job %q in %s", n, h.Root()))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, usageError(err)
		}
		infos = slices.DeleteFunc(infos, func(i cgroup.JobInfo) bool { return !slices.Contains(names, i.Name) })
	}
	out := make([]jobStatus, 0, len(infos))
	first := map[string]time.Duration{}
	for _, info := range infos {
		if j, err := h.LoadJob(info.Name); err == nil {
			if u, err := j.CPUUsage(); err == nil {
				first[info.Name] = u
			}
			j.Close()
		}
	}
	start := time.Now()
	if len(first) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	wall := time.Since(start)
	for _, info := range infos {
		s := jobStatus{Name: info.Name, Cgroup: info.Path, Procs: len(info.Procs), PID: info.Meta.PID,
			Command: info.Meta.Command, Policy: info.Meta.Policy, States: map[string]string{}}
		switch {
		case info.Stale():
			s.State = "stale"
		case info.Frozen:
			s.State = "frozen"
		case info.Kept:
			s.State = "kept"
		case !info.Marked:
			s.State = "unmarked"
		default:
			s.State = "running"
		}
		if info.Marked {
			s.Supervisor = info.Owner.PID
		}
		if info.Meta.Started > 0 {
			s.AgeSeconds = time.Since(time.Unix(info.Meta.Started, 0)).Round(time.Second).Seconds()
		}
		j, err := h.LoadJob(info.Name)
		if err != nil {
			continue // gone meanwhile
		}
		if u, err := j.CPUUsage(); err == nil {
			if u0, ok := first[info.Name]; ok && wall > 0 {
				pct := float64(u-u0) / float64(wall) * 100
				s.CPUPercent = &pct
			}
		}
		if n, err := j.MemoryCurrent(); err == nil {
			s.MemoryBytes = &n
		}
		if v, err := j.ReadFile(j.MemoryLimitFile()); err == nil {
			if l, err := cgroup.ParseCount(v); err == nil && !l.Max && l.N < 1<<62 {
				s.MemoryLimit = &l.N
			}
		}
		if v, err := j.ReadFile("pids.current"); err == nil {
			if l, err := cgroup.ParseCount(v); err == nil {
				s.Pids = &l.N
			}
		}
		if s.MemoryBytes != nil && s.MemoryLimit != nil && *s.MemoryLimit > 0 {
			u := float64(*s.MemoryBytes) / float64(*s.MemoryLimit)
			s.States["memory"] = monitor.DefaultThresholds(monitor.Memory).Classify(monitor.Normal, u).String()
		}
		j.Close()
		out = append(out, s)
	}
	return out, nil
}

func printStatus(w io.Writer, st []jobStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tPID\tAGE\tCPU\tMEMORY\tPIDS\tPOLICY\tCOMMAND")
	for _, s := range st {
		pid, age, cpu, mem, pids := "-", "-", "-", "-", "-"
		if s.PID > 0 {
			pid = fmt.Sprint(s.PID)
		}
		if s.AgeSeconds > 0 {
			age = (time.Duration(s.AgeSeconds) * time.Second).String()
		}
		if s.CPUPercent != nil {
			cpu = fmt.Sprintf("%.0f%%", *s.CPUPercent)
		}
		if s.MemoryBytes != nil {
			mem = humanBytes(*s.MemoryBytes)
			if s.MemoryLimit != nil {
				mem += "/" + humanBytes(*s.MemoryLimit)
			}
			if st := s.States["memory"]; st != "" && st != "normal" {
				mem += " (" + st + ")"
			}
		}
		if s.Pids != nil {
			pids = fmt.Sprint(*s.Pids)
		}
		policy := s.Policy
		if policy == "" {
			policy = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.State, pid, age, cpu, mem, pids, policy, strings.Join(s.Command, " "))
	}
	return tw.Flush()
}

func stopCommand() *cli.Command {
	return &cli.Command{
		Name:      "stop",
		Usage:     "end jobs the way a policy kill does: a signal to every process, then a kill of the cgroup after a grace period",
		ArgsUsage: "NAME...",
		Description: "A job whose supervisor still runs is ended through its cgroup; its rsup then sees the command exit, " +
			"reports it and removes the cgroup. A stale job (its supervisor gone) is removed by stop itself.",
		Flags: append(hierarchyFlags(),
			&cli.StringFlag{Name: "signal", Value: "SIGTERM", Usage: "`SIGNAL` sent first"},
			&cli.DurationFlag{Name: "grace", Value: 10 * time.Second, Usage: "how long to wait before killing what is left"},
		),
		OnUsageError: onUsageError,
		Action:       stopAction,
	}
}

func stopAction(c *cli.Context) error {
	names := c.Args().Slice()
	if len(names) == 0 {
		return usageError(errors.New("stop: missing NAME (usage: rsup stop [--signal SIG] [--grace DUR] NAME...)"))
	}
	sig := unix.SignalNum(c.String("signal"))
	if sig == 0 {
		sig = unix.SignalNum("SIG" + c.String("signal"))
	}
	if sig == 0 {
		return usageError(fmt.Errorf("invalid value %q for --signal: want a signal name such as SIGTERM", c.String("signal")))
	}
	if c.Duration("grace") < 0 {
		return usageError(fmt.Errorf("invalid value %v for --grace: must not be negative", c.Duration("grace")))
	}
	h, err := openHierarchy(c, func(string, ...any) {})
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		info, err := h.JobInfo(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			continue
		}
		j, err := h.LoadJob(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			continue
		}
		n, killed, err := j.End(sig, c.Duration("grace"))
		how := "every process exited"
		if killed {
			how = "what was left was killed through " + j.KillMethod()
		}
		if err != nil {
			j.Close()
			errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
			continue
		}
		if !info.Marked && waitGone(h, name, 2*time.Second) {
			// Without owner marks (cgroup v1) a supervisor may be
			// there: it has removed the cgroup.
			j.Close()
			how += "; its rsup removed the cgroup"
		} else if info.Stale() || info.Kept || !info.Marked {
			// No supervisor will remove it.
			if err := j.Remove(5 * time.Second); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", name, err))
				continue
			}
			how += "; removed its cgroup"
		} else {
			j.Close()
			how += fmt.Sprintf("; its rsup (pid %d) removes the cgroup", info.Owner.PID)
		}
		fmt.Fprintf(os.Stderr, "rsup: stopped job %s: sent %s to %d process(es); %s\n", name, unix.SignalName(sig), n, how)
	}
	return errors.Join(errs...)
}

// waitGone waits up to d for the job cgroup name to disappear.
func waitGone(h *cgroup.Hierarchy, name string, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := h.LoadJob(name)
		if err != nil {
			return true
		}
		j.Close()
	}
	return false
}

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "remove the jobs of rsup processes that are gone (killed, crashed): kill what is left in them and remove their cgroups",
		Description: "A job is a leftover when its owner mark names a pid and start time that no live process has (checked through a pidfd). " +
			"Jobs of a live rsup, and jobs kept with rsup track --keep, are never touched. " +
			"On cgroup v1 there are no owner marks, so gc lists what it cannot judge and touches nothing.",
		Flags:        append(hierarchyFlags(), &cli.BoolFlag{Name: "dry-run", Usage: "say what would be removed, and remove nothing"}),
		OnUsageError: onUsageError,
		Action:       gcAction,
	}
}

func gcAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageError(errors.New("gc takes no arguments"))
	}
	h, err := openHierarchy(c, func(string, ...any) {})
	if err != nil {
		return err
	}
	infos, err := h.Jobs()
	if err != nil {
		return err
	}
	var errs []error
	removed, live := 0, 0
	for _, info := range infos {
		switch {
		case !info.Marked:
			fmt.Fprintf(os.Stderr, "rsup gc: %s: no owner mark, left alone (remove it with rsup stop %s)\n", info.Path, info.Name)
			continue
		case !info.Stale():
			live++
			continue
		}
		what := fmt.Sprintf("job %s (rsup pid %d gone, %d process(es) left", info.Name, info.Owner.PID, len(info.Procs))
		if info.Frozen {
			what += ", frozen"
		}
		what += ")"
		if c.Bool("dry-run") {
			fmt.Fprintf(os.Stderr, "rsup gc: would remove %s\n", what)
			continue
		}
		n, err := h.Collect(info.Name)
		if err != nil {
			errs = append(errs, fmt.Errorf("gc %s: %w", info.Name, err))
			continue
		}
		removed++
		fmt.Fprintf(os.Stderr, "rsup gc: removed %s, killed %d\n", what, n)
	}
	fmt.Fprintf(os.Stderr, "rsup gc: %d leftover job(s) removed, %d live job(s) untouched\n", removed, live)
	return errors.Join(errs...)
}

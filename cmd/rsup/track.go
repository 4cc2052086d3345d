package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/procfs"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/policy"
	"github.com/rsup/rsup/supervisor"
)

func trackCommand() *cli.Command {
	return &cli.Command{
		Name:      "track",
		Usage:     "adopt running processes into a new job cgroup under the given limits",
		ArgsUsage: "PID [PID...]",
		Description: "Moves each process (all its threads) into a new job cgroup whose limits the kernel enforces, and " +
			"supervises until every adopted process has exited; then removes the cgroup. Ctrl-C or SIGTERM stops " +
			"supervising: the processes go back to the cgroups they came from, or stay fenced with --keep.\n\n" +
			"Moving a process does not move memory already charged to its old cgroup, nor its past cpu and io usage: " +
			"the job's memory.current starts near zero and counts only what the process allocates from then on.\n\n" +
			"A process that is not rsup's child has an exit status rsup cannot learn; track reports the exit, not a status.",
		Flags: append(append(jobFlags("the first process's name and a random suffix"),
			&cli.BoolFlag{Name: "children", EnvVars: []string{"RSUP_CHILDREN"}, Usage: "also adopt every descendant of each PID"},
			&cli.BoolFlag{Name: "keep", EnvVars: []string{"RSUP_KEEP"}, Usage: "when stopped, leave the processes fenced in the job cgroup with their limits"},
			&cli.BoolFlag{Name: "no-move", EnvVars: []string{"RSUP_NO_MOVE"}, Usage: "monitor only: move nothing, write no limit, just supervise from /proc (nothing is enforced)"},
		), append(append(append(limitFlags(), monitorFlags()...), metricsFlags()...), policyFlags()...)...),
		OnUsageError: onUsageError,
		Action:       trackAction,
	}
}

// stopSignals end tracking.
var stopSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP}

func trackAction(c *cli.Context) error {
	pids, err := parsePids(c.Args().Slice())
	if err != nil {
		return usageError(err)
	}
	noMove := c.Bool("no-move")
	if noMove {
		var set []string
		for _, f := range limitFlags() {
			if c.IsSet(f.Names()[0]) {
				set = append(set, "--"+f.Names()[0])
			}
		}
		for _, f := range []string{"children", "keep", "name", "cgroup-root", "evacuate", "write-cap", "report", "record", "warn", "crit", "clear", "policy", "dry-run", "metrics-addr", "metrics-textfile"} {
			if c.IsSet(f) {
				set = append(set, "--"+f)
			}
		}
		if len(set) > 0 {
			return usageError(fmt.Errorf("--no-move moves nothing and enforces nothing, so %v cannot apply: drop them, or drop --no-move", set))
		}
	}
	pol, err := loadPolicy(c)
	if err != nil {
		return err
	}
	res, err := resourcesFromFlags(c, "/sys")
	if err != nil {
		return usageError(err)
	}
	if pol != nil {
		res = mergeLimits(pol.Limits(), res)
	}
	logf := verboseLogger(c)
	watch, err := watchSettingsFromFlags(c, pol)
	if err != nil {
		return err
	}
	ms, err := metricsSettingsFromFlags(c)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, stopSignals...)
	defer signal.Stop(sigs)

	proc, err := procfs.NewFS("/proc")
	if err != nil {
		return usageError(err)
	}
	var h *cgroup.Hierarchy
	if !noMove {
		if h, err = openHierarchy(c, logf); err != nil {
			return err
		}
		if err := checkPolicyOn(h, pol); err != nil {
			return policyError(fmt.Errorf("%w: %w", policy.ErrInvalid, err))
		}
		if c.Bool("keep") && !h.Supports(cgroup.FeatureMarks) {
			return usageError(errors.New("--keep: this host's cgroups (v1) keep no extended attributes, so a kept job could not be told from a leftover of a crashed rsup; drop --keep"))
		}
	}
	targets, err := openTargets(proc, h, pids)
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	if err != nil {
		return usageError(err)
	}

	if noMove {
		for _, t := range targets {
			fmt.Fprintf(os.Stderr, "rsup: tracking pid %d (%s) without moving it (--no-move): no limit is enforced, rsup only watches it\n", t.PID, t.Comm)
		}
		tr := supervisor.NewTracker(supervisor.TrackConfig{Targets: targets, Signals: sigs, Proc: proc, Logf: stderrf})
		defer tr.Close()
		sig, err := tr.Wait(c.Context)
		if err != nil {
			return err
		}
		if sig != nil {
			fmt.Fprintf(os.Stderr, "rsup: stopped tracking (%v); nothing had been moved\n", sig)
		}
		return nil
	}

	name := c.String("name")
	if name == "" {
		name = defaultName(targets[0].Comm)
		if pol != nil && pol.Name() != "" {
			name = defaultName(pol.Name())
		}
	}
	if err := cgroup.ValidateName(name); err != nil {
		return usageError(fmt.Errorf("--name: %w", err))
	}
	job, err := h.NewJob(name, res)
	if err != nil {
		return usageError(err)
	}
	logf("job %s in %s, limits: %s", name, job.Path(), describe(job, res))
	tr := supervisor.NewTracker(supervisor.TrackConfig{
		Targets: targets, Hierarchy: h, Job: job, Children: c.Bool("children"), Keep: c.Bool("keep"),
		Signals: sigs, Proc: proc, Logf: logf,
	})
	defer tr.Close()
	moved, err := tr.Adopt()
	if err != nil {
		_, rerr := tr.Release()
		return usageError(errors.Join(err, rerr, job.Remove(5*time.Second)))
	}
	current := "unknown"
	if n, err := job.MemoryCurrent(); err == nil {
		current = humanBytes(n)
	}
	for _, t := range tr.Result().Adopted {
		fmt.Fprintf(os.Stderr, "rsup: adopted pid %d (%s, %d thread(s)) from %s into job %s; its VmRSS of %s stays charged to %s\n",
			t.PID, t.Comm, t.Threads, t.Origin, name, humanBytes(t.RSS), t.Origin)
	}
	fmt.Fprintf(os.Stderr, "rsup: job %s (%s): %d process(es) moved; the kernel does not move memory already charged, nor past cpu and io usage, so its memory.current starts at %s\n",
		name, job.Path(), moved, current)
	if c.Bool("children") {
		fmt.Fprintf(os.Stderr, "rsup: --children: adopted %d process(es) in all, %d of them moved\n", len(tr.Result().Adopted), moved)
	}

	w, err := watchJob(watch, job)
	if err == nil && w.pjob != nil {
		for _, t := range targets {
			if err = w.pjob.AddMainPidfd(t.PID, t.PidFD()); err != nil {
				w.close()
				break
			}
		}
	}
	if err == nil {
		if err = w.start(c.Context); err != nil {
			w.close()
		}
	}
	var metrics *jobMetrics
	if err == nil {
		if metrics, err = startMetrics(c.Context, ms, name, w); err != nil {
			w.close()
		}
	}
	if err != nil {
		return usageError(errors.Join(err, teardown(tr, job)))
	}
	defer metrics.finish()
	start := time.Now()
	meta := cgroup.JobMeta{PID: targets[0].PID, Command: []string{targets[0].Comm}, Started: start.Unix()}
	if pol != nil {
		meta.Policy = pol.File()
	}
	if err := job.SetMeta(meta); err != nil {
		logf("job %s: %v (rsup status will show less)", name, err)
	}
	sig, werr := tr.Wait(c.Context)
	w.finish()
	if cerr := w.close(); cerr != nil {
		fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", name, cerr)
	}
	if watch.report != "" {
		rep := w.report(job, res, time.Since(start))
		for _, t := range tr.Result().Adopted {
			rep.PIDs = append(rep.PIDs, t.PID)
		}
		if err := writeReport(watch.report, rep); err != nil {
			fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", name, err)
		}
	}
	result := tr.Result()
	if result.OOMKills > 0 {
		// Whether the adopted process died of it is not knowable here.
		fmt.Fprintln(os.Stderr, oomLine(name, job.MemoryLimitFile(), res.MemoryMax, result.OOMKills, false))
	}
	printKilled(name, w)
	if werr != nil {
		return errors.Join(werr, teardown(tr, job))
	}
	if sig == nil {
		if err := job.Remove(10 * time.Second); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "rsup: every tracked process has exited (exit statuses are unknown to rsup, which is not their parent); removed job cgroup %s\n", job.Path())
		return nil
	}
	if c.Bool("keep") {
		if err := job.Keep(); err != nil {
			return err
		}
		job.Close()
		fmt.Fprintf(os.Stderr, "rsup: stopped tracking (%v); the processes stay fenced with their limits in %s (--keep)\n", sig, job.Path())
		return nil
	}
	if err := teardown(tr, job); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "rsup: stopped tracking (%v): returned %d process(es) to their original cgroups and removed job cgroup %s\n", sig, result.Returned, job.Path())
	return nil
}

// teardown returns the processes to their cgroups and removes the job.
func teardown(tr *supervisor.Tracker, job *cgroup.Job) error {
	_, err := tr.Release()
	if err != nil {
		job.Close()
		return fmt.Errorf("%w; job cgroup %s is left in place", err, job.Path())
	}
	if err := job.WaitEmpty(5*time.Second, nil); err != nil {
		job.Close()
		return err
	}
	return job.Remove(5 * time.Second)
}

func stderrf(format string, a ...any) { fmt.Fprintf(os.Stderr, "rsup: "+format+"\n", a...) }

func parsePids(args []string) ([]int, error) {
	if len(args) == 0 {
		return nil, errors.New("track: missing PID (usage: rsup track [flags] PID [PID...])")
	}
	var pids []int
	for _, a := range args {
		p, err := strconv.Atoi(a)
		if err != nil || p <= 0 {
			return nil, fmt.Errorf("track: %q is not a process id", a)
		}
		if slices.Contains(pids, p) {
			return nil, fmt.Errorf("track: pid %d is given twice", p)
		}
		pids = append(pids, p)
	}
	return pids, nil
}

// openTargets pins each pid and checks that rsup may adopt it. h is nil
// for monitor-only tracking.
func openTargets(proc procfs.FS, h *cgroup.Hierarchy, pids []int) ([]*supervisor.Target, error) {
	var out []*supervisor.Target
	for _, pid := range pids {
		t, err := supervisor.OpenTarget(proc, pid)
		if err != nil {
			return out, err
		}
		out = append(out, t)
		if err := supervisor.CheckTarget(proc, t); err != nil {
			return out, err
		}
		if h == nil {
			continue
		}
		origin, err := h.CgroupOf(pid)
		if err != nil {
			return out, fmt.Errorf("read the cgroup of pid %d: %w", pid, err)
		}
		if !t.Alive() {
			return out, fmt.Errorf("pid %d exited while rsup was checking it", pid)
		}
		t.Origin = origin
		if job, o, ok := h.JobOwning(origin); ok {
			return out, fmt.Errorf("pid %d (%s) is already in job cgroup %s, supervised by the rsup running as pid %d", pid, t.Comm, job, o.PID)
		}
		if err := h.CanMove(origin, nil); err != nil {
			return out, fmt.Errorf("cannot move pid %d (%s): %w", pid, t.Comm, err)
		}
	}
	return out, nil
}

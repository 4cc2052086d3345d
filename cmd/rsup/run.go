package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/internal/crashtest"
	"github.com/rsup/rsup/policy"
	"github.com/rsup/rsup/supervisor"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command in a new job cgroup under the given limits",
		ArgsUsage: "[--] COMMAND [ARG...]",
		Description: "The limits are written to the job cgroup before the command starts, and the command is born inside it. " +
			"When the command exits, every process it left in the cgroup is killed and the cgroup is removed. " +
			"rsup exits with the command's status (128+N if signal N killed it; 125 if rsup failed before starting it, " +
			"126 if it could not be executed, 127 if it was not found).\n\n" +
			"Sizes and rates: bytes, or K M G T (1024-based), KiB MiB GiB TiB (1024-based), KB MB GB TB (1000-based), or max.",
		Flags: append(append(jobFlags("the command's name and a random suffix"),
			&cli.BoolFlag{Name: "use-shim", EnvVars: []string{"RSUP_USE_SHIM"}, Usage: "start the command through rsup's re-exec shim, which joins the cgroup and then execs, instead of clone3 into the cgroup (rsup falls back to it by itself where clone3 is refused)"},
		), append(append(append(limitFlags(), monitorFlags()...), metricsFlags()...), policyFlags()...)...),
		OnUsageError: onUsageError,
		Action:       runAction,
	}
}

func runAction(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageError(errors.New("run: missing COMMAND (usage: rsup run [flags] -- COMMAND [ARG...])"))
	}
	pol, err := loadPolicy(c)
	if err != nil {
		return err
	}
	res, err := resourcesFromFlags(c, "/sys")
	if err != nil {
		return usageError(err)
	}
	name := c.String("name")
	if name == "" {
		name = defaultName(args[0])
	}
	if pol != nil {
		res = mergeLimits(pol.Limits(), res)
		if pol.Name() != "" && !c.IsSet("name") {
			name = defaultName(pol.Name())
		}
	}
	if err := cgroup.ValidateName(name); err != nil {
		return usageError(fmt.Errorf("--name: %w", err))
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

	// From here on a signal must not kill rsup with a job cgroup half
	// made: it is caught, and the supervisor acts on it.
	sigs := make(chan os.Signal, 64)
	signal.Notify(sigs, supervisor.Forwarded...)
	defer signal.Stop(sigs)

	h, err := openHierarchy(c, logf)
	if err != nil {
		return err
	}
	if err := checkPolicyOn(h, pol); err != nil {
		return policyError(fmt.Errorf("%w: %w", policy.ErrInvalid, err))
	}
	job, err := h.NewJob(name, res)
	if err != nil {
		return usageError(err)
	}
	crashtest.At("mkdir")
	logf("job %s in %s, limits: %s", name, job.Path(), describe(job, res))
	w, err := watchJob(watch, job)
	if err != nil {
		return usageError(errors.Join(err, job.Remove(time.Second)))
	}
	if err := w.start(c.Context); err != nil {
		w.close()
		return usageError(errors.Join(err, job.Remove(time.Second)))
	}
	metrics, err := startMetrics(c.Context, ms, name, w)
	if err != nil {
		w.close()
		return usageError(errors.Join(err, job.Remove(time.Second)))
	}
	defer metrics.finish()

	result, err := supervisor.Run(c.Context, supervisor.Config{
		Started: func(pid int) {
			meta := cgroup.JobMeta{PID: pid, Command: args, Started: time.Now().Unix()}
			if pol != nil {
				meta.Policy = pol.File()
			}
			if err := job.SetMeta(meta); err != nil {
				logf("job %s: %v (rsup status will show less)", name, err)
			}
			crashtest.At("start")
			if w.pjob != nil {
				if err := w.pjob.AddMain(pid); err != nil {
					fmt.Fprintf(os.Stderr, "rsup: job %s: %v; policy signals to main and group reach nobody\n", name, err)
				}
			}
		},
		Exited:         w.finish,
		Args:           args,
		Stdin:          os.Stdin,
		Stdout:         os.Stdout,
		Stderr:         os.Stderr,
		Job:            job,
		Subreaper:      true,
		ForwardSignals: true,
		Signals:        sigs,
		UseShim:        c.Bool("use-shim"),
		Logf:           logf,
	})
	w.finish()
	if cerr := w.close(); cerr != nil {
		fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", name, cerr)
	}
	if result == nil {
		return err
	}
	if watch.report != "" {
		rep := w.report(job, res, result.Wall)
		rep.Command = args
		st := result.Status()
		rep.ExitStatus = &st
		if result.Signal != 0 {
			rep.Signal = unix.SignalName(result.Signal)
		}
		rep.LeftoversKilled = result.Leftovers
		if result.MemoryPeak != nil {
			rep.MemoryPeakBytes = result.MemoryPeak
		}
		if result.CPU != nil {
			cpu := result.CPU.Seconds()
			rep.CPUSeconds = &cpu
		}
		if err := writeReport(watch.report, rep); err != nil {
			fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", name, err)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "rsup: job %s: %v\n", name, err)
	}
	if result.OOMKills > 0 {
		fmt.Fprintln(os.Stderr, oomLine(name, job.MemoryLimitFile(), res.MemoryMax, result.OOMKills, result.Signal == unix.SIGKILL))
	}
	printKilled(name, w)
	logf("job %s: %s", name, summary(result))
	return exitWith(result.Status())
}

// jobFlags are the flags of every command that makes a job cgroup.
func jobFlags(defaultName string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", EnvVars: []string{"RSUP_NAME"}, Usage: "job `NAME`, also the job cgroup's directory name (default: " + defaultName + ")"},
		&cli.StringFlag{Name: "cgroup-root", EnvVars: []string{"RSUP_CGROUP_ROOT"}, Usage: "cgroup v2 `DIRECTORY` that holds the job cgroups (default: <cgroup2 mount>/rsup); give a delegated subtree when not root. On cgroup v1, a path relative to rsup's own cgroup in each hierarchy (default: rsup)"},
		&cli.StringFlag{Name: "cgroup-version", EnvVars: []string{"RSUP_CGROUP_VERSION"}, Value: "auto", Usage: "cgroup `VERSION` to enforce limits with: auto (v2 where it has the controllers, else v1), 1 or 2"},
		&cli.BoolFlag{Name: "evacuate", EnvVars: []string{"RSUP_EVACUATE"}, Usage: "move other processes out of a cgroup namespace root into <root>/init when controllers must be enabled there (as in a privileged container)"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, EnvVars: []string{"RSUP_VERBOSE"}, Usage: "report the job cgroup, its limits and a summary on stderr"},
	}
}

func verboseLogger(c *cli.Context) func(string, ...any) {
	if !c.Bool("verbose") {
		return func(string, ...any) {}
	}
	return func(format string, a ...any) { fmt.Fprintf(os.Stderr, "rsup: "+format+"\n", a...) }
}

// openHierarchy opens rsup's cgroup hierarchy as the flags say.
func openHierarchy(c *cli.Context, logf func(string, ...any)) (*cgroup.Hierarchy, error) {
	version := 0
	switch v := c.String("cgroup-version"); v {
	case "auto":
	case "1", "2":
		version = int(v[0] - '0')
	default:
		return nil, usageError(fmt.Errorf("invalid value %q for --cgroup-version: want auto, 1 or 2", v))
	}
	h, err := cgroup.Open(cgroup.Config{Root: c.String("cgroup-root"), Evacuate: c.Bool("evacuate"), Version: version})
	if err != nil {
		return nil, usageError(err)
	}
	if m := h.Moved; m.Self != "" || len(m.Evacuated) > 0 {
		logf("moved itself into %s and %d other process(es) into %s so that controllers could be enabled",
			m.Self, len(m.Evacuated), filepath.Join(h.Root(), cgroup.EvacuatedLeaf))
	}
	return h, nil
}

// oomLine is the one line rsup prints when the kernel's OOM killer struck
// in a job: killed says whether the job's main process died of it.
func oomLine(name, file string, memoryMax *cgroup.Limit, kills uint64, killed bool) string {
	limit := file + "=" + limitText(memoryMax)
	if memoryMax == nil {
		limit = file + "=max (no limit of its own: the host ran out of memory)"
	}
	if killed {
		return fmt.Sprintf("rsup: job %s: killed by the kernel OOM killer at %s, oom_kill=%d", name, limit, kills)
	}
	return fmt.Sprintf("rsup: job %s: the kernel OOM killer killed %d of its processes at %s, oom_kill=%d", name, kills, limit, kills)
}

// defaultName is the command's base name and a short random suffix.
func defaultName(cmd string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	base := filepath.Base(cmd)
	name := base + "-" + hex.EncodeToString(b[:])
	if cgroup.ValidateName(name) != nil || len(base) > 64 {
		name = "job-" + hex.EncodeToString(b[:])
	}
	return name
}

func limitText(l *cgroup.Limit) string {
	if l == nil {
		return "max"
	}
	if l.Max {
		return "max"
	}
	return fmt.Sprintf("%s (%d bytes)", humanBytes(l.N), l.N)
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".") + []string{"", "K", "M", "G", "T"}[i]
}

func describe(j *cgroup.Job, r *cgroup.Resources) string {
	w := j.Writes(r)
	if len(w) == 0 {
		return "none"
	}
	return strings.Join(w, " ")
}

func summary(r *supervisor.Result) string {
	var b strings.Builder
	if r.Signal != 0 {
		fmt.Fprintf(&b, "killed by signal %d (%v), status %d", int(r.Signal), r.Signal, r.Status())
	} else {
		fmt.Fprintf(&b, "exit status %d", r.ExitCode)
	}
	fmt.Fprintf(&b, ", wall %.3fs", r.Wall.Seconds())
	if r.CPU != nil {
		fmt.Fprintf(&b, ", cpu %.3fs", r.CPU.Seconds())
	}
	if r.MemoryPeak != nil {
		fmt.Fprintf(&b, ", memory.peak %d", *r.MemoryPeak)
	}
	fmt.Fprintf(&b, ", oom_kill %d, leftovers killed %d, signals forwarded %d", r.OOMKills, r.Leftovers, r.Forwarded)
	if r.Shim {
		b.WriteString(", started through shim")
	}
	return b.String()
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// monitorFlags are the flags of the commands that watch a job.
func monitorFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "interval", EnvVars: []string{"RSUP_INTERVAL"}, Value: time.Second, Usage: "sample the job every `DURATION` (the kernel's own events wake rsup in between)", Category: "Monitoring"},
		&cli.StringSliceFlag{Name: "warn", EnvVars: []string{"RSUP_WARN"}, Usage: "warning threshold `RESOURCE=FRACTION` (cpu, memory, disk, pids, io, cpu_pressure, memory_pressure, io_pressure); repeatable", Category: "Monitoring"},
		&cli.StringSliceFlag{Name: "crit", EnvVars: []string{"RSUP_CRIT"}, Usage: "critical threshold `RESOURCE=FRACTION`; repeatable", Category: "Monitoring"},
		&cli.StringSliceFlag{Name: "clear", EnvVars: []string{"RSUP_CLEAR"}, Usage: "leave warning only below `RESOURCE=FRACTION` (hysteresis); repeatable", Category: "Monitoring"},
		&cli.StringFlag{Name: "log-format", EnvVars: []string{"RSUP_LOG_FORMAT"}, Value: "text", Usage: "`FORMAT` of state-change logs on stderr: text or json", Category: "Monitoring"},
		&cli.StringFlag{Name: "report", EnvVars: []string{"RSUP_REPORT"}, Usage: "write a JSON summary of the job to `FILE` when it ends (- for stderr)", Category: "Monitoring"},
		&cli.StringFlag{Name: "record", EnvVars: []string{"RSUP_RECORD"}, Usage: "append every sample to `FILE` as one JSON line", Category: "Monitoring"},
		&cli.StringFlag{Name: "disk-path", EnvVars: []string{"RSUP_DISK_PATH"}, Value: ".", Usage: "`PATH` whose file system is the disk resource", Category: "Monitoring"},
		&cli.StringFlag{Name: "write-cap", EnvVars: []string{"RSUP_WRITE_CAP"}, Usage: "disk limit: kill the job once it has written `SIZE` bytes (counted from io.stat; enforced by rsup, not the kernel)", Category: "Limits"},
	}
}

// thresholdsFromFlags reads --warn, --crit and --clear into thresholds per
// resource, starting from base (a policy's) and the defaults.
func thresholdsFromFlags(c flagValues, base map[monitor.Resource]monitor.Thresholds) (map[monitor.Resource]monitor.Thresholds, error) {
	out := map[monitor.Resource]monitor.Thresholds{}
	for r, t := range base {
		out[r] = t
	}
	var errs []error
	for _, flag := range []string{"warn", "crit", "clear"} {
		for _, v := range c.StringSlice(flag) {
			name, frac, ok := strings.Cut(v, "=")
			r, err := monitor.ParseResource(name)
			if !ok || err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for --%s: want RESOURCE=FRACTION with RESOURCE one of cpu, memory, disk, pids, io, cpu_pressure, memory_pressure, io_pressure", v, flag))
				continue
			}
			f, err := strconv.ParseFloat(frac, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for --%s: %q is not a fraction such as 0.8", v, flag, frac))
				continue
			}
			t, seen := out[r]
			if !seen {
				t = monitor.DefaultThresholds(r)
			}
			switch flag {
			case "warn":
				t.Warning = f
			case "crit":
				t.Critical = f
			case "clear":
				t.Clear = f
			}
			out[r] = t
		}
	}
	for r, t := range out {
		if err := t.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("thresholds of %s: %w", r, err))
		}
	}
	return out, errors.Join(errs...)
}

func newLogger(format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, nil)), nil
	}
	return nil, fmt.Errorf("invalid value %q for --log-format: want text or json", format)
}

// jobWatch is the monitor of one job and the files it writes.
type jobWatch struct {
	m        *monitor.Monitor
	pol      *policy.Policy
	eng      *policy.Engine
	pjob     *policy.CgroupJob
	job      *cgroup.Job
	dryRun   bool
	record   *os.File
	recordMu sync.Mutex
	recErr   error
	engErr   error
	finished bool
}

// watchSettings are the monitoring flags, checked before any cgroup is
// made.
type watchSettings struct {
	interval   time.Duration
	thresholds map[monitor.Resource]monitor.Thresholds
	writeCap   uint64
	logger     *slog.Logger
	diskPath   string
	record     string
	report     string
	history    int
	pol        *policy.Policy
	dryRun     bool
}

func watchSettingsFromFlags(c *cli.Context, pol *policy.Policy) (*watchSettings, error) {
	s := &watchSettings{interval: c.Duration("interval"), diskPath: c.String("disk-path"), record: c.String("record"), report: c.String("report"),
		pol: pol, dryRun: c.Bool("dry-run")}
	var base map[monitor.Resource]monitor.Thresholds
	if pol != nil {
		// The policy's settings apply where no flag is given.
		m := pol.Monitor()
		if m.Interval > 0 && !c.IsSet("interval") {
			s.interval = m.Interval
		}
		if m.DiskPath != "" && !c.IsSet("disk-path") {
			s.diskPath = m.DiskPath
		}
		s.history = m.History
		base = pol.Thresholds()
	}
	var errs []error
	var err error
	if s.thresholds, err = thresholdsFromFlags(c, base); err != nil {
		errs = append(errs, err)
	}
	if c.IsSet("write-cap") {
		l, err := cgroup.ParseBytes(c.String("write-cap"))
		if err != nil || l.Max || l.N == 0 {
			errs = append(errs, fmt.Errorf("invalid value %q for --write-cap: want a positive size", c.String("write-cap")))
		}
		s.writeCap = l.N
	}
	if s.interval <= 0 {
		errs = append(errs, fmt.Errorf("invalid value %v for --interval: must be positive", s.interval))
	}
	if s.logger, err = newLogger(c.String("log-format")); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat(s.diskPath); err != nil {
		errs = append(errs, fmt.Errorf("invalid value %q for --disk-path: %w", s.diskPath, err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError(err)
	}
	return s, nil
}

// watchJob prepares the monitoring of job, and the policy engine when
// there is a policy.
func watchJob(s *watchSettings, job *cgroup.Job) (*jobWatch, error) {
	logger := s.logger.With("job", job.Name())
	writeCap := s.writeCap
	m, err := monitor.New(monitor.Options{
		Interval: s.interval, Cgroup: job.Path(), CgroupV1: job.V1Dirs(), DiskPath: s.diskPath, Events: true, History: s.history,
		PSITriggers: pressureTriggers(s.pol, job.Supports(cgroup.FeaturePSI)),
		Logger:      logger,
	})
	if err != nil {
		return nil, fmt.Errorf("monitor job %s: %w", job.Name(), err)
	}
	for r, t := range s.thresholds {
		if err := m.SetThresholds(r, t); err != nil {
			m.Close()
			return nil, err
		}
	}
	if writeCap > 0 {
		if err := m.SetLimits(job, monitor.Limits{DiskWrite: writeCap}); err != nil {
			m.Close()
			return nil, err
		}
	}
	w := &jobWatch{m: m, pol: s.pol, dryRun: s.dryRun, job: job}
	if s.pol != nil {
		w.pjob = policy.NewCgroupJob(job, "/proc")
		w.eng = policy.NewEngine(s.pol, w.pjob, policy.EngineOptions{Logger: logger.With("policy", s.pol.File()), DryRun: s.dryRun, Thresholds: m.Thresholds})
	}
	if s.record != "" {
		f, err := os.OpenFile(s.record, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("--record: %w", err)
		}
		w.record = f
	}
	m.OnSample(func(us []monitor.Usage) {
		w.recordSample(job.Name(), us)
		if w.eng != nil && len(us) > 0 {
			w.eng.Observe(policy.Observation{Time: us[0].Timestamp, Usages: us, OOMKills: m.OOMKills()})
		}
	})
	return w, nil
}

// start starts the policy engine, then the monitor.
func (w *jobWatch) start(ctx context.Context) error {
	if w.eng != nil {
		w.eng.Start()
	}
	return w.m.Start(ctx)
}

// recordLine is one sample in the --record file.
type recordLine struct {
	Time        time.Time `json:"time"`
	Job         string    `json:"job"`
	Resource    string    `json:"resource"`
	State       string    `json:"state"`
	Utilization float64   `json:"utilization"`
	Used        uint64    `json:"used"`
	Available   uint64    `json:"available"`
	Total       uint64    `json:"total"`
}

func (w *jobWatch) recordSample(job string, us []monitor.Usage) {
	if w.record == nil {
		return
	}
	w.recordMu.Lock()
	defer w.recordMu.Unlock()
	enc := json.NewEncoder(w.record)
	for _, u := range us {
		if err := enc.Encode(recordLine{Time: u.Timestamp, Job: job, Resource: u.Resource.String(), State: u.State.String(),
			Utilization: u.Utilization, Used: u.Used, Available: u.Available, Total: u.Total}); err != nil && w.recErr == nil {
			w.recErr = fmt.Errorf("--record %s: %w", w.record.Name(), err)
		}
	}
}

// finish takes a last sample and stops the monitor.
func (w *jobWatch) finish() {
	if w.finished {
		return
	}
	w.finished = true
	_ = w.m.SampleNow()
	w.m.Stop()
	if w.eng != nil {
		if err := w.eng.Stop(); err != nil {
			w.engErr = fmt.Errorf("policy %s: %w", w.pol.File(), err)
		}
	}
}

func (w *jobWatch) close() error {
	if w.eng != nil {
		w.eng.Stop()
		w.pjob.Close()
	}
	err := errors.Join(w.engErr, w.m.Close())
	if w.record != nil {
		w.recordMu.Lock()
		err = errors.Join(err, w.recErr, w.record.Close())
		w.recordMu.Unlock()
	}
	return err
}

// jobReport is the JSON summary that --report writes.
type jobReport struct {
	Job              string             `json:"job"`
	Cgroup           string             `json:"cgroup"`
	Command          []string           `json:"command,omitempty"`
	PIDs             []int              `json:"pids,omitempty"`
	Limits           []string           `json:"limits"`
	ExitStatus       *int               `json:"exit_status,omitempty"`
	Signal           string             `json:"signal,omitempty"`
	DurationSeconds  float64            `json:"duration_seconds"`
	CPUSeconds       *float64           `json:"cpu_seconds,omitempty"`
	ThrottledSeconds *float64           `json:"throttled_seconds,omitempty"`
	MemoryPeakBytes  *uint64            `json:"memory_peak_bytes,omitempty"`
	PidsPeak         uint64             `json:"pids_peak"`
	IOReadBytes      *uint64            `json:"io_read_bytes,omitempty"`
	IOWriteBytes     *uint64            `json:"io_write_bytes,omitempty"`
	Peaks            map[string]float64 `json:"peak_utilization"`
	Averages         map[string]float64 `json:"mean_utilization"`
	WarningEvents    uint64             `json:"warning_events"`
	CriticalEvents   uint64             `json:"critical_events"`
	OOMKills         uint64             `json:"oom_kills"`
	Samples          uint64             `json:"samples"`
	LeftoversKilled  int                `json:"leftovers_killed"`
	WriteCapExceeded bool               `json:"write_cap_exceeded,omitempty"`
	Policy           string             `json:"policy,omitempty"`
	DryRun           bool               `json:"dry_run,omitempty"`
	RuleFirings      map[string]int     `json:"rule_firings,omitempty"`
	KilledByRule     string             `json:"killed_by_rule,omitempty"`
}

// report builds the summary from the monitor's statistics and last raw
// sample.
func (w *jobWatch) report(job *cgroup.Job, res *cgroup.Resources, duration time.Duration) *jobReport {
	st := w.m.Stats()
	r := &jobReport{Job: job.Name(), Cgroup: job.Path(), Limits: job.Writes(res), DurationSeconds: duration.Seconds(),
		Peaks: map[string]float64{}, Averages: map[string]float64{},
		WarningEvents: st.WarningEvents, CriticalEvents: st.CriticalEvents, OOMKills: st.OOMKills, Samples: st.Samples,
		PidsPeak: st.PeakUsed[monitor.Pids], WriteCapExceeded: st.WriteCapKills > 0}
	if r.Limits == nil {
		r.Limits = []string{}
	}
	if w.eng != nil {
		r.Policy, r.DryRun, r.RuleFirings = w.pol.File(), w.dryRun, w.eng.Firings()
		r.KilledByRule, _, _ = w.eng.KilledBy()
	}
	for k, v := range st.Peak {
		r.Peaks[k.String()] = v
	}
	for k, v := range st.Mean {
		r.Averages[k.String()] = v
	}
	if raw, ok := w.m.LastCgroupSample(); ok {
		cpu := raw.CPUUsage.Seconds()
		r.CPUSeconds = &cpu
		if raw.CPUThrottled != nil {
			th := raw.CPUThrottled.Seconds()
			r.ThrottledSeconds = &th
		}
		r.MemoryPeakBytes = raw.MemoryPeak
		if raw.PidsPeak != nil && *raw.PidsPeak > r.PidsPeak {
			r.PidsPeak = *raw.PidsPeak
		}
		r.IOReadBytes, r.IOWriteBytes = raw.IORBytes, raw.IOWBytes
	}
	return r
}

func writeReport(path string, r *jobReport) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stderr.Write(b)
		return err
	}
	// Written whole or not at all: a CI step reading it never sees half.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".rsup-report-*")
	if err != nil {
		return fmt.Errorf("--report: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("--report: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--report: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("--report: %w", err)
	}
	return nil
}

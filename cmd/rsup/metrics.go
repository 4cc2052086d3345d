package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// Prometheus export of one job's figures: served over HTTP while the job
// runs (--metrics-addr), and written once, when it ends, as a file for
// node_exporter's textfile collector (--metrics-textfile).
//
// Every figure is read from the job's monitor (and policy engine) when it
// is collected: the export has no goroutine and no state of its own, so a
// scrape sees the latest sample, and the textfile written after the last
// sample holds the final values.

// metricsFlags are the flags of the commands that export a job's metrics.
func metricsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"RSUP_METRICS_ADDR"}, Usage: "serve the job's metrics for Prometheus at http://`HOST:PORT`/metrics while it runs (e.g. 127.0.0.1:9184; :9184 listens on every interface)", Category: "Monitoring"},
		&cli.StringFlag{Name: "metrics-textfile", EnvVars: []string{"RSUP_METRICS_TEXTFILE"}, Usage: "when the job ends, write its final metrics to `PATH` (a *.prom file in node_exporter's textfile collector directory), replacing the file at once", Category: "Monitoring"},
	}
}

// metricsSettings are the metrics flags, checked before any cgroup is made.
// An empty field means the export is off.
type metricsSettings struct {
	addr     string
	textfile string
}

// enabled says whether any metrics export is asked for.
func (s *metricsSettings) enabled() bool { return s.addr != "" || s.textfile != "" }

// metricsSettingsFromFlags reads and checks --metrics-addr and
// --metrics-textfile. It binds nothing and writes nothing; a port in use is
// only found by serveMetrics. Errors are usage errors naming the flag.
func metricsSettingsFromFlags(c flagValues) (*metricsSettings, error) {
	s := &metricsSettings{addr: c.String("metrics-addr"), textfile: c.String("metrics-textfile")}
	var errs []error
	if s.addr != "" || c.IsSet("metrics-addr") {
		if err := checkMetricsAddr(s.addr); err != nil {
			errs = append(errs, err)
		}
	}
	if s.textfile != "" || c.IsSet("metrics-textfile") {
		if err := checkMetricsTextfile(s.textfile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError(err)
	}
	return s, nil
}

// checkMetricsAddr accepts HOST:PORT with a numeric port; HOST may be
// empty (every interface), a name or an IP address ([::1] for IPv6).
func checkMetricsAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && strings.ContainsAny(host, " /") {
		err = errors.New("bad host")
	}
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return fmt.Errorf("invalid value %q for --metrics-addr: want HOST:PORT with a numeric port, such as 127.0.0.1:9184, [::1]:9184 or :9184", addr)
	}
	return nil
}

// checkMetricsTextfile checks that path names a *.prom file in an existing
// directory that rsup may write to.
func checkMetricsTextfile(path string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("invalid value %q for --metrics-textfile: %s", path, fmt.Sprintf(format, a...))
	}
	if path == "" {
		return bad("want the PATH of a *.prom file")
	}
	if filepath.Ext(path) != ".prom" || filepath.Base(path) == ".prom" {
		return bad("node_exporter's textfile collector reads only files named NAME.prom")
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return bad("it exists and is not a regular file")
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	if err != nil {
		return bad("%v", err)
	}
	if !st.IsDir() {
		return bad("%s is not a directory", dir)
	}
	// The file is replaced by renaming a new one over it, so what counts
	// is whether rsup may create files in the directory.
	if err := unix.Access(dir, unix.W_OK|unix.X_OK); err != nil {
		return bad("cannot create files in %s: %v", dir, err)
	}
	return nil
}

// newMetricsRegistry returns a registry holding the metrics of the job
// named job, watched by w (whose policy engine may be nil), and rsup's own
// Go runtime and process metrics.
func newMetricsRegistry(job string, w *jobWatch) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		newJobCollector(job, w.m, w.eng),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metricsPrefix starts the name of every metric of the job, the ones the
// textfile keeps.
const metricsPrefix = "rsup_"

// jobLabel names the job in every metric. It is not "job", which
// Prometheus sets itself to the scrape job's name.
const jobLabel = "rsup_job"

// jobCollector collects the figures of one job from its monitor and,
// when it has a policy, its engine.
type jobCollector struct {
	m   *monitor.Monitor
	eng *policy.Engine // nil without a policy

	cpuQuota, memoryMax, pidsMax                       *prometheus.Desc
	cpuUsage, cpuThrottled, cpuThrottledPeriods        *prometheus.Desc
	memoryCurrent, memoryPeak, memoryWorkingSet        *prometheus.Desc
	pidsCurrent, pidsPeak                              *prometheus.Desc
	ioReadBytes, ioWrittenBytes, ioReads, ioWrites     *prometheus.Desc
	pressureAvg10, pressureStalled                     *prometheus.Desc
	memoryEvents                                       *prometheus.Desc
	state, utilization, threshold                      *prometheus.Desc
	stateEntries, samples, sampleErrors, writeCapKills *prometheus.Desc
	lastSample, monitorStart                           *prometheus.Desc
	ruleFirings, ruleActions, policyKilled             *prometheus.Desc
	descs                                              []*prometheus.Desc
}

func newJobCollector(job string, m *monitor.Monitor, eng *policy.Engine) *jobCollector {
	c := &jobCollector{m: m, eng: eng}
	constLabels := prometheus.Labels{jobLabel: job}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		desc := prometheus.NewDesc(metricsPrefix+name, help, labels, constLabels)
		c.descs = append(c.descs, desc)
		return desc
	}

	// Limits. A limit of "max" has no series.
	c.cpuQuota = d("cpu_quota_cpus", "CPU limit of the job (cpu.max quota over period), in CPUs; absent when unlimited.")
	c.memoryMax = d("memory_max_bytes", "Memory limit of the job (memory.max); absent when unlimited.")
	c.pidsMax = d("pids_max", "Task limit of the job (pids.max); absent when unlimited.")

	// Usage.
	c.cpuUsage = d("cpu_usage_seconds_total", "CPU time used by the job's tasks (cpu.stat usage_usec).")
	c.cpuThrottled = d("cpu_throttled_seconds_total", "Time the job's tasks were held back by the CPU limit (cpu.stat throttled_usec).")
	c.cpuThrottledPeriods = d("cpu_throttled_periods_total", "Enforcement periods in which the job hit its CPU limit (cpu.stat nr_throttled).")
	c.memoryCurrent = d("memory_current_bytes", "Memory charged to the job (memory.current), page cache included.")
	c.memoryPeak = d("memory_peak_bytes", "Highest memory charged to the job since it was created (memory.peak, Linux 5.19+).")
	c.memoryWorkingSet = d("memory_working_set_bytes", "Memory charged to the job less its inactive file cache (memory.current - memory.stat inactive_file); present only when memory.stat is read.")
	c.pidsCurrent = d("pids_current", "Tasks (processes and threads) in the job (pids.current).")
	c.pidsPeak = d("pids_peak", "Highest task count of the job: pids.peak (Linux 6.1+), or the highest sampled count where it is higher or missing.")
	c.ioReadBytes = d("io_read_bytes_total", "Bytes the job read from block devices (io.stat rbytes, summed over devices).")
	c.ioWrittenBytes = d("io_written_bytes_total", "Bytes the job wrote to block devices (io.stat wbytes, summed over devices).")
	c.ioReads = d("io_reads_total", "Read operations the job issued to block devices (io.stat rios, summed over devices).")
	c.ioWrites = d("io_writes_total", "Write operations the job issued to block devices (io.stat wios, summed over devices).")

	// Pressure stall information, per resource and line (some, full).
	c.pressureAvg10 = d("pressure_avg10_ratio", "Share of the last 10 seconds in which some (kind=some) or all (kind=full) of the job's tasks stalled on the resource (*.pressure avg10).", "resource", "kind")
	c.pressureStalled = d("pressure_stalled_seconds_total", "Time in which some (kind=some) or all (kind=full) of the job's tasks stalled on the resource (*.pressure total).", "resource", "kind")

	c.memoryEvents = d("memory_events_total", "Memory events of the job (memory.events): low, high (throttled at memory.high), max (hit memory.max), oom, oom_kill (processes killed by the OOM killer).", "event")

	// The monitor's classification.
	c.state = d("resource_state", "State of the resource against its thresholds at the latest sample: 0 normal, 1 warning, 2 critical.", "resource")
	c.utilization = d("resource_utilization_ratio", "Utilization of the resource at the latest sample, the figure its state is judged on (pressure: share of time stalled).", "resource")
	c.threshold = d("resource_threshold_ratio", "Utilization from which the resource enters the state.", "resource", "state")
	c.stateEntries = d("monitor_state_entries_total", "Times a resource of the job entered the state.", "state")
	c.samples = d("monitor_samples_total", "Samples of the job taken by the monitor.")
	c.sampleErrors = d("monitor_sample_errors_total", "Samples of the job that failed.")
	c.writeCapKills = d("write_cap_kills_total", "Times rsup killed the job for writing more than its --write-cap.")
	c.lastSample = d("monitor_last_sample_timestamp_seconds", "Unix time of the latest sample of the job's cgroup.")
	c.monitorStart = d("monitor_start_time_seconds", "Unix time from which the monitor's counts run.")

	// Policy.
	c.ruleFirings = d("policy_rule_firings_total", "Times the policy rule fired.", "rule")
	c.ruleActions = d("policy_actions_total", "Actions the policy rule has run, by type (in --dry-run: would have run).", "rule", "action")
	c.policyKilled = d("policy_killed", "1 once a kill action of the policy rule has been taken on the job (not in --dry-run); absent otherwise.", "rule", "signal")
	return c
}

// Describe implements prometheus.Collector.
func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Figures the kernel or the
// monitor has not given (a controller not enabled, an older kernel, no
// sample yet) have no series, rather than a made-up 0.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gaugeOf := func(d *prometheus.Desc, p *uint64) {
		if p != nil {
			gauge(d, float64(*p))
		}
	}
	counterOf := func(d *prometheus.Desc, p *uint64) {
		if p != nil {
			counter(d, float64(*p))
		}
	}

	st := c.m.Stats()
	raw, haveRaw := c.m.LastCgroupSample()
	if haveRaw {
		if raw.CPUQuota != nil && raw.CPUPeriod > 0 {
			gauge(c.cpuQuota, raw.CPUQuota.Seconds()/raw.CPUPeriod.Seconds())
		}
		gaugeOf(c.memoryMax, raw.MemoryMax)
		gaugeOf(c.pidsMax, raw.PidsMax)

		counter(c.cpuUsage, raw.CPUUsage.Seconds())
		if raw.CPUThrottled != nil {
			counter(c.cpuThrottled, raw.CPUThrottled.Seconds())
		}
		counterOf(c.cpuThrottledPeriods, raw.NrThrottled)
		gaugeOf(c.memoryCurrent, raw.MemoryCurrent)
		gaugeOf(c.memoryPeak, raw.MemoryPeak)
		if raw.MemoryCurrent != nil && raw.InactiveFile != nil {
			cur := *raw.MemoryCurrent
			gauge(c.memoryWorkingSet, float64(cur-min(cur, *raw.InactiveFile)))
		}
		gaugeOf(c.pidsCurrent, raw.PidsCurrent)
		counterOf(c.ioReadBytes, raw.IORBytes)
		counterOf(c.ioWrittenBytes, raw.IOWBytes)
		counterOf(c.ioReads, raw.IORIOs)
		counterOf(c.ioWrites, raw.IOWIOs)

		for _, p := range []struct {
			resource string
			v        *monitor.Pressure
		}{{"cpu", raw.CPUPressure}, {"memory", raw.MemoryPressure}, {"io", raw.IOPressure}} {
			if p.v == nil {
				continue
			}
			lines := []struct {
				kind string
				psi  *monitor.PSI
			}{{"some", &p.v.Some}, {"full", p.v.Full}}
			for _, l := range lines {
				if l.psi == nil {
					continue
				}
				gauge(c.pressureAvg10, l.psi.Avg10/100, p.resource, l.kind)
				counter(c.pressureStalled, float64(l.psi.Total)/1e6, p.resource, l.kind)
			}
		}

		if ev := raw.MemoryEvents; ev != nil {
			for _, e := range []struct {
				name string
				n    uint64
			}{{"low", ev.Low}, {"high", ev.High}, {"max", ev.Max}, {"oom", ev.OOM}, {"oom_kill", ev.OOMKill}} {
				counter(c.memoryEvents, float64(e.n), e.name)
			}
		}
		if !raw.Time.IsZero() {
			gauge(c.lastSample, float64(raw.Time.UnixNano())/1e9)
		}
	}
	pidsPeak, havePidsPeak := st.PeakUsed[monitor.Pids]
	if haveRaw && raw.PidsPeak != nil {
		pidsPeak, havePidsPeak = max(pidsPeak, *raw.PidsPeak), true
	}
	if havePidsPeak {
		gauge(c.pidsPeak, float64(pidsPeak))
	}

	for _, r := range monitor.Resources() {
		u, ok := c.m.Usage(r)
		if !ok {
			continue
		}
		name := r.String()
		gauge(c.state, float64(u.State), name)
		gauge(c.utilization, u.Utilization, name)
		t := c.m.Thresholds(r)
		gauge(c.threshold, t.Warning, name, monitor.Warning.String())
		gauge(c.threshold, t.Critical, name, monitor.Critical.String())
	}
	counter(c.stateEntries, float64(st.WarningEvents), monitor.Warning.String())
	counter(c.stateEntries, float64(st.CriticalEvents), monitor.Critical.String())
	counter(c.samples, float64(st.Samples))
	counter(c.sampleErrors, float64(st.SampleErrors))
	counter(c.writeCapKills, float64(st.WriteCapKills))
	if !st.Since.IsZero() {
		gauge(c.monitorStart, float64(st.Since.UnixNano())/1e9)
	}

	if c.eng != nil {
		for rule, n := range c.eng.Firings() {
			counter(c.ruleFirings, float64(n), rule)
		}
		for rule, byType := range c.eng.Actions() {
			for action, n := range byType {
				counter(c.ruleActions, float64(n), rule, action)
			}
		}
		if rule, sig, ok := c.eng.KilledBy(); ok {
			gauge(c.policyKilled, 1, rule, unix.SignalName(sig))
		}
	}
}

// metricsShutdownTimeout bounds how long stopping the metrics server waits
// for scrapes under way.
const metricsShutdownTimeout = 3 * time.Second

// serveMetrics serves reg at http://addr/metrics until stop is called or
// ctx ends. It returns once it listens, with an error naming addr if it
// cannot. stop lets scrapes under way finish (for a few seconds at most),
// closes the server and returns once every goroutine of the server has
// returned; it may be called more than once.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry) (stop func() error, err error) {
	ln, err := listenMetrics(ctx, addr)
	if err != nil {
		return nil, err
	}
	return serveMetricsOn(ctx, ln, reg), nil
}

// listenMetrics opens the listening socket of --metrics-addr. A caller that
// wants a port in use reported before any cgroup is made listens first and
// serves later with serveMetricsOn.
func listenMetrics(ctx context.Context, addr string) (net.Listener, error) {
	if err := checkMetricsAddr(addr); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		// The *net.OpError repeats the address; keep only the cause.
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return nil, fmt.Errorf("--metrics-addr %s: cannot listen: %w", addr, err)
	}
	return ln, nil
}

// serveMetricsOn serves reg on ln, which it takes over and closes, as
// serveMetrics does.
func serveMetricsOn(ctx context.Context, ln net.Listener, reg *prometheus.Registry) (stop func() error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A figure that fails to collect leaves the others served.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 8,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "rsup: the job's metrics are at /metrics\n")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}

	var (
		wg       sync.WaitGroup
		serveErr error
		shutOnce sync.Once
		shutErr  error
	)
	shutdown := func() {
		shutOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				// Scrapes still running after the timeout are cut off.
				shutErr = errors.Join(fmt.Errorf("metrics server at %s: shutdown: %w", ln.Addr(), err), srv.Close())
			}
		})
	}
	quit := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		serveErr = srv.Serve(ln)
	}()
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			shutdown()
		case <-quit:
		}
	}()

	var (
		stopOnce sync.Once
		stopErr  error
	)
	return func() error {
		stopOnce.Do(func() {
			close(quit)
			shutdown()
			wg.Wait()
			stopErr = shutErr
			if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
				stopErr = errors.Join(fmt.Errorf("metrics server at %s: %w", ln.Addr(), serveErr), stopErr)
			}
		})
		return stopErr
	}
}

// writeMetricsTextfile writes the rsup_* metrics of reg to path in the
// text exposition format, for node_exporter's textfile collector. The file
// is written under a temporary name in the same directory, then renamed
// over path, so a reader sees the old file or the new one, never a part.
//
// rsup's own go_* and process_* metrics are left out: in the textfile
// directory they would clash with node_exporter's own.
func writeMetricsTextfile(path string, reg *prometheus.Registry) error {
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := reg.Gather()
		out := mfs[:0]
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), metricsPrefix) {
				out = append(out, mf)
			}
		}
		return out, err
	})
	// The temporary file is named after path with a random suffix, so it
	// does not end in .prom and node_exporter skips it meanwhile.
	if err := prometheus.WriteToTextfile(path, g); err != nil {
		return fmt.Errorf("--metrics-textfile: %w", err)
	}
	return nil
}

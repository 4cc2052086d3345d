package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/urfave/cli/v2"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// metricsCgroup is a job cgroup's interface files as a cgroup v2 kernel
// writes them, with a memory limit the job is close to.
var metricsCgroup = map[string]string{
	"cpu.stat": "usage_usec 42500000\nuser_usec 40000000\nsystem_usec 2500000\n" +
		"nr_periods 500\nnr_throttled 9\nthrottled_usec 2250000\nnr_bursts 0\nburst_usec 0\n",
	"cpu.max":        "50000 100000\n",
	"memory.current": "943718400\n", // 900MiB
	"memory.max":     "1073741824\n",
	"memory.peak":    "1000000000\n",
	"memory.events":  "low 0\nhigh 5\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
	"memory.stat":    "anon 734003200\nfile 209715200\ninactive_anon 0\nactive_anon 734003200\ninactive_file 104857600\nactive_file 104857600\n",
	"pids.current":   "12\n",
	"pids.max":       "64\n",
	"pids.peak":      "20\n",
	"io.stat": "8:0 rbytes=1000 wbytes=3000 rios=10 wios=30 dbytes=0 dios=0\n" +
		"8:16 rbytes=24 wbytes=1096 rios=2 wios=4 dbytes=0 dios=0\n",
	"cpu.pressure":    "some avg10=25.00 avg60=10.00 avg300=2.00 total=3000000\nfull avg10=5.00 avg60=1.00 avg300=0.50 total=500000\n",
	"memory.pressure": "some avg10=1.50 avg60=0.50 avg300=0.10 total=1500000\nfull avg10=0.50 avg60=0.10 avg300=0.00 total=250000\n",
	"io.pressure":     "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
}

// fakeJobCgroup writes files (metricsCgroup with edits; an edit of ""
// deletes the file) into a new directory, for a monitor to read as a job
// cgroup.
func fakeJobCgroup(t *testing.T, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := maps.Clone(metricsCgroup)
	maps.Copy(files, edits)
	for name, content := range files {
		if content == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newTestWatch returns a jobWatch over a monitor of the cgroup directory
// dir, as watchJob builds it for a real job, but without starting it.
func newTestWatch(t *testing.T, dir string, memoryStat bool) *jobWatch {
	t.Helper()
	m, err := monitor.New(monitor.Options{Cgroup: dir, DiskPath: t.TempDir(), MemoryStat: memoryStat, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &jobWatch{m: m}
}

// metricsPolicy has one rule that fires on the fixture's memory use and a
// kill rule that fires on its OOM kills.
const metricsPolicy = `
name = "metrics-test"

[thresholds]
memory = { warning = 0.8, critical = 0.95 }

[[rule]]
name = "memory-warning"
resource = "memory"
state = "warning"
actions = [ { type = "log", level = "info" } ]

[[rule]]
name = "oom-kill"
resource = "oom"
actions = [ { type = "kill", signal = "SIGTERM", grace = "1h" } ]

[[rule]]
name = "pids-critical"
resource = "pids"
state = "critical"
actions = [ { type = "log", level = "error" } ]
`

// nopJob is a policy.Job on which every action succeeds and does nothing.
type nopJob struct{}

func (nopJob) Signal(policy.Target, unix.Signal) (int, error) { return 1, nil }
func (nopJob) CPUMax() (cgroup.CPUMax, error)                 { return cgroup.CPUMax{}, nil }
func (nopJob) MemoryHigh() (cgroup.Limit, error)              { return cgroup.Max, nil }
func (nopJob) IOMax(d cgroup.Device) (cgroup.IOLimit, error)  { return cgroup.IOLimit{Device: d}, nil }
func (nopJob) Apply(*cgroup.Resources) error                  { return nil }
func (nopJob) Freeze(bool) error                              { return nil }
func (nopJob) Kill() (int, error)                             { return 1, nil }

// addTestEngine gives w a policy engine fed by its monitor, as watchJob
// does, and starts it.
func addTestEngine(t *testing.T, w *jobWatch) {
	t.Helper()
	pol, err := policy.Parse("metrics-test.toml", []byte(metricsPolicy), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.pol = pol
	w.eng = policy.NewEngine(pol, nopJob{}, policy.EngineOptions{Thresholds: w.m.Thresholds})
	for r, th := range pol.Thresholds() {
		if err := w.m.SetThresholds(r, th); err != nil {
			t.Fatal(err)
		}
	}
	w.m.OnSample(func(us []monitor.Usage) {
		if len(us) > 0 {
			w.eng.Observe(policy.Observation{Time: us[0].Timestamp, Usages: us, OOMKills: w.m.OOMKills()})
		}
	})
	w.eng.Start()
	t.Cleanup(func() { w.eng.Stop() })
}

// seriesKey names one series as name{label="value",...}, labels sorted.
func seriesKey(name string, m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(ls)
	return name + "{" + strings.Join(ls, ",") + "}"
}

// seriesName names a series as seriesKey does, from label name-value
// pairs in any order.
func seriesName(name string, labels ...string) string {
	m := &dto.Metric{}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: &labels[i], Value: &labels[i+1]})
	}
	return seriesKey(name, m)
}

// seriesValues maps every gauge and counter series of mfs to its value.
func seriesValues(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				out[seriesKey(mf.GetName(), m)] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[seriesKey(mf.GetName(), m)] = m.GetCounter().GetValue()
			case m.Untyped != nil:
				out[seriesKey(mf.GetName(), m)] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}

// gatherJob gathers the job metrics of w through a pedantic registry,
// which also checks each metric against its description.
func gatherJob(t *testing.T, name string, w *jobWatch) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(newJobCollector(name, w.m, w.eng)); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return seriesValues(mfs)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestJobCollectorValues(t *testing.T) {
	t.Parallel()
	w := newTestWatch(t, fakeJobCgroup(t, nil), true)
	addTestEngine(t, w)
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the policy rules to fire", func() bool {
		f := w.eng.Firings()
		return f["memory-warning"] == 1 && f["oom-kill"] == 1
	})
	got := gatherJob(t, "build-42", w)

	j := `rsup_job="build-42"`
	series := func(name string, labels ...string) string {
		return seriesName(name, append(labels, jobLabel, "build-42")...)
	}
	want := map[string]float64{
		series("rsup_cpu_quota_cpus"):                                                       0.5,
		series("rsup_memory_max_bytes"):                                                     1073741824,
		series("rsup_pids_max"):                                                             64,
		series("rsup_cpu_usage_seconds_total"):                                              42.5,
		series("rsup_cpu_throttled_seconds_total"):                                          2.25,
		series("rsup_cpu_throttled_periods_total"):                                          9,
		series("rsup_memory_current_bytes"):                                                 943718400,
		series("rsup_memory_peak_bytes"):                                                    1000000000,
		series("rsup_memory_working_set_bytes"):                                             943718400 - 104857600,
		series("rsup_pids_current"):                                                         12,
		series("rsup_pids_peak"):                                                            20,
		series("rsup_io_read_bytes_total"):                                                  1024,
		series("rsup_io_written_bytes_total"):                                               4096,
		series("rsup_io_reads_total"):                                                       12,
		series("rsup_io_writes_total"):                                                      34,
		series("rsup_pressure_avg10_ratio", "kind", "some", "resource", "cpu"):              0.25,
		series("rsup_pressure_avg10_ratio", "kind", "full", "resource", "cpu"):              0.05,
		series("rsup_pressure_avg10_ratio", "kind", "some", "resource", "memory"):           0.015,
		series("rsup_pressure_avg10_ratio", "kind", "full", "resource", "memory"):           0.005,
		series("rsup_pressure_avg10_ratio", "kind", "some", "resource", "io"):               0,
		series("rsup_pressure_stalled_seconds_total", "kind", "some", "resource", "cpu"):    3,
		series("rsup_pressure_stalled_seconds_total", "kind", "full", "resource", "cpu"):    0.5,
		series("rsup_pressure_stalled_seconds_total", "kind", "some", "resource", "memory"): 1.5,
		series("rsup_pressure_stalled_seconds_total", "kind", "full", "resource", "memory"): 0.25,
		series("rsup_memory_events_total", "event", "low"):                                  0,
		series("rsup_memory_events_total", "event", "high"):                                 5,
		series("rsup_memory_events_total", "event", "max"):                                  7,
		series("rsup_memory_events_total", "event", "oom"):                                  2,
		series("rsup_memory_events_total", "event", "oom_kill"):                             2,
		series("rsup_resource_state", "resource", "memory"):                                 1,
		series("rsup_resource_state", "resource", "pids"):                                   0,
		series("rsup_resource_state", "resource", "cpu_pressure"):                           1,
		series("rsup_resource_utilization_ratio", "resource", "memory"):                     943718400.0 / 1073741824,
		series("rsup_resource_utilization_ratio", "resource", "pids"):                       12.0 / 64,
		series("rsup_resource_utilization_ratio", "resource", "cpu_pressure"):               0.25,
		series("rsup_resource_threshold_ratio", "resource", "memory", "state", "warning"):   0.8,
		series("rsup_resource_threshold_ratio", "resource", "memory", "state", "critical"):  0.95,
		series("rsup_monitor_state_entries_total", "state", "warning"):                      2, // memory, cpu_pressure
		series("rsup_monitor_state_entries_total", "state", "critical"):                     0,
		series("rsup_monitor_samples_total"):                                                1,
		series("rsup_monitor_sample_errors_total"):                                          0,
		series("rsup_write_cap_kills_total"):                                                0,
		series("rsup_policy_rule_firings_total", "rule", "memory-warning"):                  1,
		series("rsup_policy_rule_firings_total", "rule", "oom-kill"):                        1,
		series("rsup_policy_rule_firings_total", "rule", "pids-critical"):                   0,
		series("rsup_policy_killed", "rule", "oom-kill", "signal", "SIGTERM"):               1,
		series("rsup_policy_actions_total", "action", "log", "rule", "memory-warning"):      1,
		series("rsup_policy_actions_total", "action", "kill", "rule", "oom-kill"):           1,
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("no series %s", k)
			continue
		}
		if diff := g - v; diff > 1e-9 || diff < -1e-9 {
			t.Errorf("%s = %v, want %v", k, g, v)
		}
	}
	// The first sample has no CPU rate yet, so cpu has no state.
	if _, ok := got[series("rsup_resource_state", "resource", "cpu")]; ok {
		t.Errorf("cpu state before a CPU rate could be computed")
	}
	raw, _ := w.m.LastCgroupSample()
	if ts := got[series("rsup_monitor_last_sample_timestamp_seconds")]; ts != float64(raw.Time.UnixNano())/1e9 {
		t.Errorf("last sample timestamp %v, want %v", ts, raw.Time)
	}
	if st := got[series("rsup_monitor_start_time_seconds")]; st <= 0 || st > float64(time.Now().Unix()+1) {
		t.Errorf("monitor start time %v", st)
	}
	// Every series names the job, and only metrics with a rsup_ prefix
	// come from the job collector.
	for k := range got {
		if !strings.HasPrefix(k, "rsup_") || !strings.Contains(k, j) {
			t.Errorf("series %s", k)
		}
	}
}

func TestJobCollectorMissingFigures(t *testing.T) {
	t.Parallel()
	// Unlimited, on an older kernel (no memory.peak, no pids.peak), with
	// PSI off and memory.stat not read.
	dir := fakeJobCgroup(t, map[string]string{
		"cpu.max": "max 100000\n", "memory.max": "max\n", "pids.max": "max\n",
		"memory.peak": "", "pids.peak": "", "cpu.pressure": "", "memory.pressure": "", "io.pressure": "",
	})
	w := newTestWatch(t, dir, false)

	// Before any sample: the monitor's counts only.
	got := gatherJob(t, "j", w)
	if want := []string{
		`rsup_monitor_sample_errors_total{rsup_job="j"}`,
		`rsup_monitor_samples_total{rsup_job="j"}`,
		`rsup_monitor_start_time_seconds{rsup_job="j"}`,
		`rsup_monitor_state_entries_total{rsup_job="j",state="critical"}`,
		`rsup_monitor_state_entries_total{rsup_job="j",state="warning"}`,
		`rsup_write_cap_kills_total{rsup_job="j"}`,
	}; !slices.Equal(slices.Sorted(maps.Keys(got)), want) {
		t.Errorf("before the first sample: %v, want %v", slices.Sorted(maps.Keys(got)), want)
	}

	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	got = gatherJob(t, "j", w)
	for _, absent := range []string{
		"rsup_cpu_quota_cpus", "rsup_memory_max_bytes", "rsup_pids_max", "rsup_memory_peak_bytes",
		"rsup_memory_working_set_bytes", "rsup_pressure_avg10_ratio", "rsup_pressure_stalled_seconds_total",
		"rsup_policy_rule_firings_total", "rsup_policy_killed",
	} {
		for k := range got {
			if strings.HasPrefix(k, absent+"{") {
				t.Errorf("%s present: %s", absent, k)
			}
		}
	}
	// Without pids.peak, the peak is the highest count sampled.
	if v := got[`rsup_pids_peak{rsup_job="j"}`]; v != 12 {
		t.Errorf("pids peak %v, want 12", v)
	}
	if v, ok := got[`rsup_memory_current_bytes{rsup_job="j"}`]; !ok || v != 943718400 {
		t.Errorf("memory current %v", v)
	}
}

func TestMetricsLint(t *testing.T) {
	t.Parallel()
	w := newTestWatch(t, fakeJobCgroup(t, nil), true)
	addTestEngine(t, w)
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the kill rule to fire", func() bool { _, _, ok := w.eng.KilledBy(); return ok })
	reg := newMetricsRegistry("lint", w)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	// Every family the collector describes is present in this sample, so
	// the lint covers them all.
	var described []string
	ch := make(chan *prometheus.Desc, 100)
	newJobCollector("lint", w.m, w.eng).Describe(ch)
	close(ch)
	for d := range ch {
		described = append(described, descName(d))
	}
	for _, n := range described {
		if !slices.Contains(names, n) {
			t.Errorf("%s not gathered", n)
		}
	}
	for _, n := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !slices.Contains(names, n) {
			t.Errorf("rsup's own %s not gathered", n)
		}
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

var descNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

// descName is the metric name of d, which has no accessor.
func descName(d *prometheus.Desc) string {
	m := descNameRE.FindStringSubmatch(d.String())
	if m == nil {
		return d.String()
	}
	return m[1]
}

// parseExposition parses the text exposition format.
func parseExposition(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

func familyValues(mfs map[string]*dto.MetricFamily) map[string]float64 {
	return seriesValues(slices.Collect(maps.Values(mfs)))
}

// Not parallel: it checks that the server leaves no goroutine behind.
func TestServeMetrics(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	w := newTestWatch(t, fakeJobCgroup(t, nil), false)
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	reg := newMetricsRegistry("served", w)
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()

	ln, err := listenMetrics(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serveMetricsOn(context.Background(), ln, reg)
	base := "http://" + ln.Addr().String()

	resp, err := client.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	mfs := parseExposition(t, resp.Body)
	resp.Body.Close()
	vals := familyValues(mfs)
	if v := vals[`rsup_memory_current_bytes{rsup_job="served"}`]; v != 943718400 {
		t.Errorf("scraped rsup_memory_current_bytes = %v", v)
	}
	if _, ok := mfs["go_goroutines"]; !ok {
		t.Errorf("go_goroutines not served")
	}

	for path, want := range map[string]int{"/": http.StatusOK, "/nothing": http.StatusNotFound} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %s, want %d", path, resp.Status, want)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if _, err := client.Get(base + "/metrics"); err == nil {
		t.Errorf("still served after stop")
	}

	// serveMetrics itself, on a port of the kernel's choosing, and the
	// end of its context stopping it.
	ctx, cancel := context.WithCancel(context.Background())
	stop, err = serveMetrics(ctx, "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := stop(); err != nil {
		t.Errorf("stop after the context ended: %v", err)
	}
}

func TestServeMetricsAfterSample(t *testing.T) {
	t.Parallel()
	dir := fakeJobCgroup(t, nil)
	w := newTestWatch(t, dir, false)
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	ln, err := listenMetrics(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stop := serveMetricsOn(context.Background(), ln, newMetricsRegistry("j", w))
	defer stop()
	scrape := func() float64 {
		t.Helper()
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		return familyValues(parseExposition(t, resp.Body))[`rsup_memory_current_bytes{rsup_job="j"}`]
	}
	if v := scrape(); v != 943718400 {
		t.Errorf("first scrape: %v", v)
	}
	// The collector reads the monitor at each scrape.
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("1048576\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	if v := scrape(); v != 1048576 {
		t.Errorf("scrape after a new sample: %v", v)
	}
}

func TestServeMetricsAddressInUse(t *testing.T) {
	t.Parallel()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	stop, err := serveMetrics(context.Background(), addr, prometheus.NewRegistry())
	if err == nil {
		stop()
		t.Fatalf("serveMetrics on %s, already in use: no error", addr)
	}
	if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("error %q does not name --metrics-addr %s", err, addr)
	}
	if _, err := serveMetrics(context.Background(), "localhost", prometheus.NewRegistry()); err == nil {
		t.Errorf("an address without a port was accepted")
	}
}

func TestWriteMetricsTextfile(t *testing.T) {
	t.Parallel()
	w := newTestWatch(t, fakeJobCgroup(t, nil), false)
	if err := w.m.SampleNow(); err != nil {
		t.Fatal(err)
	}
	reg := newMetricsRegistry("nightly", w)
	dir := t.TempDir()
	path := filepath.Join(dir, "rsup-nightly.prom")
	// An older file is replaced whole.
	if err := os.WriteFile(path, []byte("# old\nrsup_memory_current_bytes{rsup_job=\"nightly\"} 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeMetricsTextfile(path, reg); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "rsup-nightly.prom" {
		t.Errorf("directory holds %v, want only the textfile", entries)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode %v, want world-readable for node_exporter", st.Mode())
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mfs := parseExposition(t, f)
	for name := range mfs {
		if !strings.HasPrefix(name, "rsup_") {
			t.Errorf("textfile holds %s, which would clash with node_exporter's own metrics", name)
		}
	}
	vals := familyValues(mfs)
	if v := vals[`rsup_memory_current_bytes{rsup_job="nightly"}`]; v != 943718400 {
		t.Errorf("textfile rsup_memory_current_bytes = %v", v)
	}
	if v := vals[`rsup_memory_events_total{event="oom_kill",rsup_job="nightly"}`]; v != 2 {
		t.Errorf("textfile oom_kill = %v", v)
	}
	if mf := mfs["rsup_cpu_usage_seconds_total"]; mf.GetType() != dto.MetricType_COUNTER || mf.GetHelp() == "" {
		t.Errorf("rsup_cpu_usage_seconds_total lost its type or help: %v", mf)
	}

	err = writeMetricsTextfile(filepath.Join(dir, "missing", "x.prom"), reg)
	if err == nil || !strings.Contains(err.Error(), "--metrics-textfile") {
		t.Errorf("textfile in a missing directory: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("a failed write left %v", entries)
	}
}

func TestMetricsSettingsFromFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notDir := filepath.Join(dir, "plain")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "d.prom"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := []fakeFlags{
		{},
		{"metrics-addr": "127.0.0.1:9184"},
		{"metrics-addr": ":9184"},
		{"metrics-addr": "[::1]:0"},
		{"metrics-addr": "localhost:9184"},
		{"metrics-textfile": filepath.Join(dir, "rsup.prom")},
		{"metrics-addr": "0.0.0.0:9184", "metrics-textfile": filepath.Join(dir, "rsup.prom")},
	}
	for _, f := range good {
		s, err := metricsSettingsFromFlags(f)
		if err != nil {
			t.Errorf("%v: %v", f, err)
			continue
		}
		if s.addr != f.String("metrics-addr") || s.textfile != f.String("metrics-textfile") || s.enabled() != (len(f) > 0) {
			t.Errorf("%v: settings %+v", f, s)
		}
	}
	for _, tc := range []struct {
		flags fakeFlags
		want  string
	}{
		{fakeFlags{"metrics-addr": ""}, "--metrics-addr"},
		{fakeFlags{"metrics-addr": "9184"}, "--metrics-addr"},
		{fakeFlags{"metrics-addr": "localhost"}, "--metrics-addr"},
		{fakeFlags{"metrics-addr": "127.0.0.1:http"}, "--metrics-addr"},
		{fakeFlags{"metrics-addr": "127.0.0.1:70000"}, "--metrics-addr"},
		{fakeFlags{"metrics-addr": "::1:9184"}, "--metrics-addr"},
		{fakeFlags{"metrics-textfile": ""}, "--metrics-textfile"},
		{fakeFlags{"metrics-textfile": filepath.Join(dir, "rsup.txt")}, "NAME.prom"},
		{fakeFlags{"metrics-textfile": filepath.Join(dir, ".prom")}, "NAME.prom"},
		{fakeFlags{"metrics-textfile": filepath.Join(dir, "missing", "rsup.prom")}, "no such file"},
		{fakeFlags{"metrics-textfile": filepath.Join(notDir, "rsup.prom")}, "not a directory"},
		{fakeFlags{"metrics-textfile": filepath.Join(dir, "d.prom")}, "not a regular file"},
	} {
		_, err := metricsSettingsFromFlags(tc.flags)
		if err == nil {
			t.Errorf("%v accepted", tc.flags)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %q does not mention %q", tc.flags, err, tc.want)
		}
		if exitCode(err) != exitCode(usageError(nil)) {
			t.Errorf("%v: exit status %d, want a usage error's", tc.flags, exitCode(err))
		}
	}
	// Both flags wrong: both reported.
	_, err := metricsSettingsFromFlags(fakeFlags{"metrics-addr": "x", "metrics-textfile": "x"})
	if err == nil || !strings.Contains(err.Error(), "--metrics-addr") || !strings.Contains(err.Error(), "--metrics-textfile") {
		t.Errorf("two bad flags: %v", err)
	}
}

func TestMetricsFlags(t *testing.T) {
	t.Parallel()
	want := map[string]string{"metrics-addr": "RSUP_METRICS_ADDR", "metrics-textfile": "RSUP_METRICS_TEXTFILE"}
	flags := metricsFlags()
	if len(flags) != len(want) {
		t.Fatalf("%d flags, want %d", len(flags), len(want))
	}
	for _, f := range flags {
		sf, ok := f.(*cli.StringFlag)
		if !ok {
			t.Errorf("%T", f)
			continue
		}
		if env, ok := want[sf.Name]; !ok || !slices.Equal(sf.EnvVars, []string{env}) || sf.Category != "Monitoring" || sf.Usage == "" {
			t.Errorf("flag %s: env %v, category %q", sf.Name, sf.EnvVars, sf.Category)
		}
	}
}

// TestPrometheusExamples checks that the example files parse as YAML, that
// the scrape configuration names the rule file, and that every rsup metric
// the alerts use is one rsup exports.
func TestPrometheusExamples(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("..", "..", "examples", "prometheus")
	var conf struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, filepath.Join(dir, "prometheus.yml"), &conf)
	if !slices.Contains(conf.RuleFiles, "rsup-alerts.yml") {
		t.Errorf("prometheus.yml does not load rsup-alerts.yml: %v", conf.RuleFiles)
	}
	hosts := map[string]bool{}
	for _, sc := range conf.ScrapeConfigs {
		if sc.JobName != "rsup" {
			continue
		}
		for _, s := range sc.StaticConfigs {
			for _, target := range s.Targets {
				host, _, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("target %q: %v", target, err)
				}
				hosts[host] = true
			}
		}
	}
	if len(hosts) < 2 {
		t.Errorf("the rsup scrape job covers %d host(s), want several", len(hosts))
	}

	var rules struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, filepath.Join(dir, "rsup-alerts.yml"), &rules)

	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	w := newTestWatch(t, fakeJobCgroup(t, nil), false)
	newJobCollector("x", w.m, nil).Describe(ch)
	close(ch)
	for d := range ch {
		exported[descName(d)] = true
	}
	metricRE := regexp.MustCompile(`\brsup_[a-z0-9_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v lacks alert, expr, severity or summary", r)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, m := range metricRE.FindAllString(r.Expr, -1) {
				if m != jobLabel && !exported[m] {
					t.Errorf("alert %s uses %s, which rsup does not export", r.Alert, m)
				}
			}
		}
	}
	if n < 3 {
		t.Errorf("%d alert rules, want at least 3", n)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(false)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
)

// policyTestCommand is "rsup policy test": a --record history replayed
// through a policy.
func policyTestCommand() *cli.Command {
	return &cli.Command{
		Name:  "test",
		Usage: "replay a --record history through a policy and show when each rule would have fired",
		Description: "The samples of one job in a --record file are fed, in time order, to the policy's rule engine " +
			"running dry on the recorded clock: nothing is started, signalled or written. Each utilization is " +
			"classified again with the policy's thresholds (or --warn, --crit and --clear), so thresholds can be " +
			"tuned against a recording. A throttle's effect on what follows it cannot be replayed, nor can oom " +
			"rules: a record has no oom_kill counts.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Usage: "the policy `FILE`"},
			&cli.StringFlag{Name: "replay", Usage: "the `RECORD` file that --record wrote"},
			&cli.StringFlag{Name: "job", Usage: "replay the job `NAME` (needed when the record holds several jobs)"},
			&cli.BoolFlag{Name: "json", Usage: "print the decisions as JSON"},
			&cli.StringSliceFlag{Name: "warn", Usage: "warning threshold `RESOURCE=FRACTION`, in place of the policy's; repeatable"},
			&cli.StringSliceFlag{Name: "crit", Usage: "critical threshold `RESOURCE=FRACTION`, in place of the policy's; repeatable"},
			&cli.StringSliceFlag{Name: "clear", Usage: "leave warning only below `RESOURCE=FRACTION`, in place of the policy's; repeatable"},
		},
		Action: runPolicyTest,
	}
}

func runPolicyTest(c *cli.Context) error {
	var errs []error
	if c.NArg() > 0 {
		errs = append(errs, fmt.Errorf("policy test: unexpected argument %q (the files are given with --policy and --replay)", c.Args().First()))
	}
	for _, f := range []string{"policy", "replay"} {
		if c.String(f) == "" {
			errs = append(errs, fmt.Errorf("policy test: missing --%s", f))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return usageError(err)
	}
	pol, err := policy.Load(c.String("policy"))
	if err != nil {
		return policyError(err)
	}
	th, err := thresholdsFromFlags(c, pol.Thresholds())
	if err != nil {
		return usageError(err)
	}
	thr := func(r monitor.Resource) monitor.Thresholds {
		if t, ok := th[r]; ok {
			return t
		}
		return monitor.DefaultThresholds(r)
	}
	rec, err := readRecord(c.String("replay"))
	if err != nil {
		return err
	}
	job, err := rec.selectJob(c.String("job"))
	if err != nil {
		return usageError(err)
	}
	samples := rec.observations(job)
	decisions, err := policy.Replay(pol, samples, policy.ReplayOptions{Thresholds: thr})
	if err != nil {
		return fmt.Errorf("%s: %w", rec.path, err)
	}
	res := &replayResult{pol: pol, rec: rec, job: job, samples: samples, decisions: decisions}
	res.writeNotes(c.App.ErrWriter)
	if c.Bool("json") {
		return res.writeJSON(c.App.Writer)
	}
	return res.writeText(c.App.Writer)
}

type replayResult struct {
	pol       *policy.Policy
	rec       *record
	job       string
	samples   []policy.Observation
	decisions []policy.Decision
}

func (r *replayResult) start() time.Time {
	if len(r.samples) == 0 {
		return time.Time{}
	}
	return r.samples[0].Time
}

func (r *replayResult) span() time.Duration {
	if len(r.samples) == 0 {
		return 0
	}
	return r.samples[len(r.samples)-1].Time.Sub(r.samples[0].Time)
}

// firings counts the firings of each rule.
func (r *replayResult) firings() map[string]int {
	n := map[string]int{}
	for _, rule := range r.pol.Rules() {
		n[rule.Name] = 0
	}
	for _, d := range r.decisions {
		if d.Firing > 0 {
			n[d.Rule]++
		}
	}
	return n
}

// writeNotes warns about rules that the record cannot make fire.
func (r *replayResult) writeNotes(w io.Writer) {
	present := map[monitor.Resource]bool{}
	for _, s := range r.samples {
		for _, u := range s.Usages {
			present[u.Resource] = true
		}
	}
	for _, rule := range r.pol.Rules() {
		switch {
		case rule.OOM:
			fmt.Fprintf(w, "note: rule %s watches oom kills, which a record does not hold: it cannot fire in a replay\n", rule.Name)
		case !present[rule.Resource]:
			fmt.Fprintf(w, "note: rule %s watches %s, which job %s's record does not have\n", rule.Name, rule.Resource, r.job)
		}
	}
}

func (r *replayResult) writeText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "policy %s, job %s: %d samples over %v from %s\n", r.pol.File(), r.job, len(r.samples),
		r.span().Round(time.Millisecond), r.start().Format(time.RFC3339Nano))
	if len(r.decisions) == 0 {
		b.WriteString("no rule would have fired\n")
	}
	for _, d := range r.decisions {
		fmt.Fprintf(&b, "%s  %s\n", offsetText(d.Time.Sub(r.start())), decisionText(d))
		if d.KillsJob {
			b.WriteString("           (the job would have been killed here; what follows assumes it ran on as recorded)\n")
		}
	}
	b.WriteString("\nfirings:\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	n := r.firings()
	for _, rule := range r.pol.Rules() {
		fmt.Fprintf(tw, "  %s\t%d\n", rule.Name, n[rule.Name])
	}
	tw.Flush()
	_, err := w.Write(b.Bytes())
	return err
}

// offsetText is a time from the first sample: "+12.300s".
func offsetText(d time.Duration) string { return fmt.Sprintf("+%.3fs", d.Seconds()) }

// decisionText is one decision as "rule NAME (what held): what it did".
func decisionText(d policy.Decision) string {
	var why string
	switch {
	case d.Resource == "oom":
		why = fmt.Sprintf("oom, %d kill(s) so far", int64(d.Value))
	case d.Value >= d.Threshold:
		why = fmt.Sprintf("%s %s, value %.2f >= %.2f", d.Resource, d.State, d.Value, d.Threshold)
	default:
		// Below the threshold and still held (by the clear band), or an
		// action's end.
		why = fmt.Sprintf("%s %s, value %.2f", d.Resource, d.State, d.Value)
	}
	return fmt.Sprintf("rule %s (%s): %s", d.Rule, why, d.Action)
}

// decisionJSON is a Decision in the --json output.
type decisionJSON struct {
	Time          time.Time `json:"time"`
	OffsetSeconds float64   `json:"offset_seconds"`
	Rule          string    `json:"rule"`
	Resource      string    `json:"resource"`
	State         string    `json:"state,omitempty"`
	Value         float64   `json:"value"`
	Threshold     float64   `json:"threshold,omitempty"`
	Firing        int       `json:"firing"`
	Action        string    `json:"action"`
	KillsJob      bool      `json:"kills_job,omitempty"`
}

type replayJSON struct {
	Policy    string         `json:"policy"`
	Record    string         `json:"record"`
	Job       string         `json:"job"`
	Start     time.Time      `json:"start"`
	Samples   int            `json:"samples"`
	Decisions []decisionJSON `json:"decisions"`
	Firings   map[string]int `json:"firings"`
}

func (r *replayResult) writeJSON(w io.Writer) error {
	out := replayJSON{Policy: r.pol.File(), Record: r.rec.path, Job: r.job, Start: r.start(), Samples: len(r.samples),
		Decisions: []decisionJSON{}, Firings: r.firings()}
	for _, d := range r.decisions {
		j := decisionJSON{Time: d.Time, OffsetSeconds: d.Time.Sub(r.start()).Seconds(), Rule: d.Rule, Resource: d.Resource,
			Value: d.Value, Threshold: d.Threshold, Firing: d.Firing, Action: d.Action, KillsJob: d.KillsJob}
		if d.Resource != "oom" {
			j.State = d.State.String()
		}
		out.Decisions = append(out.Decisions, j)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// record is a --record file, read whole and checked.
type record struct {
	path    string
	entries []recordEntry
	jobs    []string // in order of first appearance
}

// recordEntry is one line of a record.
type recordEntry struct {
	line        int
	time        time.Time
	job         string
	resource    monitor.Resource
	state       monitor.State
	utilization float64
}

// maxRecordErrors is how many bad lines are reported before giving up.
const maxRecordErrors = 10

// readRecord reads a file that --record wrote. Blank lines are skipped;
// every other line must be a recordLine with a time, a job, a known
// resource and state, and a utilization. Errors name the file and line.
func readRecord(path string) (*record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseRecord(path, f)
}

func parseRecord(path string, r io.Reader) (*record, error) {
	rec := &record{path: path}
	seen := map[string]bool{}
	var errs []error
	bad := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		e, err := parseRecordLine(text)
		if err != nil {
			bad++
			if bad <= maxRecordErrors {
				errs = append(errs, fmt.Errorf("%s:%d: %w", path, line, err))
			}
			continue
		}
		e.line = line
		rec.entries = append(rec.entries, e)
		if !seen[e.job] {
			seen[e.job] = true
			rec.jobs = append(rec.jobs, e.job)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s:%d: %w", path, line+1, err))
	}
	if bad > maxRecordErrors {
		errs = append(errs, fmt.Errorf("%s: %d more bad lines", path, bad-maxRecordErrors))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(rec.entries) == 0 {
		return nil, fmt.Errorf("%s: no samples in the record", path)
	}
	return rec, nil
}

func parseRecordLine(text []byte) (recordEntry, error) {
	// Pointers tell a missing field from a zero one. Fields the record
	// may gain later are ignored.
	var raw struct {
		Time        *time.Time `json:"time"`
		Job         *string    `json:"job"`
		Resource    *string    `json:"resource"`
		State       *string    `json:"state"`
		Utilization *float64   `json:"utilization"`
	}
	if err := json.Unmarshal(text, &raw); err != nil {
		return recordEntry{}, fmt.Errorf("not a record line (one JSON object per line, as --record writes): %w", err)
	}
	var missing []string
	for _, f := range []struct {
		name string
		nil  bool
	}{{"time", raw.Time == nil}, {"job", raw.Job == nil}, {"resource", raw.Resource == nil}, {"state", raw.State == nil}, {"utilization", raw.Utilization == nil}} {
		if f.nil {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return recordEntry{}, fmt.Errorf("record line without %s", strings.Join(missing, ", "))
	}
	e := recordEntry{time: *raw.Time, job: *raw.Job, utilization: *raw.Utilization}
	var err error
	switch {
	case e.time.IsZero():
		return e, errors.New("record line with a zero time")
	case e.job == "":
		return e, errors.New("record line with an empty job name")
	case math.IsNaN(e.utilization) || e.utilization < 0:
		return e, fmt.Errorf("record line with utilization %v: want a fraction of 0 or more", e.utilization)
	}
	if e.resource, err = monitor.ParseResource(*raw.Resource); err != nil {
		return e, err
	}
	if e.state, err = monitor.ParseState(*raw.State); err != nil {
		return e, err
	}
	return e, nil
}

// selectJob picks the job to use: the one named, or the only one.
func (r *record) selectJob(name string) (string, error) {
	switch {
	case name != "" && slices.Contains(r.jobs, name):
		return name, nil
	case name != "":
		return "", fmt.Errorf("--job %s: no such job in %s (it has %s)", name, r.path, strings.Join(r.jobs, ", "))
	case len(r.jobs) > 1:
		return "", fmt.Errorf("%s holds %d jobs (%s): choose one with --job", r.path, len(r.jobs), strings.Join(r.jobs, ", "))
	}
	return r.jobs[0], nil
}

// jobEntries returns the job's lines in time order.
func (r *record) jobEntries(job string) []recordEntry {
	var out []recordEntry
	for _, e := range r.entries {
		if e.job == job {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(a, b recordEntry) int { return a.time.Compare(b.time) })
	return out
}

// observations groups the job's lines into samples: rsup stamps every
// resource of one sample with the same time. Recorded states are kept;
// the replay classifies again anyway.
func (r *record) observations(job string) []policy.Observation {
	var out []policy.Observation
	for _, e := range r.jobEntries(job) {
		if n := len(out); n == 0 || !out[n-1].Time.Equal(e.time) {
			out = append(out, policy.Observation{Time: e.time})
		}
		o := &out[len(out)-1]
		o.Usages = append(o.Usages, monitor.Usage{Resource: e.resource, Utilization: e.utilization, State: e.state, Timestamp: e.time})
	}
	return out
}

//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// The tests of `rsup run --policy` on a real kernel: each rule's action is
// checked by what the job itself sees (signals, cgroup files, its own cpu
// time and allocation speed), next to the engine's JSON decision log and
// the --report summary.

// policyRun is one finished `rsup run --policy` of the policy-job helper.
type policyRun struct {
	result
	file  string       // the policy file
	start time.Time    // when rsup was started
	lines []jobLine    // the job's stdout
	recs  []logRecord  // the JSON records on rsup's stderr
	rep   policyReport // --report
}

type policyReport struct {
	ExitStatus      *int           `json:"exit_status"`
	Signal          string         `json:"signal"`
	Policy          string         `json:"policy"`
	DryRun          bool           `json:"dry_run"`
	RuleFirings     map[string]int `json:"rule_firings"`
	KilledByRule    string         `json:"killed_by_rule"`
	MemoryPeakBytes *uint64        `json:"memory_peak_bytes"`
}

// runPolicy writes text as a policy file and runs the policy-job helper
// with steps under it, with JSON logs and a report.
func runPolicy(t *testing.T, root, name, text string, flags []string, steps ...string) policyRun {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, name+".toml")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, name+"-report.json")
	args := append([]string{"run", "--cgroup-root", root, "--name", name, "--policy", file,
		"--log-format", "json", "--report", rep}, flags...)
	args = append(append(args, "--"), helper("policy-job", steps...)...)
	start := time.Now()
	r := rsup(t, args...)
	pr := policyRun{result: r, file: file, start: start, lines: parseJobLines(r.stdout), recs: parseLogRecords(r.stderr)}
	b, err := os.ReadFile(rep)
	if err != nil {
		t.Fatalf("no report (exit %d): %v\nstdout:\n%s\nstderr:\n%s", r.code, err, r.stdout, r.stderr)
	}
	if err := json.Unmarshal(b, &pr.rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	return pr
}

// dump is the run's output for failure messages.
func (p policyRun) dump() string {
	return fmt.Sprintf("exit %d after %v\n--- job stdout:\n%s--- rsup stderr:\n%s", p.code, p.wall.Round(time.Millisecond), p.stdout, p.stderr)
}

// jobLine is one line of the policy-job helper: a kind, then words and
// key=value pairs (values quoted when they may hold spaces).
type jobLine struct {
	kind  string
	words []string
	kv    map[string]string
}

var jobTokenRe = regexp.MustCompile(`(\w[\w.]*)=("(?:[^"\\]|\\.)*"|\S*)|(\S+)`)

func parseJobLines(out string) []jobLine {
	var lines []jobLine
	for l := range strings.Lines(out) {
		toks := jobTokenRe.FindAllStringSubmatch(strings.TrimSpace(l), -1)
		if len(toks) == 0 {
			continue
		}
		jl := jobLine{kind: toks[0][0], kv: map[string]string{}}
		for _, m := range toks[1:] {
			if m[3] != "" {
				jl.words = append(jl.words, m[3])
				continue
			}
			v := m[2]
			if u, err := strconv.Unquote(v); err == nil {
				v = u
			}
			jl.kv[m[1]] = v
		}
		lines = append(lines, jl)
	}
	return lines
}

func (l jobLine) at() time.Time {
	n, _ := strconv.ParseInt(l.kv["at"], 10, 64)
	return time.Unix(0, n)
}

func (l jobLine) num(key string) float64 {
	v, _ := strconv.ParseFloat(l.kv[key], 64)
	return v
}

// find returns the job's lines of kind whose first word is word ("" for
// any).
func findLines(lines []jobLine, kind, word string) []jobLine {
	var out []jobLine
	for _, l := range lines {
		if l.kind == kind && (word == "" || (len(l.words) > 0 && l.words[0] == word)) {
			out = append(out, l)
		}
	}
	return out
}

// logRecord is one JSON line of rsup's log.
type logRecord map[string]any

func parseLogRecords(stderr string) []logRecord {
	var out []logRecord
	for l := range strings.Lines(stderr) {
		var r logRecord
		if strings.HasPrefix(l, "{") && json.Unmarshal([]byte(l), &r) == nil {
			out = append(out, r)
		}
	}
	return out
}

func (r logRecord) str(k string) string {
	switch v := r[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func (r logRecord) time() time.Time {
	at, _ := time.Parse(time.RFC3339Nano, r.str("time"))
	return at
}

// records returns the records with message msg and the attributes given
// as key, value pairs.
func records(recs []logRecord, msg string, kv ...string) []logRecord {
	var out []logRecord
next:
	for _, r := range recs {
		if r.str("msg") != msg {
			continue
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if r.str(kv[i]) != kv[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

func secs(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// 1. A warning rule signals the job once per warning episode, and a
// critical rule kills it: SIGTERM, which the job does not catch.
func TestPolicyWarningSignalThenKill(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "64M"

[thresholds]
memory = { warning = 0.5, critical = 0.9, clear = 0.4 }

[[rule]]
name = "warn"
resource = "memory"
state = "warning"
for = "300ms"
actions = [ { type = "signal", signal = "SIGUSR1", target = "main" } ]

[[rule]]
name = "crit"
resource = "memory"
state = "critical"
for = "200ms"
actions = [ { type = "kill", signal = "SIGTERM", grace = "2s" } ]
`
	// Episode 1: 40M (0.625, warning), then down to 8M (below clear 0.4).
	// Episode 2: 40M again, then 60M (0.94, critical) until killed.
	p := runPolicy(t, root, "warnkill", pol, []string{"--interval", "100ms"},
		"to:40M", "hold:2500ms", "to:8M", "hold:2s", "to:40M", "hold:2500ms", "to:60M", "hold:60s")
	if p.code != 143 {
		t.Fatalf("exit %d, want 143 (SIGTERM of rule crit)\n%s", p.code, p.dump())
	}
	holds := findLines(p.lines, "hold", "")
	tos := findLines(p.lines, "to", "")
	if len(holds) != 3 || len(tos) != 4 {
		t.Fatalf("the job did not get through its plan to the last hold (%d holds, %d steps to a size):\n%s", len(holds), len(tos), p.dump())
	}
	// The job's counts at the end of each phase: one SIGUSR1 in episode
	// 1, none while below clear, one more in episode 2.
	for i, want := range []float64{1, 1, 2} {
		if got := holds[i].num("usr1"); got != want {
			t.Errorf("after hold %d (%s) the job had %v SIGUSR1, want %v", i+1, holds[i].words[0], got, want)
		}
	}
	if got := len(findLines(p.lines, "got", "SIGUSR1")); got != 2 {
		t.Errorf("the job got SIGUSR1 %d times, want 2 (once per warning episode)", got)
	}
	if cur := tos[3].num("current"); cur < 0.9*64*(1<<20) || cur >= 64<<20 {
		t.Errorf("the job's critical level was %.0f bytes, not within [0.9, 1) of 64M", cur)
	}

	warn := records(p.recs, "policy rule fired", "rule", "warn")
	crit := records(p.recs, "policy rule fired", "rule", "crit")
	kill := records(p.recs, "policy action: kill", "rule", "crit", "signal", "SIGTERM")
	sig := records(p.recs, "policy action: signal", "rule", "warn", "signal", "SIGUSR1", "target", "main", "processes", "1")
	if len(warn) != 2 || len(crit) != 1 || len(kill) != 1 || len(sig) != 2 {
		t.Fatalf("decisions: %d warn firings, %d crit firings, %d kills, %d signals; want 2, 1, 1, 2\n%s", len(warn), len(crit), len(kill), len(sig), p.dump())
	}
	// Episode 1's firing came before the job went below clear, episode
	// 2's after it came back, and the kill after the job reached 60M.
	if !warn[0].time().Before(tos[1].at()) || !warn[1].time().After(tos[1].at()) || !warn[1].time().Before(tos[3].at()) {
		t.Errorf("warn fired at %v and %v; the job went down at %v and up to critical at %v", warn[0].time(), warn[1].time(), tos[1].at(), tos[3].at())
	}
	if !kill[0].time().After(tos[3].at().Add(-100*time.Millisecond)) || !kill[0].time().After(warn[1].time()) {
		t.Errorf("the kill at %v did not follow the critical level (%v) and the second warning (%v)", kill[0].time(), tos[3].at(), warn[1].time())
	}
	line := fmt.Sprintf(`rsup: job warnkill: killed by policy rule "crit" of %s (SIGTERM, then cgroup.kill after 2s)`, p.file)
	mustContain(t, "rsup's stderr", p.stderr, line)
	if p.rep.KilledByRule != "crit" || p.rep.RuleFirings["warn"] != 2 || p.rep.RuleFirings["crit"] != 1 ||
		p.rep.ExitStatus == nil || *p.rep.ExitStatus != 143 || p.rep.Policy != p.file || p.rep.DryRun {
		t.Errorf("report: %+v", p.rep)
	}
	cgroupKill := len(records(p.recs, "policy kill: grace period over, killing the job's cgroup"))
	t.Logf("measured: warn fired at %s (value %s) and %s (value %s) after rsup's start, crit at %s (value %s); "+
		"SIGUSR1 per phase %v/%v/%v; critical level %.1f MiB; SIGTERM -> rsup exit %s, cgroup.kill needed %d; exit %d; rule_firings %v",
		secs(warn[0].time().Sub(p.start)), warn[0].str("value"), secs(warn[1].time().Sub(p.start)), warn[1].str("value"),
		secs(crit[0].time().Sub(p.start)), crit[0].str("value"), holds[0].kv["usr1"], holds[1].kv["usr1"], holds[2].kv["usr1"],
		tos[3].num("current")/(1<<20), secs(p.start.Add(p.wall).Sub(kill[0].time())), cgroupKill, p.code, p.rep.RuleFirings)
}

// cpuSample is the job cgroup's cpu usage as the spinning job read it.
type cpuSample struct {
	at     time.Time
	usage  float64 // seconds
	cpuMax string
}

// cpuShare is the CPU time per wall time between the first and the last
// sample within [from, to].
func cpuShare(s []cpuSample, from, to time.Time) (float64, int) {
	var in []cpuSample
	for _, x := range s {
		if !x.at.Before(from) && !x.at.After(to) {
			in = append(in, x)
		}
	}
	if len(in) < 2 {
		return 0, len(in)
	}
	a, b := in[0], in[len(in)-1]
	return (b.usage - a.usage) / b.at.Sub(a.at).Seconds(), len(in)
}

// 2. A cpu rule throttles a busy job to a quarter CPU for 2s: the job's
// share drops to about 0.25 and comes back once cpu.max is restored. The
// cooldown keeps it to one firing: at a 100ms interval a throttled job
// that has spent its quota reads as idle for a sample, which ends the
// episode, and a new one would fire again 2s later.
func TestPolicyCPUThrottle(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
cpu = "100%"

[thresholds]
cpu = { warning = 0.5, critical = 0.99 }

[[rule]]
name = "hog"
resource = "cpu"
state = "warning"
for = "2s"
cooldown = "1h"
actions = [ { type = "throttle", cpu = "25%", until = "2s" } ]
`
	p := runPolicy(t, root, "cpuhog", pol, []string{"--interval", "100ms"}, "spin:2:9s")
	if p.code != 0 {
		t.Fatalf("exit %d\n%s", p.code, p.dump())
	}
	thr := records(p.recs, "policy action: throttle", "rule", "hog", "file", "cpu.max", "value", "25000 100000")
	rest := records(p.recs, "policy action ended: restored cpu.max", "rule", "hog", "value", "100000 100000")
	if len(thr) != 1 || len(rest) != 1 {
		t.Fatalf("%d throttle and %d restore records of cpu.max, want 1 each\n%s", len(thr), len(rest), p.dump())
	}
	var s []cpuSample
	seen := map[string]int{}
	for _, l := range findLines(p.lines, "cpu", "") {
		s = append(s, cpuSample{at: l.at(), usage: l.num("usage_usec") / 1e6, cpuMax: l.kv["cpu.max"]})
		seen[l.kv["cpu.max"]]++
	}
	if len(s) < 10 {
		t.Fatalf("only %d cpu samples from the job\n%s", len(s), p.dump())
	}
	tThr, tRest := thr[0].time(), rest[0].time()
	settle := 300 * time.Millisecond
	before, nb := cpuShare(s, s[0].at.Add(250*time.Millisecond), tThr)
	during, nd := cpuShare(s, tThr.Add(settle), tRest)
	after, na := cpuShare(s, tRest.Add(settle), s[len(s)-1].at)
	t.Logf("measured: cpu share of the job (2 spinning threads, cpu.max 1 CPU): before the throttle %.3f (%d samples), "+
		"throttled to 25%% %.3f (%d samples), after the restore %.3f (%d samples); throttled %s after the job's start for %s; "+
		"cpu.max as the job read it: %v",
		before, nb, during, nd, after, na, secs(tThr.Sub(s[0].at)), secs(tRest.Sub(tThr)), seen)
	if nb < 3 || nd < 3 || na < 3 {
		t.Fatalf("too few samples in a phase (before %d, during %d, after %d)\n%s", nb, nd, na, p.dump())
	}
	if before < 0.6 || after < 0.6 {
		t.Errorf("unthrottled share %.3f before and %.3f after, want > 0.6 of the 1-CPU limit", before, after)
	}
	if during < 0.15 || during > 0.40 {
		t.Errorf("throttled share %.3f, want 0.25 (0.15 to 0.40)", during)
	}
	if seen["25000 100000"] == 0 || seen["100000 100000"] == 0 {
		t.Errorf("the job never read the throttled and the restored cpu.max: %v", seen)
	}
	if got := tRest.Sub(tThr); got < 1900*time.Millisecond || got > 4*time.Second {
		t.Errorf("throttle held %v, want about 2s", got)
	}
	if p.rep.RuleFirings["hog"] != 1 {
		t.Errorf("rule hog fired %d times, want 1 (one episode, no cooldown)", p.rep.RuleFirings["hog"])
	}
}

// 3. A memory rule lowers memory.high: the kernel holds the allocating
// job back (memory.events "high" counts) without any OOM kill, and the
// job finishes once the throttle ends.
//
// The throttle has a duration rather than until = "clear": without swap
// the job cannot get back below the warning while it holds its memory,
// and a job far above memory.high is slowed to a crawl (it got from 32M to
// 45M in a minute in this VM), so an until-clear throttle would never end.
func TestPolicyMemoryHighThrottle(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "256M"

[thresholds]
memory = { warning = 0.1, critical = 0.95 }

[[rule]]
name = "squeeze"
resource = "memory"
state = "warning"
actions = [ { type = "throttle", memory_high = "32M", until = "3s" } ]
`
	steps := []string{"alloc:120M:10ms", "show:end:memory.events,memory.peak,memory.high"}
	base := rsup(t, append([]string{"run", "--cgroup-root", root, "--name", "nopolicy", "--memory", "256M", "--interval", "100ms", "--"},
		helper("policy-job", steps...)...)...)
	if base.code != 0 {
		t.Fatalf("baseline: exit %d\n%s\n%s", base.code, base.stdout, base.stderr)
	}
	baseAlloc := findLines(parseJobLines(base.stdout), "alloc", "")
	p := runPolicy(t, root, "squeezed", pol, []string{"--interval", "100ms"}, steps...)
	if p.code != 0 {
		t.Fatalf("exit %d\n%s", p.code, p.dump())
	}
	alloc, end := findLines(p.lines, "alloc", ""), findLines(p.lines, "show", "end")
	if len(alloc) != 1 || len(end) != 1 || len(baseAlloc) != 1 {
		t.Fatalf("no allocation report\n%s\nbaseline:\n%s", p.dump(), base.stdout)
	}
	ev := map[string]uint64{}
	for l := range strings.Lines(end[0].kv["memory.events"]) {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), " "); ok {
			ev[k], _ = strconv.ParseUint(v, 10, 64)
		}
	}
	thr := records(p.recs, "policy action: throttle", "rule", "squeeze", "file", "memory.high", "value", "33554432")
	rest := records(p.recs, "policy action ended: restored memory.high", "rule", "squeeze", "value", "max")
	if len(thr) != 1 || len(rest) != 1 {
		t.Fatalf("%d throttle and %d restore records of memory.high, want 1 each\n%s", len(thr), len(rest), p.dump())
	}
	took, baseTook := alloc[0].num("took"), baseAlloc[0].num("took")
	ratio := took / baseTook
	t.Logf("measured: 120M in 1M steps 10ms apart took %.3fs under the policy vs %.3fs without (ratio %.2f); longest step %.3fs vs %.3fs; "+
		"memory.high 32M held %s; memory.events high=%d max=%d oom_kill=%d; memory.peak %s; memory.high at the end %s",
		took, baseTook, ratio, alloc[0].num("longest"), baseAlloc[0].num("longest"), secs(rest[0].time().Sub(thr[0].time())),
		ev["high"], ev["max"], ev["oom_kill"], end[0].kv["memory.peak"], end[0].kv["memory.high"])
	if ev["high"] == 0 {
		t.Errorf("memory.events high is 0: the job never went above the lowered memory.high\n%s", end[0].kv["memory.events"])
	}
	if ev["oom_kill"] != 0 || ev["oom"] != 0 {
		t.Errorf("a memory.high throttle caused an OOM: %v", ev)
	}
	if end[0].kv["memory.high"] != "max" {
		t.Errorf("memory.high is %q at the end, want max restored", end[0].kv["memory.high"])
	}
	if ratio < 1.5 || alloc[0].num("longest") < 0.5 {
		t.Errorf("the throttle did not slow the job: %.3fs vs %.3fs (ratio %.2f), longest step %.3fs", took, baseTook, ratio, alloc[0].num("longest"))
	}
}

// 4. A signal action with target "cgroup" reaches a grandchild in its own
// session; with target "main" only the command.
func TestPolicySignalTargets(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.25, critical = 0.9 }

[[rule]]
name = "poke"
resource = "memory"
state = "warning"
actions = [ { type = "signal", signal = "SIGUSR2", target = "%s" } ]
`
	var got []string
	for _, target := range []string{"cgroup", "main"} {
		rec := filepath.Join(t.TempDir(), "grandchild-signals")
		// The grandchild is up before the job crosses the warning.
		p := runPolicy(t, root, "target-"+target, fmt.Sprintf(pol, target), []string{"--interval", "100ms"},
			"spawn:"+rec, "to:48M", "hold:3s", "report:"+rec)
		if p.code != 0 {
			t.Fatalf("target %s: exit %d\n%s", target, p.code, p.dump())
		}
		spawned, holds, report := findLines(p.lines, "spawned", ""), findLines(p.lines, "hold", ""), findLines(p.lines, "grandchild", "")
		if len(spawned) != 1 || len(holds) != 1 || len(report) != 1 {
			t.Fatalf("target %s: the job did not run its plan\n%s", target, p.dump())
		}
		if spawned[0].kv["sid"] == spawned[0].kv["main_sid"] || spawned[0].kv["pgid"] == spawned[0].kv["main_pgid"] {
			t.Errorf("target %s: the grandchild shares the main process's session or group: %v", target, spawned[0].kv)
		}
		mainGot, childGot := holds[0].num("usr2"), report[0].num("count")
		wantChild, wantProcs := 1.0, "2"
		if target == "main" {
			wantChild, wantProcs = 0, "1"
		}
		if mainGot != 1 || childGot != wantChild {
			t.Errorf("target %s: main got SIGUSR2 %v times, the grandchild %v times; want 1 and %v", target, mainGot, childGot, wantChild)
		}
		sig := records(p.recs, "policy action: signal", "rule", "poke", "signal", "SIGUSR2", "target", target)
		if len(sig) != 1 || sig[0].str("processes") != wantProcs {
			t.Errorf("target %s: signal records %v, want one reaching %s process(es)", target, sig, wantProcs)
		}
		procs := "?"
		if len(sig) > 0 {
			procs = sig[0].str("processes")
		}
		got = append(got, fmt.Sprintf("target %s: main %v, setsid'd grandchild %v (%q), engine reached %s", target, mainGot, childGot, report[0].kv["signals"], procs))
	}
	t.Logf("measured: SIGUSR2 received: %s", strings.Join(got, "; "))
}

// 5. A memory_pressure rule acts on the kernel's PSI trigger, with an
// interval of a minute: the job stalls far above memory.high and the rule
// logs and signals it (the job exits at that signal).
func TestPolicyPressureRule(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "256M"
memory_high = "16M"

[thresholds]
memory_pressure = { warning = 0.0001, critical = 0.99 }

[[rule]]
name = "stall"
resource = "memory_pressure"
state = "warning"
actions = [
  { type = "log", level = "warn" },
  { type = "signal", signal = "SIGUSR1", target = "main" },
]
`
	p := runPolicy(t, root, "pressure", pol, []string{"--interval", "1m"}, "quit-on-usr1", "bgalloc:64M", "hold:45s")
	if p.code != 0 {
		t.Fatalf("exit %d, want 0 (the job exits at the rule's SIGUSR1)\n%s", p.code, p.dump())
	}
	fired := records(p.recs, "policy rule fired", "rule", "stall", "resource", "memory_pressure")
	logged := records(p.recs, "policy: stall", "level", "WARN", "resource", "memory_pressure")
	sig := records(p.recs, "policy action: signal", "rule", "stall", "signal", "SIGUSR1", "processes", "1")
	start, quit := findLines(p.lines, "start", ""), findLines(p.lines, "quit", "")
	if len(fired) != 1 || len(logged) != 1 || len(sig) != 1 || len(start) != 1 || len(quit) != 1 {
		t.Fatalf("%d firings, %d warn logs, %d signals, job quit %d times; want 1 each\n%s", len(fired), len(logged), len(sig), len(quit), p.dump())
	}
	if len(findLines(p.lines, "hold", "")) != 0 {
		t.Errorf("the job waited out its hold: the signal came late")
	}
	fromJob := fired[0].time().Sub(start[0].at())
	fromRsup := fired[0].time().Sub(p.start)
	t.Logf("measured: memory_pressure rule fired %s after the job's start (%s after rsup's) with avg10 %s, interval 1m; "+
		"SIGUSR1 reached the job %s after the firing; rule_firings %v",
		secs(fromJob), secs(fromRsup), fired[0].str("value"), secs(quit[0].at().Sub(fired[0].time())), p.rep.RuleFirings)
	if fromJob > 40*time.Second {
		t.Errorf("the rule fired %v after the job's start: not woken by PSI", fromJob)
	}
}

// 6. --dry-run: every rule fires and every decision is logged with
// dry_run, but the job sees no signal, no freeze and unchanged limits, and
// is not killed.
func TestPolicyDryRun(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.25, critical = 0.9 }

[[rule]]
name = "sig"
resource = "memory"
state = "warning"
actions = [ { type = "signal", signal = "SIGUSR1", target = "cgroup" } ]

[[rule]]
name = "thr"
resource = "memory"
state = "warning"
actions = [ { type = "throttle", cpu = "10%", memory_high = "96M", until = "3s" } ]

[[rule]]
name = "frz"
resource = "memory"
state = "warning"
actions = [ { type = "freeze", until = "3s" } ]

[[rule]]
name = "kill"
resource = "memory"
state = "warning"
actions = [ { type = "kill", signal = "SIGTERM", grace = "3s" } ]
`
	files := "show:%s:cgroup.freeze,cpu.max,memory.high"
	p := runPolicy(t, root, "dry", pol, []string{"--interval", "100ms", "--dry-run"},
		fmt.Sprintf(files, "before"), "to:48M", "hold:1s", fmt.Sprintf(files, "during"), "hold:5s", fmt.Sprintf(files, "after"))
	if p.code != 0 {
		t.Fatalf("exit %d, want 0 (a dry run kills nothing)\n%s", p.code, p.dump())
	}
	shows := findLines(p.lines, "show", "")
	if len(shows) != 3 {
		t.Fatalf("the job read its cgroup files %d times, want 3\n%s", len(shows), p.dump())
	}
	for _, s := range shows {
		for f, want := range map[string]string{"cgroup.freeze": "0", "cpu.max": "max 100000", "memory.high": "max"} {
			if s.kv[f] != want {
				t.Errorf("%s: %s = %q, want %q (unchanged)", s.words[0], f, s.kv[f], want)
			}
		}
	}
	holds := findLines(p.lines, "hold", "")
	if n := len(findLines(p.lines, "got", "")); n != 0 || len(holds) != 2 || holds[1].num("usr1") != 0 {
		t.Errorf("the job received %d signals in a dry run", n)
	}
	want := map[string]int{
		"policy rule fired":                                        4,
		"policy action: signal":                                    1,
		"policy action: throttle":                                  2, // cpu.max and memory.high
		"policy action: freeze":                                    1,
		"policy action ended: restored cgroup.freeze":              1, // the kill thaws first
		"policy action: kill":                                      1,
		"policy kill: grace period over, killing the job's cgroup": 1,
		"policy action ended: restored cpu.max":                    1,
		"policy action ended: restored memory.high":                1,
	}
	got := map[string]int{}
	var last time.Time
	for _, r := range p.recs {
		msg := r.str("msg")
		if !strings.HasPrefix(msg, "policy") {
			continue
		}
		got[msg]++
		if r["dry_run"] != true {
			t.Errorf("record without dry_run=true: %v", r)
		}
		if r.time().After(last) {
			last = r.time()
		}
	}
	for msg, n := range want {
		if got[msg] != n {
			t.Errorf("%d records %q, want %d", got[msg], msg, n)
		}
	}
	for msg := range got {
		if _, ok := want[msg]; !ok {
			t.Errorf("unexpected record %q", msg)
		}
	}
	if sig := records(p.recs, "policy action: signal", "processes", "0"); len(sig) != 1 {
		t.Errorf("the dry signal claims to have reached processes: %v", records(p.recs, "policy action: signal"))
	}
	fired := records(p.recs, "policy rule fired")
	if len(fired) > 0 && !last.Before(shows[2].at()) {
		t.Errorf("the last decision (%v) came after the job's last read (%v): the reads do not cover the decisions", last, shows[2].at())
	}
	// The middle read falls while the throttle and the kill's grace
	// would be in force.
	thr, rest := records(p.recs, "policy action: throttle", "file", "cpu.max"), records(p.recs, "policy action ended: restored cpu.max")
	if len(thr) == 1 && len(rest) == 1 && (shows[1].at().Before(thr[0].time()) || shows[1].at().After(rest[0].time())) {
		t.Errorf("the job's middle read (%v) is not within the dry throttle (%v to %v)", shows[1].at(), thr[0].time(), rest[0].time())
	}
	if p.rep.KilledByRule != "" || !p.rep.DryRun || len(p.rep.RuleFirings) != 4 {
		t.Errorf("report: %+v", p.rep)
	}
	for _, r := range []string{"sig", "thr", "frz", "kill"} {
		if p.rep.RuleFirings[r] != 1 {
			t.Errorf("report: rule %s fired %d times, want 1", r, p.rep.RuleFirings[r])
		}
	}
	var firedAt, middle string
	if len(fired) > 0 {
		firedAt = secs(fired[0].time().Sub(p.start))
	}
	if len(thr) > 0 {
		middle = secs(shows[1].at().Sub(thr[0].time()))
	}
	n := 0
	for _, c := range got {
		n += c
	}
	t.Logf("measured: %d decision records, all dry_run=true (%v); rules fired %s after rsup's start; the job read %s/%s/%s "+
		"before, during (%s into the 3s throttle) and after: unchanged; signals received 0; exit %d", n, got, firedAt,
		shows[0].kv["cgroup.freeze"], shows[0].kv["cpu.max"], shows[0].kv["memory.high"], middle, p.code)
}

// 7. Every policy of the bad corpus is refused before anything happens:
// status 2, the error at the file's line, no cgroup, no command run.
func TestPolicyBadCorpus(t *testing.T) {
	// The VM runner copies the corpus to the same place relative to this
	// package as on the host.
	const corpus = "../policy/testdata/bad"
	files, err := filepath.Glob(corpus + "/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad policies in %s: %v", corpus, err)
	}
	root := requireV2(t)
	before := cgroupDirs()
	marker := filepath.Join(t.TempDir(), "marker")
	textMatched := 0
	var textOther []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		head := strings.SplitN(string(data), "\n", 3)
		want, ok1 := strings.CutPrefix(head[0], "# want: ")
		lineText, ok2 := strings.CutPrefix(head[1], "# line: ")
		line, err := strconv.Atoi(lineText)
		if !ok1 || !ok2 || err != nil {
			t.Errorf("%s does not start with # want: and # line: comments", f)
			continue
		}
		r := rsup(t, "run", "--cgroup-root", root, "--policy", f, "--", "touch", marker)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", f, r.code, r.stderr)
		}
		pos := fmt.Sprintf("%s:%d:", f, line)
		found, text := false, false
		for l := range strings.Lines(r.stderr) {
			if strings.Contains(l, pos) {
				found = true
				text = text || strings.Contains(l, want)
			}
		}
		if !found {
			t.Errorf("%s: no error at %s on stderr:\n%s", f, pos, r.stderr)
		}
		if text {
			textMatched++
		} else {
			textOther = append(textOther, filepath.Base(f)+": "+strings.TrimSpace(r.stderr))
		}
		if _, err := os.Stat(marker); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: the command ran (%s exists: %v)", f, marker, err)
		}
		if _, err := os.Stat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the cgroup root %s was created (%v)", f, root, err)
		}
	}
	var created []string
	for d := range cgroupDirs() {
		if !before[d] {
			created = append(created, d)
		}
	}
	if len(created) > 0 {
		t.Errorf("cgroups created for bad policies: %v", created)
	}
	t.Logf("measured: %d bad policy files rejected with exit 2 and FILE:LINE, %d with the corpus's message; "+
		"commands run 0; cgroups created %d", len(files), textMatched, len(created))
	for _, o := range textOther {
		t.Errorf("message differs from the corpus's # want: %s", o)
	}
}

// cgroupDirs lists every cgroup directory under the mount.
func cgroupDirs() map[string]bool {
	dirs := map[string]bool{}
	_ = filepath.WalkDir(cgroupMount, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs[p] = true
		}
		return nil
	})
	return dirs
}

// ---- the helpers that run as the job ----

// policyJob is the job of the policy tests. It counts the SIGUSR1 and
// SIGUSR2 it receives, printing "got SIGUSRn n=N at=NANOS" for each, and
// runs its arguments as steps, printing a line with the time (UnixNano) at
// the end of each:
//
//	to:SIZE          hold more or less memory, 1 MiB at a time, until the job
//	                 cgroup's memory.current reaches SIZE
//	alloc:SIZE:PACE  touch SIZE more in 1 MiB steps PACE apart, and say how
//	                 long it took (pauses excluded) and the longest step
//	bgalloc:SIZE     touch SIZE in the background
//	hold:DURATION    sleep, then print the signal counts
//	quit-on-usr1     exit 0 at the next SIGUSR1
//	show:LABEL:F,..  print the job cgroup's files F
//	spin:N:DURATION  spin N threads, printing the job cgroup's cpu usage and
//	                 cpu.max every 250ms
//	spawn:FILE       start a grandchild in a session of its own that writes
//	                 each signal it gets to FILE, and wait until it is ready
//	report:FILE      print what the grandchild wrote
func policyJob(steps []string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "policy-job:", err)
		return 3
	}
	cg, err := ownCgroup()
	if err != nil {
		return fail(err)
	}
	dir := cgroupMount + cg
	read := func(f string) string {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return "error: " + err.Error()
		}
		return strings.TrimSpace(string(b))
	}
	current := func() uint64 {
		n, _ := strconv.ParseUint(read("memory.current"), 10, 64)
		return n
	}
	now := func() int64 { return time.Now().UnixNano() }

	var usr1, usr2 atomic.Int64
	var quit atomic.Bool
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGUSR1, unix.SIGUSR2)
	go func() {
		for s := range sigs {
			c := &usr1
			if s == unix.SIGUSR2 {
				c = &usr2
			}
			n := c.Add(1)
			fmt.Printf("got %s n=%d at=%d\n", unix.SignalName(s.(unix.Signal)), n, now())
			if s == unix.SIGUSR1 && quit.Load() {
				fmt.Printf("quit at=%d\n", now())
				os.Exit(0)
			}
		}
	}()
	fmt.Printf("start at=%d pid=%d\n", now(), os.Getpid())

	var held [][]byte
	chunk := func() error {
		b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return err
		}
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		return nil
	}
	for _, step := range steps {
		f := strings.Split(step, ":")
		arg := func(i int) string {
			if i < len(f) {
				return f[i]
			}
			return ""
		}
		switch f[0] {
		case "to":
			l, err := cgroup.ParseBytes(arg(1))
			if err != nil {
				return fail(err)
			}
			if current() < l.N {
				for current() < l.N && uint64(len(held)) < l.N>>20 {
					if err := chunk(); err != nil {
						return fail(err)
					}
				}
			} else {
				for current() > l.N && len(held) > 0 {
					_ = unix.Munmap(held[len(held)-1])
					held = held[:len(held)-1]
				}
			}
			fmt.Printf("to %s current=%d held=%d at=%d\n", arg(1), current(), len(held), now())
		case "alloc":
			l, err := cgroup.ParseBytes(arg(1))
			if err != nil {
				return fail(err)
			}
			pace, _ := time.ParseDuration(arg(2))
			var total, longest time.Duration
			for range l.N >> 20 {
				t0 := time.Now()
				if err := chunk(); err != nil {
					return fail(err)
				}
				d := time.Since(t0)
				total += d
				longest = max(longest, d)
				time.Sleep(pace)
			}
			fmt.Printf("alloc %s took=%.3f longest=%.3f at=%d\n", arg(1), total.Seconds(), longest.Seconds(), now())
		case "bgalloc":
			l, err := cgroup.ParseBytes(arg(1))
			if err != nil {
				return fail(err)
			}
			go func() {
				var mine [][]byte
				for range l.N >> 20 {
					b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
					if err != nil {
						fmt.Println("bgalloc:", err)
						return
					}
					for i := 0; i < len(b); i += 4096 {
						b[i] = 1
					}
					mine = append(mine, b)
				}
				fmt.Printf("bgalloc %s done=%d at=%d\n", arg(1), len(mine), now())
			}()
		case "hold":
			d, err := time.ParseDuration(arg(1))
			if err != nil {
				return fail(err)
			}
			time.Sleep(d)
			fmt.Printf("hold %s usr1=%d usr2=%d current=%d at=%d\n", arg(1), usr1.Load(), usr2.Load(), current(), now())
		case "quit-on-usr1":
			quit.Store(true)
		case "show":
			var b strings.Builder
			fmt.Fprintf(&b, "show %s at=%d", arg(1), now())
			for _, file := range strings.Split(arg(2), ",") {
				fmt.Fprintf(&b, " %s=%q", file, read(file))
			}
			fmt.Println(b.String())
		case "spin":
			n, _ := strconv.Atoi(arg(1))
			d, err := time.ParseDuration(arg(2))
			if err != nil {
				return fail(err)
			}
			spinAndSample(n, d, read, now)
		case "spawn":
			if err := spawnRecorder(arg(1)); err != nil {
				return fail(err)
			}
		case "report":
			b, _ := os.ReadFile(arg(1))
			got := strings.Fields(string(b))
			fmt.Printf("grandchild count=%d signals=%q at=%d\n", len(got), strings.Join(got, ","), now())
		default:
			return fail(fmt.Errorf("unknown step %q", step))
		}
	}
	return 0
}

// spinAndSample spins n threads for d while printing the job cgroup's
// usage_usec (cpu.stat) and cpu.max every 250ms.
func spinAndSample(n int, d time.Duration, read func(string) string, now func() int64) {
	start := time.Now()
	wait := spinThreads(n, start.Add(d))
	for time.Since(start) < d {
		usage := "?"
		for l := range strings.Lines(read("cpu.stat")) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "usage_usec "); ok {
				usage = v
			}
		}
		fmt.Printf("cpu at=%d usage_usec=%s cpu.max=%q\n", now(), usage, read("cpu.max"))
		time.Sleep(250 * time.Millisecond)
	}
	wait()
}

// spawnRecorder starts the signal recorder as a grandchild in a session of
// its own (through sig-rec-mid, which exits at once) and waits until it has
// written FILE.ready.
func spawnRecorder(file string) error {
	c := exec.Command(testBinOrSelf(), file)
	c.Env = append(os.Environ(), helperEnv+"=sig-rec-mid")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Run(); err != nil {
		return fmt.Errorf("start the recorder: %w", err)
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, err := os.ReadFile(file + ".ready")
		if err == nil {
			sid, _ := unix.Getsid(0)
			fmt.Printf("spawned %s main_sid=%d main_pgid=%d at=%d\n", strings.TrimSpace(string(b)), sid, unix.Getpgrp(), time.Now().UnixNano())
			return nil
		}
	}
	return errors.New("the recorder did not get ready within 30s")
}

// sigRecMid starts the recorder and exits, leaving it an orphan.
func sigRecMid(file string) int {
	c := exec.Command(testBinOrSelf(), file)
	c.Env = append(os.Environ(), helperEnv+"=sig-rec")
	if err := c.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "sig-rec-mid:", err)
		return 3
	}
	return 0
}

// sigRec appends the name of each SIGUSR1 and SIGUSR2 it gets to FILE, for
// up to two minutes; FILE.ready says it is listening.
func sigRec(file string) int {
	c := make(chan os.Signal, 16)
	signal.Notify(c, unix.SIGUSR1, unix.SIGUSR2)
	sid, _ := unix.Getsid(0)
	ready := fmt.Sprintf("pid=%d sid=%d pgid=%d\n", os.Getpid(), sid, unix.Getpgrp())
	if err := os.WriteFile(file+".tmp", []byte(ready), 0o644); err != nil || os.Rename(file+".tmp", file+".ready") != nil {
		fmt.Fprintln(os.Stderr, "sig-rec: cannot write", file+".ready", err)
		return 3
	}
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case s := <-c:
			f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return 3
			}
			fmt.Fprintln(f, unix.SignalName(s.(unix.Signal)))
			f.Close()
		case <-timeout:
			return 0
		}
	}
}

// A freeze action stops every process of the job for its duration and
// thaws it: the job's own clock shows the gap.
func TestPolicyFreeze(t *testing.T) {
	root := requireV2(t)
	const pol = `
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.25, critical = 0.99 }

[[rule]]
name = "pause"
resource = "memory"
state = "warning"
actions = [ { type = "freeze", until = "1s" } ]
`
	// The job ticks while a goroutine allocates past the warning (32M).
	p := runPolicy(t, root, "freezer", pol, []string{"--interval", "100ms"}, "bgalloc:40M", "spin:1:4s")
	if p.code != 0 {
		t.Fatalf("exit %d\n%s", p.code, p.dump())
	}
	froze := records(p.recs, "policy action: freeze", "rule", "pause", "file", "cgroup.freeze", "value", "1")
	thawed := records(p.recs, "policy action ended: restored cgroup.freeze", "rule", "pause", "value", "0")
	if len(froze) != 1 || len(thawed) != 1 {
		t.Fatalf("%d freeze and %d thaw records, want 1 each\n%s", len(froze), len(thawed), p.dump())
	}
	var gap time.Duration
	lines := findLines(p.lines, "cpu", "")
	for i := 1; i < len(lines); i++ {
		gap = max(gap, lines[i].at().Sub(lines[i-1].at()))
	}
	held := thawed[0].time().Sub(froze[0].time())
	t.Logf("measured: frozen for %s by the engine's records; the job's longest gap between its 250ms ticks %s; %d ticks",
		secs(held), secs(gap), len(lines))
	if gap < 900*time.Millisecond || gap > 2500*time.Millisecond {
		t.Errorf("longest gap in the job's ticks %s, want about the 1s freeze\n%s", gap, p.dump())
	}
}

// rsup track --policy: a kill rule ends an adopted process that grows, and
// rsup names the rule.
func TestPolicyTrackKill(t *testing.T) {
	root := requireV2(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "guard.toml")
	if err := os.WriteFile(file, []byte(`
[limits]
memory = "128M"

[thresholds]
memory = { warning = 0.3, critical = 0.5 }

[[rule]]
name = "runaway"
resource = "memory"
state = "critical"
actions = [ { type = "kill", signal = "SIGTERM", grace = "2s" } ]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	go1 := filepath.Join(dir, "go")
	hog := startHelper(t, "alloc-on", go1, "100M")
	b := startRsup(t, "track", "--cgroup-root", root, "--name", "tracked", "--policy", file, "--interval", "100ms",
		strconv.Itoa(hog.Process.Pid))
	b.waitFor(t, "memory.current starts at")
	start := time.Now()
	if err := os.WriteFile(go1, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := hog.Wait()
	died := time.Since(start)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != unix.SIGTERM {
		t.Fatalf("the tracked process ended with %v, want death by SIGTERM\n%s", err, b.stderr())
	}
	code := b.wait(t)
	mustContain(t, "stderr", b.stderr(), `killed by policy rule "runaway" of `+file)
	if code != 0 {
		t.Errorf("rsup track exited %d:\n%s", code, b.stderr())
	}
	if _, err := os.Stat(filepath.Join(root, "tracked")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("job cgroup remains: %v", err)
	}
	t.Logf("measured: the adopted process died of SIGTERM %s after it began to allocate; rsup track exit %d", secs(died), code)
}

//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
	"github.com/rsup/rsup/policy"
	"github.com/rsup/rsup/supervisor"
)

func openFDs(t *testing.T) int {
	t.Helper()
	e, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(e)
}

// 200 jobs in a row through the library, mixing clean exits, failures,
// OOM kills, deaths by SIGTERM and policy kills, each with a monitor and
// (for the last kind) a policy engine: no cgroup is left, and rsup's
// descriptors and goroutines stay flat.
func TestLibrarySoak(t *testing.T) {
	root := requireV2(t)
	h, err := cgroup.Open(cgroup.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	kill, err := policy.Parse("kill.toml", []byte(`
[thresholds]
pids = { warning = 0.001, critical = 0.99 }
[[rule]]
name = "stop-it"
resource = "pids"
state = "warning"
actions = [ { type = "kill", signal = "SIGTERM", grace = "1s" } ]
`), policy.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := []struct {
		name   string
		args   []string
		res    *cgroup.Resources
		status int
		policy bool
	}{
		{"ok", []string{"/bin/true"}, nil, 0, false},
		{"fail", []string{"/bin/false"}, nil, 1, false},
		{"oom", helper("alloc", "64M"), &cgroup.Resources{MemoryMax: cgroup.Value(16 << 20)}, 137, false},
		{"term", []string{"/bin/sh", "-c", "kill -TERM $$"}, nil, 143, false},
		{"policy", []string{"/bin/sleep", "30"}, &cgroup.Resources{PidsMax: cgroup.Value(1000)}, 143, true},
	}
	const runs = 200
	var fd0, g0 int
	counts := map[string]int{}
	start := time.Now()
	for i := range runs {
		if i == 10 { // after the first runs, once every lazy init has happened
			runtime.GC()
			fd0, g0 = openFDs(t), runtime.NumGoroutine()
		}
		k := kinds[i%len(kinds)]
		job, err := h.NewJob(fmt.Sprintf("soak-%d", i), k.res)
		if err != nil {
			t.Fatalf("run %d (%s): %v", i, k.name, err)
		}
		m, err := monitor.New(monitor.Options{Cgroup: job.Path(), Interval: 20 * time.Millisecond, Events: true})
		if err != nil {
			t.Fatal(err)
		}
		var eng *policy.Engine
		var pj *policy.CgroupJob
		if k.policy {
			pj = policy.NewCgroupJob(job, "/proc")
			eng = policy.NewEngine(kill, pj, policy.EngineOptions{Thresholds: m.Thresholds})
			if err := m.SetThresholds(monitor.Pids, monitor.Thresholds{Warning: 0.001, Critical: 0.99}); err != nil {
				t.Fatal(err)
			}
			m.OnSample(func(us []monitor.Usage) {
				eng.Observe(policy.Observation{Time: us[0].Timestamp, Usages: us, OOMKills: m.OOMKills()})
			})
			eng.Start()
		}
		if err := m.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		res, err := supervisor.Run(context.Background(), supervisor.Config{Args: k.args, Job: job,
			Started: func(pid int) {
				if pj != nil {
					_ = pj.AddMain(pid)
				}
			},
			Exited: func() {
				m.Stop()
				if eng != nil {
					eng.Stop()
				}
			}})
		m.Close()
		if pj != nil {
			pj.Close()
		}
		if err != nil {
			t.Fatalf("run %d (%s): %v", i, k.name, err)
		}
		if res.Status() != k.status {
			t.Fatalf("run %d (%s): status %d, want %d", i, k.name, res.Status(), k.status)
		}
		if k.policy {
			if rule, _, ok := eng.KilledBy(); !ok || rule != "stop-it" {
				t.Fatalf("run %d: not killed by the policy", i)
			}
		}
		counts[k.name]++
	}
	runtime.GC()
	time.Sleep(100 * time.Millisecond) // goroutines that are ending
	fd1, g1 := openFDs(t), runtime.NumGoroutine()
	left, _ := filepath.Glob(filepath.Join(root, "soak-*"))
	t.Logf("measured: %d runs %v in %v; open fds %d -> %d, goroutines %d -> %d (from run 10 to the end); job cgroups left %d",
		runs, counts, time.Since(start).Round(time.Millisecond), fd0, fd1, g0, g1, len(left))
	if len(left) > 0 {
		t.Errorf("job cgroups left: %v", left)
	}
	if fd1 > fd0 {
		t.Errorf("descriptors grew from %d to %d over %d runs", fd0, fd1, runs-10)
	}
	if g1 > g0 {
		t.Errorf("goroutines grew from %d to %d over %d runs", g0, g1, runs-10)
	}
}

package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/monitor"
)

var fakeDisk = cgroup.Device{Major: 253, Minor: 0}

// testOptions resolve only /dev/fakedisk, so that tests need no real disk.
var testOptions = ParseOptions{ResolveDevice: func(spec string) (cgroup.Device, error) {
	if spec == "/dev/fakedisk" || spec == "253:0" {
		return fakeDisk, nil
	}
	return cgroup.Device{}, fmt.Errorf("device %q: no such device", spec)
}}

func parseFile(t *testing.T, path string) (*Policy, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(filepath.Base(path), data, testOptions)
}

func TestParseGood(t *testing.T) {
	p, err := parseFile(t, "testdata/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "nightly-etl" || p.File() != "good.toml" {
		t.Errorf("name %q file %q", p.Name(), p.File())
	}
	w := uint64(100)
	wantLimits := &cgroup.Resources{
		CPU:        &cgroup.CPUMax{Quota: 150 * time.Millisecond, Period: 100 * time.Millisecond},
		CPUWeight:  &w,
		MemoryMax:  cgroup.Value(2 << 30),
		MemoryHigh: cgroup.Value(1800 << 20),
		MemoryLow:  cgroup.Value(256 << 20),
		SwapMax:    cgroup.Value(0),
		PidsMax:    cgroup.Value(512),
		IO: []cgroup.IOLimit{{
			Device:    fakeDisk,
			ReadBPS:   cgroup.Value(100 << 20),
			WriteBPS:  cgroup.Value(50 << 20),
			ReadIOPS:  cgroup.Value(2000),
			WriteIOPS: cgroup.Value(1000),
		}},
	}
	if got := p.Limits(); !reflect.DeepEqual(got, wantLimits) {
		t.Errorf("limits\n got %+v\nwant %+v", got, wantLimits)
	}
	if got, want := p.Monitor(), (Monitor{Interval: time.Second, History: 3600, DiskPath: "/var/tmp"}); got != want {
		t.Errorf("monitor %+v, want %+v", got, want)
	}
	wantTh := map[monitor.Resource]monitor.Thresholds{
		monitor.CPU:            {Warning: 0.7, Critical: 0.9},
		monitor.Memory:         {Warning: 0.8, Critical: 0.95, Clear: 0.7},
		monitor.Disk:           {Warning: 0.85, Critical: 0.95},
		monitor.Pids:           {Warning: 0.8, Critical: 0.95},
		monitor.MemoryPressure: {Warning: 0.10, Critical: 0.40},
	}
	if got := p.Thresholds(); !reflect.DeepEqual(got, wantTh) {
		t.Errorf("thresholds %v, want %v", got, wantTh)
	}
	cpu := cgroup.CPUMax{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}
	wantRules := []Rule{
		{
			Name: "memory-warning", Resource: monitor.Memory, State: monitor.Warning,
			For: 5 * time.Second, Cooldown: 30 * time.Second,
			Actions: []Action{
				LogAction{Level: slog.LevelWarn},
				SignalAction{Signal: unix.SIGUSR1, Target: TargetMain},
				ThrottleAction{CPU: &cpu, MemoryHigh: cgroup.Value(1500 << 20)},
			},
		},
		{
			Name: "memory-critical", Resource: monitor.Memory, State: monitor.Critical,
			For:     10 * time.Second,
			Actions: []Action{KillAction{Signal: unix.SIGTERM, Grace: 10 * time.Second}},
		},
	}
	if got := p.Rules(); !reflect.DeepEqual(got, wantRules) {
		t.Errorf("rules\n got %+v\nwant %+v", got, wantRules)
	}
}

// TestImmutable checks that what the accessors return is a copy.
func TestImmutable(t *testing.T) {
	p, err := parseFile(t, "testdata/good.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := p.Limits()
	l.MemoryMax.N = 1
	l.IO[0].ReadBPS.N = 1
	*l.CPUWeight = 7
	p.Thresholds()[monitor.CPU] = monitor.Thresholds{}
	r := p.Rules()
	r[0].Name = "changed"
	r[0].Actions[2].(ThrottleAction).MemoryHigh.N = 1
	r[0].Actions[0] = FreezeAction{}
	if p.Limits().MemoryMax.N != 2<<30 || p.Limits().IO[0].ReadBPS.N != 100<<20 || *p.Limits().CPUWeight != 100 {
		t.Error("limits changed through a returned copy")
	}
	if p.Thresholds()[monitor.CPU].Warning != 0.7 {
		t.Error("thresholds changed through a returned copy")
	}
	r = p.Rules()
	if r[0].Name != "memory-warning" || r[0].Actions[2].(ThrottleAction).MemoryHigh.N != 1500<<20 || r[0].Actions[0].Type() != "log" {
		t.Error("rules changed through a returned copy")
	}
}

func TestParseVariants(t *testing.T) {
	rule := "[[rule]]\nname = \"r\"\nresource = %q\n%sactions = [ %s ]\n"
	for _, tc := range []struct {
		name string
		src  string
		want Action
		oom  bool
	}{
		{"empty file", "", nil, false},
		{"signal defaults to main, SIG optional", fmt.Sprintf(rule, "cpu", "state = \"critical\"\n", `{ type = "signal", signal = "HUP" }`), SignalAction{Signal: unix.SIGHUP, Target: TargetMain}, false},
		{"signal to cgroup", fmt.Sprintf(rule, "io_pressure", "state = \"warning\"\n", `{ type = "signal", signal = "SIGINT", target = "cgroup" }`), SignalAction{Signal: unix.SIGINT, Target: TargetCgroup}, false},
		{"log defaults to info", fmt.Sprintf(rule, "pids", "state = \"warning\"\n", `{ type = "log" }`), LogAction{Level: slog.LevelInfo}, false},
		{"kill defaults", fmt.Sprintf(rule, "oom", "", `{ type = "kill" }`), KillAction{Signal: unix.SIGTERM, Grace: DefaultGrace}, true},
		{"freeze for a while", fmt.Sprintf(rule, "cpu", "state = \"critical\"\n", `{ type = "freeze", until = "20s" }`), FreezeAction{Until: 20 * time.Second}, false},
		{"throttle io until duration", fmt.Sprintf(rule, "io", "state = \"warning\"\n", `{ type = "throttle", io = [ { device = "253:0", write_bps = 1048576 } ], until = "1m" }`),
			ThrottleAction{IO: []cgroup.IOLimit{{Device: fakeDisk, WriteBPS: cgroup.Value(1 << 20)}}, Until: time.Minute}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse("x.toml", []byte(tc.src), testOptions)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if len(p.Rules()) != 0 || p.Limits() != nil {
					t.Errorf("empty policy has content: %+v", p)
				}
				return
			}
			r := p.Rules()[0]
			if !reflect.DeepEqual(r.Actions[0], tc.want) {
				t.Errorf("action %+v, want %+v", r.Actions[0], tc.want)
			}
			if r.OOM != tc.oom {
				t.Errorf("OOM = %v", r.OOM)
			}
		})
	}
}

// TestBad parses every file under testdata/bad. Each starts with
// "# want: TEXT" and "# line: N": parsing must fail with ErrInvalid, every
// error must start with the file's name and a line, and one of them must
// be at line N and contain TEXT.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatal("no bad policies", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(data), "\n", 3)
			want, ok1 := strings.CutPrefix(lines[0], "# want: ")
			lineStr, ok2 := strings.CutPrefix(lines[1], "# line: ")
			line, err := strconv.Atoi(lineStr)
			if !ok1 || !ok2 || err != nil {
				t.Fatal("file does not start with # want: and # line: comments")
			}
			_, err = Parse(filepath.Base(f), data, testOptions)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error does not wrap ErrInvalid: %v", err)
			}
			prefix := filepath.Base(f) + ":"
			found := false
			for _, msg := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(msg, prefix) {
					t.Errorf("error without position: %s", msg)
				}
				if strings.HasPrefix(msg, fmt.Sprintf("%s%d:", prefix, line)) && strings.Contains(msg, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error at line %d containing %q; got:\n%v", line, want, err)
			}
		})
	}
}

// TestAllErrors checks that problems are all reported, in file order,
// with columns.
func TestAllErrors(t *testing.T) {
	src := `[limits]
memory = "1Q"
pids = "lots"
bogus = 1

[[rule]]
name = "r"
resource = "gpu"
state = "warning"
actions = [ { type = "signal", signal = "SIGNOPE", target = "moon" } ]
`
	_, err := Parse("p.toml", []byte(src), testOptions)
	if err == nil {
		t.Fatal("accepted")
	}
	want := []string{
		"p.toml:2:1: limits.memory: invalid size",
		"p.toml:3:1: limits.pids: invalid count",
		`p.toml:4:1: limits.bogus: unknown key "bogus": want one of cpu,`,
		`p.toml:8:1: rule[0].resource: unknown resource "gpu"`,
		`p.toml:10:32: rule[0].actions[0].signal: unknown signal "SIGNOPE"`,
		`p.toml:10:52: rule[0].actions[0].target: unknown target "moon"`,
	}
	got := strings.Split(err.Error(), "\n")
	if len(got) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s...", i, got[i], want[i])
		}
	}
}

func TestLoad(t *testing.T) {
	if _, err := Load("testdata/no-such-file.toml"); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("missing file: %v, want a read error that is not ErrInvalid", err)
	}
	if _, err := Load("testdata/bad/unknown-key.toml"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad file: %v", err)
	}
}

func TestLocate(t *testing.T) {
	src := "a = 1 # c\n[t]\n\"q.k\" = 'x'\nd.e = \"\"\"\nmulti\n\"\"\"\n[[arr]]\nx = [1,\n  { y = 2 }]\n[[arr]]\n[arr.sub]\nz = 3\n"
	l := locate(src)
	for path, want := range map[string]position{
		"a":              {1, 1},
		"t":              {2, 1},
		"t.q.k":          {3, 1},
		"t.d.e":          {4, 1},
		"arr[0]":         {7, 1},
		"arr[0].x":       {8, 1},
		"arr[0].x[1].y":  {9, 5},
		"arr[1].sub.z":   {12, 1},
		"arr[1].sub.z.w": {12, 1},
		"arr[0].x[0]":    {8, 6},
		"arr[1]":         {10, 1},
	} {
		if got, ok := l.find(path); !ok || got != want {
			t.Errorf("%s at %v (%v), want %v", path, got, ok, want)
		}
	}
}

package monitor

import (
	"bufio"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// removeFile, as the content of an edit to a host tree, deletes the file.
const removeFile = "\x00remove"

// hostTree copies the fixture testdata/host/<fixture> into a fresh
// directory and applies edits: a path inside the tree mapped to its new
// content, or to removeFile.
func hostTree(t testing.TB, fixture string, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", "host", fixture))); err != nil {
		t.Fatal(err)
	}
	for name, content := range edits {
		p := filepath.Join(dir, name)
		if content == removeFile {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func newHost(t testing.TB, root string) *Host {
	t.Helper()
	h, err := NewHost(root)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// errorSays fails t unless err mentions every one of says.
func errorSays(t *testing.T, err error, says ...string) {
	t.Helper()
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

// userTicks converts USER_HZ ticks, as /proc/stat counts, to a Duration.
func userTicks(n int64) time.Duration { return time.Duration(n) * 10 * time.Millisecond }

var hostT0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestNewHost(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "stat")
	if err := os.WriteFile(file, []byte("cpu  1 0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "no-proc")
	tests := []struct {
		name, root string
		wantRoot   string
		says       []string // nil: no error wanted
	}{
		{name: "default is /proc", root: "", wantRoot: "/proc"},
		{name: "fixture", root: "testdata/host/x86_64", wantRoot: "testdata/host/x86_64"},
		{name: "missing directory", root: missing, says: []string{"open proc file system", missing}},
		{name: "regular file", root: file, says: []string{"open proc file system", file, "not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h, err := NewHost(tt.root)
			if tt.says != nil {
				if err == nil {
					t.Fatalf("NewHost(%q) = %+v, want an error", tt.root, h)
				}
				if h != nil {
					t.Errorf("NewHost(%q) returned a Host along with error %v", tt.root, err)
				}
				errorSays(t, err, tt.says...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.root != tt.wantRoot {
				t.Errorf("root = %q, want %q", h.root, tt.wantRoot)
			}
		})
	}
}

// hostFixtureSamples are what Read returns for each fixture tree, figured by
// hand from the files: CPUTotal sums the first eight fields of the "cpu"
// line, CPUIdle is idle + iowait, CPUs counts the cpuN lines and memory is
// in kB times 1024.
var hostFixtureSamples = map[string]HostSample{
	"x86_64": {
		// 205713+0+49871+784415+1972+0+2201+3827; guest 2 left out.
		CPUTotal:     userTicks(1047999),
		CPUIdle:      userTicks(784415 + 1972),
		CPUs:         2,
		MemTotal:     24683656 * 1024,
		MemAvailable: 24323180 * 1024,
	},
	"arm64": {
		// cpu2 is offline: three cpuN lines for a four-CPU machine.
		CPUTotal:     userTicks(4705 + 12 + 2210 + 391820 + 120 + 0 + 45 + 0),
		CPUIdle:      userTicks(391820 + 120),
		CPUs:         3,
		MemTotal:     3884832 * 1024,
		MemAvailable: 3401220 * 1024,
	},
	"interval/before": {
		CPUTotal:     userTicks(95000),
		CPUIdle:      userTicks(81000),
		CPUs:         4,
		MemTotal:     8 << 30,
		MemAvailable: 6 << 30,
	},
	"interval/after": {
		// guest 40 and guest_nice 10 are already in user and nice.
		CPUTotal:     userTicks(95400),
		CPUIdle:      userTicks(81100),
		CPUs:         4,
		MemTotal:     8 << 30,
		MemAvailable: 4 << 30,
	},
}

func TestHostRead(t *testing.T) {
	t.Parallel()
	for fixture, want := range hostFixtureSamples {
		t.Run(fixture, func(t *testing.T) {
			t.Parallel()
			h := newHost(t, filepath.Join("testdata", "host", fixture))
			got, err := h.Read(hostT0)
			if err != nil {
				t.Fatal(err)
			}
			want.Time = hostT0
			if got != want {
				t.Errorf("Read =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// TestHostReadMalformed feeds Read broken stat and meminfo files: each must
// fail, naming the file, and not hand back a zero sample as if it were one.
func TestHostReadMalformed(t *testing.T) {
	t.Parallel()
	const perCPU = "cpu0 2500 50 750 20000 250 0 75 125 0 0\n" +
		"cpu1 2500 50 750 20000 250 0 75 125 0 0\n"
	const good = "cpu  10000 200 3000 80000 1000 0 300 500 0 0\n" + perCPU
	// cpuLine is the aggregate line with its user field replaced.
	cpuLine := func(user string) string {
		return "cpu  " + user + " 200 3000 80000 1000 0 300 500 0 0\n" + perCPU
	}
	const mem = "MemTotal:        8388608 kB\nMemFree:         5242880 kB\nMemAvailable:    6291456 kB\n"

	tests := []struct {
		name    string
		file    string // "stat" or "meminfo", which the error must name
		content string
		says    []string
		notExit bool // the error must wrap fs.ErrNotExist
	}{
		{name: "stat: no aggregate cpu line", file: "stat", content: perCPU + "ctxt 1\n",
			says: []string{`aggregate "cpu" line is missing`}},
		{name: "stat: aggregate cpu line without values", file: "stat", content: "cpu\n" + perCPU,
			says: []string{`aggregate "cpu" line is missing`}},
		{name: "stat: aggregate cpu line all zero", file: "stat", content: "cpu  0 0 0 0 0 0 0 0 0 0\n" + perCPU,
			says: []string{"all zero"}},
		{name: "stat: no per-CPU lines", file: "stat", content: "cpu  10000 200 3000 80000 1000 0 300 500 0 0\nctxt 1\n",
			says: []string{"no per-CPU lines"}},
		{name: "stat: empty", file: "stat", content: "",
			says: []string{"no per-CPU lines"}},
		{name: "stat: word for a number", file: "stat", content: cpuLine("lots"),
			says: []string{"lots"}},
		{name: "stat: number with trailing garbage", file: "stat", content: cpuLine("10000x"),
			says: []string{"10000x"}},
		{name: "stat: hexadecimal number", file: "stat", content: cpuLine("0x2710"),
			says: []string{"0x2710"}},
		{name: "stat: negative number", file: "stat", content: cpuLine("-10000"),
			says: []string{"user time", "want a count from 0 up"}},
		{name: "stat: NaN", file: "stat", content: cpuLine("NaN"),
			says: []string{"user time", "want a count from 0 up"}},
		{name: "stat: infinity", file: "stat", content: cpuLine("Inf"),
			says: []string{"user time", "want a count from 0 up"}},
		{name: "stat: beyond 2^62 ticks", file: "stat", content: cpuLine("1e19"),
			says: []string{"user time", "want a count from 0 up"}},
		{name: "stat: negative idle", file: "stat", content: "cpu  10000 200 3000 -1 1000 0 300 500 0 0\n" + perCPU,
			says: []string{"idle time"}},
		{name: "stat: cpu index not a number", file: "stat", content: good + "cpuX 1 0 0 0 0 0 0 0 0 0\n",
			says: []string{"cpuX"}},
		{name: "stat: garbage in another line", file: "stat", content: good + "ctxt many\n",
			says: []string{"many"}},
		{name: "stat: missing", file: "stat", content: removeFile, notExit: true},

		{name: "meminfo: no MemAvailable", file: "meminfo", content: "MemTotal:        8388608 kB\nMemFree:         5242880 kB\n",
			says: []string{"MemAvailable is missing"}},
		{name: "meminfo: no MemTotal", file: "meminfo", content: "MemFree:         5242880 kB\nMemAvailable:    6291456 kB\n",
			says: []string{"MemTotal is missing or 0"}},
		{name: "meminfo: MemTotal 0", file: "meminfo", content: "MemTotal:              0 kB\nMemAvailable:          0 kB\n",
			says: []string{"MemTotal is missing or 0"}},
		{name: "meminfo: word for a number", file: "meminfo", content: "MemTotal:        8388608 kB\nMemAvailable:    plenty kB\n",
			says: []string{"plenty"}},
		{name: "meminfo: negative number", file: "meminfo", content: mem + "Cached:               -1 kB\n",
			says: []string{"-1"}},
		{name: "meminfo: unknown unit", file: "meminfo", content: "MemTotal:              8 GB\nMemAvailable:          6 GB\n",
			says: []string{"GB"}},
		{name: "meminfo: extra field", file: "meminfo", content: mem + "Buffers:          102400 kB kB\n",
			says: []string{"Buffers"}},
		{name: "meminfo: key without value", file: "meminfo", content: mem + "Buffers:\n",
			says: []string{"Buffers"}},
		{name: "meminfo: MemAvailable above MemTotal", file: "meminfo", content: "MemTotal:        8388608 kB\nMemAvailable:    8388609 kB\n",
			says: []string{"exceeds MemTotal"}},
		{name: "meminfo: missing", file: "meminfo", content: removeFile, notExit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := hostTree(t, "interval/before", map[string]string{tt.file: tt.content})
			h := newHost(t, root)
			got, err := h.Read(hostT0)
			if err == nil {
				t.Fatalf("Read = %+v, want an error", got)
			}
			if got != (HostSample{}) {
				t.Errorf("Read returned %+v along with error %v", got, err)
			}
			errorSays(t, err, filepath.Join(root, tt.file))
			errorSays(t, err, tt.says...)
			if tt.notExit && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v does not wrap fs.ErrNotExist", err)
			}
		})
	}
}

// TestHostReadCountsTicksExactly checks that figures far past float64's
// precision for fractions of a second come back as whole ticks.
func TestHostReadCountsTicksExactly(t *testing.T) {
	t.Parallel()
	// 1e12 ticks is 317 CPU-years; the fields differ in every digit.
	const user, idle = 1000000000003, 123456789017
	stat := "cpu  1000000000003 1 7 123456789017 3 0 0 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n"
	h := newHost(t, hostTree(t, "interval/before", map[string]string{"stat": stat}))
	got, err := h.Read(hostT0)
	if err != nil {
		t.Fatal(err)
	}
	if want := userTicks(user + 1 + 7 + idle + 3); got.CPUTotal != want {
		t.Errorf("CPUTotal = %d, want %d", got.CPUTotal, want)
	}
	if want := userTicks(idle + 3); got.CPUIdle != want {
		t.Errorf("CPUIdle = %d, want %d", got.CPUIdle, want)
	}
	if got.CPUs != 1 {
		t.Errorf("CPUs = %d, want 1", got.CPUs)
	}
}

// TestHostReadRereads checks that Read reads the files anew each time.
func TestHostReadRereads(t *testing.T) {
	t.Parallel()
	root := hostTree(t, "interval/before", nil)
	h := newHost(t, root)
	first, err := h.Read(hostT0)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stat", "meminfo"} {
		b, err := os.ReadFile(filepath.Join("testdata", "host", "interval", "after", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	second, err := h.Read(hostT0.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := hostFixtureSamples["interval/after"]
	want.Time = hostT0.Add(time.Second)
	if second != want {
		t.Errorf("second Read = %+v, want %+v", second, want)
	}
	if first == second {
		t.Error("both reads returned the same sample")
	}
}

func TestHostReadConcurrent(t *testing.T) {
	t.Parallel()
	h := newHost(t, filepath.Join("testdata", "host", "x86_64"))
	want := hostFixtureSamples["x86_64"]
	want.Time = hostT0
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 20 {
				got, err := h.Read(hostT0)
				if err != nil {
					errs <- err
					return
				}
				if got != want {
					errs <- errors.New("concurrent Read returned a different sample")
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestHostCPUFromFixtures takes the CPU figure between the two interval
// fixtures: 400 ticks went by, 100 of them idle or iowait, so 3/4 was busy.
// Counting guest time again would give 350/450 instead.
func TestHostCPUFromFixtures(t *testing.T) {
	t.Parallel()
	t1 := hostT0.Add(time.Second)
	prev, err := newHost(t, "testdata/host/interval/before").Read(hostT0)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := newHost(t, "testdata/host/interval/after").Read(t1)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := HostCPUUsage(prev, cur)
	if err != nil {
		t.Fatal(err)
	}
	if busy != 0.75 {
		t.Errorf("HostCPUUsage = %v, want 0.75", busy)
	}
	u, err := HostCPU(prev, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := Usage{Resource: CPU, Utilization: 0.75, Used: 3_000_000, Available: 1_000_000, Total: 4_000_000, Timestamp: t1}
	if u != want {
		t.Errorf("HostCPU =\n %+v\nwant\n %+v", u, want)
	}

	// The same files in the wrong order: the counters ran backwards.
	early, late := cur, prev
	early.Time, late.Time = hostT0, t1
	if got, err := HostCPUUsage(early, late); err == nil {
		t.Errorf("HostCPUUsage(later files first) = %v, want an error", got)
	} else {
		errorSays(t, err, "no CPU time was accounted")
	}
	// The right files, stamped the wrong way round.
	prev.Time = t1.Add(time.Second)
	if got, err := HostCPU(prev, cur); err == nil {
		t.Errorf("HostCPU with cur taken before prev = %+v, want an error", got)
	} else {
		errorSays(t, err, "is not after")
	}
}

func TestHostCPUUsage(t *testing.T) {
	t.Parallel()
	t1 := hostT0.Add(time.Second)
	sample := func(at time.Time, total, idle int64) HostSample {
		return HostSample{Time: at, CPUTotal: userTicks(total), CPUIdle: userTicks(idle), CPUs: 4}
	}
	// Counters just short of time.Duration's limit, and past it.
	nearMax := time.Duration(math.MaxInt64) - 100*time.Millisecond
	wrapped := nearMax
	wrapped += 400 * 10 * time.Millisecond // wraps round to negative
	wrappedIdle := nearMax - 200*time.Millisecond
	wrappedIdle += 300 * 10 * time.Millisecond

	tests := []struct {
		name      string
		prev, cur HostSample
		want      float64
		says      string // non-empty: an error is wanted
	}{
		{name: "three quarters busy", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1400, 700), want: 0.75},
		{name: "one third busy", prev: sample(hostT0, 0, 0), cur: sample(t1, 300, 200), want: 1.0 / 3},
		{name: "all idle", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1400, 1000), want: 0},
		{name: "all busy", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1400, 600), want: 1},
		{name: "one tick", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1001, 600), want: 1},
		// iowait can go down: the idle difference may fall outside 0..total.
		{name: "idle grew more than total", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1100, 750), want: 0},
		{name: "idle went down", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1100, 550), want: 1},
		{
			name: "counters wrap past 2^63 ns",
			prev: HostSample{Time: hostT0, CPUTotal: nearMax, CPUIdle: nearMax - 200*time.Millisecond},
			cur:  HostSample{Time: t1, CPUTotal: wrapped, CPUIdle: wrappedIdle},
			want: 0.25,
		},
		{name: "same time", prev: sample(hostT0, 1000, 600), cur: sample(hostT0, 1400, 700), says: "is not after"},
		{name: "cur before prev", prev: sample(t1, 1000, 600), cur: sample(hostT0, 1400, 700), says: "is not after"},
		{name: "no ticks between", prev: sample(hostT0, 1000, 600), cur: sample(t1, 1000, 600), says: "no CPU time was accounted"},
		{name: "counters went backwards", prev: sample(hostT0, 1400, 700), cur: sample(t1, 1000, 600), says: "no CPU time was accounted"},
	}
	if wrapped >= 0 {
		t.Fatalf("test setup: %d did not wrap", wrapped)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := HostCPUUsage(tt.prev, tt.cur)
			if tt.says != "" {
				if err == nil {
					t.Fatalf("HostCPUUsage = %v, want an error", got)
				}
				errorSays(t, err, tt.says)
				if got != 0 {
					t.Errorf("HostCPUUsage returned %v along with error %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("HostCPUUsage = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHostCPUUsageErrorNamesTimes(t *testing.T) {
	t.Parallel()
	prev := HostSample{Time: time.Date(2025, 3, 1, 12, 0, 1, 500, time.UTC), CPUTotal: userTicks(10)}
	cur := HostSample{Time: time.Date(2025, 3, 1, 12, 0, 1, 0, time.UTC), CPUTotal: userTicks(20)}
	_, err := HostCPUUsage(prev, cur)
	if err == nil {
		t.Fatal("HostCPUUsage with cur before prev succeeded")
	}
	errorSays(t, err, "2025-03-01T12:00:01Z", "2025-03-01T12:00:01.0000005Z")
}

func TestHostCPU(t *testing.T) {
	t.Parallel()
	t1 := hostT0.Add(time.Second)
	sample := func(at time.Time, total, idle int64, cpus int) HostSample {
		return HostSample{Time: at, CPUTotal: userTicks(total), CPUIdle: userTicks(idle), CPUs: cpus}
	}
	tests := []struct {
		name      string
		prev, cur HostSample
		want      Usage // Resource and Timestamp are filled in below
		says      string
	}{
		{name: "four CPUs, half busy", prev: sample(hostT0, 0, 0, 4), cur: sample(t1, 400, 200, 4),
			want: Usage{Utilization: 0.5, Used: 2_000_000, Available: 2_000_000, Total: 4_000_000}},
		{name: "one CPU, a third busy", prev: sample(hostT0, 0, 0, 1), cur: sample(t1, 300, 200, 1),
			want: Usage{Utilization: 1.0 / 3, Used: 333_333, Available: 666_667, Total: 1_000_000}},
		{name: "three CPUs, a third busy", prev: sample(hostT0, 0, 0, 3), cur: sample(t1, 300, 200, 3),
			want: Usage{Utilization: 1.0 / 3, Used: 1_000_000, Available: 2_000_000, Total: 3_000_000}},
		{name: "two CPUs, two thirds busy", prev: sample(hostT0, 0, 0, 2), cur: sample(t1, 300, 100, 2),
			want: Usage{Utilization: 2.0 / 3, Used: 1_333_333, Available: 666_667, Total: 2_000_000}},
		{name: "idle", prev: sample(hostT0, 0, 0, 2), cur: sample(t1, 200, 200, 2),
			want: Usage{Utilization: 0, Used: 0, Available: 2_000_000, Total: 2_000_000}},
		{name: "saturated", prev: sample(hostT0, 0, 0, 2), cur: sample(t1, 200, 0, 2),
			want: Usage{Utilization: 1, Used: 2_000_000, Available: 0, Total: 2_000_000}},
		// The CPU count of the later sample counts, as a CPU may have come
		// online in between.
		{name: "CPU count from cur", prev: sample(hostT0, 0, 0, 2), cur: sample(t1, 400, 100, 4),
			want: Usage{Utilization: 0.75, Used: 3_000_000, Available: 1_000_000, Total: 4_000_000}},
		{name: "no CPUs", prev: sample(hostT0, 0, 0, 0), cur: sample(t1, 400, 100, 0), says: "0 CPUs"},
		{name: "negative CPU count", prev: sample(hostT0, 0, 0, 2), cur: sample(t1, 400, 100, -2), says: "-2 CPUs"},
		{name: "not after", prev: sample(t1, 0, 0, 2), cur: sample(t1, 400, 100, 2), says: "is not after"},
		{name: "no ticks", prev: sample(hostT0, 400, 100, 2), cur: sample(t1, 400, 100, 2), says: "no CPU time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := HostCPU(tt.prev, tt.cur)
			if tt.says != "" {
				if err == nil {
					t.Fatalf("HostCPU = %+v, want an error", got)
				}
				errorSays(t, err, tt.says)
				if got != (Usage{}) {
					t.Errorf("HostCPU returned %+v along with error %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			want.Resource, want.Timestamp = CPU, tt.cur.Time
			if got != want {
				t.Errorf("HostCPU =\n %+v\nwant\n %+v", got, want)
			}
			if got.Used+got.Available != got.Total {
				t.Errorf("Used %d + Available %d != Total %d", got.Used, got.Available, got.Total)
			}
		})
	}
}

func TestHostMemory(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		sample HostSample
		want   Usage // Resource and Timestamp are filled in below
	}{
		{name: "a quarter used", sample: HostSample{MemTotal: 8 << 30, MemAvailable: 6 << 30},
			want: Usage{Utilization: 0.25, Used: 2 << 30, Available: 6 << 30, Total: 8 << 30}},
		{name: "nothing available", sample: HostSample{MemTotal: 8 << 30, MemAvailable: 0},
			want: Usage{Utilization: 1, Used: 8 << 30, Available: 0, Total: 8 << 30}},
		{name: "all available", sample: HostSample{MemTotal: 8 << 30, MemAvailable: 8 << 30},
			want: Usage{Utilization: 0, Used: 0, Available: 8 << 30, Total: 8 << 30}},
		{name: "available above total is capped", sample: HostSample{MemTotal: 8 << 30, MemAvailable: 9 << 30},
			want: Usage{Utilization: 0, Used: 0, Available: 8 << 30, Total: 8 << 30}},
		{name: "empty sample", sample: HostSample{},
			want: Usage{}},
		{name: "largest sizes", sample: HostSample{MemTotal: math.MaxUint64, MemAvailable: 0},
			want: Usage{Utilization: 1, Used: math.MaxUint64, Available: 0, Total: math.MaxUint64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.sample
			s.Time = hostT0
			got := HostMemory(s)
			want := tt.want
			want.Resource, want.Timestamp = Memory, hostT0
			if got != want {
				t.Errorf("HostMemory(%+v) =\n %+v\nwant\n %+v", s, got, want)
			}
		})
	}
}

func TestHostMemoryFromFixtures(t *testing.T) {
	t.Parallel()
	for fixture, want := range map[string]float64{"interval/before": 0.25, "interval/after": 0.5} {
		s, err := newHost(t, filepath.Join("testdata", "host", fixture)).Read(hostT0)
		if err != nil {
			t.Fatal(err)
		}
		u := HostMemory(s)
		if u.Utilization != want || u.Total != 8<<30 || u.Used+u.Available != u.Total {
			t.Errorf("%s: HostMemory = %+v, want utilization %v of 8 GiB", fixture, u, want)
		}
	}
}

// TestHostReadLive reads this machine's /proc.
func TestHostReadLive(t *testing.T) {
	t.Parallel()
	h := newHost(t, "")
	first, err := h.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := countStatCPUs(t, "/proc/stat"); first.CPUs != n {
		t.Errorf("CPUs = %d, want %d (cpuN lines in /proc/stat)", first.CPUs, n)
	}
	if first.CPUTotal <= 0 || first.CPUIdle < 0 || first.CPUIdle > first.CPUTotal {
		t.Errorf("CPUTotal %v, CPUIdle %v: want 0 <= idle <= total, total > 0", first.CPUTotal, first.CPUIdle)
	}
	if first.MemTotal == 0 || first.MemAvailable > first.MemTotal {
		t.Errorf("MemTotal %d, MemAvailable %d: want 0 < available <= total", first.MemTotal, first.MemAvailable)
	}
	// The kernel counts in 10ms ticks; wait until some have gone by.
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(50 * time.Millisecond)
		cur, err := h.Read(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		u, err := HostCPU(first, cur)
		if err != nil {
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal(err)
		}
		if u.Utilization < 0 || u.Utilization > 1 || u.Total != uint64(cur.CPUs)*1_000_000 || u.Used+u.Available != u.Total {
			t.Errorf("HostCPU = %+v", u)
		}
		return
	}
}

func countStatCPUs(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "cpu") && len(l) > 3 && l[3] >= '0' && l[3] <= '9' {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func BenchmarkHostRead(b *testing.B) {
	h := newHost(b, "")
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Read(now); err != nil {
			b.Fatal(err)
		}
	}
}

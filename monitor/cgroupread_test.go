package monitor

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// absent, as the content of an edit, deletes the file.
const absent = "\x00absent"

// fakeCgroup copies the fixture testdata/cgroupfs/full into a fresh
// directory, then applies edits: a file name mapped to its new content, or
// to absent.
func fakeCgroup(t testing.TB, edits map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("testdata", "cgroupfs", "full")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range edits {
		p := filepath.Join(dir, name)
		if content == absent {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openReader(t testing.TB, dir string, opts CgroupReadOptions) *CgroupReader {
	t.Helper()
	r, err := NewCgroupReader(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

func ptr[T any](v T) *T { return &v }

// fullSample is what testdata/cgroupfs/full reads as, memory.stat included.
func fullSample(now time.Time) CgroupSample {
	return CgroupSample{
		Time:          now,
		CPUUsage:      8123456 * time.Microsecond,
		CPUThrottled:  ptr(1520000 * time.Microsecond),
		NrThrottled:   ptr[uint64](37),
		CPUQuota:      ptr(150 * time.Millisecond),
		CPUPeriod:     100 * time.Millisecond,
		MemoryCurrent: ptr[uint64](268435456),
		MemoryMax:     ptr[uint64](536870912),
		MemoryPeak:    ptr[uint64](301989888),
		InactiveFile:  ptr[uint64](62914560),
		MemoryEvents:  &MemoryEvents{High: 12, Max: 3, OOM: 1, OOMKill: 1},
		PidsCurrent:   ptr[uint64](17),
		PidsMax:       ptr[uint64](4096),
		PidsPeak:      ptr[uint64](23),
		IORBytes:      ptr[uint64](1056768),
		IOWBytes:      ptr[uint64](4194304),
		IORIOs:        ptr[uint64](258),
		IOWIOs:        ptr[uint64](1024),
		CPUPressure: &Pressure{
			Some: PSI{Avg10: 12.5, Avg60: 4.21, Avg300: 0.97, Total: 1520000},
			Full: &PSI{Avg10: 3.1, Avg60: 1, Avg300: 0.2, Total: 400000},
		},
		MemoryPressure: &Pressure{Full: &PSI{}},
		IOPressure: &Pressure{
			Some: PSI{Avg10: 1.19, Avg60: 1.08, Avg300: 2.81, Total: 254947032},
			Full: &PSI{Avg10: 0.12, Avg60: 0.07, Avg300: 0.01, Total: 11558940},
		},
	}
}

func TestCgroupRead(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		edits map[string]string
		opts  CgroupReadOptions
		want  func(*CgroupSample)
	}{
		{
			name: "full set with memory.stat",
			opts: CgroupReadOptions{MemoryStat: true},
			want: func(*CgroupSample) {},
		},
		{
			name: "memory.stat not asked for",
			want: func(s *CgroupSample) { s.InactiveFile = nil },
		},
		{
			name: "memory.stat asked for but absent",
			opts: CgroupReadOptions{MemoryStat: true},
			edits: map[string]string{
				"memory.stat": absent,
			},
			want: func(s *CgroupSample) { s.InactiveFile = nil },
		},
		{
			// The cpu controller is not enabled: cpu.stat has the
			// core fields only and cpu.max does not exist. The
			// pressure files are core files and stay.
			name: "without cpu controller",
			edits: map[string]string{
				"cpu.stat": "usage_usec 8123456\nuser_usec 6000000\nsystem_usec 2123456\nnice_usec 0\n",
				"cpu.max":  absent,
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUThrottled, s.NrThrottled, s.CPUQuota, s.CPUPeriod = nil, nil, nil, 0
			},
		},
		{
			name:  "cpu.max unlimited",
			edits: map[string]string{"cpu.max": "max 100000\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUQuota = nil
			},
		},
		{
			name:  "limits max",
			edits: map[string]string{"memory.max": "max\n", "pids.max": "max\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryMax, s.PidsMax = nil, nil
			},
		},
		{
			// Linux 5.15: no memory.peak (5.19) or pids.peak (6.1),
			// no "full" line in cpu.pressure (5.13), no
			// oom_group_kill (5.17).
			name: "older kernel",
			edits: map[string]string{
				"memory.peak":   absent,
				"pids.peak":     absent,
				"cpu.pressure":  "some avg10=12.50 avg60=4.21 avg300=0.97 total=1520000\n",
				"memory.events": "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\n",
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryPeak, s.PidsPeak = nil, nil
				s.CPUPressure.Full = nil
			},
		},
		{
			name: "no memory, pids or io controller",
			edits: map[string]string{
				"memory.current": absent, "memory.max": absent, "memory.peak": absent, "memory.events": absent, "memory.stat": absent,
				"pids.current": absent, "pids.max": absent, "pids.peak": absent,
				"io.stat": absent,
			},
			opts: CgroupReadOptions{MemoryStat: true},
			want: func(s *CgroupSample) {
				s.MemoryCurrent, s.MemoryMax, s.MemoryPeak, s.InactiveFile, s.MemoryEvents = nil, nil, nil, nil, nil
				s.PidsCurrent, s.PidsMax, s.PidsPeak = nil, nil, nil
				s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = nil, nil, nil, nil
			},
		},
		{
			name:  "io.stat empty: no I/O yet, zero not nil",
			edits: map[string]string{"io.stat": ""},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = ptr[uint64](0), ptr[uint64](0), ptr[uint64](0), ptr[uint64](0)
			},
		},
		{
			name: "PSI disabled",
			edits: map[string]string{
				"cpu.pressure": absent, "memory.pressure": absent, "io.pressure": absent,
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUPressure, s.MemoryPressure, s.IOPressure = nil, nil, nil
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := fakeCgroup(t, tc.edits)
			r := openReader(t, dir, tc.opts)
			got, err := r.Read(now)
			if err != nil {
				t.Fatal(err)
			}
			want := fullSample(now)
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read:\n got %s\nwant %s", dumpSample(got), dumpSample(want))
			}
		})
	}
}

// dumpSample prints a sample with its pointers followed, for diffs.
func dumpSample(s CgroupSample) string {
	var b strings.Builder
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		f := v.Field(i)
		fmt.Fprintf(&b, "\n  %s: ", v.Type().Field(i).Name)
		if f.Kind() == reflect.Pointer {
			if f.IsNil() {
				b.WriteString("nil")
				continue
			}
			f = f.Elem()
		}
		if p, ok := f.Interface().(Pressure); ok {
			fmt.Fprintf(&b, "some %+v full ", p.Some)
			if p.Full == nil {
				b.WriteString("nil")
			} else {
				fmt.Fprintf(&b, "%+v", *p.Full)
			}
			continue
		}
		fmt.Fprintf(&b, "%+v", f.Interface())
	}
	return b.String()
}

func TestCgroupReadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		edits     map[string]string
		opts      CgroupReadOptions
		file      string // the file the error must name
		malformed bool   // the error wraps ErrMalformed
	}{
		{name: "cpu.stat missing", edits: map[string]string{"cpu.stat": absent}, file: "cpu.stat"},
		{name: "cpu.stat malformed", edits: map[string]string{"cpu.stat": "usage_usec twelve\n"}, file: "cpu.stat", malformed: true},
		{name: "cpu.max malformed", edits: map[string]string{"cpu.max": "max\n"}, file: "cpu.max", malformed: true},
		{name: "memory.current max", edits: map[string]string{"memory.current": "max\n"}, file: "memory.current", malformed: true},
		{name: "memory.max negative", edits: map[string]string{"memory.max": "-1\n"}, file: "memory.max", malformed: true},
		{name: "memory.peak garbage", edits: map[string]string{"memory.peak": "lots\n"}, file: "memory.peak", malformed: true},
		{name: "memory.events short", edits: map[string]string{"memory.events": "low 0\nhigh 0\n"}, file: "memory.events", malformed: true},
		{name: "memory.stat without inactive_file", edits: map[string]string{"memory.stat": "anon 1\nfile 2\n"}, opts: CgroupReadOptions{MemoryStat: true}, file: "memory.stat", malformed: true},
		{name: "pids.current empty", edits: map[string]string{"pids.current": "\n"}, file: "pids.current", malformed: true},
		{name: "pids.max overflow", edits: map[string]string{"pids.max": "18446744073709551616\n"}, file: "pids.max", malformed: true},
		{name: "pids.peak max", edits: map[string]string{"pids.peak": "max\n"}, file: "pids.peak", malformed: true},
		{name: "io.stat missing field", edits: map[string]string{"io.stat": "8:0 rbytes=1 wbytes=2\n"}, file: "io.stat", malformed: true},
		{name: "cpu.pressure wrong key", edits: map[string]string{"cpu.pressure": "some avg10=0.00 avg60=0.00 avg300=0.00 sum=0\n"}, file: "cpu.pressure", malformed: true},
		{name: "memory.pressure empty", edits: map[string]string{"memory.pressure": "\n"}, file: "memory.pressure", malformed: true},
		{name: "io.pressure non-number", edits: map[string]string{"io.pressure": "some avg10=x avg60=0.00 avg300=0.00 total=0\n"}, file: "io.pressure", malformed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := fakeCgroup(t, tc.edits)
			r := openReader(t, dir, tc.opts)
			got, err := r.Read(time.Now())
			if err == nil {
				t.Fatalf("Read succeeded: %s", dumpSample(got))
			}
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != filepath.Join(dir, tc.file) {
				t.Fatalf("error %v does not name %s", err, tc.file)
			}
			if !strings.Contains(err.Error(), filepath.Join(dir, tc.file)) {
				t.Fatalf("error text %q does not name %s", err, tc.file)
			}
			if errors.Is(err, ErrMalformed) != tc.malformed {
				t.Fatalf("errors.Is(%v, ErrMalformed) = %v, want %v", err, !tc.malformed, tc.malformed)
			}
			if !reflect.DeepEqual(got, CgroupSample{}) {
				t.Fatalf("failed Read returned a sample: %s", dumpSample(got))
			}
		})
	}
}

// A file the reader may not open is an error, not a missing controller.
func TestCgroupReadUnreadable(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads files whatever their mode; this test needs an unprivileged user")
	}
	dir := fakeCgroup(t, nil)
	if err := os.Chmod(filepath.Join(dir, "memory.max"), 0); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, dir, CgroupReadOptions{})
	_, err := r.Read(time.Now())
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "memory.max") {
		t.Fatalf("Read: %v, want a permission error naming memory.max", err)
	}
}

// A directory in place of a file (EISDIR on read) is an error too.
func TestCgroupReadDirectoryInPlaceOfFile(t *testing.T) {
	t.Parallel()
	dir := fakeCgroup(t, map[string]string{"pids.max": absent})
	if err := os.Mkdir(filepath.Join(dir, "pids.max"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, dir, CgroupReadOptions{})
	_, err := r.Read(time.Now())
	if !errors.Is(err, syscall.EISDIR) || !strings.Contains(err.Error(), "pids.max") {
		t.Fatalf("Read: %v, want EISDIR naming pids.max", err)
	}
}

// A symlink is never followed: cgroupfs has none, so one is an error.
func TestCgroupReadRefusesSymlink(t *testing.T) {
	t.Parallel()
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := fakeCgroup(t, map[string]string{"memory.max": absent})
	if err := os.Symlink(outside, filepath.Join(dir, "memory.max")); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, dir, CgroupReadOptions{})
	_, err := r.Read(time.Now())
	if !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Read: %v, want ELOOP", err)
	}
}

// A cgroup removed after NewCgroupReader reads as an error that
// errors.Is(fs.ErrNotExist), not as a sample of nils.
func TestCgroupReadRemoved(t *testing.T) {
	t.Parallel()
	dir := fakeCgroup(t, nil)
	r := openReader(t, dir, CgroupReadOptions{})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err := r.Read(time.Now())
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cpu.stat") {
		t.Fatalf("Read: %v, want not-exist naming cpu.stat", err)
	}
}

// The reader keeps the directory it opened: renaming the path afterwards
// does not lose the cgroup.
func TestCgroupReadFollowsDirectoryNotPath(t *testing.T) {
	t.Parallel()
	dir := fakeCgroup(t, nil)
	r := openReader(t, dir, CgroupReadOptions{})
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(moved) })
	s, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.MemoryCurrent == nil || *s.MemoryCurrent != 268435456 {
		t.Fatalf("MemoryCurrent = %v after rename", s.MemoryCurrent)
	}
	if r.Path() != dir {
		t.Fatalf("Path() = %q, want %q", r.Path(), dir)
	}
}

// Samples do not share memory: a later Read leaves an earlier sample as
// it was.
func TestCgroupReadSamplesIndependent(t *testing.T) {
	t.Parallel()
	dir := fakeCgroup(t, nil)
	r := openReader(t, dir, CgroupReadOptions{})
	first, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	second, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if *first.MemoryCurrent != 268435456 || *second.MemoryCurrent != 1 {
		t.Fatalf("MemoryCurrent: first %d, second %d", *first.MemoryCurrent, *second.MemoryCurrent)
	}
}

// A file bigger than the starting buffer is read whole, and the grown
// buffer is kept for the next sample.
func TestCgroupReadLargeFile(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 400 {
		b.WriteString("8:" + strconv.Itoa(i) + " rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n")
	}
	if b.Len() <= cgroupReadBufSize*2 {
		t.Fatalf("test file of %d bytes does not exercise growth", b.Len())
	}
	dir := fakeCgroup(t, map[string]string{"io.stat": b.String()})
	r := openReader(t, dir, CgroupReadOptions{})
	for range 2 {
		s, err := r.Read(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if *s.IORBytes != 400 || *s.IOWIOs != 1600 {
			t.Fatalf("io sums %d, %d; want 400, 1600", *s.IORBytes, *s.IOWIOs)
		}
	}
}

func TestCgroupReaderClose(t *testing.T) {
	t.Parallel()
	r, err := NewCgroupReader(fakeCgroup(t, nil), CgroupReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := r.Read(time.Now()); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
	}
}

func TestNewCgroupReaderErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{filepath.Join(dir, "absent"), fs.ErrNotExist},
		{file, syscall.ENOTDIR},
	} {
		_, err := NewCgroupReader(tc.path, CgroupReadOptions{})
		var pe *fs.PathError
		if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Path != tc.path {
			t.Errorf("NewCgroupReader(%q): %v, want %v naming the path", tc.path, err, tc.want)
		}
	}
}

// Reads from several goroutines are serialised (run with -race).
func TestCgroupReadConcurrent(t *testing.T) {
	t.Parallel()
	r := openReader(t, fakeCgroup(t, nil), CgroupReadOptions{MemoryStat: true})
	done := make(chan error)
	for range 4 {
		go func() {
			var err error
			for range 50 {
				if _, err = r.Read(time.Now()); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// The reader does not leak descriptors: after many samples, the process
// holds as many as before.
func TestCgroupReadNoFDLeak(t *testing.T) {
	dir := fakeCgroup(t, nil)
	before := countFDs(t)
	r, err := NewCgroupReader(dir, CgroupReadOptions{MemoryStat: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := r.Read(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	// Failing reads close their descriptors too.
	if err := os.WriteFile(filepath.Join(dir, "io.stat"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := r.Read(time.Now()); err == nil {
			t.Fatal("Read of garbage io.stat succeeded")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if after := countFDs(t); after != before {
		t.Fatalf("descriptors: %d before, %d after", before, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(entries)
}

// BenchmarkCgroupRead measures one sample of a fake cgroup (a tmpfs or disk
// tree: the kernel's cost of formatting cgroupfs files is not in it). Set
// RSUP_BENCH_CGROUP to a cgroup v2 directory to add a run against it.
func BenchmarkCgroupRead(b *testing.B) {
	dir := fakeCgroup(b, nil)
	run := func(dir string, opts CgroupReadOptions) func(b *testing.B) {
		return func(b *testing.B) {
			r := openReader(b, dir, opts)
			if _, err := r.Read(time.Now()); err != nil {
				b.Fatal(err)
			}
			now := time.Now()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Read(now); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("full", run(dir, CgroupReadOptions{}))
	b.Run("full+memory.stat", run(dir, CgroupReadOptions{MemoryStat: true}))
	if real := os.Getenv("RSUP_BENCH_CGROUP"); real != "" {
		b.Run("cgroupfs", run(real, CgroupReadOptions{}))
		b.Run("cgroupfs+memory.stat", run(real, CgroupReadOptions{MemoryStat: true}))
	}
}

// TestCgroupReadLive reads the test's own cgroup on the running kernel,
// checking the parsers against real output. Read-only; it skips where no
// cgroup v2 hierarchy is mounted.
func TestCgroupReadLive(t *testing.T) {
	t.Parallel()
	dir := ownCgroup2(t)
	r := openReader(t, dir, CgroupReadOptions{MemoryStat: true})
	s, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUsage <= 0 {
		t.Errorf("CPUUsage = %v in %s, want > 0", s.CPUUsage, dir)
	}
	t.Logf("%s:%s", dir, dumpSample(s))
}

// ownCgroup2 returns the directory of this process's cgroup v2, or skips.
func ownCgroup2(t *testing.T) string {
	t.Helper()
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Skipf("no /proc/self/mounts: %v", err)
	}
	var root string
	for line := range strings.Lines(string(mounts)) {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "cgroup2" {
			root = f[1]
			break
		}
	}
	if root == "" {
		t.Skip("no cgroup2 file system mounted")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc/self/cgroup: %v", err)
	}
	for line := range strings.Lines(string(self)) {
		if rel, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			dir := filepath.Join(root, rel)
			if _, err := os.Stat(filepath.Join(dir, "cpu.stat")); err != nil {
				// Our cgroup lies outside this mount's view (a
				// cgroup namespace or a hybrid host's unified
				// mount at another point).
				t.Skipf("own cgroup %s not visible: %v", dir, err)
			}
			return dir
		}
	}
	t.Skip("process has no cgroup v2 entry in /proc/self/cgroup")
	return ""
}

package monitor

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupV1Fixture is a job's directory in each v1 hierarchy, by controller,
// in the formats of a Linux 6.x host with cpu and cpuacct mounted apart.
// The plain blkio files hold the job's own I/O, the _recursive ones that
// of its descendants too, so the two can be told apart.
var cgroupV1Fixture = map[string]map[string]string{
	"cpu": {
		"cgroup.procs":      "4242\n",
		"tasks":             "4242\n4243\n",
		"cpu.shares":        "1024\n",
		"cpu.cfs_quota_us":  "150000\n",
		"cpu.cfs_period_us": "100000\n",
		"cpu.cfs_burst_us":  "0\n",
		"cpu.stat":          "nr_periods 1200\nnr_throttled 37\nthrottled_time 1520000000\nnr_bursts 0\nburst_time 0\n",
		"cpu.stat.local":    "throttled_time 1520000000\n",
	},
	"cpuacct": {
		"cgroup.procs":         "4242\n",
		"tasks":                "4242\n4243\n",
		"cpuacct.usage":        "8123456789\n",
		"cpuacct.stat":         "user 600\nsystem 212\n",
		"cpuacct.usage_percpu": "4061728394 4061728395 \n",
		"cpuacct.usage_user":   "6000000000\n",
		"cpuacct.usage_sys":    "2123456789\n",
	},
	"memory": {
		"cgroup.procs":               "4242\n",
		"tasks":                      "4242\n4243\n",
		"cgroup.event_control":       "",
		"memory.usage_in_bytes":      "268435456\n",
		"memory.limit_in_bytes":      "536870912\n",
		"memory.max_usage_in_bytes":  "301989888\n",
		"memory.failcnt":             "3\n",
		"memory.oom_control":         "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"memory.soft_limit_in_bytes": "9223372036854771712\n",
		"memory.stat": "cache 83886080\nrss 180224000\nrss_huge 0\nshmem 0\nmapped_file 12288\ndirty 40960\nwriteback 0\n" +
			"workingset_refault_anon 0\nworkingset_refault_file 1150\nswap 0\nswapcached 0\npgpgin 15971\npgpgout 14412\n" +
			"pgfault 34842\npgmajfault 16\ninactive_anon 176128000\nactive_anon 4096000\ninactive_file 52428800\n" +
			"active_file 31457280\nunevictable 0\nhierarchical_memory_limit 536870912\nhierarchical_memsw_limit 9223372036854771712\n" +
			"total_cache 83886080\ntotal_rss 180224000\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 12288\n" +
			"total_dirty 40960\ntotal_writeback 0\ntotal_workingset_refault_anon 0\ntotal_workingset_refault_file 1150\n" +
			"total_swap 0\ntotal_swapcached 0\ntotal_pgpgin 15971\ntotal_pgpgout 14412\ntotal_pgfault 34842\n" +
			"total_pgmajfault 16\ntotal_inactive_anon 176128000\ntotal_active_anon 4096000\ntotal_inactive_file 62914560\n" +
			"total_active_file 31457280\ntotal_unevictable 0\n",
	},
	"pids": {
		"cgroup.procs": "4242\n",
		"tasks":        "4242\n4243\n",
		"pids.current": "17\n",
		"pids.max":     "4096\n",
		"pids.peak":    "23\n",
	},
	"blkio": {
		"cgroup.procs": "4242\n",
		"tasks":        "4242\n4243\n",
		"blkio.throttle.io_service_bytes_recursive": "8:0 Read 1048576\n8:0 Write 4194304\n8:0 Sync 4194304\n8:0 Async 1048576\n8:0 Discard 0\n8:0 Total 5242880\n" +
			"259:0 Read 8192\n259:0 Write 0\n259:0 Sync 8192\n259:0 Async 0\n259:0 Discard 0\n259:0 Total 8192\nTotal 5251072\n",
		"blkio.throttle.io_serviced_recursive": "8:0 Read 256\n8:0 Write 1024\n8:0 Sync 1024\n8:0 Async 256\n8:0 Discard 0\n8:0 Total 1280\n" +
			"259:0 Read 2\n259:0 Write 0\n259:0 Sync 2\n259:0 Async 0\n259:0 Discard 0\n259:0 Total 2\nTotal 1282\n",
		"blkio.throttle.io_service_bytes": "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 8192\n8:0 Async 4096\n8:0 Discard 0\n8:0 Total 12288\nTotal 12288\n",
		"blkio.throttle.io_serviced":      "8:0 Read 1\n8:0 Write 2\n8:0 Sync 2\n8:0 Async 1\n8:0 Discard 0\n8:0 Total 3\nTotal 3\n",
	},
}

// fakeCgroupV1 builds the fixture in a fresh tree, one hierarchy per
// controller as on this host, or with cpu and cpuacct in one "cpu,cpuacct"
// hierarchy when comount is set. edits map "controller/file" to its new
// content, or to absent; a bare "controller" mapped to absent leaves that
// controller out of the returned map. It returns the directories by
// controller, for NewCgroupV1Reader.
func fakeCgroupV1(t testing.TB, comount bool, edits map[string]string) map[string]string {
	t.Helper()
	root := t.TempDir()
	dirs := map[string]string{}
	for ctl, files := range cgroupV1Fixture {
		hierarchy := ctl
		if comount && (ctl == "cpu" || ctl == "cpuacct") {
			hierarchy = "cpu,cpuacct"
		}
		dir := filepath.Join(root, hierarchy, "rsup", "job")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs[ctl] = dir
	}
	for key, content := range edits {
		ctl, name, ok := strings.Cut(key, "/")
		if !ok {
			if content != absent {
				t.Fatalf("edit %q: a bare controller can only be absent", key)
			}
			delete(dirs, ctl)
			continue
		}
		p := filepath.Join(dirs[ctl], name)
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
	return dirs
}

func openV1Reader(t testing.TB, dirs map[string]string, opts CgroupReadOptions) *CgroupV1Reader {
	t.Helper()
	r, err := NewCgroupV1Reader(dirs, opts)
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

// fullSampleV1 is what the v1 fixture reads as, memory.stat included.
func fullSampleV1(now time.Time) CgroupSample {
	return CgroupSample{
		Time:          now,
		CPUUsage:      8123456789 * time.Nanosecond,
		CPUThrottled:  ptr(1520 * time.Millisecond),
		NrThrottled:   ptr[uint64](37),
		CPUQuota:      ptr(150 * time.Millisecond),
		CPUPeriod:     100 * time.Millisecond,
		MemoryCurrent: ptr[uint64](268435456),
		MemoryMax:     ptr[uint64](536870912),
		MemoryPeak:    ptr[uint64](301989888),
		InactiveFile:  ptr[uint64](62914560),
		MemoryEvents:  &MemoryEvents{Max: 3, OOMKill: 1},
		PidsCurrent:   ptr[uint64](17),
		PidsMax:       ptr[uint64](4096),
		PidsPeak:      ptr[uint64](23),
		IORBytes:      ptr[uint64](1056768),
		IOWBytes:      ptr[uint64](4194304),
		IORIOs:        ptr[uint64](258),
		IOWIOs:        ptr[uint64](1024),
	}
}

func TestCgroupReadV1(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		comount bool
		ignored bool // add controllers the reader does not read
		edits   map[string]string
		opts    CgroupReadOptions
		want    func(*CgroupSample)
	}{
		{
			name: "full set with memory.stat",
			opts: CgroupReadOptions{MemoryStat: true},
			want: func(*CgroupSample) {},
		},
		{
			name:    "cpu and cpuacct in one hierarchy",
			comount: true,
			opts:    CgroupReadOptions{MemoryStat: true},
			want:    func(*CgroupSample) {},
		},
		{
			name: "memory.stat not asked for",
			want: func(s *CgroupSample) { s.InactiveFile = nil },
		},
		{
			name:  "memory.stat asked for but absent",
			opts:  CgroupReadOptions{MemoryStat: true},
			edits: map[string]string{"memory/memory.stat": absent},
			want:  func(s *CgroupSample) { s.InactiveFile = nil },
		},
		{
			name:  "no cfs quota",
			edits: map[string]string{"cpu/cpu.cfs_quota_us": "-1\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUQuota = nil
			},
		},
		{
			// The kernel's "no limit", as this host shows it.
			name:  "memory unlimited",
			edits: map[string]string{"memory/memory.limit_in_bytes": "9223372036854771712\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryMax = nil
			},
		},
		{
			name:  "memory unlimited with 64 KiB pages",
			edits: map[string]string{"memory/memory.limit_in_bytes": "9223372036854710272\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryMax = nil
			},
		},
		{
			name:  "memory unlimited from 1<<62",
			edits: map[string]string{"memory/memory.limit_in_bytes": "4611686018427387904\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryMax = nil
			},
		},
		{
			name:  "memory limit just below 1<<62",
			edits: map[string]string{"memory/memory.limit_in_bytes": "4611686018427383808\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryMax = ptr[uint64](4611686018427383808)
			},
		},
		{
			name:  "pids unlimited",
			edits: map[string]string{"pids/pids.max": "max\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.PidsMax = nil
			},
		},
		{
			// Linux before 4.13: oom_control has no oom_kill line.
			// MemoryEvents is still there, with OOMKill 0.
			name:  "no oom_kill count",
			edits: map[string]string{"memory/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\n"},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryEvents.OOMKill = 0
			},
		},
		{
			name:  "failcnt only",
			edits: map[string]string{"memory/memory.oom_control": absent},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryEvents.OOMKill = 0
			},
		},
		{
			name:  "oom_control only",
			edits: map[string]string{"memory/memory.failcnt": absent},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.MemoryEvents.Max = 0
			},
		},
		{
			name: "older kernel: no pids.peak, no recursive blkio files",
			edits: map[string]string{
				"pids/pids.peak": absent,
				"blkio/blkio.throttle.io_service_bytes_recursive": absent,
				"blkio/blkio.throttle.io_serviced_recursive":      absent,
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.PidsPeak = nil
				s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = ptr[uint64](4096), ptr[uint64](8192), ptr[uint64](1), ptr[uint64](2)
			},
		},
		{
			name: "no I/O yet: zero not nil",
			edits: map[string]string{
				"blkio/blkio.throttle.io_service_bytes_recursive": "Total 0\n",
				"blkio/blkio.throttle.io_serviced_recursive":      "Total 0\n",
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = ptr[uint64](0), ptr[uint64](0), ptr[uint64](0), ptr[uint64](0)
			},
		},
		{
			name: "blkio without the throttling layer",
			edits: map[string]string{
				"blkio/blkio.throttle.io_service_bytes_recursive": absent,
				"blkio/blkio.throttle.io_serviced_recursive":      absent,
				"blkio/blkio.throttle.io_service_bytes":           absent,
				"blkio/blkio.throttle.io_serviced":                absent,
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = nil, nil, nil, nil
			},
		},
		{
			// A kernel without CFS bandwidth control has none of
			// the cpu files read.
			name: "no cfs bandwidth",
			edits: map[string]string{
				"cpu/cpu.stat": absent, "cpu/cpu.cfs_quota_us": absent, "cpu/cpu.cfs_period_us": absent,
			},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUThrottled, s.NrThrottled, s.CPUQuota, s.CPUPeriod = nil, nil, nil, 0
			},
		},
		{
			name:  "no cpu hierarchy",
			edits: map[string]string{"cpu": absent},
			want: func(s *CgroupSample) {
				s.InactiveFile = nil
				s.CPUThrottled, s.NrThrottled, s.CPUQuota, s.CPUPeriod = nil, nil, nil, 0
			},
		},
		{
			name:  "cpuacct only",
			opts:  CgroupReadOptions{MemoryStat: true},
			edits: map[string]string{"cpu": absent, "memory": absent, "pids": absent, "blkio": absent},
			want: func(s *CgroupSample) {
				*s = CgroupSample{Time: s.Time, CPUUsage: s.CPUUsage}
			},
		},
		{
			name:  "no memory, pids or blkio files",
			opts:  CgroupReadOptions{MemoryStat: true},
			edits: allFilesAbsent("memory", "pids", "blkio"),
			want: func(s *CgroupSample) {
				*s = CgroupSample{Time: s.Time, CPUUsage: s.CPUUsage, CPUThrottled: s.CPUThrottled, NrThrottled: s.NrThrottled, CPUQuota: s.CPUQuota, CPUPeriod: s.CPUPeriod}
			},
		},
		{
			name:    "controllers not read are ignored",
			ignored: true,
			want:    func(s *CgroupSample) { s.InactiveFile = nil },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dirs := fakeCgroupV1(t, tc.comount, tc.edits)
			if tc.ignored {
				// Never opened: the directories do not exist.
				dirs["freezer"] = filepath.Join(t.TempDir(), "freezer")
				dirs["name=systemd"] = filepath.Join(t.TempDir(), "systemd")
			}
			r := openV1Reader(t, dirs, tc.opts)
			got, err := r.Read(now)
			if err != nil {
				t.Fatal(err)
			}
			want := fullSampleV1(now)
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Read:\n got %s\nwant %s", dumpSample(got), dumpSample(want))
			}
		})
	}
}

// allFilesAbsent removes every fixture file of the controllers but their
// core files, so that only the directories remain.
func allFilesAbsent(ctls ...string) map[string]string {
	edits := map[string]string{}
	for _, ctl := range ctls {
		for name := range cgroupV1Fixture[ctl] {
			if name != "cgroup.procs" && name != "tasks" {
				edits[ctl+"/"+name] = absent
			}
		}
	}
	return edits
}

func TestCgroupReadV1Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		edits     map[string]string
		opts      CgroupReadOptions
		file      string // "controller/file" the error must name
		malformed bool   // the error wraps ErrMalformed
	}{
		{name: "cpuacct.usage missing", edits: map[string]string{"cpuacct/cpuacct.usage": absent}, file: "cpuacct/cpuacct.usage"},
		{name: "cpuacct.usage garbage", edits: map[string]string{"cpuacct/cpuacct.usage": "soon\n"}, file: "cpuacct/cpuacct.usage", malformed: true},
		{name: "cpuacct.usage overflows Duration", edits: map[string]string{"cpuacct/cpuacct.usage": "9223372036854775808\n"}, file: "cpuacct/cpuacct.usage", malformed: true},
		{name: "cpu.stat without throttled_time", edits: map[string]string{"cpu/cpu.stat": "nr_periods 1\nnr_throttled 0\n"}, file: "cpu/cpu.stat", malformed: true},
		{name: "cpu.stat of cgroup v2", edits: map[string]string{"cpu/cpu.stat": "usage_usec 1\nuser_usec 1\nsystem_usec 0\n"}, file: "cpu/cpu.stat", malformed: true},
		{name: "cfs quota zero", edits: map[string]string{"cpu/cpu.cfs_quota_us": "0\n"}, file: "cpu/cpu.cfs_quota_us", malformed: true},
		{name: "cfs quota max", edits: map[string]string{"cpu/cpu.cfs_quota_us": "max\n"}, file: "cpu/cpu.cfs_quota_us", malformed: true},
		{name: "cfs period zero", edits: map[string]string{"cpu/cpu.cfs_period_us": "0\n"}, file: "cpu/cpu.cfs_period_us", malformed: true},
		{name: "usage_in_bytes negative", edits: map[string]string{"memory/memory.usage_in_bytes": "-1\n"}, file: "memory/memory.usage_in_bytes", malformed: true},
		{name: "limit_in_bytes -1", edits: map[string]string{"memory/memory.limit_in_bytes": "-1\n"}, file: "memory/memory.limit_in_bytes", malformed: true},
		{name: "limit_in_bytes max", edits: map[string]string{"memory/memory.limit_in_bytes": "max\n"}, file: "memory/memory.limit_in_bytes", malformed: true},
		{name: "max_usage_in_bytes garbage", edits: map[string]string{"memory/memory.max_usage_in_bytes": "lots\n"}, file: "memory/memory.max_usage_in_bytes", malformed: true},
		{name: "failcnt empty", edits: map[string]string{"memory/memory.failcnt": ""}, file: "memory/memory.failcnt", malformed: true},
		{name: "oom_control without under_oom", edits: map[string]string{"memory/memory.oom_control": "oom_kill_disable 0\noom_kill 0\n"}, file: "memory/memory.oom_control", malformed: true},
		{name: "memory.stat of cgroup v2", edits: map[string]string{"memory/memory.stat": "anon 1\ninactive_file 2\n"}, opts: CgroupReadOptions{MemoryStat: true}, file: "memory/memory.stat", malformed: true},
		{name: "pids.current max", edits: map[string]string{"pids/pids.current": "max\n"}, file: "pids/pids.current", malformed: true},
		{name: "pids.peak garbage", edits: map[string]string{"pids/pids.peak": "x\n"}, file: "pids/pids.peak", malformed: true},
		{name: "io_service_bytes without Total", edits: map[string]string{"blkio/blkio.throttle.io_service_bytes_recursive": "8:0 Read 1\n8:0 Write 2\n"}, file: "blkio/blkio.throttle.io_service_bytes_recursive", malformed: true},
		{name: "io_serviced in io.stat format", edits: map[string]string{"blkio/blkio.throttle.io_serviced_recursive": "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n"}, file: "blkio/blkio.throttle.io_serviced_recursive", malformed: true},
		{
			name: "fallback file malformed",
			edits: map[string]string{
				"blkio/blkio.throttle.io_service_bytes_recursive": absent,
				"blkio/blkio.throttle.io_service_bytes":           "8:0 Read\n",
			},
			file: "blkio/blkio.throttle.io_service_bytes", malformed: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dirs := fakeCgroupV1(t, false, tc.edits)
			r := openV1Reader(t, dirs, tc.opts)
			got, err := r.Read(time.Now())
			if err == nil {
				t.Fatalf("Read succeeded: %s", dumpSample(got))
			}
			ctl, name, _ := strings.Cut(tc.file, "/")
			path := filepath.Join(dirs[ctl], name)
			var pe *fs.PathError
			if !errors.As(err, &pe) || pe.Path != path {
				t.Fatalf("error %v does not name %s", err, path)
			}
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error text %q does not name %s", err, path)
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

// A hierarchy's directory removed after NewCgroupV1Reader reads as an
// error that errors.Is(fs.ErrNotExist), naming the directory, not as a
// sample without that controller's figures.
func TestCgroupReadV1Removed(t *testing.T) {
	t.Parallel()
	for _, ctl := range []string{"cpu", "cpuacct", "memory", "pids", "blkio"} {
		t.Run(ctl, func(t *testing.T) {
			t.Parallel()
			dirs := fakeCgroupV1(t, false, nil)
			r := openV1Reader(t, dirs, CgroupReadOptions{})
			if err := os.RemoveAll(dirs[ctl]); err != nil {
				t.Fatal(err)
			}
			_, err := r.Read(time.Now())
			var pe *fs.PathError
			if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &pe) || filepath.Dir(pe.Path) != dirs[ctl] {
				t.Fatalf("Read: %v, want not-exist naming a file of %s", err, dirs[ctl])
			}
		})
	}
}

// Controllers sharing a hierarchy share its directory: it is opened once.
func TestNewCgroupV1ReaderSharesDirectories(t *testing.T) {
	t.Parallel()
	dirs := fakeCgroupV1(t, true, nil)
	dirs["cpu"] += "/" // the same directory, spelt differently
	r := openV1Reader(t, dirs, CgroupReadOptions{})
	if len(r.dirs) != 4 {
		t.Fatalf("%d directories opened for %v, want 4", len(r.dirs), dirs)
	}
	if r.Path() != dirs["memory"] {
		t.Errorf("Path() = %q, want the memory directory %q", r.Path(), dirs["memory"])
	}
	delete(dirs, "memory")
	r2 := openV1Reader(t, dirs, CgroupReadOptions{})
	if r2.Path() != dirs["cpuacct"] {
		t.Errorf("Path() without memory = %q, want the cpuacct directory %q", r2.Path(), dirs["cpuacct"])
	}
}

func TestNewCgroupV1ReaderErrors(t *testing.T) {
	t.Parallel()
	dirs := fakeCgroupV1(t, false, nil)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	with := func(ctl, dir string) map[string]string {
		m := map[string]string{"cpuacct": dirs["cpuacct"], "memory": dirs["memory"]}
		if dir == absent {
			delete(m, ctl)
		} else {
			m[ctl] = dir
		}
		return m
	}
	for _, tc := range []struct {
		name string
		dirs map[string]string
		want error  // errors.Is, when not nil
		text string // in the message
	}{
		{name: "nil map", dirs: nil, text: "cpuacct"},
		{name: "no cpuacct", dirs: with("cpuacct", absent), text: "cpuacct"},
		{name: "empty directory", dirs: with("pids", ""), text: "pids"},
		{name: "co-mounted name", dirs: with("cpu,cpuacct", dirs["cpu"]), text: `"cpu,cpuacct"`},
		{name: "memory directory missing", dirs: with("memory", filepath.Join(dirs["memory"], "absent")), want: fs.ErrNotExist, text: "memory hierarchy"},
		{name: "cpuacct not a directory", dirs: with("cpuacct", file), want: syscall.ENOTDIR, text: file},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewCgroupV1Reader(tc.dirs, CgroupReadOptions{})
			if err == nil {
				r.Close()
				t.Fatal("accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %s", err, tc.text)
			}
		})
	}
}

func TestCgroupV1ReaderClose(t *testing.T) {
	t.Parallel()
	r, err := NewCgroupV1Reader(fakeCgroupV1(t, false, nil), CgroupReadOptions{})
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

// Reads from several goroutines are serialised (run with -race), and
// samples do not share memory.
func TestCgroupReadV1Concurrent(t *testing.T) {
	t.Parallel()
	r := openV1Reader(t, fakeCgroupV1(t, false, nil), CgroupReadOptions{MemoryStat: true})
	want := fullSampleV1(time.Time{})
	done := make(chan error)
	for range 4 {
		go func() {
			var err error
			for range 50 {
				var s CgroupSample
				if s, err = r.Read(time.Time{}); err != nil {
					break
				}
				if !reflect.DeepEqual(s, want) {
					err = fmt.Errorf("sample %s", dumpSample(s))
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

// The reader does not leak descriptors, including on failing reads and on
// a failing NewCgroupV1Reader.
func TestCgroupReadV1NoFDLeak(t *testing.T) {
	dirs := fakeCgroupV1(t, false, nil)
	before := countFDs(t)
	r, err := NewCgroupV1Reader(dirs, CgroupReadOptions{MemoryStat: true})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := r.Read(time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dirs["blkio"], "blkio.throttle.io_serviced_recursive"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := r.Read(time.Now()); err == nil {
			t.Fatal("Read of garbage blkio file succeeded")
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]string{"blkio": dirs["blkio"], "cpuacct": dirs["cpuacct"], "pids": filepath.Join(dirs["pids"], "absent")}
	if _, err := NewCgroupV1Reader(bad, CgroupReadOptions{}); err == nil {
		t.Fatal("NewCgroupV1Reader with a missing directory succeeded")
	}
	if after := countFDs(t); after != before {
		t.Fatalf("descriptors: %d before, %d after", before, after)
	}
}

// BenchmarkCgroupReadV1 measures one sample of the fake v1 tree, to set
// beside BenchmarkCgroupRead (go test -bench 'CgroupRead'). Where this
// process has cgroup v1 hierarchies, a run against its own cgroups is
// added (read-only).
func BenchmarkCgroupReadV1(b *testing.B) {
	run := func(dirs map[string]string, opts CgroupReadOptions) func(b *testing.B) {
		return func(b *testing.B) {
			r := openV1Reader(b, dirs, opts)
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
	dirs := fakeCgroupV1(b, false, nil)
	b.Run("full", run(dirs, CgroupReadOptions{}))
	b.Run("full+memory.stat", run(dirs, CgroupReadOptions{MemoryStat: true}))
	if own, err := ownCgroupV1(); err == nil {
		b.Run("cgroupfs", run(own, CgroupReadOptions{}))
		b.Run("cgroupfs+memory.stat", run(own, CgroupReadOptions{MemoryStat: true}))
	}
}

// TestCgroupReadV1Live reads this process's own cgroup v1 directories on
// the running kernel, checking the parsers against real output. It only
// opens and reads; it skips where there is no v1 memory hierarchy.
func TestCgroupReadV1Live(t *testing.T) {
	t.Parallel()
	dirs, err := ownCgroupV1()
	if err != nil {
		t.Skip(err)
	}
	r := openV1Reader(t, dirs, CgroupReadOptions{MemoryStat: true})
	s, err := r.Read(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v:%s", dirs, dumpSample(s))
	if s.CPUUsage <= 0 {
		t.Errorf("CPUUsage = %v in %s, want > 0", s.CPUUsage, dirs["cpuacct"])
	}
	if _, ok := dirs["memory"]; ok {
		if s.MemoryCurrent == nil || *s.MemoryCurrent == 0 {
			t.Errorf("MemoryCurrent = %v in %s, want > 0", s.MemoryCurrent, dirs["memory"])
		}
		if s.MemoryPeak != nil && s.MemoryCurrent != nil && *s.MemoryPeak < *s.MemoryCurrent {
			t.Errorf("MemoryPeak %d below MemoryCurrent %d", *s.MemoryPeak, *s.MemoryCurrent)
		}
		if s.InactiveFile == nil || s.MemoryEvents == nil {
			t.Errorf("InactiveFile %v, MemoryEvents %v: want both", s.InactiveFile, s.MemoryEvents)
		}
	}
	if s.CPUPeriod != 0 && (s.CPUPeriod < time.Millisecond || s.CPUPeriod > time.Second) {
		t.Errorf("CPUPeriod = %v, outside the kernel's 1ms..1s", s.CPUPeriod)
	}
	if s.CPUPressure != nil || s.MemoryPressure != nil || s.IOPressure != nil {
		t.Error("pressure from cgroup v1")
	}
	if s.PidsCurrent != nil && *s.PidsCurrent == 0 {
		t.Error("PidsCurrent = 0, but this process is in the cgroup")
	}
}

// ownCgroupV1 returns this process's directories in the cgroup v1
// hierarchies mounted under /sys/fs/cgroup, by controller, from
// /proc/self/cgroup. A controller whose directory is not visible (a cgroup
// namespace, another mount point) is left out.
func ownCgroupV1() (map[string]string, error) {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "memory")); err != nil {
		return nil, fmt.Errorf("no cgroup v1 memory hierarchy: %w", err)
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for line := range strings.Lines(string(self)) {
		// "ID:controller,controller:/path"; v2 has "0::/path".
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 || f[1] == "" {
			continue
		}
		for ctl := range strings.SplitSeq(f[1], ",") {
			switch ctl {
			case "cpu", "cpuacct", "memory", "pids", "blkio":
			default:
				continue
			}
			// A co-mounted hierarchy is mounted under its joined
			// name, usually with a symlink per controller.
			for _, mnt := range []string{ctl, f[1]} {
				dir := filepath.Join(root, mnt, f[2])
				if _, err := os.Stat(filepath.Join(dir, cgroupV1CoreFile)); err == nil {
					dirs[ctl] = dir
					break
				}
			}
		}
	}
	if dirs["cpuacct"] == "" {
		return nil, fmt.Errorf("own cpuacct cgroup not visible under %s", root)
	}
	return dirs, nil
}

// The v1 watcher registers an eventfd for memory.oom_control with
// cgroup.event_control. A fake tree cannot deliver OOM: the test checks
// what was written, then signals the eventfd itself as the kernel would.
func TestWatcherV1RegistersOOMEvent(t *testing.T) {
	dirs := fakeCgroupV1(t, false, nil)
	w, err := newWatcherV1(dirs["memory"])
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	b, err := os.ReadFile(filepath.Join(dirs["memory"], "cgroup.event_control"))
	if err != nil {
		t.Fatal(err)
	}
	efd, ofd, ok := strings.Cut(string(b), " ")
	if !ok || efd != strconv.Itoa(w.fds[0]) {
		t.Fatalf("cgroup.event_control got %q, want \"%d <fd>\"", b, w.fds[0])
	}
	if n, err := strconv.Atoi(ofd); err != nil || n < 0 {
		t.Fatalf("cgroup.event_control got %q: no descriptor of memory.oom_control", b)
	}
	for i := range 2 {
		var one [8]byte
		one[0] = 1 // a host-endian 1 on little-endian machines, non-zero anywhere
		if _, err := unix.Write(w.fds[0], one[:]); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.wake:
		case <-time.After(5 * time.Second):
			t.Fatalf("no wake-up after signal %d of the eventfd", i+1)
		}
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
}

// Without the memory hierarchy or its notification files there is nothing
// to register: the watcher works and never fires.
func TestWatcherV1WithoutOOMControl(t *testing.T) {
	dirs := fakeCgroupV1(t, false, map[string]string{"memory/cgroup.event_control": absent})
	for _, dir := range []string{"", dirs["memory"]} {
		w, err := newWatcherV1(dir)
		if err != nil {
			t.Fatalf("newWatcherV1(%q): %v", dir, err)
		}
		select {
		case <-w.wake:
			t.Errorf("newWatcherV1(%q) woke without an event", dir)
		case <-time.After(20 * time.Millisecond):
		}
		if err := w.close(); err != nil {
			t.Fatal(err)
		}
	}
	// A file that cannot be opened is an error, not a silent watcher.
	if os.Geteuid() != 0 {
		ctl := filepath.Join(dirs["memory"], "cgroup.event_control")
		if err := os.WriteFile(ctl, nil, 0o444); err != nil {
			t.Fatal(err)
		}
		if w, err := newWatcherV1(dirs["memory"]); err == nil {
			w.close()
			t.Error("newWatcherV1 with a read-only cgroup.event_control succeeded")
		}
	}
}

// New with CgroupV1: the v1 reader is sampled, the OOM watcher wakes the
// monitor, PSI triggers are dropped with one warning.
func TestNewJobMonitorV1(t *testing.T) {
	dirs := fakeCgroupV1(t, false, nil)
	var logs bytes.Buffer
	m, err := New(Options{
		Cgroup:      "unused-on-v1",
		CgroupV1:    dirs,
		Interval:    time.Hour,
		DiskPath:    t.TempDir(),
		Events:      true,
		PSITriggers: []PSITrigger{{Resource: MemoryPressure, StallUS: 100000, WindowUS: 1000000}},
		Logger:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if n := strings.Count(logs.String(), "PSI triggers need cgroup v2"); n != 1 || strings.Count(logs.String(), "level=WARN") != 1 {
		t.Errorf("log %q: want one warning about PSI triggers", logs.String())
	}
	for range 2 {
		if err := m.SampleNow(); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []Resource{CPU, Memory, Pids, IO, Disk} {
		if _, ok := m.Usage(r); !ok {
			t.Errorf("no %s usage from a full v1 tree", r)
		}
	}
	for _, r := range []Resource{CPUPressure, MemoryPressure, IOPressure} {
		if u, ok := m.Usage(r); ok {
			t.Errorf("%s usage %+v from cgroup v1", r, u)
		}
	}
	if u, _ := m.Usage(Memory); u.Used != 268435456 || u.Total != 536870912 {
		t.Errorf("memory usage %+v", u)
	}
	if m.OOMKills() != 1 {
		t.Errorf("OOMKills() = %d, want 1 (oom_control's oom_kill)", m.OOMKills())
	}
	js := m.src.(*jobSource)
	if js.cg.Path() != dirs["memory"] {
		t.Errorf("job source path %q, want the memory directory", js.cg.Path())
	}
	if js.watcher == nil || m.wake == nil {
		t.Fatal("Events on v1 set no watcher")
	}
	if _, err := unix.Write(js.watcher.fds[0], []byte{1, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("the monitor's wake channel did not fire on the OOM eventfd")
	}

	bad := fakeCgroupV1(t, false, map[string]string{"cpuacct": absent})
	if m, err := New(Options{CgroupV1: bad}); err == nil {
		m.Close()
		t.Error("New with CgroupV1 but no cpuacct accepted")
	}
}

func TestParseNanoseconds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "cpuacct.usage", in: "7356593979280\n", want: 7356593979280},
		{name: "zero", in: "0\n", want: 0},
		{name: "largest", in: "9223372036854775807\n", want: math.MaxInt64},
		{name: "overflow Duration", in: "9223372036854775808\n", wantErr: true},
		{name: "overflow uint64", in: "18446744073709551616\n", wantErr: true},
		{name: "max", in: "max\n", wantErr: true},
		{name: "negative", in: "-1\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "two lines", in: "1\n2\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseNanoseconds([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseCPUStatV1(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    cpuStatV1
		wantErr bool
	}{
		{
			name: "Linux 6.x",
			in:   "nr_periods 1200\nnr_throttled 37\nthrottled_time 1520000000\nnr_bursts 0\nburst_time 0\n",
			want: cpuStatV1{Throttled: 1520 * time.Millisecond, NrThrottled: 37},
		},
		{name: "before 5.14", in: "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n", want: cpuStatV1{}},
		{
			name: "with schedstats",
			in:   "nr_periods 5\nnr_throttled 1\nthrottled_time 7\nnr_bursts 0\nburst_time 0\nwait_sum 123456\n",
			want: cpuStatV1{Throttled: 7, NrThrottled: 1},
		},
		{name: "no trailing newline", in: "nr_periods 1\nnr_throttled 1\nthrottled_time 1", want: cpuStatV1{Throttled: 1, NrThrottled: 1}},
		{name: "empty", in: "", wantErr: true},
		{name: "nr_periods missing", in: "nr_throttled 0\nthrottled_time 0\n", wantErr: true},
		{name: "throttled_time missing", in: "nr_periods 0\nnr_throttled 0\n", wantErr: true},
		{name: "cgroup v2 cpu.stat", in: "usage_usec 1\nuser_usec 1\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n", wantErr: true},
		{name: "duplicate", in: "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_throttled 1\n", wantErr: true},
		{name: "overflow Duration", in: "nr_periods 0\nnr_throttled 0\nthrottled_time 9223372036854775808\n", wantErr: true},
		{name: "negative", in: "nr_periods 0\nnr_throttled -1\nthrottled_time 0\n", wantErr: true},
		{name: "garbage on ignored key", in: "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nburst_time x\n", wantErr: true},
		{name: "blank line", in: "nr_periods 0\n\nnr_throttled 0\nthrottled_time 0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCPUStatV1([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseCFSQuota(t *testing.T) {
	t.Parallel()
	type result struct {
		Quota     time.Duration
		Unlimited bool
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "no limit", in: "-1\n", want: result{Unlimited: true}},
		{name: "one and a half CPUs", in: "150000\n", want: result{Quota: 150 * time.Millisecond}},
		{name: "kernel minimum", in: "1000\n", want: result{Quota: time.Millisecond}},
		{name: "no trailing newline", in: "-1", want: result{Unlimited: true}},
		{name: "zero", in: "0\n", wantErr: true},
		{name: "other negative", in: "-2\n", wantErr: true},
		{name: "minus zero", in: "-0\n", wantErr: true},
		{name: "max", in: "max\n", wantErr: true},
		{name: "cpu.max format", in: "max 100000\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "two lines", in: "-1\n-1\n", wantErr: true},
		{name: "overflow Duration", in: "9223372036854776\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.Quota, got.Unlimited, err = parseCFSQuota([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseCFSPeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{name: "default", in: "100000\n", want: 100 * time.Millisecond},
		{name: "zero", in: "0\n", wantErr: true},
		{name: "negative", in: "-1\n", wantErr: true},
		{name: "max", in: "max\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "overflow Duration", in: "9223372036854776\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCFSPeriod([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseV1MemoryLimit(t *testing.T) {
	t.Parallel()
	type result struct {
		N         uint64
		Unlimited bool
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "512 MiB", in: "536870912\n", want: result{N: 536870912}},
		{name: "no limit, 4 KiB pages", in: "9223372036854771712\n", want: result{Unlimited: true}},
		{name: "no limit, 64 KiB pages", in: "9223372036854710272\n", want: result{Unlimited: true}},
		{name: "1<<62", in: "4611686018427387904\n", want: result{Unlimited: true}},
		{name: "below 1<<62", in: "4611686018427387903\n", want: result{N: 4611686018427387903}},
		{name: "largest uint64", in: "18446744073709551615\n", want: result{Unlimited: true}},
		{name: "zero", in: "0\n", want: result{}},
		{name: "-1", in: "-1\n", wantErr: true},
		{name: "max", in: "max\n", wantErr: true},
		{name: "suffix", in: "512M\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "overflow", in: "18446744073709551616\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.N, got.Unlimited, err = parseV1MemoryLimit([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseOOMControl(t *testing.T) {
	t.Parallel()
	type result struct {
		Kills    uint64
		HasKills bool
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "Linux 4.13+", in: "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n", want: result{Kills: 4, HasKills: true}},
		{name: "no kills yet", in: "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", want: result{HasKills: true}},
		{name: "before 4.13", in: "oom_kill_disable 0\nunder_oom 0\n", want: result{}},
		{name: "killer disabled, under OOM", in: "oom_kill_disable 1\nunder_oom 1\noom_kill 0\n", want: result{HasKills: true}},
		{name: "unknown key ignored", in: "oom_kill_disable 0\nunder_oom 0\noom_kill 2\noom_group_kill 1\n", want: result{Kills: 2, HasKills: true}},
		{name: "empty", in: "", wantErr: true},
		{name: "under_oom missing", in: "oom_kill_disable 0\noom_kill 0\n", wantErr: true},
		{name: "oom_kill_disable missing", in: "under_oom 0\noom_kill 0\n", wantErr: true},
		{name: "flag not 0 or 1", in: "oom_kill_disable 2\nunder_oom 0\n", wantErr: true},
		{name: "duplicate", in: "oom_kill_disable 0\nunder_oom 0\noom_kill 1\noom_kill 2\n", wantErr: true},
		{name: "missing value", in: "oom_kill_disable 0\nunder_oom\n", wantErr: true},
		{name: "negative", in: "oom_kill_disable 0\nunder_oom 0\noom_kill -1\n", wantErr: true},
		{name: "memory.events", in: "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.Kills, got.HasKills, err = parseOOMControl([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseMemoryStatV1InactiveFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{name: "fixture", in: cgroupV1Fixture["memory"]["memory.stat"], want: 62914560},
		{name: "hierarchical, not own", in: "inactive_file 1\ntotal_inactive_file 2\n", want: 2},
		{name: "zero", in: "total_inactive_file 0\n", want: 0},
		{name: "own only", in: "inactive_file 1\nactive_file 2\n", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "missing value", in: "total_inactive_file\n", wantErr: true},
		{name: "damaged other line", in: "cache\ntotal_inactive_file 1\n", wantErr: true},
		{name: "duplicate", in: "total_inactive_file 1\ntotal_inactive_file 2\n", wantErr: true},
		{name: "negative", in: "total_inactive_file -1\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMemoryStatV1InactiveFile([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseBlkioRWStat(t *testing.T) {
	t.Parallel()
	type result struct{ Read, Write uint64 }
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "no devices (this host's root)", in: "Total 0\n", want: result{}},
		{name: "two devices summed", in: cgroupV1Fixture["blkio"]["blkio.throttle.io_service_bytes_recursive"], want: result{Read: 1056768, Write: 4194304}},
		{name: "before Discard (4.19)", in: "8:16 Read 10\n8:16 Write 20\n8:16 Sync 30\n8:16 Async 0\n8:16 Total 30\nTotal 30\n", want: result{Read: 10, Write: 20}},
		{name: "no trailing newline", in: "8:0 Read 1\n8:0 Write 2\nTotal 3", want: result{Read: 1, Write: 2}},
		{name: "empty", in: "", wantErr: true},
		{name: "no final Total", in: "8:0 Read 1\n8:0 Write 2\n8:0 Total 3\n", wantErr: true},
		{name: "line after final Total", in: "Total 0\n8:0 Read 1\n8:0 Write 2\n", wantErr: true},
		{name: "two final Totals", in: "Total 0\nTotal 0\n", wantErr: true},
		{name: "Total without value", in: "Total\n", wantErr: true},
		{name: "Total with two values", in: "Total 1 2\n", wantErr: true},
		{name: "device lacks Write", in: "8:0 Read 1\n8:0 Total 1\nTotal 1\n", wantErr: true},
		{name: "first device lacks Read", in: "8:0 Write 1\n8:16 Read 1\n8:16 Write 1\nTotal 3\n", wantErr: true},
		{name: "duplicate Read", in: "8:0 Read 1\n8:0 Read 1\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "unknown operation", in: "8:0 Read 1\n8:0 Write 2\n8:0 Flush 0\nTotal 3\n", wantErr: true},
		{name: "lower-case operation", in: "8:0 read 1\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "bad device", in: "sda Read 1\nsda Write 2\nTotal 3\n", wantErr: true},
		{name: "missing value", in: "8:0 Read\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "extra field", in: "8:0 Read 1 1\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "negative", in: "8:0 Read -1\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "garbage on Sync", in: "8:0 Read 1\n8:0 Write 2\n8:0 Sync x\nTotal 3\n", wantErr: true},
		{name: "sum overflow", in: "8:0 Read 18446744073709551615\n8:0 Write 0\n8:16 Read 1\n8:16 Write 0\nTotal 0\n", wantErr: true},
		{name: "blank line", in: "8:0 Read 1\n\n8:0 Write 2\nTotal 3\n", wantErr: true},
		{name: "io.stat format", in: "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.Read, got.Write, err = parseBlkioRWStat([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

// Fuzz targets for the v1 parsers, as in parse_test.go: no input panics
// them, every failure wraps ErrMalformed.

func FuzzParseNanoseconds(f *testing.F) {
	addSeeds(f, "7356593979280\n", "9223372036854775808\n", "max\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := parseNanoseconds(data)
		checkFuzzErr(t, err)
		if err == nil && d < 0 {
			t.Fatalf("parseNanoseconds(%q) = %v", data, d)
		}
	})
}

func FuzzParseCPUStatV1(f *testing.F) {
	addSeeds(f, cgroupV1Fixture["cpu"]["cpu.stat"], "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n", "throttled_time -1", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseCPUStatV1(data)
		checkFuzzErr(t, err)
		if err == nil && st.Throttled < 0 {
			t.Fatalf("parseCPUStatV1(%q) = %+v", data, st)
		}
	})
}

func FuzzParseCFSQuota(f *testing.F) {
	addSeeds(f, "-1\n", "150000\n", "0\n", "-2", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		quota, unlimited, err := parseCFSQuota(data)
		checkFuzzErr(t, err)
		if err == nil && (unlimited == (quota != 0) || quota < 0) {
			t.Fatalf("parseCFSQuota(%q) = %v, %v without error", data, quota, unlimited)
		}
	})
}

func FuzzParseCFSPeriod(f *testing.F) {
	addSeeds(f, "100000\n", "0\n", "max\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		period, err := parseCFSPeriod(data)
		checkFuzzErr(t, err)
		if err == nil && period <= 0 {
			t.Fatalf("parseCFSPeriod(%q) = %v without error", data, period)
		}
	})
}

func FuzzParseV1MemoryLimit(f *testing.F) {
	addSeeds(f, "536870912\n", "9223372036854771712\n", "-1\n", "max\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		n, unlimited, err := parseV1MemoryLimit(data)
		checkFuzzErr(t, err)
		if err == nil && (n >= v1MemoryUnlimited || (unlimited && n != 0)) {
			t.Fatalf("parseV1MemoryLimit(%q) = %d, %v", data, n, unlimited)
		}
	})
}

func FuzzParseOOMControl(f *testing.F) {
	addSeeds(f, cgroupV1Fixture["memory"]["memory.oom_control"], "oom_kill_disable 0\nunder_oom 0\n", "oom_kill 1\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := parseOOMControl(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParseMemoryStatV1(f *testing.F) {
	addSeeds(f, cgroupV1Fixture["memory"]["memory.stat"], "total_inactive_file\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseMemoryStatV1InactiveFile(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParseBlkioRWStat(f *testing.F) {
	addSeeds(f, cgroupV1Fixture["blkio"]["blkio.throttle.io_service_bytes_recursive"], "Total 0\n", "8:0 Read 1\n8:0 Write 2\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, err := parseBlkioRWStat(data)
		checkFuzzErr(t, err)
	})
}

package monitor

// Sampling of a job on a cgroup v1 (legacy or hybrid) host, where each
// controller has a hierarchy of its own and the job one directory in each.
// The files differ from cgroup v2 in name, unit and format; the reader maps
// them onto the same CgroupSample, so that the job source need not know
// which version it reads.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupV1Reader samples a job's directories in the cgroup v1 hierarchies.
// Each distinct directory is held open and read as a CgroupReader reads
// its one directory (see there); controllers mounted together, such as
// cpu,cpuacct, share a directory and its descriptors.
//
// Its methods may be called from several goroutines; reads are serialised.
type CgroupV1Reader struct {
	path string
	opts CgroupReadOptions

	mu     sync.Mutex
	closed bool
	// dirs are the distinct directories. They are only ever used under
	// mu, so their own locks are not taken for reading.
	dirs []*CgroupReader
	// fileDir is, for each entry of cgroupV1Files, the index in dirs of
	// the directory holding it, or -1 when its controller was not given.
	fileDir [len(cgroupV1Files)]int
}

// cgroupV1Controllers are the v1 controllers a CgroupV1Reader reads.
var cgroupV1Controllers = []string{"blkio", "cpu", "cpuacct", "memory", "pids"}

// NewCgroupV1Reader opens a job's cgroup v1 directories for sampling. dirs
// maps a controller name ("cpu", "cpuacct", "memory", "pids", "blkio") to
// the job's directory in that controller's hierarchy; two names may map to
// one directory where their controllers share a hierarchy. Names of other
// controllers (freezer, devices, ...) are ignored, as nothing is sampled
// from them. A controller left out leaves its figures nil, except cpuacct,
// which is required: it alone has the job's CPU time, and a sample cannot
// mark CPUUsage as missing.
//
// Like NewCgroupReader it does not check that the directories are on a
// cgroup file system. The caller must Close the reader.
func NewCgroupV1Reader(dirs map[string]string, opts CgroupReadOptions) (*CgroupV1Reader, error) {
	for name, dir := range dirs {
		if name == "" || strings.ContainsAny(name, ", ") {
			return nil, fmt.Errorf("cgroup v1 controller %q: want one controller name per entry", name)
		}
		if dir == "" {
			return nil, fmt.Errorf("cgroup v1 %s hierarchy: empty directory", name)
		}
	}
	if dirs["cpuacct"] == "" {
		return nil, errors.New("cgroup v1: no cpuacct directory: the job's CPU time is only in the cpuacct hierarchy")
	}
	r := &CgroupV1Reader{opts: opts}
	byPath := map[string]int{}
	for _, ctl := range cgroupV1Controllers {
		dir, ok := dirs[ctl]
		if !ok {
			continue
		}
		dir = filepath.Clean(dir)
		if _, ok := byPath[dir]; ok {
			continue
		}
		d, err := NewCgroupReader(dir, opts)
		if err != nil {
			r.closeDirs()
			return nil, fmt.Errorf("cgroup v1 %s hierarchy: %w", ctl, err)
		}
		byPath[dir] = len(r.dirs)
		r.dirs = append(r.dirs, d)
	}
	for i := range cgroupV1Files {
		r.fileDir[i] = -1
		if dir, ok := dirs[cgroupV1Files[i].ctl]; ok {
			r.fileDir[i] = byPath[filepath.Clean(dir)]
		}
	}
	// Path names the job as the cgroup package's v1 Job.Path does: by
	// its memory directory where there is one.
	r.path = filepath.Clean(dirs["cpuacct"])
	if dir, ok := dirs["memory"]; ok {
		r.path = filepath.Clean(dir)
	}
	return r, nil
}

// Path returns the job's memory directory, or its cpuacct directory when
// the memory controller was not given.
func (r *CgroupV1Reader) Path() string { return r.path }

// Close releases the directories. Closing twice is not an error; Read
// after Close fails with an error wrapping os.ErrClosed.
func (r *CgroupV1Reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.closeDirs()
}

func (r *CgroupV1Reader) closeDirs() error {
	var errs []error
	for _, d := range r.dirs {
		errs = append(errs, d.Close())
	}
	r.dirs = nil
	return errors.Join(errs...)
}

// cgroupV1File is one v1 interface file and how its content lands in a
// sample.
type cgroupV1File struct {
	ctl  string // the controller whose directory holds the file
	name string
	// fallback is read instead when name does not exist (an older
	// kernel).
	fallback string
	// required files are an error when missing; the others are left nil.
	required bool
	// memoryStat marks the file CgroupReadOptions.MemoryStat asks for.
	memoryStat bool
	parse      func(data []byte, s *CgroupSample, v *cgroupValues) error
}

// cgroupV1Files lists the files Read samples, in the order it reads them,
// and says how each v1 figure stands in for its v2 counterpart.
//
// There is no pressure in any v1 hierarchy: the *.pressure files are core
// files of cgroup v2 only, so the pressure fields of a v1 sample are nil.
// (memory.pressure_level is a different thing: a notification of reclaim
// levels, with nothing to read.)
var cgroupV1Files = [...]cgroupV1File{
	// cpuacct.usage is the CPU time of the cgroup and its descendants in
	// nanoseconds, as usage_usec of v2's cpu.stat is in microseconds. It
	// is in every cpuacct directory, so its absence means the cgroup is
	// gone.
	{ctl: "cpuacct", name: "cpuacct.usage", required: true, parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		d, err := parseNanoseconds(data)
		if err != nil {
			return err
		}
		s.CPUUsage = d
		return nil
	}},
	// The cpu controller's cpu.stat carries throttling only (no usage),
	// and in nanoseconds: throttled_time for v2's throttled_usec. It and
	// the cfs_* files exist where the kernel has CFS bandwidth control.
	{ctl: "cpu", name: "cpu.stat", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		st, err := parseCPUStatV1(data)
		if err != nil {
			return err
		}
		v.cpuThrottled, v.nrThrottled = st.Throttled, st.NrThrottled
		s.CPUThrottled, s.NrThrottled = &v.cpuThrottled, &v.nrThrottled
		return nil
	}},
	// v2's cpu.max is split in two: the quota, -1 for none, and the
	// period, both in microseconds.
	{ctl: "cpu", name: "cpu.cfs_quota_us", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		quota, unlimited, err := parseCFSQuota(data)
		if err != nil || unlimited {
			return err
		}
		v.cpuQuota = quota
		s.CPUQuota = &v.cpuQuota
		return nil
	}},
	{ctl: "cpu", name: "cpu.cfs_period_us", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		period, err := parseCFSPeriod(data)
		if err != nil {
			return err
		}
		s.CPUPeriod = period
		return nil
	}},
	// usage_in_bytes is charged memory, descendants included, as
	// memory.current is.
	{ctl: "memory", name: "memory.usage_in_bytes", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.memoryCurrent, &s.MemoryCurrent)
	}},
	// limit_in_bytes has no word for "no limit": it shows the largest
	// page-aligned count instead, which parseV1MemoryLimit takes for max.
	{ctl: "memory", name: "memory.limit_in_bytes", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		n, unlimited, err := parseV1MemoryLimit(data)
		if err != nil || unlimited {
			return err
		}
		v.memoryMax = n
		s.MemoryMax = &v.memoryMax
		return nil
	}},
	// max_usage_in_bytes is the high-water mark, as memory.peak is
	// (though v1 lets anyone with write access reset it).
	{ctl: "memory", name: "memory.max_usage_in_bytes", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.memoryPeak, &s.MemoryPeak)
	}},
	// v1 has no memory.events. Its nearest counters fill MemoryEvents:
	// failcnt, the times a charge hit the limit, stands in for "max";
	// oom_control's oom_kill (Linux 4.13+; older kernels leave OOMKill 0)
	// for "oom_kill". Low, High and OOM stay 0: v1 has no low or high
	// boundary, and oom_control's under_oom is a state, not a count of
	// OOM episodes. Either file makes MemoryEvents non-nil.
	{ctl: "memory", name: "memory.failcnt", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		n, isMax, err := parseSingle(data)
		if err != nil {
			return err
		}
		if isMax {
			return fmt.Errorf("%w: \"max\" where a number was expected", ErrMalformed)
		}
		v.memoryEvents.Max = n
		s.MemoryEvents = &v.memoryEvents
		return nil
	}},
	{ctl: "memory", name: "memory.oom_control", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		kills, _, err := parseOOMControl(data)
		if err != nil {
			return err
		}
		v.memoryEvents.OOMKill = kills
		s.MemoryEvents = &v.memoryEvents
		return nil
	}},
	// memory.stat's total_inactive_file covers the descendants, as
	// usage_in_bytes does; plain inactive_file is the cgroup's own.
	{ctl: "memory", name: "memory.stat", memoryStat: true, parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		n, err := parseMemoryStatV1InactiveFile(data)
		if err != nil {
			return err
		}
		v.inactiveFile = n
		s.InactiveFile = &v.inactiveFile
		return nil
	}},
	// The pids files are the same in both versions; pids.peak only where
	// the kernel has it.
	{ctl: "pids", name: "pids.current", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.pidsCurrent, &s.PidsCurrent)
	}},
	{ctl: "pids", name: "pids.max", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseLimitInto(data, &v.pidsMax, &s.PidsMax)
	}},
	{ctl: "pids", name: "pids.peak", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.pidsPeak, &s.PidsPeak)
	}},
	// The blkio throttle statistics count all I/O of the cgroup, per
	// device and direction, whether or not a throttle limit is set; the
	// byte and the request counts are in two files. The _recursive ones
	// (Linux 4.16+) include descendants, as v2's io.stat does, so that a
	// job cannot hide writes from the write cap in a child cgroup; the
	// plain ones, the cgroup's own I/O, are the fallback. With the
	// throttling layer compiled out neither exists and the I/O figures
	// are nil.
	{ctl: "blkio", name: "blkio.throttle.io_service_bytes_recursive", fallback: "blkio.throttle.io_service_bytes", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		r, w, err := parseBlkioRWStat(data)
		if err != nil {
			return err
		}
		v.io.RBytes, v.io.WBytes = r, w
		s.IORBytes, s.IOWBytes = &v.io.RBytes, &v.io.WBytes
		return nil
	}},
	{ctl: "blkio", name: "blkio.throttle.io_serviced_recursive", fallback: "blkio.throttle.io_serviced", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		r, w, err := parseBlkioRWStat(data)
		if err != nil {
			return err
		}
		v.io.RIOs, v.io.WIOs = r, w
		s.IORIOs, s.IOWIOs = &v.io.RIOs, &v.io.WIOs
		return nil
	}},
}

// cgroupV1CoreFile is in every directory of every v1 hierarchy; it tells a
// missing controller file from a removed cgroup.
const cgroupV1CoreFile = "cgroup.procs"

// Read samples the job's directories, stamping the sample with now. A file
// that does not exist, or whose controller was not given, leaves its
// fields nil, except cpuacct.usage. Any other failure to read or parse a
// file is returned, naming the file, as an *fs.PathError (Op "read" or
// "parse"); the sample is then the zero value. errors.Is(err,
// fs.ErrNotExist) identifies a removed cgroup.
func (r *CgroupV1Reader) Read(now time.Time) (CgroupSample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return CgroupSample{}, &fs.PathError{Op: "read", Path: r.path, Err: os.ErrClosed}
	}
	v := new(cgroupValues)
	s := &v.sample
	s.Time = now
	var missed uint64 // bit i: a file of r.dirs[i] did not exist
	for i := range cgroupV1Files {
		f := &cgroupV1Files[i]
		di := r.fileDir[i]
		if di < 0 || (f.memoryStat && !r.opts.MemoryStat) {
			continue
		}
		d := r.dirs[di]
		name := f.name
		data, err := d.readFile(name)
		if err == unix.ENOENT && f.fallback != "" {
			name = f.fallback
			data, err = d.readFile(name)
		}
		if err != nil {
			if !f.required && err == unix.ENOENT {
				missed |= 1 << di
				continue
			}
			return CgroupSample{}, &fs.PathError{Op: "read", Path: filepath.Join(d.path, name), Err: err}
		}
		if err := f.parse(data, s, v); err != nil {
			return CgroupSample{}, &fs.PathError{Op: "parse", Path: filepath.Join(d.path, name), Err: err}
		}
	}
	// As in CgroupReader.Read: a directory removed while it was being
	// read answers ENOENT for the rest of its files, which would pass for
	// a kernel without them. Its core file tells the two apart.
	for di, d := range r.dirs {
		if missed&(1<<di) == 0 {
			continue
		}
		if err := unix.Faccessat(d.fd, cgroupV1CoreFile, unix.F_OK, 0); err != nil {
			return CgroupSample{}, &fs.PathError{Op: "read", Path: filepath.Join(d.path, cgroupV1CoreFile), Err: err}
		}
	}
	return *s, nil
}

// Parsers for the cgroup v1 formats, as strict as those of parse.go.

// parseNanoseconds parses a single-value file holding nanoseconds
// (cpuacct.usage) into a Duration.
func parseNanoseconds(data []byte) (time.Duration, error) {
	n, isMax, err := parseSingle(data)
	if err != nil {
		return 0, err
	}
	if isMax {
		return 0, fmt.Errorf("%w: \"max\" where a number was expected", ErrMalformed)
	}
	if n > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %d nanoseconds overflow a time.Duration", ErrMalformed, n)
	}
	return time.Duration(n), nil
}

// cpuStatV1 holds the fields of a v1 cpu.stat that rsup uses.
type cpuStatV1 struct {
	Throttled   time.Duration // throttled_time
	NrThrottled uint64
}

// parseCPUStatV1 parses the cpu controller's cpu.stat of cgroup v1. The
// kernel writes nr_periods, nr_throttled and throttled_time (nanoseconds)
// together, so all three are required; later keys (nr_bursts and
// burst_time since Linux 5.14, wait_sum with schedstats on) are checked
// for shape and ignored.
func parseCPUStatV1(data []byte) (cpuStatV1, error) {
	const (
		seenPeriods = 1 << iota
		seenNrThrottled
		seenThrottled
		seenAll = seenPeriods | seenNrThrottled | seenThrottled
	)
	var (
		st   cpuStatV1
		seen int
	)
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		key, v, err := parseKeyValueLine(line)
		if err != nil {
			return cpuStatV1{}, err
		}
		var bit int
		switch string(key) {
		case "nr_periods":
			bit = seenPeriods
		case "nr_throttled":
			bit = seenNrThrottled
			st.NrThrottled = v
		case "throttled_time":
			bit = seenThrottled
			if v > math.MaxInt64 {
				return cpuStatV1{}, malformed(line, "%d nanoseconds overflow a time.Duration", v)
			}
			st.Throttled = time.Duration(v)
		default:
			continue
		}
		if seen&bit != 0 {
			return cpuStatV1{}, malformed(line, "duplicate key")
		}
		seen |= bit
	}
	if seen != seenAll {
		return cpuStatV1{}, fmt.Errorf("%w: cpu.stat lacks %s", ErrMalformed, missingKeys(seen, "nr_periods", "nr_throttled", "throttled_time"))
	}
	return st, nil
}

// parseCFSQuota parses cpu.cfs_quota_us: microseconds of CPU time per
// period, or -1 for no limit (unlimited is then true and quota 0). The
// kernel refuses a quota of 0 and any other negative one.
func parseCFSQuota(data []byte) (quota time.Duration, unlimited bool, err error) {
	line, rest, ok := nextLine(data)
	if !ok {
		return 0, false, fmt.Errorf("%w: empty file", ErrMalformed)
	}
	if len(rest) != 0 {
		return 0, false, malformed(rest, "more than one line")
	}
	if string(line) == "-1" {
		return 0, true, nil
	}
	if quota, err = parseUsec(line); err != nil {
		return 0, false, malformed(line, "quota: %v", err)
	}
	if quota == 0 {
		return 0, false, malformed(line, "quota is 0")
	}
	return quota, false, nil
}

// parseCFSPeriod parses cpu.cfs_period_us, a non-zero count of
// microseconds.
func parseCFSPeriod(data []byte) (time.Duration, error) {
	n, isMax, err := parseSingle(data)
	if err != nil {
		return 0, err
	}
	if isMax {
		return 0, fmt.Errorf("%w: \"max\" where a period was expected", ErrMalformed)
	}
	period, err := usecToDuration(n)
	if err != nil {
		return 0, fmt.Errorf("%w: period: %v", ErrMalformed, err)
	}
	if period == 0 {
		return 0, fmt.Errorf("%w: period is 0", ErrMalformed)
	}
	return period, nil
}

// v1MemoryUnlimited is where a v1 memory limit stops being a limit. The
// kernel shows "no limit" as its largest page counter in bytes, which is
// LONG_MAX rounded down to the page size (9223372036854771712 with 4 KiB
// pages); with larger pages it is lower still. Anything from 1<<62 up is
// taken for that, well above any memory a host can have.
const v1MemoryUnlimited = 1 << 62

// parseV1MemoryLimit parses memory.limit_in_bytes. unlimited reports the
// kernel's "no limit" value, and n is then 0.
func parseV1MemoryLimit(data []byte) (n uint64, unlimited bool, err error) {
	n, isMax, err := parseSingle(data)
	if err != nil {
		return 0, false, err
	}
	if isMax {
		// v1 writes a number even for no limit, never "max".
		return 0, false, fmt.Errorf("%w: \"max\" where a number was expected", ErrMalformed)
	}
	if n >= v1MemoryUnlimited {
		return 0, true, nil
	}
	return n, false, nil
}

// parseOOMControl parses memory.oom_control: oom_kill_disable and
// under_oom, each 0 or 1 and always present, and oom_kill, the count of
// processes the OOM killer killed in the cgroup (Linux 4.13+; hasKills is
// false before). Other keys are checked for shape and ignored.
func parseOOMControl(data []byte) (kills uint64, hasKills bool, err error) {
	const (
		seenDisable = 1 << iota
		seenUnder
		seenKill
	)
	var seen int
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		key, v, err := parseKeyValueLine(line)
		if err != nil {
			return 0, false, err
		}
		var bit int
		switch string(key) {
		case "oom_kill_disable":
			bit = seenDisable
		case "under_oom":
			bit = seenUnder
		case "oom_kill":
			bit = seenKill
			kills = v
		default:
			continue
		}
		if bit != seenKill && v > 1 {
			return 0, false, malformed(line, "want 0 or 1")
		}
		if seen&bit != 0 {
			return 0, false, malformed(line, "duplicate key")
		}
		seen |= bit
	}
	if seen&(seenDisable|seenUnder) != seenDisable|seenUnder {
		return 0, false, fmt.Errorf("%w: memory.oom_control lacks %s", ErrMalformed, missingKeys(seen, "oom_kill_disable", "under_oom"))
	}
	return kills, seen&seenKill != 0, nil
}

// parseMemoryStatV1InactiveFile returns total_inactive_file from a v1
// memory.stat: the job's figure with its children's, as v2's inactive_file
// is. v1 has written it since hierarchical accounting began.
func parseMemoryStatV1InactiveFile(data []byte) (uint64, error) {
	return parseMemoryStatKey(data, "total_inactive_file")
}

// parseBlkioRWStat parses a blkio statistics file of the "rwstat" kind
// (blkio.throttle.io_service_bytes, blkio.throttle.io_serviced and their
// _recursive forms) and sums its Read and Write counts over devices.
//
// Each device has a block of "MAJ:MIN OP N" lines, OP being Read, Write,
// Sync, Async, Discard (Linux 4.19+) and a closing Total; the file ends
// with one "Total N" line for all devices, and is just that line when no
// device has seen I/O. Read and Write are required once per block; Sync,
// Async, Discard and the totals are checked for shape only, as they count
// the same I/O again. This format has been frozen with cgroup v1, so an
// unknown OP is an error.
func parseBlkioRWStat(data []byte) (read, write uint64, err error) {
	const (
		seenRead = 1 << iota
		seenWrite
		seenBoth = seenRead | seenWrite
	)
	var (
		dev      []byte // the device of the current block
		seen     int
		total    bool
		overflow bool
	)
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		if total {
			return 0, 0, malformed(line, "line after the final Total")
		}
		first, f := nextField(line)
		if string(first) == "Total" {
			val, f := nextField(f)
			if _, err := parseDecimal(val); err != nil || !onlySpaces(f) {
				return 0, 0, malformed(line, `want "Total N"`)
			}
			total = true
			continue
		}
		if err := checkDevice(first); err != nil {
			return 0, 0, malformed(line, "%v", err)
		}
		op, f := nextField(f)
		val, f := nextField(f)
		if len(op) == 0 || len(val) == 0 || !onlySpaces(f) {
			return 0, 0, malformed(line, `want "MAJ:MIN OP N"`)
		}
		n, err := parseDecimal(val)
		if err != nil {
			return 0, 0, malformed(line, "%s: %v", op, err)
		}
		if !bytes.Equal(first, dev) {
			if dev != nil && seen != seenBoth {
				return 0, 0, malformed(line, "device %s lacks %s", dev, missingKeys(seen, "Read", "Write"))
			}
			dev, seen = first, 0
		}
		var bit int
		switch string(op) {
		case "Read":
			bit = seenRead
			read, overflow = addOverflow(read, n, overflow)
		case "Write":
			bit = seenWrite
			write, overflow = addOverflow(write, n, overflow)
		case "Sync", "Async", "Discard", "Total":
			continue
		default:
			return 0, 0, malformed(line, "unknown operation %q", op)
		}
		if seen&bit != 0 {
			return 0, 0, malformed(line, "duplicate %s", op)
		}
		seen |= bit
		if overflow {
			return 0, 0, malformed(line, "sum over devices overflows 64 bits")
		}
	}
	if dev != nil && seen != seenBoth {
		return 0, 0, fmt.Errorf("%w: device %s lacks %s", ErrMalformed, dev, missingKeys(seen, "Read", "Write"))
	}
	if !total {
		return 0, 0, fmt.Errorf("%w: no final Total line", ErrMalformed)
	}
	return read, write, nil
}

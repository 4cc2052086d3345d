package monitor

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupReadOptions chooses the optional, costlier files a CgroupReader
// reads. The zero value reads only the cheap ones.
type CgroupReadOptions struct {
	// MemoryStat reads memory.stat for CgroupSample.InactiveFile. The
	// kernel flushes the cgroup's statistics and formats some 50
	// counters for it, the most work of any file read, so it is off
	// unless the working set is wanted.
	MemoryStat bool
}

// CgroupReader samples the interface files of one cgroup v2 directory. It
// holds the directory open (an O_PATH descriptor) and opens each file
// relative to it, so a sample costs no path lookup from the root and a
// cgroup renamed or moved meanwhile is still the one read.
//
// Its methods may be called from several goroutines; reads are serialised,
// as they share one buffer.
type CgroupReader struct {
	path string
	opts CgroupReadOptions

	mu    sync.Mutex
	fd    int            // -1 once closed
	buf   []byte         // reused for every file
	files map[string]int // interface files kept open between samples
}

// cgroupReadBufSize is the starting size of the read buffer: every file
// read fits in one page except, at times, memory.stat and an io.stat with
// many devices, which grow it once for the life of the reader.
const cgroupReadBufSize = 4096

// cgroupReadMaxSize bounds the size of one interface file; a file still
// growing past it is not a cgroup interface file.
const cgroupReadMaxSize = 1 << 20

// NewCgroupReader opens the cgroup directory dir for sampling. It does not
// check that dir is on cgroupfs, so tests can point it at a plain tree.
// The caller must Close the reader.
func NewCgroupReader(dir string, opts CgroupReadOptions) (*CgroupReader, error) {
	fd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &CgroupReader{
		path:  dir,
		opts:  opts,
		fd:    fd,
		buf:   make([]byte, cgroupReadBufSize),
		files: map[string]int{},
	}, nil
}

// Path returns the directory the reader was opened on.
func (r *CgroupReader) Path() string { return r.path }

// Close releases the directory. Closing twice is not an error; Read after
// Close fails with an error wrapping os.ErrClosed.
func (r *CgroupReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil
	}
	for name, fd := range r.files {
		unix.Close(fd)
		delete(r.files, name)
	}
	err := unix.Close(r.fd)
	r.fd = -1
	r.buf = nil
	if err != nil {
		return &fs.PathError{Op: "close", Path: r.path, Err: err}
	}
	return nil
}

// cgroupValues backs every pointer of one CgroupSample, so that a sample
// costs one allocation however many files were present. The sample being
// filled lives here too, as the parse functions, called through a table,
// would otherwise move it to the heap separately.
type cgroupValues struct {
	sample CgroupSample

	cpuThrottled time.Duration
	nrThrottled  uint64
	cpuQuota     time.Duration

	memoryCurrent, memoryMax, memoryPeak, inactiveFile uint64
	memoryEvents                                       MemoryEvents

	pidsCurrent, pidsMax, pidsPeak uint64

	io ioStat

	pressure [3]Pressure
	full     [3]PSI
}

// cgroupFile is one interface file and how its content lands in a sample.
type cgroupFile struct {
	name string
	// required files are an error when missing; the others are left nil.
	required bool
	// memoryStat marks the file CgroupReadOptions.MemoryStat asks for.
	memoryStat bool
	parse      func(data []byte, s *CgroupSample, v *cgroupValues) error
}

// cgroupFiles lists the files Read samples, in the order it reads them.
// Versions are where the file appeared in cgroup v2; any file but cpu.stat
// is also absent while its controller is not enabled in the parent's
// cgroup.subtree_control.
var cgroupFiles = [...]cgroupFile{
	// cpu.stat is a core file (Linux 4.15) present in every cgroup, the
	// root included, so its absence means dir is not a cgroup (or is
	// gone): that is an error, not an empty sample.
	{name: "cpu.stat", required: true, parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		st, err := parseCPUStat(data)
		if err != nil {
			return err
		}
		s.CPUUsage = st.Usage
		if st.HasThrottled {
			v.cpuThrottled = st.Throttled
			s.CPUThrottled = &v.cpuThrottled
		}
		if st.HasNrThrottled {
			v.nrThrottled = st.NrThrottled
			s.NrThrottled = &v.nrThrottled
		}
		return nil
	}},
	// cpu.max: cpu controller, not in the root cgroup.
	{name: "cpu.max", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		quota, unlimited, period, err := parseCPUMax(data)
		if err != nil {
			return err
		}
		s.CPUPeriod = period
		if !unlimited {
			v.cpuQuota = quota
			s.CPUQuota = &v.cpuQuota
		}
		return nil
	}},
	{name: "memory.current", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.memoryCurrent, &s.MemoryCurrent)
	}},
	{name: "memory.max", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseLimitInto(data, &v.memoryMax, &s.MemoryMax)
	}},
	// memory.peak: Linux 5.19.
	{name: "memory.peak", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.memoryPeak, &s.MemoryPeak)
	}},
	{name: "memory.events", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		ev, err := parseMemoryEvents(data)
		if err != nil {
			return err
		}
		v.memoryEvents = ev
		s.MemoryEvents = &v.memoryEvents
		return nil
	}},
	{name: "memory.stat", memoryStat: true, parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		n, err := parseMemoryStatInactiveFile(data)
		if err != nil {
			return err
		}
		v.inactiveFile = n
		s.InactiveFile = &v.inactiveFile
		return nil
	}},
	{name: "pids.current", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.pidsCurrent, &s.PidsCurrent)
	}},
	{name: "pids.max", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseLimitInto(data, &v.pidsMax, &s.PidsMax)
	}},
	// pids.peak: Linux 6.1.
	{name: "pids.peak", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parseCountInto(data, &v.pidsPeak, &s.PidsPeak)
	}},
	{name: "io.stat", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		st, err := parseIOStat(data)
		if err != nil {
			return err
		}
		v.io = st
		s.IORBytes, s.IOWBytes, s.IORIOs, s.IOWIOs = &v.io.RBytes, &v.io.WBytes, &v.io.RIOs, &v.io.WIOs
		return nil
	}},
	// *.pressure: Linux 4.20 with CONFIG_PSI; absent when PSI is off
	// (psi=0) or, since Linux 6.5, when cgroup.pressure is 0.
	{name: "cpu.pressure", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parsePressureInto(data, 0, v, &s.CPUPressure)
	}},
	{name: "memory.pressure", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parsePressureInto(data, 1, v, &s.MemoryPressure)
	}},
	{name: "io.pressure", parse: func(data []byte, s *CgroupSample, v *cgroupValues) error {
		return parsePressureInto(data, 2, v, &s.IOPressure)
	}},
}

// parseCountInto parses a single-value file that holds a count, never "max".
func parseCountInto(data []byte, slot *uint64, field **uint64) error {
	n, isMax, err := parseSingle(data)
	if err != nil {
		return err
	}
	if isMax {
		return fmt.Errorf("%w: \"max\" where a number was expected", ErrMalformed)
	}
	*slot = n
	*field = slot
	return nil
}

// parseLimitInto parses a single-value limit file, leaving field nil for "max".
func parseLimitInto(data []byte, slot *uint64, field **uint64) error {
	n, isMax, err := parseSingle(data)
	if err != nil || isMax {
		return err
	}
	*slot = n
	*field = slot
	return nil
}

// parsePressureInto parses a pressure file into the i-th pressure slot of v.
func parsePressureInto(data []byte, i int, v *cgroupValues, field **Pressure) error {
	some, full, hasFull, err := parsePressure(data)
	if err != nil {
		return err
	}
	v.pressure[i].Some = some
	if hasFull {
		v.full[i] = full
		v.pressure[i].Full = &v.full[i]
	}
	*field = &v.pressure[i]
	return nil
}

// Read samples the cgroup, stamping the sample with now. A file that does
// not exist leaves its fields nil (its controller is not enabled, or the
// kernel predates it), except cpu.stat, whose absence means the cgroup is
// gone. Any other failure to read or parse a file is returned, naming the
// file, as an *fs.PathError (Op "read" or "parse"); the sample is then
// the zero value. errors.Is(err, fs.ErrNotExist) identifies a removed
// cgroup; reads of a cgroup removed while open fail with ENODEV.
func (r *CgroupReader) Read(now time.Time) (CgroupSample, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return CgroupSample{}, &fs.PathError{Op: "read", Path: r.path, Err: os.ErrClosed}
	}
	v := new(cgroupValues)
	s := &v.sample
	s.Time = now
	missed := false
	for i := range cgroupFiles {
		f := &cgroupFiles[i]
		if f.memoryStat && !r.opts.MemoryStat {
			continue
		}
		data, err := r.readFile(f.name)
		if err != nil {
			if !f.required && err == unix.ENOENT {
				missed = true
				continue
			}
			return CgroupSample{}, &fs.PathError{Op: "read", Path: filepath.Join(r.path, f.name), Err: err}
		}
		if err := f.parse(data, s, v); err != nil {
			return CgroupSample{}, &fs.PathError{Op: "parse", Path: filepath.Join(r.path, f.name), Err: err}
		}
	}
	if missed {
		// A cgroup removed after cpu.stat was read answers ENOENT
		// for everything after it, which would pass for controllers
		// that are not enabled. One more look at cpu.stat tells the
		// two apart.
		const name = "cpu.stat"
		if err := unix.Faccessat(r.fd, name, unix.F_OK, 0); err != nil {
			return CgroupSample{}, &fs.PathError{Op: "read", Path: filepath.Join(r.path, name), Err: err}
		}
	}
	return *s, nil
}

// readFile reads the file name beneath the directory into r.buf, growing
// it as needed, and returns the filled part, valid until the next call.
// The caller holds r.mu.
//
// Each file is opened once and then re-read from offset 0 with pread:
// kernfs regenerates a seq_file's content when it is read from the start,
// so a sample costs one system call per file instead of three (openat,
// read, close), at the price of about one descriptor per file for the
// reader's life. A file that does not exist is looked for again at every
// sample, since a controller may be enabled later.
//
// A read that leaves room in the buffer is taken as the whole file: kernfs
// formats the whole of a seq_file into its own buffer on the first read
// and returns as much as fits. A full buffer is grown and the read goes on
// at the next offset.
func (r *CgroupReader) readFile(name string) ([]byte, error) {
	fd, ok := r.files[name]
	if !ok {
		// The names are fixed, single path elements, so openat with
		// O_NOFOLLOW cannot leave the directory; cgroupfs has no
		// symlinks.
		var err error
		fd, err = ignoringEINTR(func() (int, error) {
			return unix.Openat(r.fd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		})
		if err != nil {
			return nil, err
		}
		r.files[name] = fd
	}
	n := 0
	for {
		m, err := ignoringEINTR(func() (int, error) { return unix.Pread(fd, r.buf[n:], int64(n)) })
		if err != nil {
			// Drop the descriptor: the next sample opens the file
			// afresh (it may have been replaced, or the cgroup
			// removed).
			unix.Close(fd)
			delete(r.files, name)
			return nil, err
		}
		n += m
		if n < len(r.buf) {
			return r.buf[:n], nil
		}
		if len(r.buf) >= cgroupReadMaxSize {
			return nil, fmt.Errorf("file larger than %d bytes", cgroupReadMaxSize)
		}
		r.buf = append(r.buf, make([]byte, len(r.buf))...)
	}
}

// ignoringEINTR retries a system call that a signal interrupted. The Go
// runtime installs its handlers with SA_RESTART, so this is rare, but a
// handler installed by cgo code may not be.
func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != unix.EINTR {
			return n, err
		}
	}
}

package cgroup

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// v1Dir is a job's directory in one cgroup v1 hierarchy.
type v1Dir struct {
	ctls []string // the v1 controllers of the hierarchy that rsup uses
	path string
	d    *dir
}

// v1Job is a job's directories on a cgroup v1 host.
type v1Job struct {
	dirs []*v1Dir
}

func (v *v1Job) dir(ctl string) *v1Dir {
	for _, d := range v.dirs {
		if slices.Contains(d.ctls, ctl) {
			return d
		}
	}
	return nil
}

// v1Unlimited is what memory.limit_in_bytes reads when there is no limit
// (PAGE_COUNTER_MAX pages, rounded): anything this large means none.
const v1Unlimited = 1 << 62

// newJobV1 creates the job's directory in each hierarchy and applies res.
func (h *Hierarchy) newJobV1(name string, res *Resources) (*Job, error) {
	if err := res.validateV1(); err != nil {
		return nil, err
	}
	j := &Job{name: name, v1: &v1Job{}}
	fail := func(err error) (*Job, error) {
		j.closeV1()
		for _, d := range j.v1.dirs {
			if rerr := removeTree(d.path, time.Second); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return nil, err
	}
	byRoot := map[string][]string{}
	for c, r := range h.v1.roots {
		byRoot[r] = append(byRoot[r], c)
	}
	for _, root := range slices.Sorted(maps.Keys(byRoot)) {
		path := filepath.Join(root, name)
		if err := mkdirCgroup(path); errors.Is(err, os.ErrExist) {
			return fail(fmt.Errorf("%w: %s already exists: choose another --name, or remove it (rmdir) if it is a leftover", ErrJobExists, path))
		} else if err != nil {
			return fail(fmt.Errorf("create job cgroup: %w%s", err, permHint(err)))
		}
		ctls := byRoot[root]
		slices.Sort(ctls)
		vd := &v1Dir{ctls: ctls, path: path}
		j.v1.dirs = append(j.v1.dirs, vd)
		d, err := openDir(path)
		if err != nil {
			return fail(err)
		}
		vd.d = d
	}
	j.path = h.root + "/" + name
	if d := j.v1.dir("memory"); d != nil {
		j.path = d.path
		j.cgPath = filepath.Join(h.v1.cgPaths["memory"], name)
	}
	var err error
	if j.owner, err = ownerOf(h.proc, os.Getpid()); err != nil {
		return fail(err)
	}
	if err := j.Apply(res); err != nil {
		return fail(err)
	}
	return j, nil
}

// validateV1 rejects limits that cgroup v1 has no way to enforce, rather
// than dropping them.
func (r *Resources) validateV1() error {
	if r == nil {
		return nil
	}
	var errs []error
	if r.MemoryHigh != nil {
		errs = append(errs, errors.New("memory.high (--memory-high, memory_high) is cgroup v2 only: cgroup v1 has no throttling threshold below the hard limit; use --memory, or run on a cgroup v2 host"))
	}
	if r.SwapMax != nil && !r.SwapMax.Max && r.MemoryMax == nil {
		errs = append(errs, errors.New("a swap limit needs a memory limit on cgroup v1, where it is written as memory.memsw.limit_in_bytes (memory plus swap): add --memory"))
	}
	if r.MemoryMax != nil && r.MemoryMax.Max && r.SwapMax != nil && !r.SwapMax.Max {
		errs = append(errs, errors.New("a swap limit needs a memory limit on cgroup v1: --memory max leaves nothing to add it to"))
	}
	return errors.Join(errs...)
}

// v1Setting is one write to a cgroup v1 interface file.
type v1Setting struct {
	ctl, file, value string
	// dev is set for blkio throttle files, whose old value is per device.
	dev *Device
	// hint is added to an error about a missing file.
	hint string
}

// planV1 maps the limits to cgroup v1 files.
func (r *Resources) planV1() []v1Setting {
	if r == nil {
		return nil
	}
	var s []v1Setting
	if r.CPU != nil {
		p := r.CPU.Period
		if p == 0 {
			p = DefaultCPUPeriod
		}
		q := "-1"
		if r.CPU.Quota != 0 {
			q = strconv.FormatInt(r.CPU.Quota.Microseconds(), 10)
		}
		s = append(s, v1Setting{ctl: "cpu", file: "cpu.cfs_period_us", value: strconv.FormatInt(p.Microseconds(), 10)},
			v1Setting{ctl: "cpu", file: "cpu.cfs_quota_us", value: q})
	}
	if r.CPUWeight != nil {
		// cpu.weight 100 is cpu.shares 1024, the defaults of each.
		s = append(s, v1Setting{ctl: "cpu", file: "cpu.shares", value: strconv.FormatUint(max(2, *r.CPUWeight*1024/100), 10)})
	}
	if r.MemoryLow != nil {
		s = append(s, v1Setting{ctl: "memory", file: "memory.soft_limit_in_bytes", value: v1Bytes(*r.MemoryLow)})
	}
	if r.MemoryMax != nil {
		s = append(s, v1Setting{ctl: "memory", file: "memory.limit_in_bytes", value: v1Bytes(*r.MemoryMax)})
		// memory.memsw.limit_in_bytes bounds memory plus swap; by
		// default, as on v2, no swap.
		memsw := *r.MemoryMax
		if r.SwapMax != nil {
			if r.SwapMax.Max {
				memsw = Max
			} else if !memsw.Max {
				memsw.N += r.SwapMax.N
			}
		}
		s = append(s, v1Setting{ctl: "memory", file: "memory.memsw.limit_in_bytes", value: v1Bytes(memsw),
			hint: " (the kernel has no swap accounting: boot with swapaccount=1, or pass --swap max)"})
	}
	if r.PidsMax != nil {
		s = append(s, v1Setting{ctl: "pids", file: "pids.max", value: r.PidsMax.String()})
	}
	for _, l := range r.IO {
		for _, f := range []struct {
			file string
			v    *Limit
		}{{"blkio.throttle.read_bps_device", l.ReadBPS}, {"blkio.throttle.write_bps_device", l.WriteBPS},
			{"blkio.throttle.read_iops_device", l.ReadIOPS}, {"blkio.throttle.write_iops_device", l.WriteIOPS}} {
			if f.v == nil {
				continue
			}
			n := "0" // no limit
			if !f.v.Max {
				n = strconv.FormatUint(f.v.N, 10)
			}
			s = append(s, v1Setting{ctl: "blkio", file: f.file, value: l.Device.String() + " " + n, dev: &l.Device})
		}
	}
	return s
}

func v1Bytes(l Limit) string {
	if l.Max {
		return "-1"
	}
	return strconv.FormatUint(l.N, 10)
}

// applyV1 writes res as one set, undoing the writes made so far when the
// kernel rejects one.
func (j *Job) applyV1(res *Resources) error {
	if err := res.Validate(); err != nil {
		return err
	}
	if err := res.validateV1(); err != nil {
		return err
	}
	type undo struct {
		d           *dir
		file, value string
	}
	var done []undo
	for _, s := range res.planV1() {
		vd := j.v1.dir(s.ctl)
		var err error
		var old string
		if vd == nil {
			err = fmt.Errorf("no cgroup v1 hierarchy with the %s controller for %s", s.ctl, s.file)
		} else if old, err = vd.d.read(s.file); err != nil {
			err = fmt.Errorf("cannot read %s before writing %q to it%s: %w", s.file, s.value, s.hint, err)
		} else {
			if s.dev != nil {
				old = s.dev.String() + " " + v1DeviceValue(old, *s.dev)
			} else {
				old = v1Normalize(old)
			}
			// Raising memory.limit_in_bytes above memory.memsw's limit is
			// refused; memsw is written right after, so lift it first.
			if s.file == "memory.limit_in_bytes" {
				if prev, rerr := vd.d.read("memory.memsw.limit_in_bytes"); rerr == nil && vd.d.write("memory.memsw.limit_in_bytes", "-1") == nil {
					done = append(done, undo{vd.d, "memory.memsw.limit_in_bytes", v1Normalize(prev)})
				}
			}
			if err = vd.d.write(s.file, s.value); err != nil {
				err = fmt.Errorf("the kernel rejected a limit: %w", err)
			}
		}
		if err != nil {
			var rb []error
			for _, u := range slices.Backward(done) {
				if rerr := u.d.write(u.file, u.value); rerr != nil {
					rb = append(rb, fmt.Errorf("roll back: %w", rerr))
				}
			}
			return errors.Join(append([]error{fmt.Errorf("apply limits to job %s (none was left in force): %w", j.name, err)}, rb...)...)
		}
		done = append(done, undo{vd.d, s.file, old})
	}
	return nil
}

// v1Normalize turns the huge number a v1 memory file reads when it has no
// limit back into the -1 that sets none.
func v1Normalize(v string) string {
	if n, err := strconv.ParseUint(v, 10, 64); err == nil && n >= v1Unlimited {
		return "-1"
	}
	return v
}

// v1DeviceValue returns dev's value in a blkio throttle file ("0": none).
func v1DeviceValue(content string, dev Device) string {
	for line := range strings.Lines(content) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == dev.String() {
			return f[1]
		}
	}
	return "0"
}

// procsV1 lists the processes in the job's directories and below them.
func (j *Job) procsV1() ([]uint64, error) {
	seen := map[uint64]bool{}
	var out []uint64
	for _, vd := range j.v1.dirs {
		err := filepath.WalkDir(vd.path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if !d.IsDir() {
				return nil
			}
			pids, err := readPids(filepath.Join(p, "cgroup.procs"))
			if errors.Is(err, os.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, pid := range pids {
				if !seen[uint64(pid)] {
					seen[uint64(pid)] = true
					out = append(out, uint64(pid))
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("list processes of job %s: %w", vd.path, err)
		}
	}
	return out, nil
}

// eventsV1 gives what cgroup.events says on v2: populated and frozen.
func (j *Job) eventsV1() (map[string]uint64, error) {
	procs, err := j.procsV1()
	if err != nil {
		return nil, err
	}
	ev := map[string]uint64{"populated": 0, "frozen": 0}
	if len(procs) > 0 {
		ev["populated"] = 1
	}
	if fz := j.v1.dir("freezer"); fz != nil {
		st, err := fz.d.read("freezer.state")
		if errors.Is(err, os.ErrNotExist) && len(procs) == 0 {
			return ev, nil // removed: empty, and not frozen
		}
		if err != nil {
			return nil, err
		}
		if st == "FROZEN" {
			ev["frozen"] = 1
		}
	}
	return ev, nil
}

// memoryEventsV1 gives the memory.events counters that v1 has: oom_kill
// from memory.oom_control (Linux 4.13+), and as "max" memory.failcnt, the
// times usage hit the limit.
func (j *Job) memoryEventsV1() (map[string]uint64, error) {
	md := j.v1.dir("memory")
	if md == nil {
		return nil, errors.New("no cgroup v1 memory hierarchy")
	}
	oc, err := md.d.read("memory.oom_control")
	if err != nil {
		return nil, err
	}
	kv, err := parseKeyed(oc)
	if err != nil {
		return nil, fmt.Errorf("%s/memory.oom_control: %w", md.path, err)
	}
	out := map[string]uint64{"oom_kill": kv["oom_kill"]}
	if fc, err := md.d.read("memory.failcnt"); err == nil {
		if n, err := strconv.ParseUint(fc, 10, 64); err == nil {
			out["max"] = n
		}
	}
	return out, nil
}

// freezeV1 freezes or thaws the job through the v1 freezer.
func (j *Job) freezeV1(frozen bool) error {
	fz := j.v1.dir("freezer")
	if fz == nil {
		return errors.New("freeze: this host has no cgroup v1 freezer hierarchy")
	}
	v := "THAWED"
	if frozen {
		v = "FROZEN"
	}
	return fz.d.write("freezer.state", v)
}

// killV1 kills every process of the job: through the freezer where there
// is one (freeze, SIGKILL each, thaw, thawing also on error), else by
// signalling each process until none is left.
func (j *Job) killV1() (n int, err error) {
	if j.v1.dir("freezer") == nil {
		for range 20 {
			procs, err := j.procsV1()
			if err != nil || len(procs) == 0 {
				return n, err
			}
			n = max(n, len(procs))
			for _, p := range procs {
				_ = unix.Kill(int(p), unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
		return n, nil
	}
	if err := j.freezeV1(true); err != nil {
		return 0, err
	}
	defer func() {
		if terr := j.freezeV1(false); terr != nil {
			err = errors.Join(err, fmt.Errorf("thaw job %s: %w", j.path, terr))
		}
	}()
	fz := j.v1.dir("freezer")
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if st, err := fz.d.read("freezer.state"); err != nil || st == "FROZEN" {
			break
		}
	}
	procs, err := j.procsV1()
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, p := range procs {
		if err := unix.Kill(int(p), unix.SIGKILL); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", p, err))
		}
	}
	return len(procs), errors.Join(errs...)
}

// cpuMaxV1 reads cpu.cfs_quota_us and cpu.cfs_period_us.
func (j *Job) cpuMaxV1() (CPUMax, error) {
	cd := j.v1.dir("cpu")
	if cd == nil {
		return CPUMax{}, errors.New("no cgroup v1 cpu hierarchy")
	}
	q, err := cd.d.read("cpu.cfs_quota_us")
	if err != nil {
		return CPUMax{}, err
	}
	p, err := cd.d.read("cpu.cfs_period_us")
	if err != nil {
		return CPUMax{}, err
	}
	if q == "-1" {
		q = "max"
	}
	c, err := ParseCPUMax(q + " " + p)
	if err != nil {
		return CPUMax{}, fmt.Errorf("%s: %w", cd.path, err)
	}
	return c, nil
}

// ioMaxV1 reads dev's blkio throttle limits.
func (j *Job) ioMaxV1(dev Device) (IOLimit, error) {
	bd := j.v1.dir("blkio")
	if bd == nil {
		return IOLimit{}, errors.New("no cgroup v1 blkio hierarchy")
	}
	l := IOLimit{Device: dev}
	for _, f := range []struct {
		file string
		dst  **Limit
	}{{"blkio.throttle.read_bps_device", &l.ReadBPS}, {"blkio.throttle.write_bps_device", &l.WriteBPS},
		{"blkio.throttle.read_iops_device", &l.ReadIOPS}, {"blkio.throttle.write_iops_device", &l.WriteIOPS}} {
		s, err := bd.d.read(f.file)
		if err != nil {
			return IOLimit{}, err
		}
		v, err := ParseCount(v1DeviceValue(s, dev))
		if err != nil {
			return IOLimit{}, fmt.Errorf("%s/%s: %w", bd.path, f.file, err)
		}
		if v.N == 0 {
			v = Max
		}
		*f.dst = &v
	}
	return l, nil
}

// fileDirV1 picks the directory whose hierarchy has the interface file
// name, by its controller prefix.
func (j *Job) fileDirV1(name string) (*v1Dir, error) {
	ctl, _, _ := strings.Cut(name, ".")
	if ctl == "cgroup" || ctl == "tasks" || ctl == "notify_on_release" {
		ctl = "memory"
	}
	if vd := j.v1.dir(ctl); vd != nil {
		return vd, nil
	}
	return nil, fmt.Errorf("%s: no cgroup v1 hierarchy with the %s controller on this host", name, ctl)
}

func (j *Job) closeV1() error {
	var errs []error
	for _, vd := range j.v1.dirs {
		if vd.d != nil {
			errs = append(errs, vd.d.close())
		}
	}
	return errors.Join(errs...)
}

func (j *Job) removeV1(timeout time.Duration) error {
	j.closeV1()
	var errs []error
	for _, vd := range j.v1.dirs {
		if err := removeTree(vd.path, timeout); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove job cgroup: %w", err)
	}
	return nil
}

// containsV1 tells whether pid is in the job (or below it) by its memory
// hierarchy's line of /proc/PID/cgroup.
func (j *Job) containsV1(proc string, pid int) (bool, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) == 3 && slices.Contains(strings.Split(f[1], ","), "memory") {
			return f[2] == j.cgPath || strings.HasPrefix(f[2], j.cgPath+"/"), nil
		}
	}
	return false, fmt.Errorf("pid %d has no memory hierarchy in %s/%d/cgroup", pid, proc, pid)
}

// V1Dirs returns the job's directory by cgroup v1 controller (cpu,
// cpuacct, memory, pids, blkio, freezer), or nil for a cgroup v2 job.
func (j *Job) V1Dirs() map[string]string {
	if j.v1 == nil {
		return nil
	}
	out := map[string]string{}
	for _, vd := range j.v1.dirs {
		for _, c := range vd.ctls {
			out[c] = vd.path
		}
	}
	return out
}

// Writes returns the interface file writes that res makes on this job, as
// FILE=VALUE: res.Writes on cgroup v2 (and for a nil job), the v1 files
// on v1.
func (j *Job) Writes(res *Resources) []string {
	if j == nil || j.v1 == nil {
		return res.Writes()
	}
	var out []string
	for _, s := range res.planV1() {
		out = append(out, s.file+"="+s.value)
	}
	return out
}

// MemoryLimitFile names the file of the job's hard memory limit.
func (j *Job) MemoryLimitFile() string {
	if j.v1 != nil {
		return "memory.limit_in_bytes"
	}
	return "memory.max"
}

// KillMethod says how Kill kills the job's processes, for messages.
func (j *Job) KillMethod() string {
	if j.v1 != nil {
		return "a freezer kill"
	}
	return "cgroup.kill"
}

// Supports tells whether the job has a feature (FeatureMemoryHigh,
// FeaturePSI): cgroup v1 jobs have neither.
func (j *Job) Supports(feature string) bool {
	return j.v1 == nil
}

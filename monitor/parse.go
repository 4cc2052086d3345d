package monitor

// Parsers for the cgroup v2 interface files a CgroupReader samples.
//
// Each parser takes the literal content of one file as a byte slice (the
// reader hands over its reused buffer, so a sample costs no copy per file)
// and is strict: a line the kernel would not write is an error wrapping
// ErrMalformed, never a silent zero. Optional figures come back as a value
// plus a presence flag rather than a pointer, so that parsing allocates
// nothing; the reader turns them into the pointers of CgroupSample.
//
// The kernel ends every line with "\n"; a last line without one is accepted
// so that tests and callers may pass trimmed text. Blank lines are not.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ErrMalformed is wrapped by every error about the content of a cgroup
// interface file (as opposed to an error reading it).
var ErrMalformed = errors.New("malformed cgroup file")

// malformed builds a parse error that quotes the offending line.
func malformed(line []byte, format string, args ...any) error {
	return fmt.Errorf("%w: %s in line %q", ErrMalformed, fmt.Sprintf(format, args...), line)
}

// nextLine cuts the first line off data. ok is false once data is used up;
// a trailing "\n" does not start another line.
func nextLine(data []byte) (line, rest []byte, ok bool) {
	if len(data) == 0 {
		return nil, nil, false
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:], true
	}
	return data, nil, true
}

// nextField cuts the first space-separated field off line. The kernel
// separates fields with one space; runs of spaces are tolerated, tabs are
// not (they end up inside a field and fail its check).
func nextField(line []byte) (field, rest []byte) {
	for len(line) > 0 && line[0] == ' ' {
		line = line[1:]
	}
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return line, nil
	}
	return line[:i], line[i+1:]
}

// onlySpaces reports whether b holds nothing but spaces.
func onlySpaces(b []byte) bool {
	for _, c := range b {
		if c != ' ' {
			return false
		}
	}
	return true
}

// parseDecimal parses a non-empty run of ASCII digits as a uint64. Signs,
// spaces, underscores and base prefixes are all refused, as the kernel
// writes none of them for these counters.
func parseDecimal(b []byte) (uint64, error) {
	if len(b) == 0 {
		return 0, errors.New("empty number")
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a decimal number", b)
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("%q overflows 64 bits", b)
		}
		v = v*10 + d
	}
	return v, nil
}

// parseUsec parses a count of microseconds into a Duration, refusing values
// a Duration cannot hold (about 292 years).
func parseUsec(b []byte) (time.Duration, error) {
	v, err := parseDecimal(b)
	if err != nil {
		return 0, err
	}
	return usecToDuration(v)
}

func usecToDuration(v uint64) (time.Duration, error) {
	if v > math.MaxInt64/uint64(time.Microsecond) {
		return 0, fmt.Errorf("%d microseconds overflow a time.Duration", v)
	}
	return time.Duration(v) * time.Microsecond, nil
}

// parseKeyValueLine splits a "key value" line of a flat-keyed file and
// parses the value.
func parseKeyValueLine(line []byte) (key []byte, v uint64, err error) {
	key, rest := nextField(line)
	val, rest := nextField(rest)
	if len(key) == 0 || len(val) == 0 || !onlySpaces(rest) {
		return nil, 0, malformed(line, `want "key value"`)
	}
	v, err = parseDecimal(val)
	if err != nil {
		return nil, 0, malformed(line, "key %q: %v", key, err)
	}
	return key, v, nil
}

// cpuStat holds the fields of cpu.stat that rsup uses.
type cpuStat struct {
	Usage time.Duration // usage_usec, always present
	// throttled_usec and nr_throttled are only written when the cpu
	// controller is enabled for the cgroup.
	Throttled      time.Duration
	NrThrottled    uint64
	HasThrottled   bool
	HasNrThrottled bool
}

// parseCPUStat parses cpu.stat. usage_usec is required (cgroup core writes
// it since Linux 4.15 with or without the cpu controller); throttled_usec
// and nr_throttled are optional; other keys (user_usec, nice_usec,
// nr_bursts, core_sched.force_idle_usec, ...) are checked for shape and
// otherwise ignored, since kernels keep adding them.
func parseCPUStat(data []byte) (cpuStat, error) {
	var (
		st       cpuStat
		hasUsage bool
	)
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		key, v, err := parseKeyValueLine(line)
		if err != nil {
			return cpuStat{}, err
		}
		switch string(key) {
		case "usage_usec":
			if hasUsage {
				return cpuStat{}, malformed(line, "duplicate key")
			}
			if st.Usage, err = usecToDuration(v); err != nil {
				return cpuStat{}, malformed(line, "%v", err)
			}
			hasUsage = true
		case "throttled_usec":
			if st.HasThrottled {
				return cpuStat{}, malformed(line, "duplicate key")
			}
			if st.Throttled, err = usecToDuration(v); err != nil {
				return cpuStat{}, malformed(line, "%v", err)
			}
			st.HasThrottled = true
		case "nr_throttled":
			if st.HasNrThrottled {
				return cpuStat{}, malformed(line, "duplicate key")
			}
			st.NrThrottled, st.HasNrThrottled = v, true
		}
	}
	if !hasUsage {
		return cpuStat{}, fmt.Errorf("%w: cpu.stat has no usage_usec", ErrMalformed)
	}
	return st, nil
}

// parseCPUMax parses cpu.max ("$QUOTA $PERIOD" in microseconds, QUOTA
// "max" for no limit). unlimited is true for "max", and quota is then 0.
// Neither figure may be 0: the kernel refuses such a setting, and a 0
// period would divide by zero downstream.
func parseCPUMax(data []byte) (quota time.Duration, unlimited bool, period time.Duration, err error) {
	line, rest, ok := nextLine(data)
	if !ok {
		return 0, false, 0, fmt.Errorf("%w: cpu.max is empty", ErrMalformed)
	}
	if len(rest) != 0 {
		return 0, false, 0, malformed(rest, "cpu.max has more than one line")
	}
	q, f := nextField(line)
	p, f := nextField(f)
	if len(q) == 0 || len(p) == 0 || !onlySpaces(f) {
		return 0, false, 0, malformed(line, `want "$QUOTA $PERIOD"`)
	}
	if period, err = parseUsec(p); err != nil {
		return 0, false, 0, malformed(line, "period: %v", err)
	}
	if period == 0 {
		return 0, false, 0, malformed(line, "period is 0")
	}
	if string(q) == "max" {
		return 0, true, period, nil
	}
	if quota, err = parseUsec(q); err != nil {
		return 0, false, 0, malformed(line, "quota: %v", err)
	}
	if quota == 0 {
		return 0, false, 0, malformed(line, "quota is 0")
	}
	return quota, false, period, nil
}

// parseSingle parses a single-value file: memory.current, memory.max,
// memory.peak, pids.current, pids.max, pids.peak. isMax reports the word
// "max" (no limit), and v is then 0; the caller decides whether "max" makes
// sense for the file at hand.
func parseSingle(data []byte) (v uint64, isMax bool, err error) {
	line, rest, ok := nextLine(data)
	if !ok {
		return 0, false, fmt.Errorf("%w: empty file", ErrMalformed)
	}
	if len(rest) != 0 {
		return 0, false, malformed(rest, "more than one line")
	}
	if string(line) == "max" {
		return 0, true, nil
	}
	if v, err = parseDecimal(line); err != nil {
		return 0, false, malformed(line, "%v", err)
	}
	return v, false, nil
}

// parseMemoryEvents parses memory.events. low, high, max, oom and oom_kill
// are required (all present since Linux 4.13); other keys (oom_group_kill
// since 5.17, sock_throttled later) are checked for shape and ignored, as
// MemoryEvents has no field for them.
func parseMemoryEvents(data []byte) (MemoryEvents, error) {
	const (
		seenLow = 1 << iota
		seenHigh
		seenMax
		seenOOM
		seenOOMKill
		seenAll = seenLow | seenHigh | seenMax | seenOOM | seenOOMKill
	)
	var (
		ev   MemoryEvents
		seen int
	)
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		key, v, err := parseKeyValueLine(line)
		if err != nil {
			return MemoryEvents{}, err
		}
		var (
			bit int
			dst *uint64
		)
		switch string(key) {
		case "low":
			bit, dst = seenLow, &ev.Low
		case "high":
			bit, dst = seenHigh, &ev.High
		case "max":
			bit, dst = seenMax, &ev.Max
		case "oom":
			bit, dst = seenOOM, &ev.OOM
		case "oom_kill":
			bit, dst = seenOOMKill, &ev.OOMKill
		default:
			continue
		}
		if seen&bit != 0 {
			return MemoryEvents{}, malformed(line, "duplicate key")
		}
		seen |= bit
		*dst = v
	}
	if seen != seenAll {
		return MemoryEvents{}, fmt.Errorf("%w: memory.events lacks %s", ErrMalformed, missingKeys(seen, "low", "high", "max", "oom", "oom_kill"))
	}
	return ev, nil
}

// missingKeys names the keys whose bit is not set in seen, bit i standing
// for keys[i].
func missingKeys(seen int, keys ...string) string {
	var b []byte
	for i, k := range keys {
		if seen&(1<<i) == 0 {
			if len(b) > 0 {
				b = append(b, ", "...)
			}
			b = append(b, k...)
		}
	}
	return string(b)
}

// parseMemoryStatInactiveFile returns inactive_file from memory.stat. Every
// line is checked for shape, so a damaged file is not mistaken for a good
// one; a missing inactive_file is an error (it is there since Linux 4.5).
func parseMemoryStatInactiveFile(data []byte) (uint64, error) {
	return parseMemoryStatKey(data, "inactive_file")
}

// parseMemoryStatKey returns key's value from a memory.stat (v2's, or v1's
// whose hierarchical figures are total_*), checking every line's shape.
func parseMemoryStatKey(data []byte, key string) (uint64, error) {
	var (
		v     uint64
		found bool
	)
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		k, n, err := parseKeyValueLine(line)
		if err != nil {
			return 0, err
		}
		if string(k) == key {
			if found {
				return 0, malformed(line, "duplicate key")
			}
			v, found = n, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%w: memory.stat has no %s", ErrMalformed, key)
	}
	return v, nil
}

// ioStat is io.stat summed over devices.
type ioStat struct {
	RBytes, WBytes, RIOs, WIOs uint64
}

// parseIOStat parses io.stat and sums it over devices. Each line is
// "MAJ:MIN key=value ..."; rbytes, wbytes, rios and wios are required on
// every line, other keys (dbytes and dios since Linux 5.4, the cost.* and
// latency keys of io.cost and io.latency) are checked for shape and
// ignored. An empty file is valid: no device has seen I/O yet.
func parseIOStat(data []byte) (ioStat, error) {
	const (
		seenRBytes = 1 << iota
		seenWBytes
		seenRIOs
		seenWIOs
		seenAll = seenRBytes | seenWBytes | seenRIOs | seenWIOs
	)
	var sum ioStat
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		dev, f := nextField(line)
		if err := checkDevice(dev); err != nil {
			return ioStat{}, malformed(line, "%v", err)
		}
		var (
			perDev ioStat
			seen   int
		)
		for {
			var kv []byte
			kv, f = nextField(f)
			if len(kv) == 0 {
				break
			}
			key, val, ok := bytes.Cut(kv, []byte{'='})
			if !ok || len(key) == 0 {
				return ioStat{}, malformed(line, "field %q is not key=value", kv)
			}
			var (
				bit int
				dst *uint64
			)
			switch string(key) {
			case "rbytes":
				bit, dst = seenRBytes, &perDev.RBytes
			case "wbytes":
				bit, dst = seenWBytes, &perDev.WBytes
			case "rios":
				bit, dst = seenRIOs, &perDev.RIOs
			case "wios":
				bit, dst = seenWIOs, &perDev.WIOs
			default:
				// Not summed, and not all numbers: io.cost writes
				// ratios such as cost.vrate=100.00.
				if len(val) == 0 {
					return ioStat{}, malformed(line, "key %q has no value", key)
				}
				continue
			}
			if seen&bit != 0 {
				return ioStat{}, malformed(line, "duplicate key %q", key)
			}
			n, err := parseDecimal(val)
			if err != nil {
				return ioStat{}, malformed(line, "key %q: %v", key, err)
			}
			seen |= bit
			*dst = n
		}
		if seen != seenAll {
			return ioStat{}, malformed(line, "device lacks %s", missingKeys(seen, "rbytes", "wbytes", "rios", "wios"))
		}
		var overflow bool
		sum.RBytes, overflow = addOverflow(sum.RBytes, perDev.RBytes, overflow)
		sum.WBytes, overflow = addOverflow(sum.WBytes, perDev.WBytes, overflow)
		sum.RIOs, overflow = addOverflow(sum.RIOs, perDev.RIOs, overflow)
		sum.WIOs, overflow = addOverflow(sum.WIOs, perDev.WIOs, overflow)
		if overflow {
			return ioStat{}, malformed(line, "sum over devices overflows 64 bits")
		}
	}
	return sum, nil
}

func addOverflow(a, b uint64, overflow bool) (uint64, bool) {
	s := a + b
	return s, overflow || s < a
}

// checkDevice checks a "MAJ:MIN" device number.
func checkDevice(dev []byte) error {
	major, minor, ok := bytes.Cut(dev, []byte{':'})
	if !ok {
		return fmt.Errorf("device %q is not MAJ:MIN", dev)
	}
	if _, err := parseDecimal(major); err != nil {
		return fmt.Errorf("device major: %v", err)
	}
	if _, err := parseDecimal(minor); err != nil {
		return fmt.Errorf("device minor: %v", err)
	}
	return nil
}

// parsePressure parses a *.pressure file: a "some" line, then optionally a
// "full" line (cpu.pressure has one since Linux 5.13, memory and io always),
// each "avg10=A avg60=A avg300=A total=N". The PSI format has not changed
// since Linux 4.20, so an unknown key is an error here. hasFull reports the
// "full" line.
func parsePressure(data []byte) (some, full PSI, hasFull bool, err error) {
	var hasSome bool
	for line, rest, ok := nextLine(data); ok; line, rest, ok = nextLine(rest) {
		kind, f := nextField(line)
		switch string(kind) {
		case "some":
			if hasSome || hasFull {
				return PSI{}, PSI{}, false, malformed(line, "unexpected some line")
			}
			if some, err = parsePSILine(line, f); err != nil {
				return PSI{}, PSI{}, false, err
			}
			hasSome = true
		case "full":
			if !hasSome || hasFull {
				return PSI{}, PSI{}, false, malformed(line, "unexpected full line")
			}
			if full, err = parsePSILine(line, f); err != nil {
				return PSI{}, PSI{}, false, err
			}
			hasFull = true
		default:
			return PSI{}, PSI{}, false, malformed(line, `want "some" or "full"`)
		}
	}
	if !hasSome {
		return PSI{}, PSI{}, false, fmt.Errorf("%w: pressure file has no some line", ErrMalformed)
	}
	return some, full, hasFull, nil
}

// parsePSILine parses the fields after "some" or "full"; line is for error
// messages.
func parsePSILine(line, fields []byte) (PSI, error) {
	const (
		seenAvg10 = 1 << iota
		seenAvg60
		seenAvg300
		seenTotal
		seenAll = seenAvg10 | seenAvg60 | seenAvg300 | seenTotal
	)
	var (
		p    PSI
		seen int
	)
	for {
		var kv []byte
		kv, fields = nextField(fields)
		if len(kv) == 0 {
			break
		}
		key, val, ok := bytes.Cut(kv, []byte{'='})
		if !ok {
			return PSI{}, malformed(line, "field %q is not key=value", kv)
		}
		var (
			bit int
			avg *float64
		)
		switch string(key) {
		case "avg10":
			bit, avg = seenAvg10, &p.Avg10
		case "avg60":
			bit, avg = seenAvg60, &p.Avg60
		case "avg300":
			bit, avg = seenAvg300, &p.Avg300
		case "total":
			bit = seenTotal
		default:
			return PSI{}, malformed(line, "unknown key %q", key)
		}
		if seen&bit != 0 {
			return PSI{}, malformed(line, "duplicate key %q", key)
		}
		seen |= bit
		var err error
		if avg != nil {
			*avg, err = parsePercent(val)
		} else {
			p.Total, err = parseDecimal(val)
		}
		if err != nil {
			return PSI{}, malformed(line, "key %q: %v", key, err)
		}
	}
	if seen != seenAll {
		return PSI{}, malformed(line, "lacks %s", missingKeys(seen, "avg10", "avg60", "avg300", "total"))
	}
	return p, nil
}

// parsePercent parses a PSI average, which the kernel writes as
// "%lu.%02lu": digits, a dot, digits.
func parsePercent(b []byte) (float64, error) {
	ip, fp, ok := bytes.Cut(b, []byte{'.'})
	if !ok {
		return 0, fmt.Errorf("%q is not a decimal fraction", b)
	}
	i, err := parseDecimal(ip)
	if err != nil {
		return 0, err
	}
	f, err := parseDecimal(fp)
	if err != nil {
		return 0, err
	}
	// Dividing the exact integer i.f by an exact power of ten rounds
	// correctly, giving the same float64 as strconv.ParseFloat, without
	// making a string of b. Beyond 15 digits the integers stop being
	// exact, so such (never seen) values take the slow path.
	if digits := len(ip) + len(fp); digits > 15 {
		return strconv.ParseFloat(string(b), 64)
	}
	return float64(i*pow10[len(fp)]+f) / float64(pow10[len(fp)]), nil
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

package monitor

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkParse fails the test unless (got, err) matches (want, wantErr): on
// success the result must equal want, on failure err must wrap
// ErrMalformed.
func checkParse[T any](t *testing.T, in string, got T, err error, want T, wantErr bool) {
	t.Helper()
	if wantErr {
		if err == nil {
			t.Fatalf("parse(%q) = %+v, want an error", in, got)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("parse(%q) error %v does not wrap ErrMalformed", in, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("parse(%q): %v", in, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("parse(%q)\n got %+v\nwant %+v", in, got, want)
	}
}

func TestParseCPUStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    cpuStat
		wantErr bool
	}{
		{
			name: "cpu controller enabled (6.x)",
			in: "usage_usec 8123456\nuser_usec 6000000\nsystem_usec 2123456\nnice_usec 0\n" +
				"core_sched.force_idle_usec 0\nnr_periods 1200\nnr_throttled 37\nthrottled_usec 1520000\nnr_bursts 0\nburst_usec 0\n",
			want: cpuStat{Usage: 8123456 * time.Microsecond, Throttled: 1520000 * time.Microsecond, NrThrottled: 37, HasThrottled: true, HasNrThrottled: true},
		},
		{
			name: "no cpu controller (5.x)",
			in:   "usage_usec 52\nuser_usec 40\nsystem_usec 12\n",
			want: cpuStat{Usage: 52 * time.Microsecond},
		},
		{
			name: "throttled zero is present, not absent",
			in:   "usage_usec 1\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
			want: cpuStat{Usage: time.Microsecond, HasThrottled: true, HasNrThrottled: true},
		},
		{name: "no trailing newline", in: "usage_usec 7", want: cpuStat{Usage: 7 * time.Microsecond}},
		{name: "unknown key ignored", in: "usage_usec 7\nfuture_usec 9\n", want: cpuStat{Usage: 7 * time.Microsecond}},
		{name: "empty", in: "", wantErr: true},
		{name: "usage missing", in: "user_usec 40\nsystem_usec 12\n", wantErr: true},
		{name: "wrong key", in: "usage_msec 52\n", wantErr: true},
		{name: "missing value", in: "usage_usec\n", wantErr: true},
		{name: "missing value on unknown key", in: "usage_usec 1\nnice_usec\n", wantErr: true},
		{name: "extra field", in: "usage_usec 1 2\n", wantErr: true},
		{name: "not a number", in: "usage_usec abc\n", wantErr: true},
		{name: "negative", in: "usage_usec -5\n", wantErr: true},
		{name: "plus sign", in: "usage_usec +5\n", wantErr: true},
		{name: "fraction", in: "usage_usec 1.5\n", wantErr: true},
		{name: "hex", in: "usage_usec 0x10\n", wantErr: true},
		{name: "overflow uint64", in: "usage_usec 18446744073709551616\n", wantErr: true},
		{name: "overflow Duration", in: "usage_usec 9223372036854776\n", wantErr: true},
		{name: "throttled overflow Duration", in: "usage_usec 1\nthrottled_usec 18446744073709551615\n", wantErr: true},
		{name: "garbage on unknown key", in: "usage_usec 1\nnr_bursts x\n", wantErr: true},
		{name: "duplicate usage", in: "usage_usec 1\nusage_usec 2\n", wantErr: true},
		{name: "duplicate throttled", in: "usage_usec 1\nthrottled_usec 1\nthrottled_usec 2\n", wantErr: true},
		{name: "blank line", in: "usage_usec 1\n\nuser_usec 1\n", wantErr: true},
		{name: "CRLF", in: "usage_usec 1\r\n", wantErr: true},
		{name: "tab separated", in: "usage_usec\t1\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCPUStat([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	t.Parallel()
	type result struct {
		Quota     time.Duration
		Unlimited bool
		Period    time.Duration
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "max", in: "max 100000\n", want: result{Unlimited: true, Period: 100 * time.Millisecond}},
		{name: "half a CPU", in: "50000 100000\n", want: result{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}},
		{name: "two CPUs, short period", in: "20000 10000\n", want: result{Quota: 20 * time.Millisecond, Period: 10 * time.Millisecond}},
		{name: "no trailing newline", in: "max 100000", want: result{Unlimited: true, Period: 100 * time.Millisecond}},
		{name: "empty", in: "", wantErr: true},
		{name: "newline only", in: "\n", wantErr: true},
		{name: "period missing", in: "max\n", wantErr: true},
		{name: "three fields", in: "max 100000 1\n", wantErr: true},
		{name: "two lines", in: "max 100000\nmax 100000\n", wantErr: true},
		{name: "period max", in: "50000 max\n", wantErr: true},
		{name: "quota word", in: "unlimited 100000\n", wantErr: true},
		{name: "negative quota", in: "-1 100000\n", wantErr: true},
		{name: "zero quota", in: "0 100000\n", wantErr: true},
		{name: "zero period", in: "max 0\n", wantErr: true},
		{name: "overflow", in: "99999999999999999999 100000\n", wantErr: true},
		{name: "MAX in capitals", in: "MAX 100000\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.Quota, got.Unlimited, got.Period, err = parseCPUMax([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseSingle(t *testing.T) {
	t.Parallel()
	type result struct {
		V     uint64
		IsMax bool
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{name: "memory.current", in: "268435456\n", want: result{V: 268435456}},
		{name: "zero", in: "0\n", want: result{V: 0}},
		{name: "max", in: "max\n", want: result{IsMax: true}},
		{name: "largest", in: "18446744073709551615\n", want: result{V: math.MaxUint64}},
		{name: "no trailing newline", in: "17", want: result{V: 17}},
		{name: "empty", in: "", wantErr: true},
		{name: "newline only", in: "\n", wantErr: true},
		{name: "negative", in: "-1\n", wantErr: true},
		{name: "overflow", in: "18446744073709551616\n", wantErr: true},
		{name: "far overflow", in: "999999999999999999999999\n", wantErr: true},
		{name: "not a number", in: "lots\n", wantErr: true},
		{name: "suffix", in: "512M\n", wantErr: true},
		{name: "two fields", in: "1 2\n", wantErr: true},
		{name: "leading space", in: " 1\n", wantErr: true},
		{name: "trailing space", in: "1 \n", wantErr: true},
		{name: "two lines", in: "1\n2\n", wantErr: true},
		{name: "two newlines", in: "1\n\n", wantErr: true},
		{name: "max with value", in: "max 5\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.V, got.IsMax, err = parseSingle([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseMemoryEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    MemoryEvents
		wantErr bool
	}{
		{
			name: "with oom_group_kill (5.17+)",
			in:   "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
			want: MemoryEvents{High: 12, Max: 3, OOM: 1, OOMKill: 1},
		},
		{
			name: "without oom_group_kill",
			in:   "low 5\nhigh 4\nmax 3\noom 2\noom_kill 1\n",
			want: MemoryEvents{Low: 5, High: 4, Max: 3, OOM: 2, OOMKill: 1},
		},
		{
			name: "later keys ignored",
			in:   "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\nsock_throttled 4\n",
			want: MemoryEvents{},
		},
		{name: "empty", in: "", wantErr: true},
		{name: "oom_kill missing", in: "low 0\nhigh 0\nmax 0\noom 0\n", wantErr: true},
		{name: "wrong key", in: "low 0\nhigh 0\nmax 0\noom 0\noom_kills 0\n", wantErr: true},
		{name: "missing value", in: "low 0\nhigh\nmax 0\noom 0\noom_kill 0\n", wantErr: true},
		{name: "non-number", in: "low 0\nhigh 0\nmax x\noom 0\noom_kill 0\n", wantErr: true},
		{name: "negative", in: "low 0\nhigh 0\nmax 0\noom -1\noom_kill 0\n", wantErr: true},
		{name: "overflow", in: "low 0\nhigh 0\nmax 0\noom 0\noom_kill 18446744073709551616\n", wantErr: true},
		{name: "duplicate", in: "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom 1\n", wantErr: true},
		{name: "garbage on ignored key", in: "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill ?\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMemoryEvents([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseMemoryStatInactiveFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    uint64
		wantErr bool
	}{
		{
			name: "excerpt",
			in:   "anon 180224000\nfile 83886080\ninactive_anon 176128000\nactive_anon 4096000\ninactive_file 62914560\nactive_file 20971520\n",
			want: 62914560,
		},
		{name: "zero", in: "inactive_file 0\n", want: 0},
		{name: "empty", in: "", wantErr: true},
		{name: "missing", in: "anon 1\nactive_file 2\n", wantErr: true},
		{name: "wrong key", in: "inactive_files 2\n", wantErr: true},
		{name: "missing value", in: "inactive_file\n", wantErr: true},
		{name: "non-number", in: "inactive_file 1k\n", wantErr: true},
		{name: "negative", in: "inactive_file -1\n", wantErr: true},
		{name: "overflow", in: "inactive_file 18446744073709551616\n", wantErr: true},
		{name: "damaged other line", in: "anon\ninactive_file 1\n", wantErr: true},
		{name: "duplicate", in: "inactive_file 1\ninactive_file 2\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseMemoryStatInactiveFile([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParseIOStat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    ioStat
		wantErr bool
	}{
		{name: "empty file", in: "", want: ioStat{}},
		{
			name: "one device",
			in:   "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n",
			want: ioStat{RBytes: 1, WBytes: 2, RIOs: 3, WIOs: 4},
		},
		{
			name: "two devices summed",
			in:   "259:0 rbytes=1048576 wbytes=4194304 rios=256 wios=1024 dbytes=0 dios=0\n8:0 rbytes=8192 wbytes=0 rios=2 wios=0 dbytes=0 dios=0\n",
			want: ioStat{RBytes: 1056768, WBytes: 4194304, RIOs: 258, WIOs: 1024},
		},
		{
			name: "before discard stats (5.3)",
			in:   "8:16 rbytes=10 wbytes=20 rios=1 wios=2\n",
			want: ioStat{RBytes: 10, WBytes: 20, RIOs: 1, WIOs: 2},
		},
		{
			name: "io.cost and io.latency keys ignored",
			in:   "8:0 rbytes=5 wbytes=6 rios=1 wios=1 dbytes=0 dios=0 cost.vrate=100.00 cost.usage=1 cost.wait=0 cost.indebt=0 cost.indelay=0 depth=max avg_lat=0 win=0\n",
			want: ioStat{RBytes: 5, WBytes: 6, RIOs: 1, WIOs: 1},
		},
		{
			name: "keys in another order",
			in:   "8:0 wios=4 rios=3 wbytes=2 rbytes=1\n",
			want: ioStat{RBytes: 1, WBytes: 2, RIOs: 3, WIOs: 4},
		},
		{name: "device only", in: "8:0\n", wantErr: true},
		{name: "missing wios", in: "8:0 rbytes=1 wbytes=2 rios=3\n", wantErr: true},
		{name: "bad device", in: "sda rbytes=1 wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "device without minor", in: "8: rbytes=1 wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "key without =", in: "8:0 rbytes 1 wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "empty value", in: "8:0 rbytes= wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "empty value on ignored key", in: "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dios=\n", wantErr: true},
		{name: "non-number", in: "8:0 rbytes=x wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "negative", in: "8:0 rbytes=1 wbytes=-2 rios=3 wios=4\n", wantErr: true},
		{name: "overflow", in: "8:0 rbytes=18446744073709551616 wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "sum overflow", in: "8:0 rbytes=18446744073709551615 wbytes=0 rios=0 wios=0\n8:16 rbytes=1 wbytes=0 rios=0 wios=0\n", wantErr: true},
		{name: "duplicate key", in: "8:0 rbytes=1 rbytes=1 wbytes=2 rios=3 wios=4\n", wantErr: true},
		{name: "blank line", in: "8:0 rbytes=1 wbytes=2 rios=3 wios=4\n\n", wantErr: true},
		{name: "wrong key", in: "8:0 rbyte=1 wbytes=2 rios=3 wios=4\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseIOStat([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestParsePressure(t *testing.T) {
	t.Parallel()
	type result struct {
		Some, Full PSI
		HasFull    bool
	}
	tests := []struct {
		name    string
		in      string
		want    result
		wantErr bool
	}{
		{
			name: "some and full",
			in:   "some avg10=1.19 avg60=1.08 avg300=2.81 total=254947032\nfull avg10=0.12 avg60=0.07 avg300=0.01 total=11558940\n",
			want: result{
				Some:    PSI{Avg10: 1.19, Avg60: 1.08, Avg300: 2.81, Total: 254947032},
				Full:    PSI{Avg10: 0.12, Avg60: 0.07, Avg300: 0.01, Total: 11558940},
				HasFull: true,
			},
		},
		{
			name: "cpu.pressure before 5.13",
			in:   "some avg10=12.50 avg60=4.21 avg300=0.97 total=1520000\n",
			want: result{Some: PSI{Avg10: 12.5, Avg60: 4.21, Avg300: 0.97, Total: 1520000}},
		},
		{
			name: "idle",
			in:   "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
			want: result{HasFull: true},
		},
		{
			name: "saturated",
			in:   "some avg10=100.00 avg60=99.99 avg300=87.65 total=18446744073709551615\n",
			want: result{Some: PSI{Avg10: 100, Avg60: 99.99, Avg300: 87.65, Total: math.MaxUint64}},
		},
		{name: "empty", in: "", wantErr: true},
		{name: "full only", in: "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "full before some", in: "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "two some", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "wrong kind", in: "most avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "total missing", in: "some avg10=0.00 avg60=0.00 avg300=0.00\n", wantErr: true},
		{name: "nothing after some", in: "some\n", wantErr: true},
		{name: "wrong key", in: "some avg10=0.00 avg30=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "extra key", in: "some avg10=0.00 avg60=0.00 avg300=0.00 avg900=0.00 total=0\n", wantErr: true},
		{name: "duplicate key", in: "some avg10=0.00 avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg without dot", in: "some avg10=1 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg with exponent", in: "some avg10=1e2 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg NaN", in: "some avg10=NaN avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg negative", in: "some avg10=-1.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg empty fraction", in: "some avg10=1. avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "avg empty integer", in: "some avg10=.5 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "total fraction", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=1.5\n", wantErr: true},
		{name: "total overflow", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=18446744073709551616\n", wantErr: true},
		{name: "field without =", in: "some avg10 0.00 avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
		{name: "empty value", in: "some avg10= avg60=0.00 avg300=0.00 total=0\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got result
			var err error
			got.Some, got.Full, got.HasFull, err = parsePressure([]byte(tc.in))
			checkParse(t, tc.in, got, err, tc.want, tc.wantErr)
		})
	}
}

// TestParsePercentMatchesParseFloat checks the integer shortcut of
// parsePercent against strconv, including the long slow path.
func TestParsePercentMatchesParseFloat(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"0.00", "0.01", "0.07", "1.19", "2.81", "12.50", "33.33", "99.99", "100.00", "0.1", "7.123456789", "123456.789012345", "1.00000000000000000001"} {
		got, err := parsePercent([]byte(s))
		if err != nil {
			t.Fatalf("parsePercent(%q): %v", s, err)
		}
		want, _ := strconv.ParseFloat(s, 64)
		if got != want {
			t.Errorf("parsePercent(%q) = %v, strconv says %v", s, got, want)
		}
	}
}

func TestMalformedErrorQuotesLine(t *testing.T) {
	t.Parallel()
	_, err := parseCPUStat([]byte("usage_usec 1\nnr_throttled lots\n"))
	if err == nil || !strings.Contains(err.Error(), `"nr_throttled lots"`) || !strings.Contains(err.Error(), `"lots"`) {
		t.Fatalf("error %v should quote the line and the value", err)
	}
}

// The fuzz targets assert that no input panics a parser and that every
// failure wraps ErrMalformed; `go test` runs their seeds.

func addSeeds(f *testing.F, seeds ...string) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

func checkFuzzErr(t *testing.T, err error) {
	if err != nil && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error %v does not wrap ErrMalformed", err)
	}
}

func FuzzParseCPUStat(f *testing.F) {
	addSeeds(f, "usage_usec 52\nuser_usec 40\nsystem_usec 12\n", "usage_usec 1\nnr_throttled 0\nthrottled_usec 0\n", "usage_usec -1", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseCPUStat(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParseCPUMax(f *testing.F) {
	addSeeds(f, "max 100000\n", "50000 100000\n", "0 0", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		quota, unlimited, period, err := parseCPUMax(data)
		checkFuzzErr(t, err)
		if err == nil && (period <= 0 || (!unlimited && quota <= 0)) {
			t.Fatalf("parseCPUMax(%q) = %v, %v, %v without error", data, quota, unlimited, period)
		}
	})
}

// FuzzParseSingle also compares parseSingle with strconv.ParseUint.
func FuzzParseSingle(f *testing.F) {
	addSeeds(f, "0\n", "max\n", "18446744073709551615\n", "18446744073709551616\n", "-1", "+1", "0x1", "1_000", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		v, isMax, err := parseSingle(data)
		checkFuzzErr(t, err)
		s := strings.TrimSuffix(string(data), "\n")
		ref, refErr := strconv.ParseUint(s, 10, 64)
		switch {
		case s == "max":
			if err != nil || !isMax {
				t.Fatalf("parseSingle(%q) = %d, %v, %v; want max", data, v, isMax, err)
			}
		case refErr != nil || strings.ContainsAny(s, "+-_"):
			if err == nil {
				t.Fatalf("parseSingle(%q) = %d, want an error (strconv: %v)", data, v, refErr)
			}
		default:
			if err != nil || isMax || v != ref {
				t.Fatalf("parseSingle(%q) = %d, %v, %v; want %d", data, v, isMax, err, ref)
			}
		}
	})
}

func FuzzParseMemoryEvents(f *testing.F) {
	addSeeds(f, "low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n", "low 0\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseMemoryEvents(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParseMemoryStat(f *testing.F) {
	addSeeds(f, "anon 1\ninactive_file 2\nactive_file 3\n", "inactive_file\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseMemoryStatInactiveFile(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParseIOStat(f *testing.F) {
	addSeeds(f, "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n", "8:0 rbytes=1 wbytes=2 rios=3 wios=4 cost.vrate=100.00\n", "8:0\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := parseIOStat(data)
		checkFuzzErr(t, err)
	})
}

func FuzzParsePressure(f *testing.F) {
	addSeeds(f, "some avg10=1.19 avg60=1.08 avg300=2.81 total=254947032\nfull avg10=0.12 avg60=0.07 avg300=0.01 total=11558940\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", "some avg10=1.0000000000000000001 avg60=0.00 avg300=0.00 total=0\n", "")
	f.Fuzz(func(t *testing.T, data []byte) {
		some, full, _, err := parsePressure(data)
		checkFuzzErr(t, err)
		for _, v := range []float64{some.Avg10, some.Avg60, some.Avg300, full.Avg10, full.Avg60, full.Avg300} {
			if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("parsePressure(%q) gave average %v", data, v)
			}
		}
	})
}

package cgroup

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseCPUPercent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		period time.Duration
		want   CPUMax
		str    string // cpu.max
	}{
		{"50%", 0, CPUMax{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}, "50000 100000"},
		{"250%", 0, CPUMax{Quota: 250 * time.Millisecond, Period: 100 * time.Millisecond}, "250000 100000"},
		{"50", 0, CPUMax{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}, "50000 100000"},
		{" 50% ", 0, CPUMax{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}, "50000 100000"},
		{"12.5%", 0, CPUMax{Quota: 12500 * time.Microsecond, Period: 100 * time.Millisecond}, "12500 100000"},
		{"1%", 0, CPUMax{Quota: time.Millisecond, Period: 100 * time.Millisecond}, "1000 100000"},
		{"50%", 100 * time.Millisecond, CPUMax{Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond}, "50000 100000"},
		{"50%", 10 * time.Millisecond, CPUMax{Quota: 5 * time.Millisecond, Period: 10 * time.Millisecond}, "5000 10000"},
		{"100%", time.Millisecond, CPUMax{Quota: time.Millisecond, Period: time.Millisecond}, "1000 1000"},
		{"100%", time.Second, CPUMax{Quota: time.Second, Period: time.Second}, "1000000 1000000"},
		// The quota is truncated to whole microseconds.
		{"33.3333333%", 0, CPUMax{Quota: 33333 * time.Microsecond, Period: 100 * time.Millisecond}, "33333 100000"},
		{"max", 0, CPUMax{Period: 100 * time.Millisecond}, "max 100000"},
		{"MAX", 0, CPUMax{Period: 100 * time.Millisecond}, "max 100000"},
		{"max", 10 * time.Millisecond, CPUMax{Period: 10 * time.Millisecond}, "max 10000"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.in, tt.period), func(t *testing.T) {
			t.Parallel()
			got, err := ParseCPUPercent(tt.in, tt.period)
			if err != nil {
				t.Fatalf("ParseCPUPercent(%q, %v): %v", tt.in, tt.period, err)
			}
			if got != tt.want {
				t.Errorf("ParseCPUPercent(%q, %v) = %+v, want %+v", tt.in, tt.period, got, tt.want)
			}
			if s := got.String(); s != tt.str {
				t.Errorf("cpu.max value = %q, want %q", s, tt.str)
			}
		})
	}
}

func TestParseCPUPercentRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		period time.Duration
		msg    []string
	}{
		// 0.5% of 100ms is 500us, under the kernel's 1ms minimum quota.
		{"0.5%", 0, []string{"500µs", "below the kernel's minimum of 1ms"}},
		{"5%", 10 * time.Millisecond, []string{"500µs per 10ms", "minimum"}},
		{"0.0001%", 0, []string{`"0.0001%"`, "out of range"}},
		{"50%", 500 * time.Microsecond, []string{"cpu period 500µs out of range", "1ms to 1s"}},
		{"50%", 2 * time.Second, []string{"cpu period 2s out of range"}},
		{"50%", time.Second + time.Microsecond, []string{"cpu period 1.000001s out of range"}},
		{"0%", 0, []string{`"0%"`, "positive percentage"}},
		{"0", 0, []string{`"0"`, "positive percentage"}},
		{"-5%", 0, []string{`"-5%"`, "positive percentage"}},
		{"abc", 0, []string{`"abc"`, "positive percentage"}},
		{"NaN", 0, []string{`"NaN"`}},
		{"nan%", 0, []string{`"nan%"`}},
		{"Inf%", 0, []string{`"Inf%"`}},
		{"", 0, []string{`""`}},
		{"%", 0, []string{`"%"`}},
		{"50%%", 0, []string{`"50%%"`}},
		{"50 %", 0, []string{`"50 %"`}},
		{"1e300%", 0, []string{`"1e300%"`, "out of range"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.in, tt.period), func(t *testing.T) {
			t.Parallel()
			got, err := ParseCPUPercent(tt.in, tt.period)
			if err == nil {
				t.Fatalf("ParseCPUPercent(%q, %v) = %+v, want an error", tt.in, tt.period, got)
			}
			errorContains(t, err, tt.msg...)
		})
	}
}

func TestCPUMaxString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c    CPUMax
		want string
	}{
		{CPUMax{}, "max 100000"},
		{CPUMax{Period: 20 * time.Millisecond}, "max 20000"},
		{CPUMax{Quota: 150 * time.Millisecond}, "150000 100000"},
		{CPUMax{Quota: 2500 * time.Microsecond, Period: 5 * time.Millisecond}, "2500 5000"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestIOLimitString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		l    IOLimit
		want string
	}{
		{IOLimit{Device: Device{8, 0}, ReadBPS: Value(4194304), WriteBPS: &Max}, "8:0 rbps=4194304 wbps=max"},
		{IOLimit{Device: Device{259, 0}, ReadBPS: Value(1), WriteBPS: Value(2), ReadIOPS: Value(3), WriteIOPS: Value(4)}, "259:0 rbps=1 wbps=2 riops=3 wiops=4"},
		{IOLimit{Device: Device{8, 16}, WriteIOPS: Value(100)}, "8:16 wiops=100"},
		{IOLimit{Device: Device{8, 16}}, "8:16"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("IOLimit.String() = %q, want %q", got, tt.want)
		}
	}
}

func u64(n uint64) *uint64 { return &n }

func TestResourcesValidate(t *testing.T) {
	t.Parallel()
	tooBig := Value(1 << 63)
	tests := []struct {
		name string
		r    *Resources
		msgs []string // nil: valid
	}{
		{"nil", nil, nil},
		{"empty", &Resources{}, nil},
		{"cpu weight 1", &Resources{CPUWeight: u64(1)}, nil},
		{"cpu weight 10000", &Resources{CPUWeight: u64(10000)}, nil},
		{"cpu weight 0", &Resources{CPUWeight: u64(0)}, []string{"cpu weight 0 out of range", "1 to 10000"}},
		{"cpu weight 10001", &Resources{CPUWeight: u64(10001)}, []string{"cpu weight 10001 out of range"}},
		{"cpu ok", &Resources{CPU: &CPUMax{Quota: time.Millisecond, Period: time.Second}}, nil},
		{"cpu max", &Resources{CPU: &CPUMax{}}, nil},
		{"cpu quota small", &Resources{CPU: &CPUMax{Quota: 999 * time.Microsecond}}, []string{"cpu quota 999µs", "minimum of 1ms"}},
		{"cpu period long", &Resources{CPU: &CPUMax{Period: 2 * time.Second}}, []string{"cpu period 2s out of range"}},
		{"cpu period short", &Resources{CPU: &CPUMax{Quota: time.Millisecond, Period: 999 * time.Microsecond}}, []string{"cpu period 999µs out of range"}},
		{"pids 0", &Resources{PidsMax: Value(0)}, []string{"pids limit 0"}},
		{"pids 1", &Resources{PidsMax: Value(1)}, nil},
		{"pids max", &Resources{PidsMax: &Max}, nil},
		{"memory ok", &Resources{MemoryMax: Value(1 << 30), MemoryHigh: Value(1 << 29), MemoryLow: Value(1 << 28), SwapMax: &Max}, nil},
		{"memory 0", &Resources{MemoryMax: Value(0)}, nil},
		{"memory too big", &Resources{MemoryMax: tooBig}, []string{"memory 9223372036854775808 out of range"}},
		{"memory-high too big", &Resources{MemoryHigh: tooBig}, []string{"memory-high 9223372036854775808 out of range"}},
		{"memory-low too big", &Resources{MemoryLow: tooBig}, []string{"memory-low 9223372036854775808 out of range"}},
		{"swap too big", &Resources{SwapMax: tooBig}, []string{"swap 9223372036854775808 out of range"}},
		{"memory-low max", &Resources{MemoryLow: &Max}, []string{`memory-low "max"`}},
		{"io ok", &Resources{IO: []IOLimit{
			{Device: Device{8, 0}, ReadBPS: Value(1 << 20), WriteBPS: &Max},
			{Device: Device{8, 16}, ReadIOPS: Value(100)},
		}}, nil},
		{"io duplicate device", &Resources{IO: []IOLimit{
			{Device: Device{8, 0}, ReadBPS: Value(1 << 20)},
			{Device: Device{8, 0}, WriteBPS: Value(1 << 20)},
		}}, []string{"device 8:0 is given twice"}},
		{"io zero rate", &Resources{IO: []IOLimit{{Device: Device{8, 16}, ReadBPS: Value(1), WriteIOPS: Value(0)}}}, []string{"io limit 0 on device 8:16"}},
		{"joined", &Resources{CPUWeight: u64(0), PidsMax: Value(0), IO: []IOLimit{{Device: Device{259, 0}, ReadBPS: Value(0), WriteBPS: Value(0)}}},
			[]string{"cpu weight 0", "pids limit 0", "io limit 0 on device 259:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.r.Validate()
			if tt.msgs == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			errorContains(t, err, tt.msgs...)
			// One message per bad value: the joined error has one
			// line per problem.
			want := 1
			if tt.name == "joined" {
				want = len(tt.msgs)
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != want {
				t.Errorf("error has %d line(s), want %d: %q", n, want, err)
			}
		})
	}
}

func TestResourcesControllers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    *Resources
		want []string
	}{
		{"nil", nil, nil},
		{"empty", &Resources{}, nil},
		{"cpu quota", &Resources{CPU: &CPUMax{}}, []string{"cpu"}},
		{"cpu weight", &Resources{CPUWeight: u64(5)}, []string{"cpu"}},
		{"swap only", &Resources{SwapMax: Value(0)}, []string{"memory"}},
		{"memory low", &Resources{MemoryLow: Value(1)}, []string{"memory"}},
		{"all", &Resources{CPU: &CPUMax{}, MemoryHigh: Value(1), PidsMax: Value(9), IO: []IOLimit{{Device: Device{8, 0}}}},
			[]string{"cpu", "memory", "io", "pids"}},
	}
	for _, tt := range tests {
		if got := tt.r.Controllers(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Controllers() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// planEntry is a setting in comparable form.
type planEntry struct {
	file, value string
	optional    bool
	device      string
}

func planOf(r *Resources) []planEntry {
	var out []planEntry
	for _, s := range r.plan() {
		e := planEntry{file: s.file, value: s.value, optional: s.optional}
		if s.device != nil {
			e.device = s.device.String()
		}
		out = append(out, e)
	}
	return out
}

// TestPlanWritesSwapZeroWithMemoryMax guards the product rule that a memory
// limit ends in the OOM killer, not in swapping: with MemoryMax set and no
// swap limit given, memory.swap.max must be written as 0, and that write may
// not be skipped. The test machines have no swap, so no integration test can
// notice its absence.
func TestPlanWritesSwapZeroWithMemoryMax(t *testing.T) {
	t.Parallel()
	got := planOf(&Resources{MemoryMax: Value(64 << 20)})
	want := []planEntry{
		{file: "memory.max", value: "67108864"},
		{file: "memory.swap.max", value: "0"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("plan = %+v, want %+v", got, want)
	}
}

func TestPlan(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		r    *Resources
		want []planEntry
	}{
		{"nil", nil, nil},
		{"empty", &Resources{}, nil},
		{"no memory limit writes no memory file", &Resources{CPU: &CPUMax{Quota: 50 * time.Millisecond}, PidsMax: Value(64)}, []planEntry{
			{file: "cpu.max", value: "50000 100000"},
			{file: "pids.max", value: "64"},
		}},
		{"memory max with max", &Resources{MemoryMax: &Max}, []planEntry{
			{file: "memory.max", value: "max"},
			{file: "memory.swap.max", value: "0"},
		}},
		{"explicit swap is written as given", &Resources{MemoryMax: Value(1 << 30), SwapMax: Value(1 << 29)}, []planEntry{
			{file: "memory.max", value: "1073741824"},
			{file: "memory.swap.max", value: "536870912"},
		}},
		{"explicit swap 0", &Resources{MemoryMax: Value(1 << 30), SwapMax: Value(0)}, []planEntry{
			{file: "memory.max", value: "1073741824"},
			{file: "memory.swap.max", value: "0"},
		}},
		{"swap max is optional", &Resources{MemoryMax: Value(1 << 30), SwapMax: &Max}, []planEntry{
			{file: "memory.max", value: "1073741824"},
			{file: "memory.swap.max", value: "max", optional: true},
		}},
		{"swap alone", &Resources{SwapMax: Value(4096)}, []planEntry{
			{file: "memory.swap.max", value: "4096"},
		}},
		{"memory high alone writes no swap", &Resources{MemoryHigh: Value(4096)}, []planEntry{
			{file: "memory.high", value: "4096"},
		}},
		{"all in order", &Resources{
			CPU:        &CPUMax{Quota: 250 * time.Millisecond, Period: 100 * time.Millisecond},
			CPUWeight:  u64(200),
			MemoryMax:  Value(1 << 30),
			MemoryHigh: Value(768 << 20),
			MemoryLow:  Value(256 << 20),
			PidsMax:    &Max,
			IO: []IOLimit{
				{Device: Device{8, 0}, ReadBPS: Value(4194304), WriteBPS: &Max},
				{Device: Device{259, 0}, WriteIOPS: Value(500)},
			},
		}, []planEntry{
			{file: "cpu.max", value: "250000 100000"},
			{file: "cpu.weight", value: "200"},
			{file: "memory.low", value: "268435456"},
			{file: "memory.high", value: "805306368"},
			{file: "memory.max", value: "1073741824"},
			{file: "memory.swap.max", value: "0"},
			{file: "pids.max", value: "max"},
			{file: "io.max", value: "8:0 rbps=4194304 wbps=max", device: "8:0"},
			{file: "io.max", value: "259:0 wiops=500", device: "259:0"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := planOf(tt.r); !slices.Equal(got, tt.want) {
				t.Errorf("plan =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// The io.max settings must each point at their own device, not at a shared
// loop variable.
func TestPlanIODevicesDistinct(t *testing.T) {
	t.Parallel()
	var io []IOLimit
	for i := range 4 {
		io = append(io, IOLimit{Device: Device{8, uint32(16 * i)}, ReadIOPS: Value(10)})
	}
	p := (&Resources{IO: io}).plan()
	if len(p) != 4 {
		t.Fatalf("plan has %d settings, want 4", len(p))
	}
	for i, s := range p {
		if want := "8:" + strconv.Itoa(16*i); s.device == nil || s.device.String() != want {
			t.Errorf("setting %d: device %v, want %s", i, s.device, want)
		}
	}
}

package cgroup

import (
	"math"
	"testing"
	"time"
)

func TestParseCPUMax(t *testing.T) {
	for in, want := range map[string]CPUMax{
		"max 100000":   {Period: 100 * time.Millisecond},
		"50000 100000": {Quota: 50 * time.Millisecond, Period: 100 * time.Millisecond},
		"1000 1000\n":  {Quota: time.Millisecond, Period: time.Millisecond},
	} {
		got, err := ParseCPUMax(in)
		if err != nil || got != want {
			t.Errorf("ParseCPUMax(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if back, _ := ParseCPUMax(got.String()); back != got {
			t.Errorf("%q does not round-trip: %+v", got.String(), back)
		}
	}
	for _, in := range []string{"", "max", "50000", "x 100000", "0 100000", "50000 0", "-1 100000", "1 2 3"} {
		if _, err := ParseCPUMax(in); err == nil {
			t.Errorf("ParseCPUMax(%q) succeeded", in)
		}
	}
	if r := (CPUMax{Quota: 150 * time.Millisecond, Period: 100 * time.Millisecond}).Rate(); r != 1.5 {
		t.Errorf("Rate = %v, want 1.5", r)
	}
	if r := (CPUMax{}).Rate(); !math.IsInf(r, 1) {
		t.Errorf("Rate of max = %v, want +Inf", r)
	}
}

func TestParseIOMax(t *testing.T) {
	content := "8:0 rbps=1048576 wbps=max riops=max wiops=120\n253:1 rbps=max wbps=2 riops=max wiops=max\n"
	l, err := ParseIOMax(content, Device{8, 0})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.String(); got != "8:0 rbps=1048576 wbps=max riops=max wiops=120" {
		t.Errorf("8:0 = %q", got)
	}
	l, err = ParseIOMax(content, Device{9, 9})
	if err != nil || l.String() != "9:9 rbps=max wbps=max riops=max wiops=max" {
		t.Errorf("device without a line = %q, %v", l.String(), err)
	}
	if _, err := ParseIOMax("8:0 rbps=lots\n", Device{8, 0}); err == nil {
		t.Error("ParseIOMax accepted rbps=lots")
	}
}

package cgroup

import (
	"strconv"
	"testing"
)

func TestParseBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Limit
	}{
		{"0", Limit{N: 0}},
		{"1048576", Limit{N: 1048576}},
		{"100B", Limit{N: 100}},
		{"100b", Limit{N: 100}},
		// K M G T are 1024-based.
		{"1K", Limit{N: 1 << 10}},
		{"64M", Limit{N: 64 << 20}},
		{"64m", Limit{N: 64 << 20}},
		{"1G", Limit{N: 1 << 30}},
		{"2T", Limit{N: 2 << 40}},
		// KiB .. TiB are 1024-based.
		{"1KiB", Limit{N: 1 << 10}},
		{"3MiB", Limit{N: 3 << 20}},
		{"1gib", Limit{N: 1 << 30}},
		{"1TIB", Limit{N: 1 << 40}},
		// KB .. TB are 1000-based.
		{"2Kb", Limit{N: 2000}},
		{"5MB", Limit{N: 5_000_000}},
		{"1gb", Limit{N: 1_000_000_000}},
		{"1TB", Limit{N: 1_000_000_000_000}},
		// Fractions need a suffix and round down to whole bytes.
		{"1.5G", Limit{N: 1610612736}},
		{"0.5K", Limit{N: 512}},
		{"1.0001K", Limit{N: 1024}}, // 1024.1024 bytes
		{"1.5KB", Limit{N: 1500}},
		{"1.0", Limit{N: 1}}, // a whole number written with a fraction
		{"max", Max},
		{"MAX", Max},
		{"Max", Max},
		{" 64M\n", Limit{N: 64 << 20}},
		{"64 M", Limit{N: 64 << 20}}, // space between number and unit
		{"9223372036854775807", Limit{N: 1<<63 - 1}},
		{"8388607T", Limit{N: 8388607 << 40}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseBytes(tt.in)
			if err != nil {
				t.Fatalf("ParseBytes(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseBytes(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseBytesRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, msg string
	}{
		{"", "want bytes"},
		{"   ", "want bytes"},
		{"-1", "want bytes"},
		{"+1", "want bytes"},
		{"1.5", "whole number"},
		{"1.5B", "whole number"},
		{"10X", "want bytes"},
		{"M", "want bytes"},
		{"K1", "want bytes"},
		{"1KK", "want bytes"},
		{"1e3", "want bytes"},
		{"0x10", "want bytes"},
		{"6 4M", "want bytes"},
		{"1.2.3G", "not a number"},
		{".", "not a number"},
		{"maximum", "want bytes"},
		{"9999999T", "larger than 9223372036854775807 bytes"},
		{"8388608T", "larger than"}, // exactly 2^63
		{"9223372036854775808", "larger than"},
		{"99999999999999999999999999", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseBytes(tt.in)
			if err == nil {
				t.Fatalf("ParseBytes(%q) = %+v, want an error", tt.in, got)
			}
			errorContains(t, err, strconv.Quote(tt.in), tt.msg)
			if got != (Limit{}) {
				t.Errorf("ParseBytes(%q) returned %+v with its error, want the zero Limit", tt.in, got)
			}
		})
	}
}

func TestParseCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Limit
	}{
		{"0", Limit{N: 0}},
		{"1", Limit{N: 1}},
		{"4096", Limit{N: 4096}},
		{" 42\n", Limit{N: 42}},
		{"max", Max},
		{"MAX", Max},
		{"9223372036854775807", Limit{N: 1<<63 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCount(tt.in)
			if err != nil {
				t.Fatalf("ParseCount(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseCount(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseCountRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "-1", "+1", "1.5", "1K", "abc", "1e3", "0x10", "1 000", "9223372036854775808"} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCount(in)
			if err == nil {
				t.Fatalf("ParseCount(%q) = %+v, want an error", in, got)
			}
			errorContains(t, err, "invalid count "+strconv.Quote(in))
		})
	}
}

func TestLimitString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		l    Limit
		want string
	}{
		{Limit{}, "0"},
		{*Value(4194304), "4194304"},
		{Max, "max"},
		{Limit{N: 7, Max: true}, "max"},
		{Limit{N: 1<<64 - 1}, "18446744073709551615"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.l, got, tt.want)
		}
	}
}

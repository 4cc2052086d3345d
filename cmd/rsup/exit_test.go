package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rsup/rsup/supervisor"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{exitWith(0), 0},
		{exitWith(137), 137},
		{usageError(errors.New("bad")), 125},
		{fmt.Errorf("wrapped: %w", &supervisor.StartError{Code: 127, Err: errors.New("nope")}), 127},
		{&supervisor.StartError{Code: 126, Err: errors.New("nope")}, 126},
		{errors.New("anything else"), 125},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if !silent(exitWith(3)) || silent(usageError(errors.New("x"))) {
		t.Error("silent: only bare exit statuses print nothing")
	}
}

// The app maps flag errors to 125 without running anything.
func TestAppUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"rsup", "run", "--bogus", "--", "true"},
		{"rsup", "run"},
		{"rsup", "run", "--memory", "x", "--", "true"},
		{"rsup", "run", "--name", "a/b", "--", "true"},
	} {
		err := newApp().Run(args)
		if got := exitCode(err); got != 125 {
			t.Errorf("%v: exit %d (%v), want 125", args, got, err)
		}
	}
}

func TestParsePids(t *testing.T) {
	if p, err := parsePids([]string{"12", "7"}); err != nil || len(p) != 2 || p[0] != 12 || p[1] != 7 {
		t.Errorf("parsePids = %v, %v", p, err)
	}
	for _, bad := range [][]string{nil, {"0"}, {"-3"}, {"x"}, {"4", "4"}, {"1.5"}} {
		if _, err := parsePids(bad); err == nil {
			t.Errorf("parsePids(%q) accepted", bad)
		}
	}
}

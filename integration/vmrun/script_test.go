package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestCommandScriptQuoting runs the generated command script with the
// host's sh and checks every argument arrives unchanged.
func TestCommandScriptQuoting(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	args := []string{"plain", "with space", "it's", `"dq"`, "$HOME", "`id`", "a\nb", "", "--", "*", "tab\there", `back\slash`}
	script := filepath.Join(t.TempDir(), "cmd.sh")
	argv := append([]string{"printf", `%s\0`}, args...)
	if err := os.WriteFile(script, []byte(commandScript(argv)), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sh, script).Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, commandScript(argv))
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !reflect.DeepEqual(got, args) {
		t.Errorf("arguments came out as %q, want %q", got, args)
	}
}

func TestParseControl(t *testing.T) {
	const nonce = "vmrun-abc"
	cases := []struct {
		line string
		ok   bool
		kind string
		arg  string
	}{
		{"vmrun-abc start 4.40", true, "start", "4.40"},
		{"vmrun-abc exit 1\r", true, "exit", "1"},
		{"\x00garbage vmrun-abc exit 0", true, "exit", "0"},
		{"vmrun-abc fail mount /proc", true, "fail", "mount /proc"},
		{"vmrun-other exit 0", false, "", ""},
		{"vmrun-abc bogus", false, "", ""},
		{"", false, "", ""},
	}
	for _, c := range cases {
		ev, ok := parseControl(c.line, nonce)
		if ok != c.ok || ev.kind != c.kind || ev.arg != c.arg {
			t.Errorf("parseControl(%q) = %+v, %v", c.line, ev, ok)
		}
	}
}

func TestTestTimeout(t *testing.T) {
	for total, want := range map[time.Duration]time.Duration{
		12 * time.Minute: 12*time.Minute - 90*time.Second,
		4 * time.Minute:  3 * time.Minute,
		2 * time.Minute:  90 * time.Second,
		40 * time.Second: 20 * time.Second,
	} {
		if got := testTimeout(total); got != want {
			t.Errorf("testTimeout(%v) = %v, want %v", total, got, want)
		}
	}
}

func TestParseFlags(t *testing.T) {
	t.Setenv("RSUP_VM_ACCEL", "")
	cfg, err := parseFlags([]string{"-run", "TestX", "-env", "A=1", "-env", "B=two words"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.accel != "tcg" || cfg.timeout != 12*time.Minute || cfg.cpus != 2 || cfg.memMiB != 1024 {
		t.Errorf("defaults: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.modules, []string{"brd"}) || !reflect.DeepEqual(cfg.env, []string{"A=1", "B=two words"}) {
		t.Errorf("modules %q env %q", cfg.modules, cfg.env)
	}

	cfg, err = parseFlags([]string{"-module", "loop", "--", "rsup", "run", "--", "sh", "-c", "echo hi"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.command, []string{"rsup", "run", "--", "sh", "-c", "echo hi"}) || !reflect.DeepEqual(cfg.modules, []string{"loop"}) {
		t.Errorf("command %q modules %q", cfg.command, cfg.modules)
	}

	t.Setenv("RSUP_VM_ACCEL", "kvm")
	if cfg, err := parseFlags(nil); err != nil || cfg.accel != "kvm" {
		t.Errorf("RSUP_VM_ACCEL=kvm: %+v, %v", cfg, err)
	}

	for _, bad := range [][]string{
		{"-accel", "hvf"},
		{"-env", "NOEQUALS"},
		{"-env", "1X=2"},
		{"-run", "X", "--", "true"},
		{"-mem", "64"},
		{"-smp", "0"},
	} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

func TestCheckStaticELF(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	// The test binary itself is ELF; whether static depends on cgo, so
	// only check that garbage is refused and x86-64 is accepted as such.
	bad := filepath.Join(t.TempDir(), "x")
	os.WriteFile(bad, []byte("#!/bin/sh\n"), 0o755)
	if err := checkStaticELF(bad, "thing", "fix it"); err == nil || !strings.Contains(err.Error(), "fix it") {
		t.Errorf("script accepted as ELF: %v", err)
	}
	if err := checkStaticELF(self, "test", ""); err != nil && !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("own test binary: %v", err)
	}
}

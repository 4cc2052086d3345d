package cgroup

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

func TestParseOwner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Owner
	}{
		{"pid=1234 start=5678", Owner{PID: 1234, StartTime: 5678}},
		{"start=5678 pid=1234", Owner{PID: 1234, StartTime: 5678}},
		{"pid=1", Owner{PID: 1}},
		{"pid=7 start=18446744073709551615", Owner{PID: 7, StartTime: 1<<64 - 1}},
		{" pid=9  start=10 \n", Owner{PID: 9, StartTime: 10}},
		{"pid=9 start=10 host=build1", Owner{PID: 9, StartTime: 10}}, // unknown keys are ignored
	}
	for _, tt := range tests {
		got, err := parseOwner(tt.in)
		if err != nil {
			t.Errorf("parseOwner(%q): %v", tt.in, err)
		} else if got != tt.want {
			t.Errorf("parseOwner(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseOwnerRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, msg string
	}{
		{"", "no pid"},
		{"start=5", "no pid"},
		{"pid=0 start=5", "no pid"},
		{"pid=-3 start=5", "no pid"},
		{"pid=abc start=5", `invalid syntax`},
		{"pid start=5", `invalid syntax`},
		{"pid=12 start=-1", `invalid syntax`},
		{"pid=12 start=x", `invalid syntax`},
		{"pid=99999999999999999999", "out of range"},
		{"garbage", "no pid"},
	}
	for _, tt := range tests {
		got, err := parseOwner(tt.in)
		if err == nil {
			t.Errorf("parseOwner(%q) = %+v, want an error", tt.in, got)
			continue
		}
		errorContains(t, err, "bad owner mark "+strconv.Quote(tt.in), tt.msg)
	}
}

func TestOwnerRoundTrip(t *testing.T) {
	t.Parallel()
	for _, o := range []Owner{{PID: 1, StartTime: 0}, {PID: 4242, StartTime: 987654321}, {PID: 1<<22 - 1, StartTime: 1<<64 - 1}} {
		s := o.String()
		got, err := parseOwner(s)
		if err != nil || got != o {
			t.Errorf("parseOwner(%q) = %+v, %v; want %+v", s, got, err, o)
		}
	}
	if got := (Owner{PID: 12, StartTime: 34}).String(); got != "pid=12 start=34" {
		t.Errorf("Owner.String() = %q", got)
	}
}

func TestOwnerOfAndAlive(t *testing.T) {
	t.Parallel()
	// The owner is this process (alive is checked through a real pidfd), its
	// start time made up in a fake proc.
	me := os.Getpid()
	proc := fakeProcFS(t, me, 987654, "")
	fs, err := procfs.NewFS(proc)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ownerOf(fs, me)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Owner{PID: me, StartTime: 987654}); o != want {
		t.Errorf("ownerOf = %+v, want %+v", o, want)
	}
	if _, err := ownerOf(fs, 77); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ownerOf a missing pid: %v, want ErrNotExist", err)
	}
	tests := []struct {
		o    Owner
		want bool
	}{
		{Owner{PID: me, StartTime: 987654}, true},
		{Owner{PID: me, StartTime: 987653}, false}, // pid reused
		{Owner{PID: 77, StartTime: 987654}, false}, // gone
	}
	for _, tt := range tests {
		if got := tt.o.alive(fs); got != tt.want {
			t.Errorf("%v alive = %v, want %v", tt.o, got, tt.want)
		}
	}

	// A stat file the parser cannot read makes the owner not alive.
	writeFiles(t, proc, map[string]string{"55/stat": "55 no parentheses\n"})
	if _, err := ownerOf(fs, 55); err == nil {
		t.Error("ownerOf with a malformed stat: no error")
	}
	if (Owner{PID: 55}).alive(fs) {
		t.Error("owner with a malformed stat is alive")
	}
}

// userXattrs skips the test where the temp dir's file system does not
// keep user.* attributes (cgroupfs since 5.7, tmpfs since 6.6, ext4).
func userXattrs(t *testing.T, dir string) {
	t.Helper()
	err := unix.Lsetxattr(dir, "user.rsup.probe", []byte("1"), 0)
	if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) {
		t.Skipf("user.* extended attributes unavailable on the temp dir (%v): the owner mark cannot be stored", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Lremovexattr(dir, "user.rsup.probe"); err != nil {
		t.Fatal(err)
	}
}

func TestSetReadOwner(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	userXattrs(t, tmp)
	job := filepath.Join(tmp, "job")
	if err := os.Mkdir(job, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := readOwner(job); !errors.Is(err, ErrNoOwner) {
		t.Errorf("readOwner of an unmarked cgroup: %v, want ErrNoOwner", err)
	}
	o := Owner{PID: 31337, StartTime: 123456789}
	if err := setOwner(job, o); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	n, err := unix.Lgetxattr(job, "user.rsup.owner", buf)
	if err != nil || string(buf[:n]) != "pid=31337 start=123456789" {
		t.Errorf("xattr = %q, %v", buf[:n], err)
	}
	got, err := readOwner(job)
	if err != nil || got != o {
		t.Errorf("readOwner = %+v, %v; want %+v", got, err, o)
	}

	if err := unix.Lsetxattr(job, "user.rsup.owner", []byte("pid=x"), 0); err != nil {
		t.Fatal(err)
	}
	_, err = readOwner(job)
	errorContains(t, err, `bad owner mark "pid=x"`)

	missing := filepath.Join(tmp, "gone")
	_, err = readOwner(missing)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "read" || !errors.Is(err, unix.ENOENT) {
		t.Errorf("readOwner of a missing cgroup: %#v", err)
	}
	errorContains(t, err, missing, "user.rsup.owner")
	err = setOwner(missing, o)
	if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != o.String() || !errors.Is(err, unix.ENOENT) {
		t.Errorf("setOwner of a missing cgroup: %#v", err)
	}
}

package cgroup

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestFileErrorError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		e    *FileError
		want string
	}{
		{&FileError{Op: "write", Path: "/sys/fs/cgroup/rsup/j/memory.max", Value: "1G", Err: unix.EINVAL},
			`write "1G" to /sys/fs/cgroup/rsup/j/memory.max: invalid argument`},
		{&FileError{Op: "write", Path: "/c/io.max", Value: "", Err: unix.ENODEV},
			`write "" to /c/io.max: no such device`},
		{&FileError{Op: "read", Path: "/c/cgroup.events", Err: unix.ENOENT},
			"read /c/cgroup.events: no such file or directory"},
		{&FileError{Op: "open", Path: "/c/x", Value: "ignored", Err: unix.EACCES},
			"open /c/x: permission denied"},
		{&FileError{Op: "remove", Path: "/c", Err: unix.EBUSY},
			"remove /c: device or resource busy"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		if !errors.Is(tt.e, tt.e.Err) {
			t.Errorf("%q does not unwrap to %v", tt.e, tt.e.Err)
		}
	}
}

func openTestDir(t *testing.T, path string) *dir {
	t.Helper()
	d, err := openDir(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.close() })
	return d
}

func TestDirOpenFileRejectsPaths(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{"a/b": "secret\n", "cpu.max": "max 100000\n"})
	d := openTestDir(t, filepath.Join(tmp, "a"))
	for _, name := range []string{"a/b", "../cpu.max", "..", ".", "", "/etc/passwd"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := d.openFile(name, unix.O_RDONLY)
			if err == nil {
				f.Close()
				t.Fatalf("openFile(%q) succeeded", name)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Op != "open" {
				t.Fatalf("openFile(%q) error %#v, want a *FileError with Op open", name, err)
			}
			errorContains(t, err, "not a single path element", filepath.Join(d.path, name))

			err = d.write(name, "1")
			if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "1" {
				t.Fatalf("write(%q) error %#v, want a *FileError with Op write and Value 1", name, err)
			}
		})
	}
	if got := readTestFile(t, filepath.Join(tmp, "cpu.max")); got != "max 100000\n" {
		t.Errorf("cpu.max outside the dir changed to %q", got)
	}
}

// A symlink in a cgroup directory must never redirect a limit write.
func TestDirDoesNotFollowSymlinks(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{"outside": "keep\n", "cg/sub/x": ""})
	cg := filepath.Join(tmp, "cg")
	for name, target := range map[string]string{"memory.max": "../outside", "pids.max": filepath.Join(tmp, "outside"), "io.max": "sub/x"} {
		if err := os.Symlink(target, filepath.Join(cg, name)); err != nil {
			t.Fatal(err)
		}
	}
	d := openTestDir(t, cg)
	for _, name := range []string{"memory.max", "pids.max", "io.max"} {
		err := d.write(name, "1")
		var fe *FileError
		if !errors.As(err, &fe) || fe.Op != "write" || fe.Path != filepath.Join(cg, name) || fe.Value != "1" {
			t.Errorf("write through symlink %s: error %#v, want a *FileError naming the file", name, err)
		}
		if !errors.Is(err, unix.ELOOP) {
			t.Errorf("write through symlink %s: %v, want ELOOP", name, err)
		}
		if _, err := d.read(name); !errors.Is(err, unix.ELOOP) {
			t.Errorf("read through symlink %s: %v, want ELOOP", name, err)
		}
	}
	if got := readTestFile(t, filepath.Join(tmp, "outside")); got != "keep\n" {
		t.Errorf("file outside the cgroup was written: %q", got)
	}
	if got := readTestFile(t, filepath.Join(cg, "sub/x")); got != "" {
		t.Errorf("file below the cgroup was written through a symlink: %q", got)
	}
}

func TestDirReadWrite(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{
		"memory.max":    "max\n",
		"cgroup.events": "populated 0\nfrozen 0\n",
		"io.max":        "",
		"two.newlines":  "x\n\n",
	})
	d := openTestDir(t, tmp)
	for name, want := range map[string]string{
		"memory.max":    "max",
		"cgroup.events": "populated 0\nfrozen 0",
		"io.max":        "",
		"two.newlines":  "x\n",
	} {
		got, err := d.read(name)
		if err != nil {
			t.Errorf("read %s: %v", name, err)
		} else if got != want {
			t.Errorf("read %s = %q, want %q", name, got, want)
		}
	}

	if err := d.write("memory.max", "1073741824"); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, filepath.Join(tmp, "memory.max"), "max\n", "1073741824")

	// Interface files are never created: a missing file is an error
	// that names the file and the value.
	err := d.write("memory.high", "5")
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "5" || fe.Path != filepath.Join(tmp, "memory.high") || !errors.Is(err, unix.ENOENT) {
		t.Errorf("write to missing file: %#v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "memory.high")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write created memory.high: %v", err)
	}
	_, err = d.read("memory.high")
	if !errors.As(err, &fe) || fe.Op != "open" || fe.Path != filepath.Join(tmp, "memory.high") || !errors.Is(err, unix.ENOENT) {
		t.Errorf("read of missing file: %#v", err)
	}

	// A directory where a file is expected.
	if err := os.Mkdir(filepath.Join(tmp, "pids.max"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := d.read("pids.max"); !errors.As(err, &fe) || fe.Op != "read" || !errors.Is(err, unix.EISDIR) {
		t.Errorf("read of a directory: %#v", err)
	}
	if err := d.write("pids.max", "1"); !errors.As(err, &fe) || fe.Op != "write" || fe.Value != "1" || !errors.Is(err, unix.EISDIR) {
		t.Errorf("write to a directory: %#v", err)
	}
}

func TestDirClose(t *testing.T) {
	t.Parallel()
	d, err := openDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.close(); err != nil {
		t.Fatal(err)
	}
	if d.fd != -1 {
		t.Errorf("fd = %d after close, want -1", d.fd)
	}
	if err := d.close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	var nilDir *dir
	if err := nilDir.close(); err != nil {
		t.Errorf("close of nil dir: %v", err)
	}
}

func TestOpenDirErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{"file": ""})
	for _, p := range []string{filepath.Join(tmp, "missing"), filepath.Join(tmp, "file")} {
		_, err := openDir(p)
		var fe *FileError
		if !errors.As(err, &fe) || fe.Op != "open" || fe.Path != p {
			t.Errorf("openDir(%s): %#v, want a *FileError with Op open", p, err)
		}
	}
}

func TestReadWriteFileAt(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{"cg/cgroup.controllers": "cpu io memory pids\n", "cg/cgroup.subtree_control": "\n"})
	got, err := readFileAt(filepath.Join(tmp, "cg/cgroup.controllers"))
	if err != nil || got != "cpu io memory pids" {
		t.Errorf("readFileAt = %q, %v", got, err)
	}
	if err := writeFileAt(filepath.Join(tmp, "cg/cgroup.subtree_control"), "+memory"); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, filepath.Join(tmp, "cg/cgroup.subtree_control"), "\n", "+memory")

	missingDir := filepath.Join(tmp, "nope/cgroup.controllers")
	_, err = readFileAt(missingDir)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "open" || fe.Path != filepath.Dir(missingDir) {
		t.Errorf("readFileAt in a missing dir: %#v", err)
	}
	err = writeFileAt(missingDir, "+cpu")
	if !errors.As(err, &fe) || fe.Op != "open" || !errors.Is(err, unix.ENOENT) {
		t.Errorf("writeFileAt in a missing dir: %#v", err)
	}
}

func TestRetryEINTR(t *testing.T) {
	t.Parallel()
	calls := 0
	n, err := retryEINTR(func() (int, error) {
		calls++
		if calls < 3 {
			return -1, unix.EINTR
		}
		return 7, nil
	})
	if n != 7 || err != nil || calls != 3 {
		t.Errorf("retryEINTR = %d, %v after %d calls; want 7, nil after 3", n, err, calls)
	}
	_, err = retryEINTR(func() (int, error) { return -1, unix.EAGAIN })
	if !errors.Is(err, unix.EAGAIN) {
		t.Errorf("retryEINTR passed on %v, want EAGAIN", err)
	}
}

func TestRemoveTree(t *testing.T) {
	t.Parallel()
	// A temp dir, unlike a cgroup directory, cannot be removed while it
	// holds files, so the tree is made of empty directories only.
	tmp := t.TempDir()
	root := filepath.Join(tmp, "job")
	for _, d := range []string{"a/b/c", "a/d", "e", "f/g/h/i"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := removeTree(root, time.Second); err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	if _, err := os.Lstat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists: %v", root, err)
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("removeTree removed the parent: %v", err)
	}
}

func TestRemoveTreeMissingIsSuccess(t *testing.T) {
	t.Parallel()
	if err := removeTree(filepath.Join(t.TempDir(), "gone"), time.Second); err != nil {
		t.Errorf("removeTree of a missing path: %v", err)
	}
}

func TestRemoveTreeErrors(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	// A regular file in a subdirectory stops the removal there and is
	// named in the error; directories beside it may already be gone.
	writeFiles(t, tmp, map[string]string{"job/sub/stray": "x"})
	err := removeTree(filepath.Join(tmp, "job"), time.Second)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "remove" || fe.Path != filepath.Join(tmp, "job/sub") || !errors.Is(err, unix.ENOTEMPTY) {
		t.Errorf("removeTree of a tree with a file: %#v", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "job/sub/stray")); err != nil {
		t.Errorf("stray file: %v", err)
	}

	// Not a directory.
	file := filepath.Join(tmp, "job/sub/stray")
	err = removeTree(file, time.Second)
	if !errors.As(err, &fe) || fe.Op != "remove" || fe.Path != file {
		t.Errorf("removeTree of a file: %#v", err)
	}
}

func TestParseKeyed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     map[string]uint64
	}{
		{"cgroup.events populated", "populated 1\nfrozen 0\n", map[string]uint64{"populated": 1, "frozen": 0}},
		{"cgroup.events empty frozen", "populated 0\nfrozen 1\n", map[string]uint64{"populated": 0, "frozen": 1}},
		{"memory.events",
			"low 0\nhigh 17\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
			map[string]uint64{"low": 0, "high": 17, "max": 3, "oom": 1, "oom_kill": 1, "oom_group_kill": 0}},
		{"no trailing newline", "populated 1", map[string]uint64{"populated": 1}},
		{"blank lines and padding", "\n  populated 1  \n\n", map[string]uint64{"populated": 1}},
		{"large counter", "max 18446744073709551615\n", map[string]uint64{"max": 1<<64 - 1}},
		{"empty", "", map[string]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseKeyed(tt.in)
			if err != nil {
				t.Fatalf("parseKeyed(%q): %v", tt.in, err)
			}
			if got == nil || !maps.Equal(got, tt.want) {
				t.Errorf("parseKeyed(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseKeyedRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, msg string
	}{
		{"key only", "populated 1\nfrozen\n", `malformed line "frozen"`},
		{"trailing junk", "populated 1 junk\n", `malformed line "populated 1 junk"`},
		{"hex value", "oom_kill 0x10\n", `malformed value in line "oom_kill 0x10"`},
		{"word value", "populated yes\n", `malformed value in line "populated yes"`},
		{"negative", "oom_kill -1\n", `malformed value in line "oom_kill -1"`},
		{"overflow", "max 18446744073709551616\n", `"max 18446744073709551616"`},
		{"key space only", "high \n", `malformed line "high"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseKeyed(tt.in)
			if err == nil {
				t.Fatalf("parseKeyed(%q) = %v, want an error", tt.in, got)
			}
			errorContains(t, err, tt.msg)
			if got != nil {
				t.Errorf("parseKeyed returned %v with its error", got)
			}
		})
	}
}

func TestMkdirCgroup(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	p := filepath.Join(tmp, "job")
	if err := mkdirCgroup(p); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		t.Fatalf("mkdirCgroup made no directory: %v", err)
	}
	if err := mkdirCgroup(p); !errors.Is(err, os.ErrExist) {
		t.Errorf("mkdirCgroup of an existing dir: %v, want ErrExist", err)
	}
	q := filepath.Join(tmp, "missing/job")
	err := mkdirCgroup(q)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Op != "mkdir" || fe.Path != q || !errors.Is(err, unix.ENOENT) {
		t.Errorf("mkdirCgroup with a missing parent: %#v", err)
	}
}

func TestReadPids(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	writeFiles(t, tmp, map[string]string{
		"ok/cgroup.procs":    "1\n42\n4194304\n",
		"empty/cgroup.procs": "",
		"bad/cgroup.procs":   "12\nzombie\n",
	})
	got, err := readPids(filepath.Join(tmp, "ok/cgroup.procs"))
	if err != nil || len(got) != 3 || got[0] != 1 || got[1] != 42 || got[2] != 4194304 {
		t.Errorf("readPids = %v, %v; want [1 42 4194304]", got, err)
	}
	got, err = readPids(filepath.Join(tmp, "empty/cgroup.procs"))
	if err != nil || len(got) != 0 {
		t.Errorf("readPids of an empty cgroup = %v, %v", got, err)
	}
	_, err = readPids(filepath.Join(tmp, "bad/cgroup.procs"))
	errorContains(t, err, filepath.Join(tmp, "bad/cgroup.procs"), `bad pid "zombie"`)
	_, err = readPids(filepath.Join(tmp, "none/cgroup.procs"))
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("readPids of a missing file: %v, want ENOENT", err)
	}
}

func TestPidList(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []int
		want string
	}{
		{[]int{7}, "pid 7"},
		{[]int{1, 2, 3, 4, 5}, "pid 1, 2, 3, 4, 5"},
		{[]int{1, 2, 3, 4, 5, 6, 7}, "pid 1, 2, 3, 4, 5, ..."},
	}
	for _, tt := range tests {
		if got := pidList(tt.in); got != tt.want {
			t.Errorf("pidList(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestHints(t *testing.T) {
	t.Parallel()
	for _, err := range []error{unix.EACCES, unix.EPERM, unix.EROFS, &FileError{Op: "write", Err: unix.EACCES}} {
		if h := permHint(err); !strings.Contains(h, "run it as root") {
			t.Errorf("permHint(%v) = %q", err, h)
		}
	}
	for _, err := range []error{nil, unix.ENOENT, errors.New("x")} {
		if h := permHint(err); h != "" {
			t.Errorf("permHint(%v) = %q, want none", err, h)
		}
	}
	for m, want := range map[Mode]string{
		ModeHybrid:  "systemd.unified_cgroup_hierarchy=1",
		ModeLegacy:  "cgroup v1 hierarchies",
		ModeNone:    "mount -t cgroup2",
		ModeUnified: "cgroup.subtree_control",
	} {
		if h := modeHint(m); !strings.Contains(h, want) {
			t.Errorf("modeHint(%v) = %q, want it to contain %q", m, h, want)
		}
	}
}

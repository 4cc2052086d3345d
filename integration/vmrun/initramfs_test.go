package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cpioEntry is one record read back from a newc archive.
type cpioEntry struct {
	name         string
	ino          uint32
	mode         uint32
	nlink        uint32
	rmajor       uint32
	rminor       uint32
	data         []byte
	headerOffset int
}

// readNewc parses a newc archive independently of the writer, checking the
// alignment rules the kernel relies on.
func readNewc(t *testing.T, b []byte) []cpioEntry {
	t.Helper()
	var out []cpioEntry
	off := 0
	for {
		if off%4 != 0 {
			t.Fatalf("header at offset %d is not 4-byte aligned", off)
		}
		if len(b)-off < newcHeaderLen {
			t.Fatalf("truncated header at offset %d", off)
		}
		h := b[off : off+newcHeaderLen]
		if string(h[:6]) != "070701" {
			t.Fatalf("bad magic %q at offset %d", h[:6], off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("bad hex field %d at offset %d: %v", i, off, err)
			}
			return uint32(v)
		}
		e := cpioEntry{ino: field(0), mode: field(1), nlink: field(4), rmajor: field(9), rminor: field(10), headerOffset: off}
		if uid, gid, mtime := field(2), field(3), field(5); uid != 0 || gid != 0 || mtime != 0 {
			t.Errorf("entry at %d: uid/gid/mtime = %d/%d/%d, want zeros", off, uid, gid, mtime)
		}
		size, nameSize := int(field(6)), int(field(11))
		nameStart := off + newcHeaderLen
		if b[nameStart+nameSize-1] != 0 {
			t.Fatalf("name at offset %d is not NUL-terminated", nameStart)
		}
		e.name = string(b[nameStart : nameStart+nameSize-1])
		dataStart := nameStart + nameSize
		dataStart += pad4(dataStart)
		e.data = b[dataStart : dataStart+size]
		off = dataStart + size
		off += pad4(off)
		if e.name == newcTrailerName {
			if off != len(b) {
				t.Errorf("%d bytes after the trailer", len(b)-off)
			}
			return out
		}
		out = append(out, e)
	}
}

func TestCPIOWriterRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	cw := newCPIOWriter(&buf)
	big := bytes.Repeat([]byte("0123456789"), 1000)
	steps := []error{
		cw.Dir("bin", 0o755),
		cw.Dir("/etc", 0o700),                  // leading slash is dropped
		cw.File("bin/a", 0o755, []byte("abc")), // odd size: needs padding
		cw.File("etc/empty", 0o644, nil),
		cw.File("etc/x", 0o600, []byte("four")),
		cw.FileFrom("bin/big", 0o644, int64(len(big)), bytes.NewReader(big)),
		cw.Symlink("bin/sh", "busybox"),
		cw.CharDev("dev/console", 0o600, 5, 1),
		cw.Close(),
		cw.Close(), // second Close is a no-op
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if err := cw.File("late", 0o644, nil); err == nil {
		t.Error("File after Close succeeded")
	}

	got := readNewc(t, buf.Bytes())
	want := []struct {
		name  string
		mode  uint32
		nlink uint32
		data  string
	}{
		{"bin", cpioDir | 0o755, 2, ""},
		{"etc", cpioDir | 0o700, 2, ""},
		{"bin/a", cpioRegular | 0o755, 1, "abc"},
		{"etc/empty", cpioRegular | 0o644, 1, ""},
		{"etc/x", cpioRegular | 0o600, 1, "four"},
		{"bin/big", cpioRegular | 0o644, 1, string(big)},
		{"bin/sh", cpioSymlink | 0o777, 1, "busybox"},
		{"dev/console", cpioCharDev | 0o600, 1, ""},
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d entries, want %d", len(got), len(want))
	}
	inos := map[uint32]bool{}
	for i, w := range want {
		g := got[i]
		if g.name != w.name || g.mode != w.mode || g.nlink != w.nlink || string(g.data) != w.data {
			t.Errorf("entry %d = {%q %o nlink=%d %d bytes}, want {%q %o nlink=%d %d bytes}",
				i, g.name, g.mode, g.nlink, len(g.data), w.name, w.mode, w.nlink, len(w.data))
		}
		if inos[g.ino] {
			t.Errorf("entry %q reuses inode %d", g.name, g.ino)
		}
		inos[g.ino] = true
	}
	if c := got[7]; c.rmajor != 5 || c.rminor != 1 {
		t.Errorf("dev/console rdev = %d:%d, want 5:1", c.rmajor, c.rminor)
	}
}

func TestCPIOWriterErrors(t *testing.T) {
	cw := newCPIOWriter(io.Discard)
	if err := cw.File("/", 0o644, nil); err == nil {
		t.Error("empty name accepted")
	}
	if err := cw.File(newcTrailerName, 0o644, nil); err == nil {
		t.Error("trailer name accepted")
	}
	if err := cw.FileFrom("short", 0o644, 10, strings.NewReader("abc")); err == nil {
		t.Error("short reader accepted")
	}
}

// TestCPIOExtractWithTool checks the archive against GNU cpio, an
// implementation other than ours.
func TestCPIOExtractWithTool(t *testing.T) {
	cpioBin, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("cpio not installed (apt-get install cpio)")
	}
	var buf bytes.Buffer
	cw := newCPIOWriter(&buf)
	for _, err := range []error{
		cw.Dir("d", 0o755),
		cw.Dir("d/sub", 0o750),
		cw.File("d/exe", 0o755, []byte("#!/bin/sh\necho hi\n")),
		cw.File("d/sub/data", 0o640, []byte{0, 1, 2, 0xff, '\n', '\r'}),
		cw.Symlink("d/link", "sub/data"),
		cw.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cmd := exec.Command(cpioBin, "-idv", "--no-absolute-filenames")
	cmd.Dir = dir
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idv: %v\n%s", err, out)
	}
	checkFile := func(name string, perm os.FileMode, data []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want regular %v", name, st.Mode(), perm)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, data) {
			t.Errorf("%s: content %q, want %q", name, got, data)
		}
	}
	checkFile("d/exe", 0o755, []byte("#!/bin/sh\necho hi\n"))
	checkFile("d/sub/data", 0o640, []byte{0, 1, 2, 0xff, '\n', '\r'})
	if st, err := os.Stat(filepath.Join(dir, "d/sub")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o750 {
		t.Errorf("d/sub: %v %v, want directory 0750", st.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "d/link")); err != nil || target != "sub/data" {
		t.Errorf("d/link -> %q (%v), want sub/data", target, err)
	}
}

// TestWriteInitramfs builds a whole image from fake inputs and checks the
// layout the VM depends on.
func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	spec := imageSpec{
		Busybox:  write("busybox", "BB"),
		Rsup:     write("rsup", "RSUP"),
		Test:     write("it.test", "TEST"),
		Testdata: filepath.Join(dir, "testdata"),
		Trees:    []tree{{Host: filepath.Join(dir, "corpus"), Guest: "/src/policy/testdata/bad"}},
		Modules:  []kmod{{Name: "brd", HostPath: write("brd.ko", "\x7fELF-brd"), Params: "rd_nr=1 rd_size=65536"}},
		Env:      []string{"A=b c"},
		Command:  []string{"/bin/integration.test", "-test.run=It's"},
		Nonce:    "vmrun-1234",
	}
	write("testdata/in.txt", "input")
	write("corpus/a.toml", "A")
	if err := os.Symlink("in.txt", filepath.Join(dir, "testdata/ln")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initramfs.cpio.gz")
	if err := writeInitramfs(out, spec); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]cpioEntry{}
	for _, e := range readNewc(t, raw) {
		if _, dup := entries[e.name]; dup {
			t.Errorf("duplicate entry %q", e.name)
		}
		// The kernel's unpacker makes no parent directories: each must
		// come first.
		if parent := path.Dir(e.name); parent != "." && e.name != "TRAILER!!!" {
			if _, ok := entries[parent]; !ok {
				t.Errorf("entry %q comes before its directory %q", e.name, parent)
			}
		}
		entries[e.name] = e
	}
	for name, want := range map[string]string{
		"bin/busybox":                     "BB",
		"bin/rsup":                        "RSUP",
		"bin/integration.test":            "TEST",
		"lib/modules/brd.ko":              "\x7fELF-brd",
		"src/integration/testdata/in.txt": "input",
		"src/integration/testdata/ln":     "in.txt",
		"src/policy/testdata/bad/a.toml":  "A",
	} {
		e, ok := entries[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if string(e.data) != want {
			t.Errorf("%s = %q, want %q", name, e.data, want)
		}
	}
	for _, name := range []string{"bin/busybox", "bin/rsup", "bin/integration.test", "init", "etc/vmrun/command.sh"} {
		if m := entries[name].mode; m != cpioRegular|0o755 {
			t.Errorf("%s mode %o, want %o", name, m, cpioRegular|0o755)
		}
	}
	for _, name := range []string{"proc", "sys", "dev", "tmp", "run", "src/integration"} {
		if entries[name].mode&cpioTypeMask != cpioDir {
			t.Errorf("%s is not a directory", name)
		}
	}
	if e := entries["dev/console"]; e.mode&cpioTypeMask != cpioCharDev || e.rmajor != 5 || e.rminor != 1 {
		t.Errorf("dev/console = mode %o rdev %d:%d, want char device 5:1", e.mode, e.rmajor, e.rminor)
	}
	if e := entries["src/integration/testdata/ln"]; e.mode&cpioTypeMask != cpioSymlink {
		t.Errorf("testdata/ln is not a symlink: mode %o", e.mode)
	}
	// Parents come before children, as the kernel needs.
	seen := map[string]bool{}
	for _, e := range readNewc(t, raw) {
		if parent := filepath.Dir(e.name); parent != "." && !seen[parent] {
			t.Errorf("%s comes before its directory %s", e.name, parent)
		}
		seen[e.name] = true
	}
	init := string(entries["init"].data)
	for _, want := range []string{
		"insmod /lib/modules/brd.ko rd_nr=1 rd_size=65536 ||",
		"mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup",
		"export 'A=b c'",
		"RSUP_BIN=/bin/rsup",
		"vmrun-1234",
		fmt.Sprintf("/bin/sh %s </dev/null >%s 2>&1", guestCommand, guestOutTTY),
	} {
		if !strings.Contains(init, want) {
			t.Errorf("/init lacks %q:\n%s", want, init)
		}
	}
}

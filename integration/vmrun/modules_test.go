package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fakeModuleTree lays out a /lib/modules/<ver> look-alike:
//
//	a.ko     (no deps)
//	b.ko.xz  -> a
//	c-x.ko.zst -> b, a   (name normalizes to c_x)
//	d.ko.gz  -> c-x, b, a
//	builtin: loop
func fakeModuleTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	mk := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	elfObj := func(name string) []byte { return []byte("\x7fELF" + name) }
	mk("kernel/a/a.ko", elfObj("a"))
	mk("kernel/b/b.ko.xz", compressWith(t, "xz", elfObj("b")))
	mk("kernel/c/c-x.ko.zst", compressWith(t, "zstd", elfObj("c")))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(elfObj("d"))
	zw.Close()
	mk("kernel/d/d.ko.gz", gz.Bytes())
	mk("modules.dep", []byte(strings.Join([]string{
		"kernel/a/a.ko:",
		"kernel/b/b.ko.xz: kernel/a/a.ko",
		"kernel/c/c-x.ko.zst: kernel/b/b.ko.xz kernel/a/a.ko",
		"kernel/d/d.ko.gz: kernel/c/c-x.ko.zst kernel/b/b.ko.xz kernel/a/a.ko",
		"",
	}, "\n")))
	mk("modules.builtin", []byte("kernel/drivers/block/loop.ko\n"))
	return dir
}

// compressWith runs the host tool; the test is skipped where it is missing
// (and the real module files would then be unusable too).
func compressWith(t *testing.T, tool string, data []byte) []byte {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not installed", tool)
	}
	cmd := exec.Command(tool, "-c")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c: %v", tool, err)
	}
	return out
}

func TestResolveModules(t *testing.T) {
	dir := fakeModuleTree(t)
	specs := []moduleSpec{
		{Name: "d", Params: "x=1"},
		{Name: "loop"},
		{Name: "b", Params: "late=1"}, // already pulled in by d
	}
	mods, builtin, err := resolveModules(dir, specs)
	if err != nil {
		t.Fatal(err)
	}
	var names, params []string
	for _, m := range mods {
		names = append(names, m.Name)
		params = append(params, m.Params)
	}
	if want := []string{"a", "b", "c_x", "d"}; !reflect.DeepEqual(names, want) {
		t.Errorf("load order %v, want %v", names, want)
	}
	if want := []string{"", "late=1", "", "x=1"}; !reflect.DeepEqual(params, want) {
		t.Errorf("params %q, want %q", params, want)
	}
	if want := []string{"loop"}; !reflect.DeepEqual(builtin, want) {
		t.Errorf("builtin %v, want %v", builtin, want)
	}
	for _, m := range mods {
		data, err := loadModuleFile(m.HostPath)
		if err != nil {
			t.Fatalf("loading %s: %v", m.HostPath, err)
		}
		want := "\x7fELF" + strings.TrimSuffix(m.Name, "_x")
		if string(data) != want {
			t.Errorf("%s decompressed to %q, want %q", m.HostPath, data, want)
		}
	}
}

func TestResolveModulesErrors(t *testing.T) {
	dir := fakeModuleTree(t)
	if _, _, err := resolveModules(dir, []moduleSpec{{Name: "nosuch"}}); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("unknown module: err = %v", err)
	}
	if _, _, err := resolveModules(t.TempDir(), []moduleSpec{{Name: "a"}}); err == nil || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("missing modules.dep: err = %v", err)
	}
	if mods, _, err := resolveModules(t.TempDir(), nil); err != nil || mods != nil {
		t.Errorf("no modules requested: %v %v", mods, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.ko")
	os.WriteFile(bad, []byte("not elf"), 0o644)
	if _, err := loadModuleFile(bad); err == nil {
		t.Error("non-ELF module accepted")
	}
}

func TestParseModuleSpec(t *testing.T) {
	for in, want := range map[string]moduleSpec{
		"brd":                  {Name: "brd", Params: "rd_nr=1 rd_size=65536"},
		"brd rd_nr=2":          {Name: "brd", Params: "rd_nr=2"},
		"  dm-mod  a=1  b  ":   {Name: "dm_mod", Params: "a=1 b"},
		"kernel/x/loop.ko.zst": {Name: "loop"},
	} {
		got, err := parseModuleSpec(in)
		if err != nil || got != want {
			t.Errorf("parseModuleSpec(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	if _, err := parseModuleSpec("  "); err == nil {
		t.Error("empty spec accepted")
	}
}

// fakeBzImage returns bytes with just enough of the x86 setup header for
// bzImageVersion.
func fakeBzImage(version string) []byte {
	b := make([]byte, 0x1000)
	copy(b[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(b[0x20e:], 0x300)
	copy(b[0x500:], version+" (builder@example) #1 SMP\x00")
	return b
}

func TestFindKernel(t *testing.T) {
	root := t.TempDir()
	boot, mods := filepath.Join(root, "boot"), filepath.Join(root, "lib/modules")
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64", "6.10.0-1-amd64"} {
		os.MkdirAll(boot, 0o755)
		os.WriteFile(filepath.Join(boot, "vmlinuz-"+v), fakeBzImage(v), 0o644)
	}
	// The newest kernel has no modules installed: it must be skipped.
	for _, v := range []string{"6.1.0-9-amd64", "6.1.0-56-amd64"} {
		os.MkdirAll(filepath.Join(mods, v), 0o755)
	}
	k, err := findKernel("", "", boot, mods)
	if err != nil {
		t.Fatal(err)
	}
	if k.Version != "6.1.0-56-amd64" || k.Path != filepath.Join(boot, "vmlinuz-6.1.0-56-amd64") || k.ModulesDir != filepath.Join(mods, "6.1.0-56-amd64") {
		t.Errorf("picked %+v", k)
	}

	// An explicit path gets its version from the header, not the name.
	odd := filepath.Join(root, "bzImage")
	os.WriteFile(odd, fakeBzImage("6.1.0-9-amd64"), 0o644)
	k, err = findKernel(odd, "", boot, mods)
	if err != nil || k.Version != "6.1.0-9-amd64" || k.ModulesDir != filepath.Join(mods, "6.1.0-9-amd64") {
		t.Errorf("explicit kernel: %+v, %v", k, err)
	}
	k, err = findKernel(odd, "/custom", boot, mods)
	if err != nil || k.ModulesDir != "/custom" {
		t.Errorf("-modules-dir override: %+v, %v", k, err)
	}

	if _, err := findKernel("", "", t.TempDir(), mods); err == nil || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("empty /boot: err = %v", err)
	}
	if _, err := findKernel(filepath.Join(root, "missing"), "", boot, mods); err == nil || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Errorf("missing kernel: err = %v", err)
	}
}

func TestVersionLess(t *testing.T) {
	ordered := []string{"5.10.0-1-amd64", "6.1.0-9-amd64", "6.1.0-56-amd64", "6.1.0-56-amd64a", "6.9.0", "6.10.0"}
	for i := range ordered {
		for j := range ordered {
			if got := versionLess(ordered[i], ordered[j]); got != (i < j) {
				t.Errorf("versionLess(%q, %q) = %v", ordered[i], ordered[j], got)
			}
		}
	}
}

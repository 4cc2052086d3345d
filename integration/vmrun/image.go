package main

import (
	"bufio"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// Paths inside the VM.
const (
	guestBusybox = "/bin/busybox"
	guestRsup    = "/bin/rsup"
	guestTest    = "/bin/integration.test"
	guestCommand = "/etc/vmrun/command.sh"
	guestWorkDir = "/src/integration" // like `go test`, run from the package dir
	guestOutTTY  = "/dev/ttyS1"       // command output, relayed to stdout
	guestCtlTTY  = "/dev/ttyS2"       // start/exit markers for the runner
)

// tree is a host directory copied into the image at Guest.
type tree struct{ Host, Guest string }

// imageSpec is everything that goes into the initramfs.
type imageSpec struct {
	Busybox  string // host path of a static busybox
	Rsup     string // host path of the static rsup binary
	Test     string // host path of the static integration test binary
	Testdata string // host dir copied to guestWorkDir/testdata, or ""
	// Trees are more host dirs to copy, each to its guest path.
	Trees   []tree
	Modules []kmod
	Env     []string // extra KEY=VALUE exported before the command
	Command []string // argv of the command, run from guestWorkDir
	Nonce   string   // marks lines on the control port as ours
}

// writeInitramfs writes the gzip-compressed newc archive for spec to path.
func writeInitramfs(path string, spec imageSpec) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	zw, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		f.Close()
		return err
	}
	err = fillImage(newCPIOWriter(zw), spec)
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing initramfs %s: %w", path, err)
	}
	return nil
}

func fillImage(cw *cpioWriter, spec imageSpec) error {
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys",
		"tmp", "run", "root", "mnt", "var", "var/tmp", "etc", "etc/vmrun", "lib", "lib/modules",
		"src", guestWorkDir[1:]} {
		if err := cw.Dir(d, 0o755); err != nil {
			return err
		}
	}
	// The kernel opens /dev/console for init before /init can mount devtmpfs.
	if err := cw.CharDev("dev/console", 0o600, 5, 1); err != nil {
		return err
	}
	for _, b := range []struct{ host, guest string }{
		{spec.Busybox, guestBusybox},
		{spec.Rsup, guestRsup},
		{spec.Test, guestTest},
	} {
		if err := addHostFile(cw, b.host, b.guest, 0o755); err != nil {
			return err
		}
	}
	for _, m := range spec.Modules {
		data, err := loadModuleFile(m.HostPath)
		if err != nil {
			return err
		}
		if err := cw.File("lib/modules/"+m.Name+".ko", 0o644, data); err != nil {
			return err
		}
	}
	if spec.Testdata != "" {
		if err := addTree(cw, spec.Testdata, guestWorkDir+"/testdata"); err != nil {
			return err
		}
	}
	made := map[string]bool{"src": true, guestWorkDir[1:]: true}
	for _, t := range spec.Trees {
		// The kernel's unpacker makes no parent directories.
		var parents []string
		for d := path.Dir(strings.TrimPrefix(t.Guest, "/")); d != "." && !made[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for _, d := range slices.Backward(parents) {
			if err := cw.Dir(d, 0o755); err != nil {
				return err
			}
			made[d] = true
		}
		if err := addTree(cw, t.Host, t.Guest); err != nil {
			return err
		}
	}
	files := []struct {
		name string
		mode fs.FileMode
		data string
	}{
		{"init", 0o755, initScript(spec)},
		{guestCommand, 0o755, commandScript(spec.Command)},
		{"etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		{"etc/group", 0o644, "root:x:0:\nnogroup:x:65534:\n"},
		{"etc/hostname", 0o644, "rsup-vm\n"},
	}
	for _, f := range files {
		if err := cw.File(f.name, f.mode, []byte(f.data)); err != nil {
			return err
		}
	}
	return cw.Close()
}

func addHostFile(cw *cpioWriter, host, guest string, perm fs.FileMode) error {
	f, err := os.Open(host)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", host)
	}
	return cw.FileFrom(guest, perm, st.Size(), f)
}

// addTree copies a host directory (regular files, directories, symlinks)
// into the archive under guest.
func addTree(cw *cpioWriter, host, guest string) error {
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(filepath.Join(guest, rel))
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return cw.Dir(name, info.Mode().Perm())
		case info.Mode().IsRegular():
			return addHostFile(cw, p, name, info.Mode().Perm())
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return cw.Symlink(name, target)
		}
		return nil // sockets, fifos, devices: not useful as test data
	})
}

// initScript is /init: it sets up a minimal cgroup-v2 system, runs the
// command with its output on guestOutTTY, reports start and exit status on
// guestCtlTTY, and powers off. Any setup failure is reported on guestCtlTTY
// as "<nonce> fail <reason>" so the runner can say what went wrong.
func initScript(spec imageSpec) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("#!/bin/busybox sh")
	w("/bin/busybox --install -s")
	w("export PATH=/bin:/sbin:/usr/bin:/usr/sbin")
	w("")
	w("ctl() { echo %s\" $*\" >%s; }", shQuote(spec.Nonce), guestCtlTTY)
	w("fail() {")
	w("\techo \"vmrun init: $*\" >/dev/console")
	w("\tctl fail \"$*\"")
	w("\tsync")
	w("\tpoweroff -f")
	w("}")
	w("")
	w("mount -t proc proc /proc || fail 'mount /proc'")
	w("mount -t sysfs sysfs /sys || fail 'mount /sys'")
	w("mount -t devtmpfs devtmpfs /dev || fail 'mount devtmpfs on /dev'")
	w("mkdir -p /dev/pts /dev/shm")
	w("mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts || fail 'mount /dev/pts'")
	w("mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail 'mount /dev/shm'")
	w("ln -sf /proc/self/fd /dev/fd")
	w("ln -sf /proc/self/fd/0 /dev/stdin")
	w("ln -sf /proc/self/fd/1 /dev/stdout")
	w("ln -sf /proc/self/fd/2 /dev/stderr")
	w("ln -sf /proc/self/mounts /etc/mtab")
	w("# The options systemd uses, so the hierarchy behaves as on a typical host.")
	w("mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup || fail 'mount cgroup2 on /sys/fs/cgroup'")
	w("mount -t tmpfs -o mode=1777 tmpfs /tmp || fail 'mount /tmp'")
	w("mount -t tmpfs -o mode=0755 tmpfs /run || fail 'mount /run'")
	w("hostname rsup-vm")
	w("ip link set lo up 2>/dev/null")
	w("")
	w("# Raw mode: no \\n -> \\r\\n translation and no echo, so output arrives verbatim.")
	w("stty -F %s raw -echo 115200 || fail 'stty %s'", guestOutTTY, guestOutTTY)
	w("stty -F %s raw -echo 115200 || fail 'stty %s'", guestCtlTTY, guestCtlTTY)
	w("")
	for _, m := range spec.Modules {
		args := []string{"insmod", "/lib/modules/" + m.Name + ".ko"}
		for _, p := range strings.Fields(m.Params) {
			args = append(args, shQuote(p))
		}
		w("%s || fail %s", strings.Join(args, " "), shQuote("insmod "+m.Name+" failed (see console log)"))
	}
	w("")
	w("export HOME=/tmp TMPDIR=/tmp RSUP_BIN=%s RSUP_VM=1", guestRsup)
	for _, kv := range spec.Env {
		w("export %s", shQuote(kv))
	}
	w("cd %s || fail 'cd %s'", guestWorkDir, guestWorkDir)
	w("")
	w("ctl start \"$(cut -d' ' -f1 /proc/uptime)\"")
	w("/bin/sh %s </dev/null >%s 2>&1", guestCommand, guestOutTTY)
	w("rc=$?")
	w("sync")
	w("ctl exit \"$rc\"")
	w("poweroff -f")
	w("fail 'poweroff -f returned'")
	return b.String()
}

// commandScript runs argv with each word quoted, so arguments reach the
// command exactly as given on the runner's command line.
func commandScript(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shQuote(a)
	}
	return "#!/bin/sh\nexec " + strings.Join(q, " ") + "\n"
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkStaticELF makes sure path is an x86-64 executable with no dynamic
// loader: the VM has no libc.
func checkStaticELF(path, what, fix string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s %s is not a usable ELF executable (%v); %s", what, path, err, fix)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s %s is built for %v, the VM is x86-64; %s", what, path, f.Machine, fix)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s %s is dynamically linked and the VM has no libc; %s", what, path, fix)
		}
	}
	return nil
}

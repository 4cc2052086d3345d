// Command vmrun runs rsup's integration tests, or any command, inside a
// small QEMU virtual machine that has a real cgroup v2 hierarchy.
//
// Usage, from the repository root (as root, since Debian's /boot/vmlinuz-*
// is readable by root only):
//
//	scripts/vm [flags]                                 # run the integration tests
//	scripts/vm [flags] -- CMD ARGS...                  # run a command instead
//	go run ./integration/vmrun [flags] [-- CMD ARGS...] # same, but see below
//
// `go run` reports every non-zero exit status as 1; scripts/vm builds vmrun
// and execs it so the status below reaches the caller unchanged.
//
// Examples:
//
//	scripts/vm -run 'TestCPUQuota|TestIOWriteThrottle'
//	scripts/vm -- rsup run --memory 64M -- sh -c 'echo hi'
//	scripts/vm -env GOTRACEBACK=all -module 'brd rd_nr=2 rd_size=32768' -- ls -l /dev/ram0 /dev/ram1
//
// It builds ./integration (go test -c -tags integration) and ./cmd/rsup
// statically, packs them with a static busybox and the needed kernel modules
// into an initramfs, and boots the host's Debian kernel with it. In the VM,
// cgroup2 is mounted on /sys/fs/cgroup, brd provides a 64 MiB /dev/ram0, and
// the command runs as root in /src/integration (holding a copy of
// ./integration/testdata, if any) with RSUP_BIN=/bin/rsup, RSUP_VM=1,
// HOME and TMPDIR set to /tmp and PATH=/bin:/sbin:/usr/bin:/usr/sbin.
//
// Arguments after -- are the command's argv, quoted word by word; for shell
// syntax use `-- sh -c '...'`. Its stdin is /dev/null. Without --, the
// command is /bin/integration.test -test.v with -test.timeout a little
// below -timeout (so Go's own timeout report comes first) and -test.run from
// -run.
//
// The command's stdout and stderr are copied to vmrun's stdout byte for
// byte (serial port ttyS1 in raw mode). Kernel messages go to a console log
// file instead (ttyS0); vmrun's own messages, prefixed "vmrun:", go to
// stderr, ending with a line such as
//
//	vmrun: VM booted in 10.5s (guest uptime 4.40s), command ran 57.9s, total 68.4s, exit 1
//
// /init reports the command's start and exit status on a third port
// (ttyS2), tagged with a per-run random token.
//
// Exit status: the command's own exit status when it ran to completion in
// the VM; 3 when the VM failed (qemu or kernel missing, boot failure, qemu
// exiting early, timeout, interrupt), always with a final one-line
// "vmrun: FAIL: ..." reason on stderr, after the tail of the console log
// once the VM has started; 2 for bad flags. A command exiting 3 itself is
// told apart by the absence of that FAIL line.
//
// Packages needed on the host: qemu-system-x86, linux-image-amd64,
// busybox-static (plus xz-utils or zstd if the kernel's modules are
// compressed that way). TCG emulation is the default; use -accel kvm or
// RSUP_VM_ACCEL=kvm on hosts where KVM works.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

const (
	exitVMFailure = 3
	exitUsage     = 2
)

type config struct {
	accel       string
	memMiB      int
	cpus        int
	timeout     time.Duration
	bootTimeout time.Duration
	kernel      string
	modulesDir  string
	modules     []string
	busybox     string
	qemu        string
	cpuModel    string
	testBinary  string
	rsupBinary  string
	testdata    string
	trees       []tree
	run         string
	env         []string
	appendArgs  string
	consoleLog  string
	keep        bool
	verbose     bool
	command     []string
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseFlags(args []string) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("vmrun", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run ./integration/vmrun [flags] [-- COMMAND [ARGS...]]\n\n"+
			"Boots a QEMU VM with cgroup v2 and runs the rsup integration tests (or COMMAND) in it.\n"+
			"Exit status: the command's, or %d if the VM itself failed.\n\nflags:\n", exitVMFailure)
		fs.PrintDefaults()
	}
	defAccel := os.Getenv("RSUP_VM_ACCEL")
	if defAccel == "" {
		defAccel = "tcg"
	}
	var modules, env listFlag
	fs.StringVar(&cfg.accel, "accel", defAccel, "QEMU accelerator: tcg or kvm (default from $RSUP_VM_ACCEL, else tcg)")
	fs.IntVar(&cfg.memMiB, "mem", 1024, "VM memory in MiB")
	fs.IntVar(&cfg.cpus, "smp", 2, "number of vCPUs")
	fs.DurationVar(&cfg.timeout, "timeout", 12*time.Minute, "limit for the VM run, boot included (building is not counted)")
	fs.DurationVar(&cfg.bootTimeout, "boot-timeout", 3*time.Minute, "limit for the VM to boot and start the command")
	fs.StringVar(&cfg.kernel, "kernel", "", "kernel bzImage (default: newest /boot/vmlinuz-* with a matching /lib/modules dir)")
	fs.StringVar(&cfg.modulesDir, "modules-dir", "", "kernel module tree (default /lib/modules/<kernel version>)")
	fs.Var(&modules, "module", "kernel module to load, as `NAME[ param=value...]`; repeatable; replaces the default list (brd)")
	fs.StringVar(&cfg.busybox, "busybox", "/bin/busybox", "static busybox binary (from busybox-static)")
	fs.StringVar(&cfg.qemu, "qemu", "qemu-system-x86_64", "qemu binary")
	fs.StringVar(&cfg.cpuModel, "cpu", "", "QEMU CPU model (default: max with tcg, host with kvm)")
	fs.StringVar(&cfg.testBinary, "test-binary", "", "prebuilt static integration test binary (default: build ./integration)")
	fs.StringVar(&cfg.rsupBinary, "rsup-binary", "", "prebuilt static rsup binary (default: build ./cmd/rsup)")
	fs.StringVar(&cfg.testdata, "testdata", "", "directory copied to /src/integration/testdata (default: ./integration/testdata if present)")
	fs.StringVar(&cfg.run, "run", "", "only run tests matching `REGEX` (passed as -test.run)")
	fs.Var(&env, "env", "export `KEY=VALUE` to the command; repeatable")
	fs.StringVar(&cfg.appendArgs, "append", "", "extra kernel command line arguments")
	fs.StringVar(&cfg.consoleLog, "console-log", "", "write the kernel console log to this file and keep it (default: a temp file, kept only on failure or non-zero exit)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work directory (initramfs, built binaries)")
	fs.BoolVar(&cfg.verbose, "v", false, "print the qemu command line and other details")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.command = fs.Args()
	cfg.env = env
	if len(modules) == 0 {
		modules = listFlag{"brd"}
	}
	cfg.modules = modules

	switch cfg.accel {
	case "tcg", "kvm":
	default:
		return nil, fmt.Errorf("-accel %q: want tcg or kvm", cfg.accel)
	}
	if cfg.memMiB < 128 {
		return nil, fmt.Errorf("-mem %d: want at least 128 (MiB)", cfg.memMiB)
	}
	if cfg.cpus < 1 {
		return nil, fmt.Errorf("-smp %d: want at least 1", cfg.cpus)
	}
	if cfg.timeout <= 0 || cfg.bootTimeout <= 0 {
		return nil, errors.New("-timeout and -boot-timeout must be positive")
	}
	if cfg.run != "" && len(cfg.command) > 0 {
		return nil, errors.New("-run only applies to the default test command; with -- COMMAND pass test flags yourself")
	}
	for _, kv := range cfg.env {
		if !envKey.MatchString(kv) {
			return nil, fmt.Errorf("-env %q: want KEY=VALUE with KEY a shell variable name", kv)
		}
	}
	return cfg, nil
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// testTimeout leaves the go test binary time to report its own timeout
// (with goroutine dumps) before the runner kills the VM.
func testTimeout(total time.Duration) time.Duration {
	margin := min(max(total/4, 30*time.Second), 90*time.Second)
	if total <= 2*margin {
		return total / 2
	}
	return total - margin
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vmrun: "+format+"\n", args...)
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "vmrun: %v\n", err)
		os.Exit(exitUsage)
	}
	os.Exit(run(cfg))
}

// failure is a VM-level failure: a reason line, plus where to look.
type failure struct {
	reason     string
	consoleLog string
	qemuOutput string
}

func (f *failure) report() int {
	if f.consoleLog != "" {
		lines, err := tailLines(f.consoleLog, 40)
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "vmrun: cannot read the console log: %v\n", err)
		case len(lines) == 0:
			fmt.Fprintf(os.Stderr, "vmrun: the console log is empty: the kernel printed nothing (still decompressing, or qemu failed before it ran)\n")
		default:
			fmt.Fprintf(os.Stderr, "vmrun: last %d lines of the console log %s:\n", len(lines), f.consoleLog)
			for _, l := range lines {
				fmt.Fprintf(os.Stderr, "  | %s\n", l)
			}
		}
	}
	if out := strings.TrimSpace(f.qemuOutput); out != "" {
		fmt.Fprintf(os.Stderr, "vmrun: qemu said:\n%s\n", out)
	}
	reason := f.reason
	if f.consoleLog != "" {
		reason += " (console log: " + f.consoleLog + ")"
	}
	fmt.Fprintf(os.Stderr, "vmrun: FAIL: %s\n", reason)
	return exitVMFailure
}

func fail(format string, args ...any) int {
	return (&failure{reason: fmt.Sprintf(format, args...)}).report()
}

func run(cfg *config) int {
	// Catch signals from the start so an interrupt during the build also
	// ends in a clean exit; while qemu runs they are forwarded as a kill.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	// Check the host before the slow builds.
	qemu, err := exec.LookPath(cfg.qemu)
	if err != nil {
		return fail("%s not found: install it with `apt-get install qemu-system-x86` (or pass -qemu)", cfg.qemu)
	}
	if cfg.accel == "kvm" {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return fail("-accel kvm needs /dev/kvm: %v; use -accel tcg", err)
		}
		f.Close()
	}
	kernel, err := findKernel(cfg.kernel, cfg.modulesDir, "/boot", "/lib/modules")
	if err != nil {
		return fail("%v", err)
	}
	if err := checkStaticELF(cfg.busybox, "busybox", "install the static build with `apt-get install busybox-static` (or pass -busybox)"); err != nil {
		return fail("%v", err)
	}
	var specs []moduleSpec
	for _, m := range cfg.modules {
		s, err := parseModuleSpec(m)
		if err != nil {
			return fail("%v", err)
		}
		specs = append(specs, s)
	}
	mods, builtin, err := resolveModules(kernel.ModulesDir, specs)
	if err != nil {
		return fail("%v", err)
	}
	if len(builtin) > 0 && cfg.verbose {
		logf("built into the kernel, not loading: %s", strings.Join(builtin, " "))
	}

	work, err := os.MkdirTemp("", "rsup-vmrun-")
	if err != nil {
		return fail("creating a work directory: %v", err)
	}
	if cfg.keep {
		logf("keeping work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}

	if err := buildBinaries(cfg, work); err != nil {
		return fail("%v", err)
	}
	for _, b := range []struct{ path, what, fix string }{
		{cfg.testBinary, "test binary", "build it with CGO_ENABLED=0"},
		{cfg.rsupBinary, "rsup binary", "build it with CGO_ENABLED=0"},
	} {
		if err := checkStaticELF(b.path, b.what, b.fix); err != nil {
			return fail("%v", err)
		}
	}

	command := cfg.command
	if len(command) == 0 {
		command = []string{guestTest, "-test.v", "-test.timeout=" + testTimeout(cfg.timeout).String()}
		if cfg.run != "" {
			command = append(command, "-test.run="+cfg.run)
		}
	}
	nonceBytes := make([]byte, 8)
	rand.Read(nonceBytes)
	nonce := "vmrun-" + hex.EncodeToString(nonceBytes)

	initrd := filepath.Join(work, "initramfs.cpio.gz")
	t0 := time.Now()
	err = writeInitramfs(initrd, imageSpec{
		Busybox:  cfg.busybox,
		Rsup:     cfg.rsupBinary,
		Test:     cfg.testBinary,
		Testdata: cfg.testdata,
		Trees:    cfg.trees,
		Modules:  mods,
		Env:      cfg.env,
		Command:  command,
		Nonce:    nonce,
	})
	if err != nil {
		return fail("%v", err)
	}
	if cfg.verbose {
		if st, err := os.Stat(initrd); err == nil {
			logf("initramfs %s: %.1f MiB in %.1fs", initrd, float64(st.Size())/(1<<20), time.Since(t0).Seconds())
		}
	}

	consoleLog := cfg.consoleLog
	if consoleLog == "" {
		f, err := os.CreateTemp("", "rsup-vmrun-console-*.log")
		if err != nil {
			return fail("creating the console log: %v", err)
		}
		f.Close()
		consoleLog = f.Name()
	}
	select {
	case sig := <-sigs:
		return fail("interrupted by %s before the VM started", signalName(sig))
	default:
	}

	modNames := make([]string, len(mods))
	for i, m := range mods {
		modNames[i] = m.Name
	}
	logf("booting %s (%s, %d vCPUs, %d MiB; modules: %s)", kernel.Path, cfg.accel, cfg.cpus, cfg.memMiB, strings.Join(modNames, " "))
	vm := &vmRun{
		Qemu:        qemu,
		Accel:       cfg.accel,
		CPUModel:    cfg.cpuModel,
		MemMiB:      cfg.memMiB,
		CPUs:        cfg.cpus,
		Kernel:      kernel.Path,
		Initrd:      initrd,
		Append:      cfg.appendArgs,
		ConsoleLog:  consoleLog,
		Nonce:       nonce,
		Stdout:      os.Stdout,
		Timeout:     cfg.timeout,
		BootTimeout: cfg.bootTimeout,
		Signals:     sigs,
		Verbose:     cfg.verbose,
	}
	res := vm.run()
	if res.Failure != "" {
		return (&failure{reason: res.Failure, consoleLog: consoleLog, qemuOutput: res.QemuStderr}).report()
	}
	logf("VM booted in %.1fs (guest uptime %ss), command ran %.1fs, total %.1fs, exit %d",
		res.Boot.Seconds(), res.GuestUptime, res.Command.Seconds(), res.Total.Seconds(), res.ExitCode)
	switch {
	case res.ExitCode != 0:
		logf("kernel console log (OOM kills and other kernel messages): %s", consoleLog)
	case cfg.consoleLog == "":
		os.Remove(consoleLog)
	}
	return res.ExitCode
}

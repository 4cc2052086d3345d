//go:build integration

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// helperEnv selects a helper mode when the test binary is re-run as a job's
// command.
const helperEnv = "RSUP_IT_HELPER"

// runHelper runs one helper mode and returns its exit status.
func runHelper(mode string, args []string) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
		return 3
	}
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	switch mode {
	case "cgroup":
		cg, err := ownCgroup()
		if err != nil {
			return fail(err)
		}
		fmt.Println("cgroup", cg)
	case "fork":
		// Print this process's cgroup, then start N children at once
		// that print theirs.
		n, _ := strconv.Atoi(arg(0))
		cg, err := ownCgroup()
		if err != nil {
			return fail(err)
		}
		fmt.Println("cgroup", cg)
		var wg sync.WaitGroup
		var mu sync.Mutex
		errs := 0
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := exec.Command(testBinOrSelf())
				c.Env = append(os.Environ(), helperEnv+"=cgroup")
				out, err := c.Output()
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs++
					return
				}
				os.Stdout.Write(out)
			}()
		}
		wg.Wait()
		if errs > 0 {
			return fail(fmt.Errorf("%d children failed", errs))
		}
	case "files":
		// Print the job's limit files as the kernel reports them.
		cg, err := ownCgroup()
		if err != nil {
			return fail(err)
		}
		for _, f := range args {
			b, err := os.ReadFile("/sys/fs/cgroup" + cg + "/" + f)
			if err != nil {
				fmt.Printf("%s: %v\n", f, err)
				continue
			}
			fmt.Printf("%s: %s\n", f, strings.TrimSpace(string(b)))
		}
	case "owner":
		cg, err := ownCgroup()
		if err != nil {
			return fail(err)
		}
		buf := make([]byte, 128)
		n, err := unix.Getxattr("/sys/fs/cgroup"+cg, "user.rsup.owner", buf)
		if err != nil {
			return fail(err)
		}
		fmt.Printf("owner %s\n", buf[:n])
	case "alloc":
		// Touch SIZE bytes of anonymous memory, 1 MiB at a time.
		l, err := cgroup.ParseBytes(arg(0))
		if err != nil {
			return fail(err)
		}
		const chunk = 1 << 20
		for done := uint64(0); done < l.N; done += chunk {
			b, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
			if err != nil {
				return fail(err)
			}
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			if (done/chunk)%16 == 15 {
				fmt.Printf("touched %d MiB\n", (done+chunk)>>20)
			}
		}
		fmt.Println("allocated all", arg(0))
	case "spin":
		// Spin N threads for DURATION, then report cpu time / wall time.
		n, _ := strconv.Atoi(arg(0))
		d, _ := time.ParseDuration(arg(1))
		start := time.Now()
		spinThreads(n, start.Add(d))()
		wall := time.Since(start)
		var ru unix.Rusage
		_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		fmt.Printf("spin: threads=%d cpu=%.3fs wall=%.3fs ratio=%.3f\n", n, cpu.Seconds(), wall.Seconds(), cpu.Seconds()/wall.Seconds())
	case "forkbomb":
		return forkbomb(arg(0))
	case "odirect":
		return odirectWrite(arg(0), arg(1))
	case "daemonize":
		// Leave a setsid'd, double-forked daemon behind and exit.
		c := exec.Command(testBinOrSelf(), arg(0))
		c.Env = append(os.Environ(), helperEnv+"=daemon-mid")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		c.Stdout = os.Stdout // the daemon keeps rsup's stdout open
		if err := c.Run(); err != nil {
			return fail(err)
		}
		// Exit only once the daemon is up, so that it is a leftover and
		// not killed while still starting.
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(arg(0)); err == nil {
				fmt.Println("daemonized")
				return 0
			}
		}
		return fail(errors.New("daemon did not write its pid file"))
	case "daemon-mid":
		c := exec.Command(testBinOrSelf(), arg(0))
		c.Env = append(os.Environ(), helperEnv+"=daemon")
		c.Stdout = os.Stdout
		if err := c.Start(); err != nil {
			return fail(err)
		}
		// Exit without waiting: the daemon is orphaned.
	case "daemon":
		if err := os.WriteFile(arg(0), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			return fail(err)
		}
		time.Sleep(5 * time.Minute)
	case "raise":
		return raise(arg(0))
	case "signals":
		return echoSignals()
	case "alloc-on":
		// Wait for FILE to exist, then touch SIZE bytes.
		for {
			if _, err := os.Stat(arg(0)); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		return runHelper("alloc", args[1:])
	case "sleep":
		d, _ := time.ParseDuration(arg(0))
		time.Sleep(d)
	case "session":
		// Play an interactive shell: start the command (args 1..) in its
		// own process group, in the terminal's foreground, write its pid
		// to the file in arg 0, and wait for it.
		c := exec.Command(args[1], args[2:]...)
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
		if err := c.Start(); err != nil {
			return fail(err)
		}
		if err := os.WriteFile(arg(0), []byte(strconv.Itoa(c.Process.Pid)), 0o644); err != nil {
			return fail(err)
		}
		err := c.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			return fail(err)
		}
	case "stepper":
		return stepper()
	case "exec":
		return execArgs(args)
	case "ro-cgroup":
		// In a new mount namespace: make the cgroup file system read-only,
		// then run the command.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			return fail(err)
		}
		if err := unix.Mount("/sys/fs/cgroup", "/sys/fs/cgroup", "", unix.MS_BIND, ""); err != nil {
			return fail(err)
		}
		if err := unix.Mount("", "/sys/fs/cgroup", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fail(err)
		}
		return execArgs(args)
	case "ns-holder":
		return nsHolder(args)
	case "ns-run":
		return nsRun(args)
	case "policy-job":
		// A scripted job for the policy tests (policy_test.go).
		return policyJob(args)
	case "sig-rec-mid":
		return sigRecMid(arg(0))
	case "sig-rec":
		return sigRec(arg(0))
	case "cgroups-v1":
		// Print every line of /proc/self/cgroup (all hierarchies), then
		// start N children at once that print theirs (v1_test.go).
		return v1CgroupsHelper(arg(0))
	case "files-v1":
		// Print cgroup v1 interface files of this process's own
		// directories, found through /proc/self/cgroup (v1_test.go).
		return v1FilesHelper(args)
	default:
		return fail(errors.New("unknown helper mode"))
	}
	return 0
}

// execArgs replaces the helper with args, without the helper variable.
// spinThreads keeps n threads busy until end; the returned function waits
// for them.
func spinThreads(n int, end time.Time) (wait func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			x := 0
			for time.Now().Before(end) {
				for range 10000 {
					x++
				}
			}
			_ = x
		}()
	}
	return wg.Wait
}

func execArgs(args []string) int {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, helperEnv+"=") {
			env = append(env, kv)
		}
	}
	err := unix.Exec(args[0], args, env)
	fmt.Fprintln(os.Stderr, "exec:", err)
	return 3
}

func testBinOrSelf() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "/proc/self/exe"
}

// ownCgroup returns this process's cgroup v2 path from /proc/self/cgroup.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line in /proc/self/cgroup: %q", b)
}

// forkbomb starts /bin/sleep children until N attempts were made, and
// counts how many the kernel refused with EAGAIN. It creates its spare
// threads first, so that the Go runtime does not need a new thread once the
// pids limit is reached.
func forkbomb(attempts string) int {
	n, _ := strconv.Atoi(attempts)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			time.Sleep(50 * time.Millisecond)
		}()
	}
	wg.Wait()
	started, eagain, other := 0, 0, 0
	var firstErr error
	devnull, _ := os.Open(os.DevNull)
	for range n {
		p, err := os.StartProcess("/bin/sleep", []string{"sleep", "300"}, &os.ProcAttr{Files: []*os.File{devnull, devnull, devnull}})
		switch {
		case err == nil:
			started++
			_ = p.Release()
		case errors.Is(err, unix.EAGAIN):
			eagain++
		default:
			other++
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	fmt.Printf("forkbomb: attempts=%d started=%d eagain=%d other=%d first_other=%v\n", n, started, eagain, other, firstErr)
	return 0
}

// odirectWrite writes SIZE bytes to DEV with O_DIRECT, 1 MiB per write,
// and reports the rate.
func odirectWrite(dev, size string) int {
	l, err := cgroup.ParseBytes(size)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fd, err := unix.Open(dev, unix.O_WRONLY|unix.O_CREAT|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open", dev, err)
		return 3
	}
	defer unix.Close(fd)
	const chunk = 1 << 20
	// mmap'd memory is page aligned, as O_DIRECT needs.
	buf, err := unix.Mmap(-1, 0, chunk, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	for i := range buf {
		buf[i] = byte(i)
	}
	start := time.Now()
	var written uint64
	for written < l.N {
		n, err := unix.Pwrite(fd, buf, int64(written))
		if err != nil {
			fmt.Fprintln(os.Stderr, "write", dev, err)
			return 3
		}
		written += uint64(n)
	}
	el := time.Since(start)
	fmt.Printf("odirect: wrote %d bytes in %.3fs (%.0f B/s)\n", written, el.Seconds(), float64(written)/el.Seconds())
	return 0
}

// raise dies by the named signal with the default action, bypassing the
// Go runtime's handlers (which turn SIGQUIT, SIGSEGV and SIGABRT into exit
// status 2). A shell cannot do this for SIGQUIT: ash, like bash, ignores it.
func raise(name string) int {
	sig := unix.SignalNum(name)
	if sig == 0 {
		fmt.Fprintln(os.Stderr, "raise: unknown signal", name)
		return 3
	}
	_ = unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	runtime.LockOSThread()
	// struct kernel_sigaction on amd64: handler, flags, restorer, mask;
	// all zero is SIG_DFL. SIGKILL cannot be changed and needs no change.
	var act [4]uint64
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	var set unix.Sigset_t
	set.Val[0] = 1 << (uint(sig) - 1)
	_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
	_ = unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
	time.Sleep(5 * time.Second)
	fmt.Fprintln(os.Stderr, "raise: still alive after", name)
	return 3
}

// echoSignals prints each forwarded signal it receives, and exits after
// SIGTERM once late duplicates had time to arrive.
func echoSignals() int {
	c := make(chan os.Signal, 64)
	signal.Notify(c, unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH, unix.SIGCHLD)
	fmt.Println("ready")
	var deadline <-chan time.Time
	for {
		select {
		case s := <-c:
			fmt.Printf("got %s\n", unix.SignalName(s.(unix.Signal)))
			if s == unix.SIGTERM && deadline == nil {
				deadline = time.After(300 * time.Millisecond)
			}
		case <-deadline:
			fmt.Println("done")
			return 0
		case <-time.After(60 * time.Second):
			fmt.Println("timeout")
			return 4
		}
	}
}

// stepper holds memory and spins as told on stdin, one command a line:
// "mem MiB" and "duty PERCENT" (of one CPU); it answers "ok" to each.
func stepper() int {
	var held [][]byte
	var duty atomic.Int64
	go func() {
		runtime.LockOSThread()
		for {
			d := duty.Load()
			if d == 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			start := time.Now()
			for time.Since(start) < time.Duration(d)*100*time.Microsecond {
			}
			time.Sleep(time.Duration(100-d) * 100 * time.Microsecond)
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			fmt.Println("bad command")
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "mem":
			// Shrink or grow what is held, never both, so the job never
			// dips below either level on the way.
			for len(held) > n {
				_ = unix.Munmap(held[len(held)-1])
				held = held[:len(held)-1]
			}
			for len(held) < n {
				b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
				if err != nil {
					fmt.Println("mmap:", err)
					return 3
				}
				for i := 0; i < len(b); i += 4096 {
					b[i] = 1
				}
				held = append(held, b)
			}
		case "duty":
			duty.Store(int64(n))
		}
		fmt.Println("ok")
	}
	return 0
}

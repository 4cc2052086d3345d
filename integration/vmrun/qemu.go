package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// vmRun describes one boot.
type vmRun struct {
	Qemu        string // qemu-system-x86_64 binary
	Accel       string // "tcg" or "kvm"
	CPUModel    string // -cpu value; empty for the accelerator's default
	MemMiB      int
	CPUs        int
	Kernel      string
	Initrd      string
	Append      string // extra kernel command line
	ConsoleLog  string // host file receiving ttyS0 (kernel console + init messages)
	Nonce       string
	Stdout      io.Writer     // receives ttyS1, the command's output, verbatim
	Timeout     time.Duration // whole VM, boot included
	BootTimeout time.Duration // until /init starts the command
	Signals     <-chan os.Signal
	Verbose     bool
}

// vmResult is what a run produced. Failure is empty when the command ran to
// completion in the VM; ExitCode is then its exit status.
type vmResult struct {
	ExitCode    int
	Failure     string
	Boot        time.Duration // qemu start until /init starts the command
	Command     time.Duration // command start until its exit status arrived
	Total       time.Duration // qemu start until qemu exit
	GuestUptime string        // guest's /proc/uptime when the command started
	QemuStderr  string
}

// ctlEvent is one line on the control port.
type ctlEvent struct {
	at   time.Time
	kind string // "start", "exit" or "fail"
	arg  string
}

func qemuArgs(r *vmRun) []string {
	accel, cpu := "tcg,thread=multi", "max"
	if r.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	if r.CPUModel != "" {
		cpu = r.CPUModel
	}
	cmdline := "console=ttyS0,115200 panic=-1 rdinit=/init"
	if r.Append != "" {
		cmdline += " " + r.Append
	}
	return []string{
		"-accel", accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(r.MemMiB),
		"-smp", strconv.Itoa(r.CPUs),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-monitor", "none",
		"-nic", "none",
		"-no-reboot",
		"-kernel", r.Kernel,
		"-initrd", r.Initrd,
		"-append", cmdline,
		// ttyS0: kernel console, to a log file.
		"-chardev", "file,id=console,path=" + qemuEscape(r.ConsoleLog),
		"-serial", "chardev:console",
		// ttyS1: command output, to our pipe on fd 3.
		"-chardev", "file,id=out,path=/dev/fd/3",
		"-serial", "chardev:out",
		// ttyS2: start/exit markers, to our pipe on fd 4.
		"-chardev", "file,id=ctl,path=/dev/fd/4",
		"-serial", "chardev:ctl",
	}
}

// qemuEscape doubles commas, qemu's escape inside option values.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// run boots the VM and waits for the command's exit status, a failure, the
// timeout or a signal. qemu runs in its own process group, which is killed
// on every path out.
func (r *vmRun) run() (res vmResult) {
	outR, outW, err := os.Pipe()
	if err != nil {
		res.Failure = "creating the output pipe: " + err.Error()
		return res
	}
	defer outR.Close()
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		outW.Close()
		res.Failure = "creating the control pipe: " + err.Error()
		return res
	}
	defer ctlR.Close()

	args := qemuArgs(r)
	if r.Verbose {
		logf("running %s %s", r.Qemu, strings.Join(quoteAll(args), " "))
	}
	var qemuOut bytes.Buffer
	cmd := exec.Command(r.Qemu, args...)
	cmd.Stdout = &qemuOut
	cmd.Stderr = &qemuOut
	cmd.ExtraFiles = []*os.File{outW, ctlW} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err = cmd.Start()
	outW.Close()
	ctlW.Close()
	if err != nil {
		res.Failure = fmt.Sprintf("starting %s: %v", r.Qemu, err)
		return res
	}

	relayed := make(chan struct{})
	go func() {
		relay(r.Stdout, outR)
		close(relayed)
	}()
	events := make(chan ctlEvent, 8)
	go readControl(ctlR, r.Nonce, events)
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()

	pgid := cmd.Process.Pid
	stop := func() {
		// qemu exits cleanly on SIGTERM; SIGKILL the group if it lingers.
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	defer func() {
		res.Total = time.Since(start)
		res.QemuStderr = qemuOut.String()
		select {
		case <-relayed:
		case <-time.After(5 * time.Second):
			if res.Failure == "" {
				res.Failure = "command output did not reach end-of-file after qemu exited"
			}
		}
	}()

	bootTimer := time.NewTimer(r.BootTimeout)
	defer bootTimer.Stop()
	deadline := time.NewTimer(r.Timeout)
	defer deadline.Stop()
	var powerOff <-chan time.Time // armed once the exit status is in
	var cmdStart time.Time
	started, finished := false, false

	handle := func(ev ctlEvent) (done bool) {
		switch ev.kind {
		case "start":
			started = true
			cmdStart = ev.at
			res.Boot = ev.at.Sub(start)
			res.GuestUptime = ev.arg
			bootTimer.Stop()
		case "exit":
			code, err := strconv.Atoi(ev.arg)
			if err != nil || !started {
				res.Failure = fmt.Sprintf("garbled exit marker %q from the VM", ev.arg)
				return true
			}
			finished = true
			res.ExitCode = code
			res.Command = ev.at.Sub(cmdStart)
			powerOff = time.After(15 * time.Second)
		case "fail":
			res.Failure = "VM setup failed in /init: " + ev.arg
			return true
		}
		return false
	}

	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil // qemu closed the port; wait for it to exit
				continue
			}
			if handle(ev) {
				stop()
				return res
			}
		case <-exited:
			// The last markers may still be in the pipe: read to its end.
			if events != nil {
				for ev := range events {
					if handle(ev) {
						return res
					}
				}
			}
			switch {
			case finished:
			case !started:
				res.Failure = fmt.Sprintf("qemu exited (%s) before the VM started the command: the kernel or /init failed to boot", exitDesc(waitErr))
			default:
				res.Failure = fmt.Sprintf("qemu exited (%s) while the command was running, with no exit status: the guest kernel panicked or powered off", exitDesc(waitErr))
			}
			return res
		case <-powerOff:
			logf("warning: the VM did not power off 15s after the command exited; killing qemu")
			stop()
			return res
		case <-bootTimer.C:
			if !started {
				stop()
				res.Failure = fmt.Sprintf("VM did not start the command within -boot-timeout %v: kernel boot hung or is too slow (try a larger -boot-timeout)", r.BootTimeout)
				return res
			}
		case <-deadline.C:
			stop()
			if finished {
				return res
			}
			if started {
				res.Failure = fmt.Sprintf("timed out after -timeout %v, the command still running after %.0fs; killed qemu", r.Timeout, time.Since(cmdStart).Seconds())
			} else {
				res.Failure = fmt.Sprintf("timed out after -timeout %v before the VM started the command; killed qemu", r.Timeout)
			}
			return res
		case sig := <-r.Signals:
			stop()
			res.Failure = fmt.Sprintf("interrupted by %s; killed qemu", signalName(sig))
			return res
		}
	}
}

// readControl parses "<nonce> <kind> [arg]" lines; anything else (such as
// a stray byte from a port reset) is ignored. It closes events at EOF.
func readControl(r io.Reader, nonce string, events chan<- ctlEvent) {
	defer close(events)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if ev, ok := parseControl(sc.Text(), nonce); ok {
			ev.at = time.Now()
			events <- ev
		}
	}
}

func parseControl(line, nonce string) (ctlEvent, bool) {
	line = strings.TrimSpace(strings.ReplaceAll(line, "\r", ""))
	i := strings.Index(line, nonce+" ")
	if i < 0 {
		return ctlEvent{}, false
	}
	kind, arg, _ := strings.Cut(line[i+len(nonce)+1:], " ")
	switch kind {
	case "start", "exit", "fail":
		return ctlEvent{kind: kind, arg: strings.TrimSpace(arg)}, true
	}
	return ctlEvent{}, false
}

func exitDesc(err error) string {
	if err == nil {
		return "status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	return err.Error()
}

func quoteAll(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shQuote(a)
	}
	return out
}

// tailLines returns up to n last lines of the file at path, without \r.
func tailLines(path string, n int) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := strings.TrimRight(strings.ReplaceAll(string(data), "\r", ""), "\n")
	if text == "" {
		return nil, nil
	}
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

func signalName(s os.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// relay copies the VM's output to w. If w stops accepting data it keeps
// reading and discards, so qemu never blocks on a full pipe.
func relay(w io.Writer, r io.Reader) {
	if _, err := io.Copy(w, r); err != nil {
		logf("warning: relaying command output: %v; discarding the rest", err)
		io.Copy(io.Discard, r)
	}
}

package supervisor

import (
	"errors"
	"os"
	"os/signal"
	"runtime"

	"golang.org/x/sys/unix"
)

// terminal is rsup's controlling terminal, opened as /dev/tty so that it is
// found whichever of stdin, stdout and stderr are redirected. When rsup is
// in the terminal's foreground, it hands the foreground to the command's
// process group and takes it back afterwards.
type terminal struct {
	f    *os.File
	pgrp int // rsup's own process group
}

// openTerminal returns rsup's controlling terminal, or nil without one.
func openTerminal() *terminal {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	return &terminal{f: f, pgrp: unix.Getpgrp()}
}

func (t *terminal) fd() int { return int(t.f.Fd()) }

// foreground returns the terminal's foreground process group.
func (t *terminal) foreground() int {
	p, err := unix.IoctlGetInt(t.fd(), unix.TIOCGPGRP)
	if err != nil {
		return -1
	}
	return p
}

// inForeground reports whether rsup's group has the terminal.
func (t *terminal) inForeground() bool { return t != nil && t.foreground() == t.pgrp }

// setForeground makes pgrp the foreground group. A background process may
// do so only with SIGTTOU blocked or ignored, or the kernel stops it; the
// signal is blocked in this thread for the call, which unlike
// signal.Ignore leaves no trace in what later children inherit.
func (t *terminal) setForeground(pgrp int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var set, old unix.Sigset_t
	set.Val[(unix.SIGTTOU-1)/64] |= 1 << ((uint(unix.SIGTTOU) - 1) % 64)
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, &old); err != nil {
		return err
	}
	err := unix.IoctlSetPointerInt(t.fd(), unix.TIOCSPGRP, pgrp)
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	return err
}

// takeBack returns the terminal to rsup's group if the command's group
// (cmdPgrp) holds it, or an empty group does; never if the shell has given
// it to someone else meanwhile.
func (t *terminal) takeBack(cmdPgrp int) {
	if t == nil {
		return
	}
	cur := t.foreground()
	if cur == t.pgrp || cur < 0 {
		return
	}
	if cur == cmdPgrp || cur == 0 || errors.Is(unix.Kill(-cur, 0), unix.ESRCH) {
		_ = t.setForeground(t.pgrp)
	}
}

func (t *terminal) close() {
	if t != nil {
		t.f.Close()
	}
}

// suspend follows the command when the terminal stopped it (Ctrl-Z, or
// terminal input or output from the background): rsup takes the terminal
// back and stops its own process group, so that the shell sees its job
// stop and regains control. When continued, it hands the terminal to the
// command again only if the shell put rsup in the foreground (fg, not bg),
// and continues the command.
func (s *run) suspend(sig unix.Signal) {
	if s.tty == nil || (sig != unix.SIGTSTP && sig != unix.SIGTTIN && sig != unix.SIGTTOU) {
		return
	}
	if sid, err := unix.Getsid(0); err == nil && sid == unix.Getpid() {
		// rsup leads its session: no shell above will ever continue it.
		_ = unix.Kill(-s.pid, unix.SIGCONT)
		return
	}
	s.tty.takeBack(s.pid)
	s.cfg.Logf("command stopped by %v (pid %d); stopping too until continued", sig, s.pid)
	// The group stop may be carried out by another thread a moment after
	// kill returns, so wait for the SIGCONT that ends it.
	cont := make(chan os.Signal, 1)
	signal.Notify(cont, unix.SIGCONT)
	defer signal.Stop(cont)
	_ = unix.Kill(-s.tty.pgrp, unix.SIGSTOP)
	<-cont
	if s.tty.inForeground() {
		_ = s.tty.setForeground(s.pid)
	}
	_ = unix.Kill(-s.pid, unix.SIGCONT)
}

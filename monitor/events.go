package monitor

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// PSITrigger asks the kernel to report when tasks of the job were stalled
// on a resource for at least Stall within Window (Documentation/accounting/
// psi.rst). The kernel accepts windows from 500ms to 10s.
type PSITrigger struct {
	Resource Resource // CPUPressure, MemoryPressure or IOPressure
	Full     bool     // "full" (all tasks stalled) instead of "some"
	StallUS  uint64
	WindowUS uint64
}

func (t PSITrigger) file() (string, error) {
	switch t.Resource {
	case CPUPressure:
		return "cpu.pressure", nil
	case MemoryPressure:
		return "memory.pressure", nil
	case IOPressure:
		return "io.pressure", nil
	}
	return "", fmt.Errorf("PSI trigger for %s: only cpu_pressure, memory_pressure and io_pressure have triggers", t.Resource)
}

func (t PSITrigger) String() string {
	kind := "some"
	if t.Full {
		kind = "full"
	}
	return fmt.Sprintf("%s %d %d", kind, t.StallUS, t.WindowUS)
}

// watcher turns the kernel's notifications about a job cgroup into wake-ups
// of the monitor: inotify on memory.events and cgroup.events (IN_MODIFY is
// raised by the kernel when a counter changes), and PSI triggers, which
// make their pressure file pollable with POLLPRI.
type watcher struct {
	wake chan struct{}
	fds  []int // inotify first, then the triggers
	stop [2]int
	wg   sync.WaitGroup
	err  error // first poll error, once stopped
}

func newWatcher(dir string, triggers []PSITrigger) (_ *watcher, err error) {
	w := &watcher{wake: make(chan struct{}, 1), stop: [2]int{-1, -1}}
	defer func() {
		if err != nil {
			w.closeFDs()
		}
	}()
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w.fds = append(w.fds, ino)
	watched := 0
	for _, f := range []string{"memory.events", "cgroup.events"} {
		_, err := unix.InotifyAddWatch(ino, filepath.Join(dir, f), unix.IN_MODIFY)
		if errors.Is(err, unix.ENOENT) {
			continue // controller not enabled
		}
		if err != nil {
			return nil, fmt.Errorf("watch %s: %w", filepath.Join(dir, f), err)
		}
		watched++
	}
	for _, t := range triggers {
		name, err := t.file()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, name)
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("open %s for a PSI trigger (Linux 5.2+, CONFIG_PSI): %w", path, err)
		}
		w.fds = append(w.fds, fd)
		if _, err := unix.Write(fd, append([]byte(t.String()), 0)); err != nil {
			return nil, fmt.Errorf("write PSI trigger %q to %s (windows 500ms..10s; unprivileged users need whole seconds): %w", t.String(), path, err)
		}
	}
	if err := unix.Pipe2(w.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create stop pipe: %w", err)
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

func (w *watcher) run() {
	defer w.wg.Done()
	fds := make([]unix.PollFd, 0, len(w.fds)+1)
	for i, fd := range w.fds {
		ev := int16(unix.POLLIN)
		if i > 0 {
			ev = unix.POLLPRI
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: ev})
	}
	fds = append(fds, unix.PollFd{Fd: int32(w.stop[0]), Events: unix.POLLIN})
	buf := make([]byte, 4096)
	for {
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			w.err = fmt.Errorf("poll kernel events: %w", err)
			return
		}
		if fds[len(fds)-1].Revents != 0 {
			return
		}
		woken := false
		for i := range fds[:len(fds)-1] {
			re := fds[i].Revents
			if re == 0 {
				continue
			}
			if re&(unix.POLLERR|unix.POLLNVAL) != 0 && i > 0 {
				// A trigger whose cgroup went away: stop polling it.
				fds[i].Fd = -1
				continue
			}
			if i == 0 {
				for {
					if n, err := unix.Read(w.fds[0], buf); n <= 0 || err != nil {
						break
					}
				}
			}
			woken = true
		}
		if woken {
			select {
			case w.wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
}

// close stops the watcher's goroutine and releases its descriptors.
func (w *watcher) close() error {
	if w == nil {
		return nil
	}
	if w.stop[1] >= 0 {
		_, _ = unix.Write(w.stop[1], []byte{0})
		w.wg.Wait()
	}
	w.closeFDs()
	return w.err
}

func (w *watcher) closeFDs() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	w.fds = nil
	for i, fd := range w.stop {
		if fd >= 0 {
			unix.Close(fd)
			w.stop[i] = -1
		}
	}
}

package monitor

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Kernel notifications on cgroup v1. There is no memory.events or
// cgroup.events to watch with inotify there, and no PSI; what v1 offers is
// its own notification API (Documentation/admin-guide/cgroup-v1/memory.rst,
// "OOM Control"): an eventfd registered against memory.oom_control by
// writing "<eventfd> <fd of memory.oom_control>" to the directory's
// cgroup.event_control. The kernel then signals the eventfd
//
//   - each time the memory cgroup runs out of memory, just before the OOM
//     killer picks a victim (so the sample it prompts may not show the
//     kill in oom_kill yet; the next one will),
//   - at once if the cgroup is under OOM when the event is registered,
//   - and once more when the cgroup is removed.
//
// The registration lasts until the eventfd is closed or the cgroup is
// removed; the descriptors of the two files are not needed after the
// write. Nothing tells of the job's last process leaving (cgroup.events'
// populated): on v1 the monitor finds that at the next interval.

// newWatcherV1 returns a watcher whose wake channel fires on OOM in the
// memory cgroup memoryDir. An empty memoryDir (no memory hierarchy), or
// one without memory.oom_control or cgroup.event_control, yields a
// watcher that never fires, as newWatcher does for a cgroup without its
// events files.
//
// The watcher's run loop polls its first descriptor for POLLIN and reads
// it until it would block; a non-blocking eventfd, whose read returns and
// clears the count, is drained the same way as the v2 watcher's inotify
// descriptor.
func newWatcherV1(memoryDir string) (_ *watcher, err error) {
	w := &watcher{wake: make(chan struct{}, 1), stop: [2]int{-1, -1}}
	defer func() {
		if err != nil {
			w.closeFDs()
		}
	}()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w.fds = append(w.fds, efd)
	if memoryDir != "" {
		if err := registerOOMEventV1(memoryDir, efd); err != nil {
			return nil, err
		}
	}
	if err := unix.Pipe2(w.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("create stop pipe: %w", err)
	}
	w.wg.Add(1)
	go w.run()
	return w, nil
}

// registerOOMEventV1 asks the kernel to signal efd on OOM in the memory
// cgroup dir. Missing files are not an error (see newWatcherV1).
func registerOOMEventV1(dir string, efd int) error {
	oomPath := filepath.Join(dir, "memory.oom_control")
	// The kernel checks that the caller may read the file it names.
	ofd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(oomPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s for OOM notification: %w", oomPath, err)
	}
	defer unix.Close(ofd)
	ctlPath := filepath.Join(dir, "cgroup.event_control")
	cfd, err := ignoringEINTR(func() (int, error) {
		return unix.Open(ctlPath, unix.O_WRONLY|unix.O_CLOEXEC, 0)
	})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s to register OOM notification: %w", ctlPath, err)
	}
	defer unix.Close(cfd)
	msg := strconv.Itoa(efd) + " " + strconv.Itoa(ofd)
	n, err := ignoringEINTR(func() (int, error) { return unix.Write(cfd, []byte(msg)) })
	if err == nil && n != len(msg) {
		err = fmt.Errorf("short write (%d of %d bytes)", n, len(msg))
	}
	if err != nil {
		return fmt.Errorf("register OOM notification: write %q to %s: %w", msg, ctlPath, err)
	}
	return nil
}

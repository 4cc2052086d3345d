package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeFiles creates files (relative path -> content) under root, with their
// parent directories.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// overwrite models what dir.write does to a regular file of the fake tree:
// one write(2) at offset 0 without O_TRUNC, so a shorter value leaves the
// tail of the old content behind. (kernfs replaces the whole value instead.)
func overwrite(prev, value string) string {
	if len(value) >= len(prev) {
		return value
	}
	return value + prev[len(value):]
}

// checkWrites checks that the fake interface file at path holds what the
// given writes, in order, leave behind when made to a file that held old.
// A file that holds exactly the last value is accepted too, so that the test
// does not depend on whether writes truncate.
func checkWrites(t *testing.T, path, old string, writes ...string) {
	t.Helper()
	want := old
	for _, w := range writes {
		want = overwrite(want, w)
	}
	got := readTestFile(t, path)
	if got == want || len(writes) > 0 && got == writes[len(writes)-1] {
		return
	}
	t.Errorf("%s holds %q, want %q (old content %q, writes %q)", filepath.Base(path), got, want, old, writes)
}

// errorContains fails the test unless err is non-nil and its message
// contains every one of subs.
func errorContains(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}

// procStat is a literal /proc/PID/stat line; field 22 (starttime) is %d.
const procStat = "%d (rsup) S 1 %d %d 0 -1 4194560 1234 0 0 0 12 3 0 0 20 0 9 0 %d 1259184128 4321 18446744073709551615 4194304 9437184 140736489514880 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0 11534336 11862016 27398144 140736489517234 140736489517259 140736489517259 140736489517029 0\n"

// fakeProcFS builds a proc directory for procfs.NewFS: "self" is a symlink
// to the numeric directory of pid (procfs resolves Self by readlink), which
// holds mountinfo and a stat with the given start time.
func fakeProcFS(t *testing.T, pid int, start uint64, mountinfo string) string {
	t.Helper()
	dir := t.TempDir()
	p := strconv.Itoa(pid)
	writeFiles(t, dir, map[string]string{
		p + "/mountinfo": mountinfo,
		p + "/stat":      fmt.Sprintf(procStat, pid, pid, pid, start),
	})
	if err := os.Symlink(p, filepath.Join(dir, "self")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// fifoStep is one access of the code under test to a FIFO that stands in
// for a cgroup interface file.
type fifoStep struct {
	// content is returned to a read by the code under test.
	content string
	// write means the code under test writes; the value is captured.
	write bool
	// before runs once the code under test has opened the FIFO for this
	// step, before the step completes.
	before func()
}

// fifoFile plays the kernel side of one interface file whose content must
// change between two accesses of the code under test. Opening a FIFO blocks
// until the other end is opened too, which makes every access a rendezvous:
// the test knows exactly which access the code is at, without sleeping.
type fifoFile struct {
	path  string
	done  chan struct{}
	got   []string // values written by the code under test
	err   error
	fired atomic.Bool // the watchdog had to release the code under test
}

func serveFIFO(t *testing.T, path string, steps []fifoStep) *fifoFile {
	t.Helper()
	for i := 1; i < len(steps); i++ {
		// After a write by the code under test, the test cannot know
		// when the code has closed its end, so a second write could
		// pair with the test's stale reader.
		if steps[i-1].write && steps[i].write {
			t.Fatal("serveFIFO: two writes in a row are not supported")
		}
	}
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fifoFile{path: path, done: make(chan struct{})}
	go f.serve(steps)
	// A code change that accesses the file more often than scripted
	// would block for ever in open(2); release it after a while so that
	// the test fails instead of hanging.
	stop := make(chan struct{})
	go func() {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Second):
		}
		f.fired.Store(true)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				f.release()
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		// And one that accesses it less often leaves the server
		// blocked: release the server.
		for {
			select {
			case <-f.done:
				return
			default:
				f.release()
				time.Sleep(time.Millisecond)
			}
		}
	})
	return f
}

// release opens the FIFO for reading and writing at once, which completes
// any open(2) of it blocked on the other end, and closes it again.
func (f *fifoFile) release() {
	fd, err := unix.Open(f.path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err == nil {
		time.Sleep(time.Millisecond)
		unix.Close(fd)
	}
}

func (f *fifoFile) serve(steps []fifoStep) {
	defer close(f.done)
	for i, s := range steps {
		mode := unix.O_WRONLY
		if s.write {
			mode = unix.O_RDONLY
		}
		fd, err := unix.Open(f.path, mode|unix.O_CLOEXEC, 0)
		if err != nil {
			f.err = fmt.Errorf("step %d: open: %w", i, err)
			return
		}
		if s.before != nil {
			s.before()
		}
		if s.write {
			var buf []byte
			b := make([]byte, 4096)
			for {
				n, err := unix.Read(fd, b)
				if n > 0 {
					buf = append(buf, b[:n]...)
				}
				if n == 0 || err != nil && !errors.Is(err, unix.EINTR) {
					break
				}
			}
			f.got = append(f.got, string(buf))
		} else {
			if _, err := unix.Write(fd, []byte(s.content)); err != nil {
				f.err = fmt.Errorf("step %d: write: %w", i, err)
			}
			// The code under test keeps its end open until it has
			// read to EOF, which comes only when fd is closed. A
			// next step on the same FIFO could pair with that stale
			// reader, so it gets a fresh FIFO, put in place while
			// the code under test still waits for EOF.
			if i < len(steps)-1 {
				if err := os.Remove(f.path); err != nil {
					f.err = fmt.Errorf("step %d: %w", i, err)
				} else if err := unix.Mkfifo(f.path, 0o644); err != nil {
					f.err = fmt.Errorf("step %d: %w", i, err)
				}
			}
		}
		unix.Close(fd)
	}
}

// wait waits for the server to finish its script and reports how it went.
func (f *fifoFile) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the code under test did not complete the scripted accesses", f.path)
	}
	if f.err != nil {
		t.Errorf("%s: %v", f.path, f.err)
	}
	if f.fired.Load() {
		t.Errorf("%s: accessed more often than scripted", f.path)
	}
	return f.got
}

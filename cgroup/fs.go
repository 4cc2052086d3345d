package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// FileError reports a failed access to a cgroup interface file, naming the
// file and, for writes, the value that was refused.
type FileError struct {
	Op    string // "read", "write", "open", "remove"
	Path  string // absolute path of the file or directory
	Value string // value written, for Op "write"
	Err   error
}

func (e *FileError) Error() string {
	if e.Op == "write" {
		return fmt.Sprintf("write %q to %s: %v", e.Value, e.Path, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// dir is an open cgroup directory. Every interface file of a cgroup is opened
// relative to its descriptor and may not resolve outside it, so a symlink or
// a name with a slash can never redirect a limit write elsewhere.
type dir struct {
	path string
	fd   int
}

func openDir(path string) (*dir, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &FileError{Op: "open", Path: path, Err: err}
	}
	return &dir{path: path, fd: fd}, nil
}

func (d *dir) close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// openFile opens name beneath d. It uses openat2(RESOLVE_BENEATH) where the
// kernel has it (5.6+) and falls back to openat with O_NOFOLLOW; names are
// single path elements in both cases (checked here).
func (d *dir) openFile(name string, flags int) (*os.File, error) {
	if strings.ContainsRune(name, '/') || name == ".." || name == "." || name == "" {
		return nil, &FileError{Op: "open", Path: filepath.Join(d.path, name), Err: errors.New("not a single path element")}
	}
	flags |= unix.O_CLOEXEC | unix.O_NOFOLLOW
	how := &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	fd, err := retryEINTR(func() (int, error) { return unix.Openat2(d.fd, name, how) })
	// Kernels before 5.6 answer ENOSYS; seccomp profiles that predate
	// openat2 often answer EPERM.
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		fd, err = retryEINTR(func() (int, error) { return unix.Openat(d.fd, name, flags, 0) })
	}
	if err != nil {
		return nil, &FileError{Op: "open", Path: filepath.Join(d.path, name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.path, name)), nil
}

// read returns the content of an interface file with the trailing newline
// removed.
func (d *dir) read(name string) (string, error) {
	f, err := d.openFile(name, unix.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return "", &FileError{Op: "read", Path: f.Name(), Err: err}
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// write writes value to an interface file in a single write(2), as the
// kernel parses each write on its own.
func (d *dir) write(name, value string) error {
	f, err := d.openFile(name, unix.O_WRONLY)
	if err != nil {
		var fe *FileError
		if errors.As(err, &fe) {
			fe.Op, fe.Value = "write", value
		}
		return err
	}
	defer f.Close()
	_, err = retryEINTR(func() (int, error) { return unix.Write(int(f.Fd()), []byte(value)) })
	if err != nil {
		return &FileError{Op: "write", Path: f.Name(), Value: value, Err: err}
	}
	return nil
}

func retryEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// readFileAt reads an interface file by absolute path, for files outside a
// cgroup rsup holds open (for example its parent's cgroup.controllers).
func readFileAt(path string) (string, error) {
	d, err := openDir(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	defer d.close()
	return d.read(filepath.Base(path))
}

func writeFileAt(path, value string) error {
	d, err := openDir(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.close()
	return d.write(filepath.Base(path), value)
}

// removeTree removes the cgroup directory at path and every cgroup below it,
// deepest first. A cgroup that is already gone counts as removed. rmdir of a
// cgroup whose last task has just exited can fail with EBUSY for a short
// while, so EBUSY is retried with backoff until the deadline.
func removeTree(path string, timeout time.Duration) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &FileError{Op: "remove", Path: path, Err: err}
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(path, e.Name()), timeout); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := unix.Rmdir(path)
		switch {
		case err == nil, errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EBUSY) && time.Now().Before(deadline):
			time.Sleep(delay)
			delay = min(delay*2, 100*time.Millisecond)
			continue
		}
		return &FileError{Op: "remove", Path: path, Err: err}
	}
}

// parseKeyed parses a flat-keyed file such as cgroup.events or
// memory.events ("key value" per line).
func parseKeyed(content string) (map[string]uint64, error) {
	out := make(map[string]uint64)
	for line := range strings.Lines(content) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("malformed line %q: want \"key value\"", line)
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("malformed value in line %q: %w", line, err)
		}
		out[f[0]] = n
	}
	return out, nil
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// Mode bits as stored in a newc header (the classic S_IF* values).
const (
	cpioTypeMask = 0o170000
	cpioDir      = 0o040000
	cpioRegular  = 0o100000
	cpioSymlink  = 0o120000
	cpioCharDev  = 0o020000
)

const (
	newcMagic       = "070701"
	newcHeaderLen   = 110
	newcTrailerName = "TRAILER!!!"
)

// cpioWriter writes an archive in the SVR4 "newc" format, the format the
// Linux kernel unpacks as an initramfs. Entry names are stored relative
// (no leading slash) so extracting the archive with cpio(1) never writes
// outside the current directory. Timestamps and owners are fixed at zero so
// the same inputs give the same bytes.
type cpioWriter struct {
	w       io.Writer
	nextIno uint32
	closed  bool
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, nextIno: 1}
}

// Dir adds a directory entry.
func (c *cpioWriter) Dir(name string, perm fs.FileMode) error {
	return c.entry(name, cpioDir|uint32(perm.Perm()), 2, 0, 0, 0, nil)
}

// File adds a regular file whose contents are data.
func (c *cpioWriter) File(name string, perm fs.FileMode, data []byte) error {
	return c.FileFrom(name, perm, int64(len(data)), bytes.NewReader(data))
}

// FileFrom adds a regular file of exactly size bytes read from r.
func (c *cpioWriter) FileFrom(name string, perm fs.FileMode, size int64, r io.Reader) error {
	if size < 0 || size > 0xffffffff {
		return fmt.Errorf("cpio: %s: size %d does not fit a newc header (max 4 GiB)", name, size)
	}
	return c.entry(name, cpioRegular|uint32(perm.Perm()), 1, uint32(size), 0, 0, r)
}

// Symlink adds a symbolic link pointing at target.
func (c *cpioWriter) Symlink(name, target string) error {
	return c.entry(name, cpioSymlink|0o777, 1, uint32(len(target)), 0, 0, strings.NewReader(target))
}

// CharDev adds a character device node.
func (c *cpioWriter) CharDev(name string, perm fs.FileMode, major, minor uint32) error {
	return c.entry(name, cpioCharDev|uint32(perm.Perm()), 1, 0, major, minor, nil)
}

// Close writes the trailer entry. It does not close the underlying writer.
func (c *cpioWriter) Close() error {
	if c.closed {
		return nil
	}
	if err := c.raw(newcTrailerName, 0, 0, 1, 0, 0, 0, nil); err != nil {
		return err
	}
	c.closed = true
	return nil
}

func (c *cpioWriter) entry(name string, mode, nlink, size, rmajor, rminor uint32, data io.Reader) error {
	if c.closed {
		return errors.New("cpio: write after Close")
	}
	name = strings.TrimLeft(name, "/")
	if name == "" || name == newcTrailerName {
		return fmt.Errorf("cpio: invalid entry name %q", name)
	}
	ino := c.nextIno
	c.nextIno++
	return c.raw(name, ino, mode, nlink, size, rmajor, rminor, data)
}

func (c *cpioWriter) raw(name string, ino, mode, nlink, size, rmajor, rminor uint32, data io.Reader) error {
	nameSize := uint32(len(name) + 1) // includes the terminating NUL
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		newcMagic,
		ino,
		mode,
		0, // uid
		0, // gid
		nlink,
		0, // mtime
		size,
		0, // devmajor
		0, // devminor
		rmajor,
		rminor,
		nameSize,
		0, // check (unused by newc)
	)
	buf := make([]byte, 0, newcHeaderLen+len(name)+4)
	buf = append(buf, hdr...)
	buf = append(buf, name...)
	buf = append(buf, 0)
	buf = append(buf, make([]byte, pad4(len(buf)))...)
	if _, err := c.w.Write(buf); err != nil {
		return fmt.Errorf("cpio: writing header for %s: %w", name, err)
	}
	if size == 0 {
		return nil
	}
	n, err := io.CopyN(c.w, data, int64(size))
	if err != nil {
		return fmt.Errorf("cpio: writing %s: wrote %d of %d bytes: %w", name, n, size, err)
	}
	if p := pad4(int(size)); p > 0 {
		if _, err := c.w.Write(make([]byte, p)); err != nil {
			return fmt.Errorf("cpio: padding %s: %w", name, err)
		}
	}
	return nil
}

// pad4 returns how many zero bytes bring n up to a multiple of four.
func pad4(n int) int {
	return (4 - n%4) % 4
}

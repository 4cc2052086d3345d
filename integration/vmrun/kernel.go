package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// kernelImage is the kernel the VM boots and the module tree that matches it.
type kernelImage struct {
	Path       string // bzImage, e.g. /boot/vmlinuz-6.1.0-56-amd64
	Version    string // e.g. 6.1.0-56-amd64
	ModulesDir string // e.g. /lib/modules/6.1.0-56-amd64
}

// findKernel picks the kernel to boot. With an explicit path it reads the
// version from the bzImage header (falling back to the file name); without
// one it takes the newest bootDir/vmlinuz-<ver> that has modulesRoot/<ver>.
// modulesDir, when set, overrides the module tree.
func findKernel(path, modulesDir, bootDir, modulesRoot string) (kernelImage, error) {
	var k kernelImage
	if path != "" {
		ver, err := bzImageVersion(path)
		if err != nil {
			if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) {
				return k, kernelReadError(path, err)
			}
			ver = strings.TrimPrefix(filepath.Base(path), "vmlinuz-")
			if ver == filepath.Base(path) {
				return k, fmt.Errorf("cannot tell the version of kernel %s (%v) and its name is not vmlinuz-<version>: pass -modules-dir", path, err)
			}
		}
		k = kernelImage{Path: path, Version: ver, ModulesDir: filepath.Join(modulesRoot, ver)}
	} else {
		matches, _ := filepath.Glob(filepath.Join(bootDir, "vmlinuz-*"))
		var candidates []string
		for _, m := range matches {
			ver := strings.TrimPrefix(filepath.Base(m), "vmlinuz-")
			if st, err := os.Stat(filepath.Join(modulesRoot, ver)); err == nil && st.IsDir() {
				candidates = append(candidates, ver)
			}
		}
		if len(candidates) == 0 {
			return k, fmt.Errorf("no kernel found: need %s/vmlinuz-<version> with a matching %s/<version> (found %d vmlinuz files); install one with `apt-get install linux-image-amd64` or pass -kernel", bootDir, modulesRoot, len(matches))
		}
		sort.Slice(candidates, func(i, j int) bool { return versionLess(candidates[i], candidates[j]) })
		ver := candidates[len(candidates)-1]
		k = kernelImage{Path: filepath.Join(bootDir, "vmlinuz-"+ver), Version: ver, ModulesDir: filepath.Join(modulesRoot, ver)}
	}
	if modulesDir != "" {
		k.ModulesDir = modulesDir
	}
	f, err := os.Open(k.Path)
	if err != nil {
		return k, kernelReadError(k.Path, err)
	}
	f.Close()
	return k, nil
}

func kernelReadError(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot read kernel %s: %v; Debian installs kernels readable by root only, so run as root or pass -kernel with a readable copy", path, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kernel %s does not exist; install one with `apt-get install linux-image-amd64` or fix -kernel", path)
	}
	return fmt.Errorf("cannot read kernel %s: %w", path, err)
}

// bzImageVersion reads the version string the x86 boot protocol embeds in
// a bzImage: the setup header ("HdrS" at 0x202) holds at 0x20e a pointer,
// relative to 0x200, to a NUL-terminated "6.1.0-56-amd64 (builder) #1 ..."
// string. The first word is the release, as `uname -r` prints it.
func bzImageVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 64<<10)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	head = head[:n]
	if len(head) < 0x210 || string(head[0x202:0x206]) != "HdrS" {
		return "", errors.New("not an x86 bzImage (no HdrS setup header)")
	}
	off := int(binary.LittleEndian.Uint16(head[0x20e:])) + 0x200
	if off >= len(head) {
		return "", errors.New("bzImage version pointer is out of range")
	}
	s := head[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	fields := strings.Fields(string(s))
	if len(fields) == 0 {
		return "", errors.New("bzImage has an empty version string")
	}
	return fields[0], nil
}

// versionLess orders kernel release strings, comparing runs of digits as
// numbers so 6.10.0 sorts after 6.9.0 and -56- after -9-.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ad, bd := isDigit(a[0]), isDigit(b[0])
		if ad && bd {
			na, ra := leadingRun(a, true)
			nb, rb := leadingRun(b, true)
			ia, _ := strconv.ParseUint(na, 10, 64)
			ib, _ := strconv.ParseUint(nb, 10, 64)
			if ia != ib {
				return ia < ib
			}
			a, b = ra, rb
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func leadingRun(s string, digits bool) (run, rest string) {
	i := 0
	for i < len(s) && isDigit(s[i]) == digits {
		i++
	}
	return s[:i], s[i:]
}

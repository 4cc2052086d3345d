package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// defaultModuleParams are used for a module requested without parameters.
// brd: one 64 MiB RAM disk, /dev/ram0, for the io tests.
var defaultModuleParams = map[string]string{
	"brd": "rd_nr=1 rd_size=65536",
}

// moduleSpec is one -module argument: a module name and optional
// insmod parameters, written "NAME" or "NAME param=value ...". Without
// parameters a module gets its defaultModuleParams entry, if any.
type moduleSpec struct {
	Name   string
	Params string
}

func parseModuleSpec(s string) (moduleSpec, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return moduleSpec{}, errors.New("empty -module value")
	}
	spec := moduleSpec{Name: moduleName(fields[0]), Params: strings.Join(fields[1:], " ")}
	if spec.Params == "" {
		spec.Params = defaultModuleParams[spec.Name]
	}
	return spec, nil
}

// kmod is a module to load in the VM, in load order.
type kmod struct {
	Name     string // normalized, e.g. "brd"
	HostPath string // file under the module tree, possibly compressed
	Params   string // insmod parameters; only for explicitly requested modules
}

// moduleName normalizes a module name or path the way modprobe does:
// directory and .ko[.gz|.xz|.zst] suffix dropped, dashes as underscores.
func moduleName(s string) string {
	s = filepath.Base(s)
	for _, ext := range []string{".gz", ".xz", ".zst"} {
		s = strings.TrimSuffix(s, ext)
	}
	s = strings.TrimSuffix(s, ".ko")
	return strings.ReplaceAll(s, "-", "_")
}

// resolveModules turns the requested modules into the list of .ko files to
// insmod, dependencies first, using dir/modules.dep. Modules listed in
// dir/modules.builtin are compiled into the kernel and skipped.
func resolveModules(dir string, specs []moduleSpec) (mods []kmod, builtin []string, err error) {
	if len(specs) == 0 {
		return nil, nil, nil
	}
	depPath := filepath.Join(dir, "modules.dep")
	deps, err := readModulesDep(depPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, fmt.Errorf("no %s: the kernel's modules are not installed (apt-get install linux-image-amd64 matching the kernel, or pass -modules-dir)", depPath)
		}
		return nil, nil, fmt.Errorf("reading %s: %w", depPath, err)
	}
	builtins, err := readModulesBuiltin(filepath.Join(dir, "modules.builtin"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, spec := range specs {
		e, ok := deps[spec.Name]
		if !ok {
			if builtins[spec.Name] {
				builtin = append(builtin, spec.Name)
				continue
			}
			return nil, nil, fmt.Errorf("kernel module %q is neither in %s nor built in; check the name with `modinfo -k %s %s`", spec.Name, depPath, filepath.Base(dir), spec.Name)
		}
		// modules.dep lists every transitive dependency, deepest last, so
		// loading them in reverse puts each one after what it needs.
		for i := len(e.deps) - 1; i >= 0; i-- {
			name := moduleName(e.deps[i])
			if seen[name] {
				continue
			}
			seen[name] = true
			mods = append(mods, kmod{Name: name, HostPath: filepath.Join(dir, e.deps[i])})
		}
		if seen[spec.Name] {
			// Already loaded as someone's dependency: attach the parameters.
			for i := range mods {
				if mods[i].Name == spec.Name && mods[i].Params == "" {
					mods[i].Params = spec.Params
				}
			}
			continue
		}
		seen[spec.Name] = true
		mods = append(mods, kmod{Name: spec.Name, HostPath: filepath.Join(dir, e.path), Params: spec.Params})
	}
	return mods, builtin, nil
}

type depEntry struct {
	path string   // relative to the module tree
	deps []string // relative paths, as listed
}

func readModulesDep(path string) (map[string]depEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]depEntry{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: malformed line %q", path, lineNo, line)
		}
		out[moduleName(mod)] = depEntry{path: strings.TrimSpace(mod), deps: strings.Fields(rest)}
	}
	return out, sc.Err()
}

func readModulesBuiltin(path string) (map[string]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out[moduleName(line)] = true
		}
	}
	return out, nil
}

// loadModuleFile returns the module's ELF object, decompressing .gz in Go
// and .xz/.zst with the host's xz/zstd. Decompressing on the host means the
// VM never depends on busybox insmod or the kernel supporting compression.
func loadModuleFile(path string) ([]byte, error) {
	var data []byte
	var err error
	switch {
	case strings.HasSuffix(path, ".ko"):
		data, err = os.ReadFile(path)
	case strings.HasSuffix(path, ".ko.gz"):
		data, err = gunzipFile(path)
	case strings.HasSuffix(path, ".ko.xz"):
		data, err = decompressWith(path, "xz", "xz-utils")
	case strings.HasSuffix(path, ".ko.zst"):
		data, err = decompressWith(path, "zstd", "zstd")
	default:
		return nil, fmt.Errorf("kernel module %s: unknown file type (want .ko, .ko.gz, .ko.xz or .ko.zst)", path)
	}
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return nil, fmt.Errorf("kernel module %s: not an ELF object after decompression", path)
	}
	return data, nil
}

func gunzipFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("decompressing %s: %w", path, err)
	}
	return data, nil
}

func decompressWith(path, tool, pkg string) ([]byte, error) {
	bin, err := exec.LookPath(tool)
	if err != nil {
		return nil, fmt.Errorf("kernel module %s is %s-compressed but %s is not installed: apt-get install %s", path, tool, tool, pkg)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-dc", path)
	cmd.Stderr = &stderr
	data, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("decompressing %s with %s: %v: %s", path, tool, err, strings.TrimSpace(stderr.String()))
	}
	return data, nil
}

package monitor

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// SystemInfo describes the host rsup runs on.
type SystemInfo struct {
	// Platform is the operating system, as runtime.GOOS names it.
	Platform string `json:"platform"`
	// KernelRelease and KernelVersion are what uname -r and uname -v
	// print; Machine is uname -m.
	KernelRelease string `json:"kernel_release"`
	KernelVersion string `json:"kernel_version"`
	Machine       string `json:"machine"`
	// Processor is the CPU model from cpuinfo, or "" where the kernel does
	// not name one (arm64 does not).
	Processor string `json:"processor"`
	// CPUs counts the online CPUs. It can be more than runtime.NumCPU,
	// which counts only those this process may run on.
	CPUs int `json:"cpus"`
	// MemoryTotal is MemTotal from meminfo, in bytes.
	MemoryTotal uint64 `json:"memory_total"`
	// CgroupMode is cgroup.Mode's description of the host's cgroup setup.
	CgroupMode string `json:"cgroup_mode"`
	// Cgroup2Mount is where the cgroup2 file system is mounted, and
	// Controllers the controllers it offers; both are empty when there is
	// no cgroup2 mount (a legacy host).
	Cgroup2Mount string   `json:"cgroup2_mount,omitempty"`
	Controllers  []string `json:"controllers,omitempty"`
}

// ReadSystemInfo describes the host from the proc mount at procRoot ("" means
// /proc) and the cgroup directory cgroupFS ("" means /sys/fs/cgroup).
//
// Kernel release and version come from procRoot's sys/kernel/osrelease and
// sys/kernel/version (the same UTS namespace fields uname(2) returns), so a
// fixture tree describes a whole host. Machine alone comes from uname(2),
// as there is no proc file for it on every kernel that rsup supports.
func ReadSystemInfo(procRoot, cgroupFS string) (SystemInfo, error) {
	return readSystemInfo(procRoot, cgroupFS, unameMachine)
}

func unameMachine() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("uname: %w", err)
	}
	return unix.ByteSliceToString(u.Machine[:]), nil
}

func readSystemInfo(procRoot, cgroupFS string, machine func() (string, error)) (SystemInfo, error) {
	if procRoot == "" {
		procRoot = procfs.DefaultMountPoint
	}
	if cgroupFS == "" {
		cgroupFS = "/sys/fs/cgroup"
	}
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return SystemInfo{}, fmt.Errorf("open proc file system at %s: %w", procRoot, err)
	}
	info := SystemInfo{Platform: runtime.GOOS}
	if info.KernelRelease, err = readKernelString(procRoot, "osrelease"); err != nil {
		return SystemInfo{}, err
	}
	if info.KernelVersion, err = readKernelString(procRoot, "version"); err != nil {
		return SystemInfo{}, err
	}
	if info.Machine, err = machine(); err != nil {
		return SystemInfo{}, err
	}
	if info.Processor, err = readProcessor(filepath.Join(procRoot, "cpuinfo")); err != nil {
		return SystemInfo{}, err
	}
	cpu, err := readHostCPU(fs, procRoot)
	if err != nil {
		return SystemInfo{}, err
	}
	info.CPUs = cpu.cpus
	// MemAvailable is not needed here, so kernels older than 3.14 are
	// described too.
	if info.MemoryTotal, _, err = readHostMemory(fs, procRoot, false); err != nil {
		return SystemInfo{}, err
	}
	info.CgroupMode = cgroup.DetectMode(cgroupFS).String()
	info.Cgroup2Mount, info.Controllers, err = cgroup.Cgroup2Controllers(cgroupFS, procRoot)
	// A host without a cgroup2 mount is a state to describe, not a
	// failure: the mode already says "legacy". Any other error is one.
	if errors.Is(err, cgroup.ErrNoCgroup2) {
		info.Cgroup2Mount, info.Controllers, err = "", nil, nil
	}
	if err != nil {
		return SystemInfo{}, err
	}
	return info, nil
}

// readKernelString reads /proc/sys/kernel/<name>, one line. procfs's
// SysctlStrings is not used: it splits the value at white space, and the
// build date in the version string has runs of spaces ("Oct  1") that
// uname -v keeps.
func readKernelString(procRoot, name string) (string, error) {
	file := filepath.Join(procRoot, "sys", "kernel", name)
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read kernel %s: %w", name, err)
	}
	v := strings.TrimSuffix(string(b), "\n")
	if strings.TrimSpace(v) == "" || strings.ContainsRune(v, '\n') {
		return "", fmt.Errorf("read kernel %s from %s: want one non-empty line, got %q", name, file, v)
	}
	return v, nil
}

// readProcessor returns the CPU model named in the cpuinfo file at path.
// procfs's CPUInfo is not used: its parser is picked by GOARCH at build
// time, so it cannot read another architecture's fixture, and it fails on
// layouts it does not know where only a model name is wanted here.
func readProcessor(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read processor model: %w", err)
	}
	defer f.Close()
	model, err := parseProcessor(f)
	if err != nil {
		return "", fmt.Errorf("read processor model from %s: %w", path, err)
	}
	return model, nil
}

// cpuinfoModelKeys are the cpuinfo keys that name the CPU, best first:
// "model name" (x86, newer 32-bit ARM kernels), "Model Name" (LoongArch),
// "Hardware" (the board or SoC on 32-bit ARM), "cpu model" (MIPS),
// "Processor" (older ARM kernels, which print it once for all CPUs), "cpu"
// (PowerPC) and "uarch" (RISC-V). Current arm64 kernels print none of them.
var cpuinfoModelKeys = []string{"model name", "Model Name", "Hardware", "cpu model", "Processor", "cpu", "uarch"}

// parseProcessor reads "key : value" lines (keys are case-sensitive:
// "processor" is x86's CPU index, "Processor" old ARM's model) and returns
// the value of the best key in cpuinfoModelKeys, or "" when none is there.
func parseProcessor(r io.Reader) (string, error) {
	found := make(map[string]string, len(cpuinfoModelKeys))
	sc := bufio.NewScanner(r)
	// x86 flag lines pass 1 KiB and grow with each CPU generation.
	sc.Buffer(make([]byte, 0, 16<<10), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if _, seen := found[key]; !seen && value != "" {
			found[key] = value
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	for _, k := range cpuinfoModelKeys {
		if v, ok := found[k]; ok {
			return v, nil
		}
	}
	return "", nil
}

// String is a human-readable summary, one field a line.
func (s SystemInfo) String() string {
	var b strings.Builder
	line := func(label, value string) { fmt.Fprintf(&b, "%-15s %s\n", label+":", value) }
	orUnknown := func(v string) string {
		if v == "" {
			return "unknown"
		}
		return v
	}
	line("Platform", orUnknown(s.Platform))
	line("Kernel", strings.TrimSpace(orUnknown(s.KernelRelease)+" "+s.KernelVersion))
	line("Machine", orUnknown(s.Machine))
	line("Processor", orUnknown(s.Processor))
	line("CPUs", fmt.Sprint(s.CPUs))
	line("Memory", sysinfoBytes(s.MemoryTotal))
	line("Cgroup mode", orUnknown(s.CgroupMode))
	if s.Cgroup2Mount == "" {
		line("Cgroup2 mount", "none")
	} else {
		line("Cgroup2 mount", s.Cgroup2Mount)
	}
	if len(s.Controllers) == 0 {
		line("Controllers", "none")
	} else {
		line("Controllers", strings.Join(s.Controllers, " "))
	}
	return b.String()
}

// sysinfoBytes prints n in the largest 1024-based unit it fills, with the
// exact byte count alongside.
func sysinfoBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB (%d bytes)", v, units[i], n)
}

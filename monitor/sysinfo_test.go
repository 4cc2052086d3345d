package monitor

import (
	"bufio"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"

	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
)

// sysinfoHost is a fixture host for readSystemInfo: a copy of
// testdata/host/<fixture> as the proc root, with edits applied, and a cgroup
// directory beside it laid out as layout says ("legacy", "hybrid" or
// "unified"). The proc root gets the self link and mountinfo that
// cgroup.Cgroup2Controllers reads.
type sysinfoHost struct {
	proc, cgfs string
	// cgroup2 is where the cgroup2 file system is mounted, "" for legacy.
	cgroup2 string
}

func newSysinfoHost(t *testing.T, fixture, layout string, edits map[string]string) sysinfoHost {
	t.Helper()
	h := sysinfoHost{cgfs: filepath.Join(t.TempDir(), "cgroup")}
	mountinfo := "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n" +
		"23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
	v1 := "30 22 0:26 / " + h.cgfs + " ro,nosuid,nodev,noexec shared:5 - tmpfs tmpfs ro,mode=755\n" +
		"31 30 0:27 / " + filepath.Join(h.cgfs, "memory") + " rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,memory\n"
	controllers := ""
	switch layout {
	case "legacy":
		mountinfo += v1
	case "hybrid":
		h.cgroup2 = filepath.Join(h.cgfs, "unified")
		mountinfo += v1 + "32 30 0:28 / " + h.cgroup2 + " rw,nosuid,nodev,noexec,relatime shared:7 - cgroup2 cgroup2 rw,nsdelegate\n"
		controllers = "\n"
	case "unified":
		h.cgroup2 = h.cgfs
		mountinfo += "30 22 0:26 / " + h.cgfs + " rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate\n"
		controllers = "cpuset cpu io memory hugetlb pids rdma misc\n"
	default:
		t.Fatalf("unknown cgroup layout %q", layout)
	}
	if err := os.MkdirAll(filepath.Join(h.cgfs, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if h.cgroup2 != "" {
		if err := os.MkdirAll(h.cgroup2, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(h.cgroup2, "cgroup.controllers"), []byte(controllers), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Edits of "self" and "1/mountinfo" (to removeFile) leave them out.
	fixtureEdits := map[string]string{}
	for k, v := range edits {
		if k != "self" && k != "1/mountinfo" {
			fixtureEdits[k] = v
		}
	}
	h.proc = hostTree(t, fixture, fixtureEdits)
	if err := os.Mkdir(filepath.Join(h.proc, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, ok := edits["1/mountinfo"]; !ok {
		if err := os.WriteFile(filepath.Join(h.proc, "1", "mountinfo"), []byte(mountinfo), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := edits["self"]; !ok {
		if err := os.Symlink("1", filepath.Join(h.proc, "self")); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// fixedMachine stands in for uname(2)'s machine field.
func fixedMachine(m string) func() (string, error) {
	return func() (string, error) { return m, nil }
}

// checkCgroupMode checks that the mode was judged from the fixture's cgroup
// directory. A plain directory is never hybrid or unified, whatever this
// host's own /sys/fs/cgroup is.
func checkCgroupMode(t *testing.T, got SystemInfo, cgfs string) {
	t.Helper()
	if want := cgroup.DetectMode(cgfs).String(); got.CgroupMode != want {
		t.Errorf("CgroupMode = %q, want %q (the mode of %s)", got.CgroupMode, want, cgfs)
	}
	if got.CgroupMode == cgroup.ModeHybrid.String() || got.CgroupMode == cgroup.ModeUnified.String() {
		t.Errorf("CgroupMode = %q for a plain directory", got.CgroupMode)
	}
}

func TestReadSystemInfoFixture(t *testing.T) {
	t.Parallel()
	x86 := SystemInfo{
		Platform:      runtime.GOOS,
		KernelRelease: "6.18.44-fc-v782",
		KernelVersion: "#1 SMP PREEMPT_DYNAMIC @0",
		Machine:       "x86_64",
		Processor:     "AMD EPYC",
		CPUs:          2,
		MemoryTotal:   24683656 * 1024,
	}
	arm := SystemInfo{
		Platform:      runtime.GOOS,
		KernelRelease: "6.8.0-1016-aws",
		// uname -v keeps the run of spaces in the date.
		KernelVersion: "#17-Ubuntu SMP Mon Oct  7 20:49:31 UTC 2024",
		Machine:       "aarch64",
		Processor:     "", // arm64 kernels name no model
		CPUs:          3,  // cpu2 is offline
		MemoryTotal:   3884832 * 1024,
	}
	tests := []struct {
		name, fixture, layout string
		edits                 map[string]string
		want                  SystemInfo // CgroupMode and Cgroup2Mount are checked apart
		controllers           []string
	}{
		{name: "x86_64 legacy", fixture: "x86_64", layout: "legacy", want: x86},
		{name: "x86_64 hybrid", fixture: "x86_64", layout: "hybrid", want: x86, controllers: []string{}},
		{name: "arm64 unified", fixture: "arm64", layout: "unified", want: arm,
			controllers: []string{"cpu", "cpuset", "hugetlb", "io", "memory", "misc", "pids", "rdma"}},
		{
			// Before Linux 3.14 there was no MemAvailable; the total is
			// all that is described.
			name: "kernel without MemAvailable", fixture: "x86_64", layout: "legacy", want: x86,
			edits: map[string]string{"meminfo": "MemTotal:       24683656 kB\nMemFree:        23991060 kB\nBuffers:           20340 kB\nCached:           476412 kB\n"},
		},
		{
			name: "kernel release and version from the proc root", fixture: "x86_64", layout: "legacy",
			edits: map[string]string{
				"sys/kernel/osrelease": "5.10.0-28-amd64\n",
				"sys/kernel/version":   "#1 SMP Debian 5.10.209-2 (2024-01-31)\n",
			},
			want: func() SystemInfo {
				s := x86
				s.KernelRelease, s.KernelVersion = "5.10.0-28-amd64", "#1 SMP Debian 5.10.209-2 (2024-01-31)"
				return s
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newSysinfoHost(t, tt.fixture, tt.layout, tt.edits)
			calls := 0
			machine := func() (string, error) {
				calls++
				return tt.want.Machine, nil
			}
			got, err := readSystemInfo(h.proc, h.cgfs, machine)
			if err != nil {
				t.Fatal(err)
			}
			if calls != 1 {
				t.Errorf("machine called %d times, want once", calls)
			}
			checkCgroupMode(t, got, h.cgfs)
			if got.Cgroup2Mount != h.cgroup2 {
				t.Errorf("Cgroup2Mount = %q, want %q", got.Cgroup2Mount, h.cgroup2)
			}
			if !slices.Equal(got.Controllers, tt.controllers) {
				t.Errorf("Controllers = %q, want %q", got.Controllers, tt.controllers)
			}
			if tt.layout == "legacy" && got.Controllers != nil {
				t.Errorf("Controllers = %#v on a host without cgroup2, want nil", got.Controllers)
			}
			got.CgroupMode, got.Cgroup2Mount, got.Controllers = "", "", nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("readSystemInfo =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestReadSystemInfoErrors(t *testing.T) {
	t.Parallel()
	errUname := errors.New("uname refused")
	longLine := "flags\t\t: " + strings.Repeat("avx512f ", 1<<17) + "\n" // 1 MiB and more

	tests := []struct {
		name        string
		layout      string // "" is legacy
		edits       map[string]string
		noProc      bool // point at a proc root that does not exist
		noCtrlFile  bool // remove cgroup.controllers from the cgroup2 mount
		machineErr  error
		says        []string
		wantWrapped error
	}{
		{name: "proc root missing", noProc: true, says: []string{"open proc file system"}, wantWrapped: fs.ErrNotExist},
		{name: "osrelease missing", edits: map[string]string{"sys/kernel/osrelease": removeFile},
			says: []string{"kernel osrelease"}, wantWrapped: fs.ErrNotExist},
		{name: "osrelease empty", edits: map[string]string{"sys/kernel/osrelease": "\n"},
			says: []string{"kernel osrelease", "want one non-empty line"}},
		{name: "osrelease blank", edits: map[string]string{"sys/kernel/osrelease": "  \t\n"},
			says: []string{"kernel osrelease", "want one non-empty line"}},
		{name: "version missing", edits: map[string]string{"sys/kernel/version": removeFile},
			says: []string{"kernel version"}, wantWrapped: fs.ErrNotExist},
		{name: "version of two lines", edits: map[string]string{"sys/kernel/version": "#1 SMP\n#2 SMP\n"},
			says: []string{"kernel version", "sys/kernel/version", "want one non-empty line"}},
		{name: "uname fails", machineErr: errUname, says: []string{"uname refused"}, wantWrapped: errUname},
		{name: "cpuinfo missing", edits: map[string]string{"cpuinfo": removeFile},
			says: []string{"processor model"}, wantWrapped: fs.ErrNotExist},
		{name: "cpuinfo line past 1 MiB", edits: map[string]string{"cpuinfo": "processor\t: 0\n" + longLine + "model name\t: AMD EPYC\n"},
			says: []string{"processor model", "cpuinfo"}, wantWrapped: bufio.ErrTooLong},
		{name: "stat without per-CPU lines", edits: map[string]string{"stat": "cpu  205713 0 49871 784415 1972 0 2201 3827 2 0\n"},
			says: []string{"no per-CPU lines"}},
		{name: "stat missing", edits: map[string]string{"stat": removeFile},
			says: []string{"stat"}, wantWrapped: fs.ErrNotExist},
		{name: "meminfo without MemTotal", edits: map[string]string{"meminfo": "MemFree:        23991060 kB\nMemAvailable:   24323180 kB\n"},
			says: []string{"MemTotal is missing"}},
		{name: "meminfo garbage", edits: map[string]string{"meminfo": "MemTotal:       lots kB\n"},
			says: []string{"meminfo", "lots"}},
		{name: "no self link", edits: map[string]string{"self": removeFile},
			says: []string{"own process"}},
		{name: "mountinfo missing", edits: map[string]string{"1/mountinfo": removeFile},
			says: []string{"mount table", "mountinfo"}, wantWrapped: fs.ErrNotExist},
		{name: "cgroup2 mounted but cgroup.controllers missing", layout: "unified", noCtrlFile: true,
			says: []string{"cgroup.controllers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			layout := tt.layout
			if layout == "" {
				layout = "legacy"
			}
			h := newSysinfoHost(t, "x86_64", layout, tt.edits)
			if _, ok := tt.edits["self"]; ok {
				if _, err := os.Lstat(filepath.Join(h.proc, "self")); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("test setup: self link present (%v)", err)
				}
			}
			proc := h.proc
			if tt.noProc {
				proc = filepath.Join(h.proc, "absent")
				tt.says = append(tt.says, proc)
			}
			if tt.noCtrlFile {
				if err := os.Remove(filepath.Join(h.cgroup2, "cgroup.controllers")); err != nil {
					t.Fatal(err)
				}
			}
			machine := fixedMachine("x86_64")
			if tt.machineErr != nil {
				machine = func() (string, error) { return "", tt.machineErr }
			}
			got, err := readSystemInfo(proc, h.cgfs, machine)
			if err == nil {
				t.Fatalf("readSystemInfo = %+v, want an error", got)
			}
			if !reflect.DeepEqual(got, SystemInfo{}) {
				t.Errorf("readSystemInfo returned %+v along with error %v", got, err)
			}
			errorSays(t, err, tt.says...)
			if tt.wantWrapped != nil && !errors.Is(err, tt.wantWrapped) {
				t.Errorf("error %v does not wrap %v", err, tt.wantWrapped)
			}
			if errors.Is(err, cgroup.ErrNoCgroup2) {
				t.Errorf("error %v wraps ErrNoCgroup2", err)
			}
		})
	}
}

func TestParseProcessor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cpuinfo, want string
	}{
		{
			name: "x86",
			cpuinfo: "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n" +
				"model name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\nstepping\t: 7\n" +
				"cpu MHz\t\t: 2499.998\ncpu cores\t: 2\nflags\t\t: fpu vme de pse tsc msr pae mce\n\n" +
				"processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz\n\n",
			want: "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz",
		},
		{
			// Hybrid CPUs may name cores apart: the first one is taken.
			name:    "first model name wins",
			cpuinfo: "processor\t: 0\nmodel name\t: Big Core\n\nprocessor\t: 1\nmodel name\t: Little Core\n",
			want:    "Big Core",
		},
		{
			name:    "x86 without a model name",
			cpuinfo: "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\ncpu MHz\t\t: 2445.406\ncpu cores\t: 2\n",
			want:    "",
		},
		{
			name: "arm64",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull\n" +
				"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n",
			want: "",
		},
		{
			// Some vendor arm64 kernels add the SoC.
			name: "arm64 with Hardware",
			cpuinfo: "processor\t: 0\nBogoMIPS\t: 38.40\nCPU implementer\t: 0x51\nCPU part\t: 0x805\n\n" +
				"Hardware\t: Qualcomm Technologies, Inc SM8250\n",
			want: "Qualcomm Technologies, Inc SM8250",
		},
		{
			// 32-bit ARM, kernel 3.8 and later: "model name" per CPU and
			// "Hardware" at the end; the model name is preferred.
			name: "arm 32-bit, newer kernel",
			cpuinfo: "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nBogoMIPS\t: 38.40\n" +
				"CPU implementer\t: 0x41\nCPU part\t: 0xd03\n\nHardware\t: BCM2835\nRevision\t: a02082\n",
			want: "ARMv7 Processor rev 4 (v7l)",
		},
		{
			// Older 32-bit ARM kernels: "Processor" once, then per-CPU
			// "processor" indices, and "Hardware", which is preferred.
			name: "arm 32-bit, older kernel",
			cpuinfo: "Processor\t: ARMv7 Processor rev 10 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 790.52\n\n" +
				"processor\t: 1\nBogoMIPS\t: 790.52\n\nHardware\t: Freescale i.MX 6Quad SABRE\nRevision\t: 63012\n",
			want: "Freescale i.MX 6Quad SABRE",
		},
		{
			name:    "arm 32-bit, Processor only",
			cpuinfo: "Processor\t: ARMv6-compatible processor rev 7 (v6l)\nprocessor\t: 0\nBogoMIPS\t: 697.95\n",
			want:    "ARMv6-compatible processor rev 7 (v6l)",
		},
		{
			name:    "MIPS",
			cpuinfo: "system type\t\t: MediaTek MT7621 ver:1 eco:3\nmachine\t\t\t: Ubiquiti EdgeRouter X\nprocessor\t\t: 0\ncpu model\t\t: MIPS 1004Kc V2.15\n",
			want:    "MIPS 1004Kc V2.15",
		},
		{
			name:    "PowerPC",
			cpuinfo: "processor\t: 0\ncpu\t\t: POWER9 (raw), altivec supported\nclock\t\t: 3800.000000MHz\nrevision\t: 2.2 (pvr 004e 1202)\n\ntimebase\t: 512000000\nmodel\t\t: 8335-GTH\n",
			want:    "POWER9 (raw), altivec supported",
		},
		{
			name:    "RISC-V",
			cpuinfo: "processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc\nmmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n",
			want:    "sifive,u74-mc",
		},
		{
			name:    "RISC-V without uarch",
			cpuinfo: "processor\t: 0\nhart\t\t: 0\nisa\t\t: rv64imafdcsu\nmmu\t\t: sv48\n",
			want:    "",
		},
		{
			name:    "s390x",
			cpuinfo: "vendor_id       : IBM/S390\n# processors    : 2\nbogomips per cpu: 3241.00\nprocessor 0: version = FF,  identification = 0133E8,  machine = 2964\n",
			want:    "",
		},
		{
			name:    "colon in the value",
			cpuinfo: "Hardware\t: Board: rev 2\n",
			want:    "Board: rev 2",
		},
		{
			name:    "empty value skipped",
			cpuinfo: "model name\t:\nmodel name\t:   \nHardware\t: SoC X\n",
			want:    "SoC X",
		},
		{
			name:    "empty value, then a model name",
			cpuinfo: "model name\t:\nprocessor\t: 1\nmodel name\t: Late Name\nHardware\t: SoC X\n",
			want:    "Late Name",
		},
		{
			name:    "keys are case-sensitive",
			cpuinfo: "Model name\t: wrong\nhardware\t: wrong\nCPU\t\t: wrong\nprocessor\t: 0\n",
			want:    "",
		},
		{
			name:    "CRLF line ends",
			cpuinfo: "processor\t: 0\r\nmodel name\t: AMD EPYC 7R13 Processor\r\n",
			want:    "AMD EPYC 7R13 Processor",
		},
		{
			name:    "no final newline",
			cpuinfo: "processor\t: 0\nmodel name\t: AMD EPYC",
			want:    "AMD EPYC",
		},
		{
			name:    "lines without colons",
			cpuinfo: "garbage\n\n\t\nmodel name AMD\n",
			want:    "",
		},
		{
			// Flag lines longer than bufio's 64 KiB default still pass.
			name:    "long flags line",
			cpuinfo: "processor\t: 0\nflags\t\t: " + strings.Repeat("avx ", 50_000) + "\nmodel name\t: After Flags\n",
			want:    "After Flags",
		},
		{name: "empty", cpuinfo: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcessor(strings.NewReader(tt.cpuinfo))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseProcessor = %q, want %q", got, tt.want)
			}
			// Read in one-byte pieces, the answer is the same.
			got, err = parseProcessor(iotest.OneByteReader(strings.NewReader(tt.cpuinfo)))
			if err != nil || got != tt.want {
				t.Errorf("parseProcessor(one byte at a time) = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseProcessorErrors(t *testing.T) {
	t.Parallel()
	errRead := errors.New("read failed")
	tests := []struct {
		name string
		r    io.Reader
		err  error
	}{
		{name: "line past 1 MiB", r: strings.NewReader("model name\t: X\nflags\t\t: " + strings.Repeat("x", 1<<20) + "\n"), err: bufio.ErrTooLong},
		{name: "reader fails", r: iotest.ErrReader(errRead), err: errRead},
		{name: "reader fails after a model name", r: io.MultiReader(strings.NewReader("model name\t: X\n"), iotest.ErrReader(errRead)), err: errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcessor(tt.r)
			if !errors.Is(err, tt.err) {
				t.Errorf("parseProcessor error = %v, want %v", err, tt.err)
			}
			if got != "" {
				t.Errorf("parseProcessor returned %q along with error %v", got, err)
			}
		})
	}
}

// TestReadProcessorFixtures reads the cpuinfo files of the fixture trees.
func TestReadProcessorFixtures(t *testing.T) {
	t.Parallel()
	for fixture, want := range map[string]string{"x86_64": "AMD EPYC", "arm64": ""} {
		got, err := readProcessor(filepath.Join("testdata", "host", fixture, "cpuinfo"))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: readProcessor = %q, want %q", fixture, got, want)
		}
	}
	missing := filepath.Join(t.TempDir(), "cpuinfo")
	if got, err := readProcessor(missing); err == nil || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("readProcessor(missing) = %q, %v; want an error naming %s", got, err, missing)
	}
}

// systemInfoLines splits String's output into label → value.
func systemInfoLines(t *testing.T, s string) (map[string]string, []string) {
	t.Helper()
	if !strings.HasSuffix(s, "\n") {
		t.Errorf("String() = %q does not end in a newline", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	fields := map[string]string{}
	var labels []string
	for _, l := range lines {
		label, value, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(value) == "" || !strings.HasPrefix(value, " ") {
			t.Errorf("line %q is not \"label: value\"", l)
			continue
		}
		labels = append(labels, label)
		fields[label] = strings.TrimLeft(value, " ")
	}
	return fields, labels
}

func TestSystemInfoString(t *testing.T) {
	t.Parallel()
	labels := []string{"Platform", "Kernel", "Machine", "Processor", "CPUs", "Memory", "Cgroup mode", "Cgroup2 mount", "Controllers"}
	tests := []struct {
		name string
		info SystemInfo
		want map[string]string
	}{
		{
			name: "unified host",
			info: SystemInfo{
				Platform: "linux", KernelRelease: "6.8.0-1016-aws", KernelVersion: "#17-Ubuntu SMP Mon Oct  7 20:49:31 UTC 2024",
				Machine: "aarch64", Processor: "Neoverse-N1", CPUs: 64, MemoryTotal: 256 << 30,
				CgroupMode: cgroup.ModeUnified.String(), Cgroup2Mount: "/sys/fs/cgroup",
				Controllers: []string{"cpu", "io", "memory", "pids"},
			},
			want: map[string]string{
				"Platform":      "linux",
				"Kernel":        "6.8.0-1016-aws #17-Ubuntu SMP Mon Oct  7 20:49:31 UTC 2024",
				"Machine":       "aarch64",
				"Processor":     "Neoverse-N1",
				"CPUs":          "64",
				"Memory":        "256.0 GiB (274877906944 bytes)",
				"Cgroup mode":   "unified (cgroup v2)",
				"Cgroup2 mount": "/sys/fs/cgroup",
				"Controllers":   "cpu io memory pids",
			},
		},
		{
			name: "hybrid host without controllers",
			info: SystemInfo{
				Platform: "linux", KernelRelease: "5.10.0-28-amd64", KernelVersion: "#1 SMP Debian 5.10.209-2 (2024-01-31)",
				Machine: "x86_64", Processor: "AMD EPYC", CPUs: 2, MemoryTotal: 24683656 * 1024,
				CgroupMode: cgroup.ModeHybrid.String(), Cgroup2Mount: "/sys/fs/cgroup/unified", Controllers: []string{},
			},
			want: map[string]string{
				"Kernel":        "5.10.0-28-amd64 #1 SMP Debian 5.10.209-2 (2024-01-31)",
				"Processor":     "AMD EPYC",
				"CPUs":          "2",
				"Memory":        "23.5 GiB (25276063744 bytes)",
				"Cgroup mode":   "hybrid (controllers on cgroup v1, cgroup v2 without them)",
				"Cgroup2 mount": "/sys/fs/cgroup/unified",
				"Controllers":   "none",
			},
		},
		{
			name: "nothing known",
			info: SystemInfo{},
			want: map[string]string{
				"Platform":      "unknown",
				"Kernel":        "unknown",
				"Machine":       "unknown",
				"Processor":     "unknown",
				"CPUs":          "0",
				"Memory":        "0 bytes",
				"Cgroup mode":   "unknown",
				"Cgroup2 mount": "none",
				"Controllers":   "none",
			},
		},
		{
			name: "version without release",
			info: SystemInfo{KernelVersion: "#1 SMP"},
			want: map[string]string{"Kernel": "unknown #1 SMP"},
		},
		{
			name: "release without version",
			info: SystemInfo{KernelRelease: "6.1.0"},
			want: map[string]string{"Kernel": "6.1.0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := tt.info.String()
			fields, got := systemInfoLines(t, s)
			if !slices.Equal(got, labels) {
				t.Errorf("labels = %q, want %q\n%s", got, labels, s)
			}
			for label, want := range tt.want {
				if fields[label] != want {
					t.Errorf("%s = %q, want %q\n%s", label, fields[label], want, s)
				}
			}
		})
	}
}

func TestSysinfoBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 bytes"},
		{1023, "1023 bytes"},
		{1024, "1.0 KiB (1024 bytes)"},
		{1536, "1.5 KiB (1536 bytes)"},
		{1 << 20, "1.0 MiB (1048576 bytes)"},
		{3884832 * 1024, "3.7 GiB (3978067968 bytes)"},
		{1 << 40, "1.0 TiB (1099511627776 bytes)"},
		{1 << 50, "1.0 PiB (1125899906842624 bytes)"},
		{1 << 60, "1.0 EiB (1152921504606846976 bytes)"},
		{1<<64 - 1, "16.0 EiB (18446744073709551615 bytes)"},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatUint(tt.n, 10), func(t *testing.T) {
			t.Parallel()
			if got := sysinfoBytes(tt.n); got != tt.want {
				t.Errorf("sysinfoBytes(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

// TestReadSystemInfoHost describes this machine.
func TestReadSystemInfoHost(t *testing.T) {
	t.Parallel()
	info, err := ReadSystemInfo("", "")
	if err != nil {
		t.Fatal(err)
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		field, got, want string
	}{
		{"Platform", info.Platform, runtime.GOOS},
		{"KernelRelease", info.KernelRelease, unix.ByteSliceToString(u.Release[:])},
		{"KernelVersion", info.KernelVersion, unix.ByteSliceToString(u.Version[:])},
		{"Machine", info.Machine, unix.ByteSliceToString(u.Machine[:])},
		{"CgroupMode", info.CgroupMode, cgroup.DetectMode("").String()},
	}
	for _, c := range checks {
		if c.got != c.want || c.got == "" {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if info.CPUs <= 0 || info.CPUs < runtime.NumCPU() {
		t.Errorf("CPUs = %d, want at least runtime.NumCPU() = %d", info.CPUs, runtime.NumCPU())
	}
	if info.MemoryTotal == 0 {
		t.Error("MemoryTotal = 0")
	}
	if runtime.GOARCH == "amd64" && info.Processor == "" {
		t.Error("Processor is empty on amd64, whose cpuinfo names a model")
	}
	mode := cgroup.DetectMode("")
	if (mode == cgroup.ModeHybrid || mode == cgroup.ModeUnified) && !filepath.IsAbs(info.Cgroup2Mount) {
		t.Errorf("Cgroup2Mount = %q on a %v host", info.Cgroup2Mount, mode)
	}
	if s := info.String(); !strings.Contains(s, info.KernelRelease) || !strings.Contains(s, info.CgroupMode) {
		t.Errorf("String() leaves out the kernel or cgroup mode:\n%s", s)
	}
	t.Logf("\n%s", info)
}

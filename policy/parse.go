package policy

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/rsup/rsup/cgroup"
)

// ParseOptions adjust how a policy is checked.
type ParseOptions struct {
	// Sysfs is the sysfs mount used to resolve io devices; "" is "/sys".
	Sysfs string
	// ResolveDevice, when set, replaces cgroup.ResolveDevice, so that a
	// policy naming devices can be checked without them.
	ResolveDevice func(spec string) (cgroup.Device, error)
}

// Load reads and parses the policy file at path, resolving devices against
// /sys. Errors about the content wrap ErrInvalid; a file that cannot be
// read does not.
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data, ParseOptions{})
}

// Parse decodes and validates a policy. name is the file name used in
// error messages. All problems found are returned together (errors.Join of
// *Error, each wrapping ErrInvalid).
func Parse(name string, data []byte, opts ParseOptions) (*Policy, error) {
	var raw rawPolicy
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, decodeError(name, data, err)
	}
	v := &validator{file: name, loc: locate(string(data)), opts: opts}
	seen := map[string]bool{}
	for _, k := range md.Undecoded() {
		// A key unknown in several array elements is reported once.
		if !seen[k.String()] {
			seen[k.String()] = true
			v.undecoded(k)
		}
	}
	p := v.policy(&raw)
	if len(v.errs) > 0 {
		return nil, v.err()
	}
	return p, nil
}

// lastKeyLine matches the decoder's type errors, which carry a line but no
// position: `toml: line 3 (last key "limits.cpu"): incompatible types...`.
var lastKeyLine = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "((?:[^"\\]|\\.)*)"\): (.*)$`)

func decodeError(name string, data []byte, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		e := &Error{File: name, Line: pe.Position.Line, Col: pe.Position.Col, Key: pe.LastKey, Msg: pe.Message}
		if pe.Usage != "" {
			e.Msg += " (" + strings.Join(strings.Fields(pe.Usage), " ") + ")"
		}
		return e
	}
	e := &Error{File: name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
	if m := lastKeyLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Key, e.Msg = m[2], m[3]
		// The decoder names the key without indices; the scanner knows
		// where that key is first written, with its column.
		if pos, ok := locate(string(data)).findBare(e.Key); ok && (e.Line == 0 || pos.Line == e.Line) {
			e.Line, e.Col = pos.Line, pos.Col
		}
	}
	e.Msg = strings.Replace(e.Msg, "incompatible types: ", "wrong type: ", 1)
	return e
}

type validator struct {
	file string
	loc  *locator
	opts ParseOptions
	errs []*Error
}

// errf records a problem with the value at path.
func (v *validator) errf(path string, format string, args ...any) {
	e := &Error{File: v.file, Key: path, Msg: fmt.Sprintf(format, args...)}
	if pos, ok := v.loc.find(path); ok {
		e.Line, e.Col = pos.Line, pos.Col
	}
	v.errs = append(v.errs, e)
}

func (v *validator) undecoded(k toml.Key) {
	path := strings.Join(k, ".")
	e := &Error{File: v.file, Key: path, Msg: "unknown key " + strconv.Quote(k[len(k)-1]) + v.allowedKeys(k)}
	if pos, ok := v.loc.findBare(path); ok {
		e.Line, e.Col = pos.Line, pos.Col
	}
	v.errs = append(v.errs, e)
}

// allowedKeys says which keys the table holding k accepts.
func (v *validator) allowedKeys(k toml.Key) string {
	var keys []string
	switch strings.Join(k[:len(k)-1], ".") {
	case "":
		keys = []string{"name", "[limits]", "[monitor]", "[thresholds]", "[[rule]]"}
	case "limits":
		keys = []string{"cpu", "cpu_weight", "memory", "memory_high", "memory_low", "swap", "pids", "io"}
	case "limits.io", "rule.actions.io":
		keys = []string{"device", "read_bps", "write_bps", "read_iops", "write_iops"}
	case "monitor":
		keys = []string{"interval", "history", "disk_path"}
	case "rule":
		keys = []string{"name", "resource", "state", "for", "cooldown", "actions"}
	case "rule.actions":
		keys = []string{"type", "level", "signal", "target", "cpu", "memory_high", "io", "until", "grace"}
	default:
		if len(k) == 3 && k[0] == "thresholds" {
			keys = []string{"warning", "critical", "clear"}
		}
	}
	if keys == nil {
		return ""
	}
	return ": want one of " + strings.Join(keys, ", ")
}

// err joins the problems found, in file order.
func (v *validator) err() error {
	sort.SliceStable(v.errs, func(i, j int) bool {
		a, b := v.errs[i], v.errs[j]
		if (a.Line == 0) != (b.Line == 0) {
			return a.Line != 0
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	errs := make([]error, len(v.errs))
	for i, e := range v.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// The typed readers below take a decoded value (nil when the key is
// absent) and report a problem at path when it is not what is allowed.

func (v *validator) str(path string, val any, want string) (string, bool) {
	s, ok := val.(string)
	if !ok {
		v.errf(path, "want %s, got %s", want, describe(val))
	}
	return s, ok
}

// integer accepts a TOML integer in [lo, hi].
func (v *validator) integer(path string, val any, lo, hi int64) (int64, bool) {
	n, ok := val.(int64)
	if !ok {
		v.errf(path, "want a whole number from %d to %d, got %s", lo, hi, describe(val))
		return 0, false
	}
	if n < lo || n > hi {
		v.errf(path, "%d out of range: want %d to %d", n, lo, hi)
		return 0, false
	}
	return n, true
}

// fraction accepts a TOML float or integer that is a finite number.
func (v *validator) fraction(path string, val any) (float64, bool) {
	var f float64
	switch x := val.(type) {
	case float64:
		f = x
	case int64:
		f = float64(x)
	default:
		v.errf(path, "want a fraction such as 0.8, got %s", describe(val))
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		v.errf(path, "want a fraction from 0 to 1, got %v", f)
		return 0, false
	}
	return f, true
}

// size accepts a byte count as an integer or a string for cgroup.ParseBytes.
func (v *validator) size(path string, val any) (*cgroup.Limit, bool) {
	switch x := val.(type) {
	case int64:
		if x < 0 {
			v.errf(path, "size %d is negative: want bytes, a size such as \"512M\", or \"max\"", x)
			return nil, false
		}
		return cgroup.Value(uint64(x)), true
	case string:
		l, err := cgroup.ParseBytes(x)
		if err != nil {
			v.errf(path, "%v", err)
			return nil, false
		}
		return &l, true
	}
	v.errf(path, "want a size such as \"512M\" or \"max\", got %s", describe(val))
	return nil, false
}

// count accepts a whole number as an integer or a string for
// cgroup.ParseCount.
func (v *validator) count(path string, val any) (*cgroup.Limit, bool) {
	switch x := val.(type) {
	case int64:
		if x < 0 {
			v.errf(path, "count %d is negative: want a whole number or \"max\"", x)
			return nil, false
		}
		return cgroup.Value(uint64(x)), true
	case string:
		l, err := cgroup.ParseCount(x)
		if err != nil {
			v.errf(path, "%v", err)
			return nil, false
		}
		return &l, true
	}
	v.errf(path, "want a whole number or \"max\", got %s", describe(val))
	return nil, false
}

// describe names a decoded TOML value's type for messages.
func describe(val any) string {
	switch x := val.(type) {
	case nil:
		return "nothing"
	case string:
		return "the string " + strconv.Quote(x)
	case int64:
		return "the integer " + strconv.FormatInt(x, 10)
	case float64:
		return "the float " + strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return "the boolean " + strconv.FormatBool(x)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", val)
}

func (v *validator) resolveDevice(spec string) (cgroup.Device, error) {
	if v.opts.ResolveDevice != nil {
		return v.opts.ResolveDevice(spec)
	}
	sysfs := v.opts.Sysfs
	if sysfs == "" {
		sysfs = "/sys"
	}
	return cgroup.ResolveDevice(spec, filepath.Clean(sysfs))
}

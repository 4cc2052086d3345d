package policy_test

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/sys/unix"

	"github.com/rsup/rsup/cgroup"
	"github.com/rsup/rsup/policy"
)

// rsup-policy.schema.json lets editors that validate TOML against a JSON
// Schema (taplo, Even Better TOML) check policy files as they are written.
// The tests below hold it to what Parse accepts.

const (
	schemaFile = "rsup-policy.schema.json"
	schemaID   = "https://github.com/rsup/rsup/policy/rsup-policy.schema.json"
)

// Bad files the schema rejects by itself: unknown keys and tables, wrong
// types, unknown names, malformed sizes and durations, out-of-range
// numbers, missing or empty actions, keys of another action type.
var schemaRejects = []string{
	"action-key-for-type.toml",
	"action-type.toml",
	"cpu-bad.toml",
	"cpu-weight-range.toml",
	"critical-above-one.toml",
	"duration-bad.toml",
	"duration-negative.toml",
	"empty-actions.toml",
	"history-zero.toml",
	"inf.toml",
	"interval-zero.toml",
	"log-level.toml",
	"missing-actions.toml",
	"nan.toml",
	"oom-for.toml",
	"pids-zero.toml",
	"rule-resource.toml",
	"rule-state.toml",
	"second-rule.toml",
	"signal-name.toml",
	"signal-target.toml",
	"size-negative-int.toml",
	"size-negative.toml",
	"size-unit.toml",
	"threshold-resource.toml",
	"throttle-max.toml",
	"throttle-until.toml",
	"unknown-key-action.toml",
	"unknown-key.toml",
	"unknown-table.toml",
	"wrong-type-table.toml",
	"wrong-type.toml",
}

// Bad files only rsup itself can reject: they satisfy the schema.
var needsGoValidator = map[string]string{
	"clear-above-warning.toml":    "compares two fields",
	"warning-above-critical.toml": "compares two fields",
	"duplicate-rule.toml":         "uniqueness of a key across array elements",
	"device-missing.toml":         "needs the host's block devices",
	"size-overflow.toml":          "64-bit overflow of a size with a unit",
}

// Bad files that are not TOML at all; no schema is involved.
var notTOML = []string{
	"syntax.toml",
}

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", schemaFile, err)
	}
	root, ok := doc.(map[string]any)
	if !ok {
		t.Fatalf("%s: not a JSON object", schemaFile)
	}
	if root["$id"] != schemaID || root["$schema"] != "https://json-schema.org/draft/2020-12/schema" || root["title"] == nil {
		t.Fatalf("%s: $id %v, $schema %v, title %v", schemaFile, root["$id"], root["$schema"], root["title"])
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaID, doc); err != nil {
		t.Fatal(err)
	}
	// Compile also checks the schema against the draft 2020-12 meta-schema.
	sch, err := c.Compile(schemaID)
	if err != nil {
		t.Fatalf("%s does not compile: %v", schemaFile, err)
	}
	return sch
}

// jsonValue turns a decoded TOML value into what a JSON document would
// hold. JSON has no NaN or infinity: they become null, which no number
// schema accepts. Dates and times become strings.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[k] = j
		}
		return out, nil
	case []map[string]any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			j, err := jsonValue(e)
			if err != nil {
				return nil, err
			}
			out[i] = j
		}
		return out, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, nil
		}
		return x, nil
	case int64, string, bool:
		return x, nil
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return nil, fmt.Errorf("TOML value of type %T has no JSON counterpart here", v)
}

// validateTOML decodes TOML text and validates it against the schema. A
// decoding failure is returned as is, with decoded false.
func validateTOML(sch *jsonschema.Schema, text string) (decoded bool, err error) {
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		return false, err
	}
	inst, err := jsonValue(doc)
	if err != nil {
		return true, err
	}
	return true, sch.Validate(inst)
}

func validateFile(t *testing.T, sch *jsonschema.Schema, path string) (decoded bool, err error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return validateTOML(sch, string(data))
}

// parseOptions resolve only /dev/fakedisk (253:0), so that no real disk is
// needed.
var parseOptions = policy.ParseOptions{ResolveDevice: func(spec string) (cgroup.Device, error) {
	if spec == "/dev/fakedisk" || spec == "253:0" {
		return cgroup.Device{Major: 253, Minor: 0}, nil
	}
	return cgroup.Device{}, fmt.Errorf("device %q: no such device", spec)
}}

func TestSchemaCompiles(t *testing.T) {
	compileSchema(t)
}

// Every property the schema declares has a description, for editors to
// show on hover.
func TestSchemaDescriptions(t *testing.T) {
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		if _, ok := m["description"]; !ok {
			t.Errorf("%s has no description", path)
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for k, p := range props {
				walk(path+"/properties/"+k, p)
			}
		}
		if defs, ok := m["$defs"].(map[string]any); ok {
			for k, d := range defs {
				walk(path+"/$defs/"+k, d)
			}
		}
	}
	walk("#", doc)
}

func TestSchemaAcceptsGoodPolicies(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("../examples/policies/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d example policies, want at least 5", len(files))
	}
	files = append(files, "testdata/good.toml")
	for _, f := range files {
		if _, err := validateFile(t, sch, f); err != nil {
			t.Errorf("%s fails the schema: %v", f, err)
		}
	}
}

func TestSchemaRejectsBadPolicies(t *testing.T) {
	sch := compileSchema(t)
	files, err := filepath.Glob("testdata/bad/*.toml")
	if err != nil || len(files) == 0 {
		t.Fatal("no bad policies", err)
	}
	// Every bad file is in exactly one list, and every listed file exists:
	// a new bad file needs a decision about where it belongs.
	listed := map[string]int{}
	for _, n := range schemaRejects {
		listed[n]++
	}
	for n := range needsGoValidator {
		listed[n]++
	}
	for _, n := range notTOML {
		listed[n]++
	}
	for _, f := range files {
		n := filepath.Base(f)
		switch listed[n] {
		case 0:
			t.Errorf("%s is in none of schemaRejects, needsGoValidator and notTOML: add it to one", n)
		case 1:
		default:
			t.Errorf("%s is in more than one list", n)
		}
		delete(listed, n)
	}
	for n := range listed {
		t.Errorf("%s is listed but not in testdata/bad", n)
	}

	for _, n := range schemaRejects {
		decoded, err := validateFile(t, sch, filepath.Join("testdata/bad", n))
		switch {
		case !decoded:
			t.Errorf("%s: not TOML (%v): move it to notTOML", n, err)
		case err == nil:
			t.Errorf("%s passes the schema, want it rejected", n)
		default:
			t.Logf("%s: %s", n, firstLine(err))
		}
	}
	for n, why := range needsGoValidator {
		if _, err := validateFile(t, sch, filepath.Join("testdata/bad", n)); err != nil {
			t.Errorf("%s (%s) is rejected by the schema: move it to schemaRejects (%s)", n, why, firstLine(err))
		}
	}
	for _, n := range notTOML {
		if decoded, _ := validateFile(t, sch, filepath.Join("testdata/bad", n)); decoded {
			t.Errorf("%s decodes as TOML, want a syntax error", n)
		}
	}
}

func firstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	lines := strings.Split(s, "\n")
	if len(lines) > 1 {
		// The validator's first line names the schema; the cause follows.
		return strings.TrimSpace(lines[len(lines)-1])
	}
	return s
}

// ruleWith is a valid rule around one action.
func ruleWith(action string) string {
	return "[[rule]]\nname = \"r\"\nresource = \"cpu\"\nstate = \"warning\"\nactions = [ " + action + " ]\n"
}

// TestSchemaMatchesParser checks the schema against Parse on many
// spellings of each kind of value: the two must agree, except where the
// schema is knowingly looser (loose gives the reason). The schema must
// never refuse what rsup accepts, or editors would flag good files.
func TestSchemaMatchesParser(t *testing.T) {
	sch := compileSchema(t)
	type tc struct {
		toml  string
		loose string // why the schema accepts this though rsup does not
	}
	var cases []tc
	add := func(format string, vals ...string) {
		for _, v := range vals {
			cases = append(cases, tc{toml: fmt.Sprintf(format, v)})
		}
	}
	loose := func(why, format string, vals ...string) {
		for _, v := range vals {
			cases = append(cases, tc{toml: fmt.Sprintf(format, v), loose: why})
		}
	}

	// Sizes (cgroup.ParseBytes).
	add("[limits]\nmemory = %s\n", `"2G"`, `"1.5G"`, `"1800M"`, `"512b"`, `"512 B"`, `"1.0"`, `"1."`, `".0"`,
		`"4GiB"`, `"4gib"`, `"10GB"`, `"10 kb"`, `"7T"`, `"7tib"`, `".5K"`, `"5.K"`, `" max "`, `"MAX"`, `"0"`,
		`0`, `1`, `123456789`, `-1`, `"-1M"`, `"512Q"`, `"1.2.3G"`, `"."`, `"G"`, `""`, `"1.5"`, `"1.5b"`,
		`"5 i b"`, `"5KiBB"`, `"5 K B"`, `1.5`, `true`, `"1e3"`, `"0x10"`)
	loose("64-bit overflow", "[limits]\nmemory = %s\n", `"99999999999T"`)
	loose("JSON does not tell 2 from 2.0", "[limits]\nmemory = %s\n", `2.0`)
	add("[limits]\nmemory_low = %s\n", `"max"`, `"256M"`, `0`)
	add("[limits]\nswap = %s\n", `"0"`, `"max"`, `"1G"`)
	add("[limits]\nmemory_high = %s\n", `"max"`, `"1800M"`, `"x"`)

	// Counts (cgroup.ParseCount) and the pids bounds.
	add("[limits]\npids = %s\n", `512`, `0`, `"0"`, `"000"`, `"max"`, `" Max "`, `"12"`, `"012"`, `"+5"`,
		`"-5"`, `4194304`, `4194305`, `"1e3"`, `-1`, `"1.0"`, `"5K"`)
	loose("string pids above the kernel's maximum", "[limits]\npids = %s\n", `"4194305"`)

	// CPU shares (cgroup.ParseCPUPercent).
	add("[limits]\ncpu = %s\n", `"150%"`, `"150"`, `"max"`, `"Max"`, `" 50% "`, `"+50%"`, `"1_000%"`,
		`"1e2%"`, `"1E+2"`, `"0x1p6%"`, `"0X1.8P4"`, `".5e1%"`, `"5.%"`, `"lots"`, `"50 %"`, `"-50%"`,
		`"inf"`, `"nan%"`, `"%"`, `""`, `"1__0%"`, `"_10%"`, `"10_%"`, `"0x10%"`, `"max%"`, `150`)
	loose("below the kernel's 1ms quota", "[limits]\ncpu = %s\n", `"0%"`, `"0.5%"`, `"0e5"`)
	add("[limits]\ncpu_weight = %s\n", `1`, `10000`, `0`, `10001`, `"100"`)

	// io entries.
	add("[limits]\nio = [ { device = \"/dev/fakedisk\"%s } ]\n", `, read_bps = "10M"`, `, read_bps = 1`,
		`, write_bps = "max"`, `, write_iops = "max"`, `, read_iops = 100`, `, read_iops = "100"`,
		`, read_bps = 0`, `, read_bps = "0M"`, `, write_bps = ".0K"`, `, read_iops = 0`, `, write_iops = "0"`,
		`, read_iops = "1K"`, ``, `, read_bps = "1M", colour = 1`)
	add("[limits]\nio = [ { device = %s, read_bps = \"1M\" } ]\n", `"253:0"`, `""`, `5`)
	add("[limits]\nio = [ %s ]\n", `{ read_bps = "1M" }`)

	// Durations (time.ParseDuration, not negative; interval above 0).
	add("[monitor]\ninterval = %s\n", `"1s"`, `"500ms"`, `"1h30m"`, `".5s"`, `"+2s"`, `"1µs"`, `"1μs"`,
		`"1us"`, `"2.s"`, `"0s"`, `"0"`, `"0.0s"`, `"5"`, `"-1s"`, `"5 s"`, `"1d"`, `""`, `5`)
	add(ruleWith(`{ type = "log" }`)+"for = %s\n", `"0"`, `"+0"`, `"0s"`, `"10s"`, `"1m30s"`, `"-5s"`, `"1.5.s"`,
		`"-0"`, `"-0s"`, `"-0.0s0m"`, `"-.0h"`, `"-0.5s"`, `"-1"`, `"-"`, `""`)
	add(ruleWith(`{ type = "log" }`)+"cooldown = %s\n", `"5m"`, `"0"`, `"soon"`)
	add("[monitor]\nhistory = %s\n", `1`, `1048576`, `0`, `1048577`, `"10"`)
	add("[monitor]\ndisk_path = %s\n", `"/var/tmp"`, `"var/tmp"`, `""`)

	// Actions.
	add(ruleWith("%s"), `{ type = "log" }`, `{ type = "log", level = "debug" }`, `{ type = "log", level = "Warn" }`,
		`{ type = "signal" }`, `{ type = "signal", signal = "HUP", target = "group" }`,
		`{ type = "signal", signal = "SIGUSR1", target = "cgroup" }`, `{ type = "signal", signal = "sigterm" }`,
		`{ type = "signal", signal = "15" }`, `{ type = "signal", signal = 15 }`, `{ type = "signal", signal = "SIGIOT" }`,
		`{ type = "signal", signal = "SIGSIGTERM" }`, `{ type = "signal", signal = "SIGRTMIN" }`,
		`{ type = "signal", signal = "TERM", grace = "5s" }`,
		`{ type = "throttle", cpu = "50%" }`, `{ type = "throttle", cpu = "MAX" }`, `{ type = "throttle", memory_high = 0 }`,
		`{ type = "throttle", memory_high = "max" }`, `{ type = "throttle", until = "30s" }`,
		`{ type = "throttle", io = [] }`, `{ type = "throttle", cpu = "50%", io = [] }`,
		`{ type = "throttle", io = [ { device = "/dev/fakedisk", write_bps = "5M" } ] }`,
		`{ type = "throttle", io = [ { device = "/dev/fakedisk", write_bps = "max" } ] }`,
		`{ type = "throttle", io = [ { device = "/dev/fakedisk", read_iops = " MAX" } ] }`,
		`{ type = "throttle", cpu = "50%", until = "clear" }`, `{ type = "throttle", cpu = "50%", until = "0s" }`,
		`{ type = "throttle", cpu = "50%", until = "Clear" }`, `{ type = "throttle", cpu = "50%", level = "info" }`,
		`{ type = "freeze" }`, `{ type = "freeze", until = "30s" }`, `{ type = "freeze", until = "0" }`,
		`{ type = "freeze", signal = "TERM" }`,
		`{ type = "kill" }`, `{ type = "kill", signal = "KILL", grace = "0s" }`, `{ type = "kill", grace = "-1s" }`,
		`{ type = "kill", target = "main" }`, `{ type = "Kill" }`, `{ level = "info" }`, `{ type = 1 }`)
	add("%s", "[[rule]]\nname = \"r\"\nresource = \"oom\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"oom\"\nstate = \"critical\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"oom\"\nstate = \"warning\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"oom\"\nfor = \"0s\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"oom\"\ncooldown = \"1m\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"cpu\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nresource = \"cpu\"\nstate = \"normal\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \" \"\nresource = \"io_pressure\"\nstate = \"critical\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nresource = \"cpu\"\nstate = \"warning\"\nactions = [ { type = \"log\" } ]\n",
		"[[rule]]\nname = \"r\"\nstate = \"warning\"\nactions = [ { type = \"log\" } ]\n",
		"rule = 5\n")

	// Thresholds.
	add("[thresholds]\n%s\n", `cpu = { warning = 0.5, critical = 1 }`, `io = { warning = 0.5, critical = 0.6, clear = 0 }`,
		`cpu_pressure = { warning = 0, critical = 0.5 }`, `disk = { warning = 0.5 }`, `disk = { critical = 0.5 }`,
		`pids = { warning = 0.5, critical = 0.9, colour = 1 }`, `memory = { warning = 0.5, critical = 0.9, clear = -0.1 }`,
		`memory = { warning = "0.5", critical = 0.9 }`, `memory = { warning = 0.5, critical = -inf }`, `memory = 0.5`)
	loose("warning must be below critical", "[thresholds]\n%s\n", `cpu = { warning = 0.95, critical = 0.9 }`)

	// Job names (cgroup.ValidateName).
	add("name = %s\n", `"job"`, `"a.b"`, `""`, `"."`, `".."`, `"a/b"`, `"memory.x"`, `"cpuset.y"`, `"cpux"`,
		`"supervisor"`, `"init"`, `"initial"`, `"a\tb"`, `"a\u007fb"`, `"`+strings.Repeat("x", 255)+`"`,
		`"`+strings.Repeat("x", 256)+`"`, `5`)
	add("%s\n", `colour = 1`, `[limit]`, `limits = 5`, `[limits]`, `[monitor]`, `[thresholds]`)

	for _, c := range cases {
		decoded, serr := validateTOML(sch, c.toml)
		if !decoded {
			t.Errorf("case is not TOML: %v\n%s", serr, c.toml)
			continue
		}
		_, gerr := policy.Parse("case.toml", []byte(c.toml), parseOptions)
		schemaOK, goOK := serr == nil, gerr == nil
		switch {
		case c.loose != "" && (!schemaOK || goOK):
			t.Errorf("marked loose (%s), but schema ok=%v and rsup ok=%v:\n%s", c.loose, schemaOK, goOK, c.toml)
		case c.loose == "" && goOK && !schemaOK:
			t.Errorf("rsup accepts, the schema refuses (%s):\n%s", firstLine(serr), c.toml)
		case c.loose == "" && !goOK && schemaOK:
			t.Errorf("rsup refuses (%v), the schema accepts:\n%s", gerr, c.toml)
		}
	}
}

// The schema's signal names are exactly those rsup accepts on this
// platform, with and without "SIG".
func TestSchemaSignals(t *testing.T) {
	if strings.HasPrefix(runtime.GOARCH, "mips") || runtime.GOARCH == "sparc64" {
		t.Skip("this architecture's signal list differs from the one the schema describes")
	}
	sch := compileSchema(t)
	var names []string
	for n := 1; n < 128; n++ {
		if name := unix.SignalName(unix.Signal(n)); name != "" {
			names = append(names, name, strings.TrimPrefix(name, "SIG"))
		}
	}
	if len(names) < 60 {
		t.Fatalf("only %d signal names known", len(names))
	}
	for _, name := range names {
		doc := ruleWith(`{ type = "kill", signal = "` + name + `" }`)
		if _, err := validateTOML(sch, doc); err != nil {
			t.Errorf("signal %q: the schema refuses it: %s", name, firstLine(err))
		}
		if _, err := policy.Parse("case.toml", []byte(doc), parseOptions); err != nil {
			t.Errorf("signal %q: %v", name, err)
		}
	}
	// And nothing else: every name in the schema's list is among them.
	data, err := os.ReadFile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	enum, _ := doc.(map[string]any)["$defs"].(map[string]any)["signal"].(map[string]any)["enum"].([]any)
	if len(enum) != len(names) {
		t.Errorf("the schema lists %d signal names, rsup accepts %d", len(enum), len(names))
	}
	for _, e := range enum {
		if s, _ := e.(string); !slices.Contains(names, s) {
			t.Errorf("the schema lists signal %v, which rsup does not accept", e)
		}
	}
}

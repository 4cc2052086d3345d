package policy

import (
	"path/filepath"
	"testing"
)

// Every policy shipped in examples/ parses and validates.
func TestExamplePolicies(t *testing.T) {
	files, err := filepath.Glob("../examples/policies/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("found %d example policies, want at least 5", len(files))
	}
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if p.Name() == "" || len(p.Rules()) == 0 {
			t.Errorf("%s: no name or no rules", f)
		}
	}
}

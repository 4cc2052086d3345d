package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes the decoder, the position scanner
// or the validator panic, and that every rejection carries the file name.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.toml")
	bad, _ := filepath.Glob("testdata/bad/*.toml")
	for _, p := range append(files, bad...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("f.toml", data, testOptions)
		if err != nil {
			for _, msg := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(msg, "f.toml") {
					t.Fatalf("error without the file name: %q", msg)
				}
			}
			return
		}
		_ = p.Rules()
		_ = p.Limits()
		locate(string(data))
	})
}

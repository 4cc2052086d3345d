package policy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error about a policy file's content, so
// that a caller can tell a bad policy (exit status 2) from a failure to
// read it.
var ErrInvalid = errors.New("invalid policy")

// Error is one problem in a policy file. Line and Col are 1-based; 0 when
// not known.
type Error struct {
	File      string
	Line, Col int
	// Key is the key path concerned, such as "rule[1].actions[0].signal";
	// empty for syntax errors.
	Key string
	Msg string
}

// Error returns "FILE:LINE:COL: key: message", leaving out what is not
// known.
func (e *Error) Error() string {
	// One line per error: the decoder's messages may quote a newline.
	key := strings.ReplaceAll(e.Key, "\n", `\n`)
	msg := strings.ReplaceAll(e.Msg, "\n", `\n`)
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
		if e.Col > 0 {
			s += ":" + strconv.Itoa(e.Col)
		}
	}
	if key != "" {
		return fmt.Sprintf("%s: %s: %s", s, key, msg)
	}
	return fmt.Sprintf("%s: %s", s, msg)
}

// Is reports that every Error is an ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

package main

import (
	"errors"

	"github.com/rsup/rsup/supervisor"
)

// exitError carries the exit status rsup must end with.
type exitError struct {
	code int
	err  error // nil when there is nothing more to print
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// exitWith ends rsup with code, printing nothing more.
func exitWith(code int) error { return &exitError{code: code} }

// usageError is a bad flag or argument: status 125, like a failure before
// the command starts.
func usageError(err error) error { return &exitError{code: supervisor.ExitFailure, err: err} }

// exitCode maps the error that ended rsup to its exit status. It is the one
// place where exit statuses are chosen.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var se *supervisor.StartError
	if errors.As(err, &se) {
		return se.Code
	}
	return supervisor.ExitFailure
}

// silent reports errors that carry only an exit status.
func silent(err error) bool {
	var ee *exitError
	return errors.As(err, &ee) && ee.err == nil
}

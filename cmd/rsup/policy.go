package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/policy"
)

// exitBadPolicy is rsup's exit status for a policy file that does not
// validate.
const exitBadPolicy = 2

func policyCommand() *cli.Command {
	return &cli.Command{
		Name:  "policy",
		Usage: "check and explain TOML policy files",
		Subcommands: []*cli.Command{
			policyTestCommand(),
			{
				Name:      "check",
				Usage:     "validate policy files (exit 2 if any is invalid)",
				ArgsUsage: "FILE...",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return usageError(errors.New("policy check: missing FILE"))
					}
					var errs []error
					for _, f := range c.Args().Slice() {
						p, err := policy.Load(f)
						if err != nil {
							errs = append(errs, err)
							continue
						}
						fmt.Printf("%s: ok (%d rule(s))\n", f, len(p.Rules()))
					}
					return policyError(errors.Join(errs...))
				},
			},
			{
				Name:      "explain",
				Usage:     "say in plain words what a policy will do",
				ArgsUsage: "FILE",
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageError(errors.New("policy explain: want exactly one FILE"))
					}
					p, err := policy.Load(c.Args().First())
					if err != nil {
						return policyError(err)
					}
					return p.Explain(os.Stdout)
				},
			},
		},
	}
}

// policyError gives a policy that does not validate exit status 2; a file
// that cannot be read is a plain failure.
func policyError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, policy.ErrInvalid) {
		return &exitError{code: exitBadPolicy, err: err}
	}
	return err
}

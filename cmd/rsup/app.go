package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
)

func newApp() *cli.App {
	return &cli.App{
		Name:  "rsup",
		Usage: "run commands under cpu, memory, io and pids limits that the kernel enforces (cgroup v2)",
		Description: "rsup starts a command inside its own job cgroup in a dedicated cgroup v2 hierarchy, " +
			"with its limits written before the command's first instruction, and removes the cgroup, " +
			"and everything the command left running in it, when the command exits.",
		HideHelpCommand: true,
		Commands:        []*cli.Command{runCommand(), trackCommand(), statusCommand(), stopCommand(), gcCommand(), plotCommand(), sysinfoCommand(), policyCommand()},
		OnUsageError:    onUsageError,
		Writer:          os.Stdout,
		ErrWriter:       os.Stderr,
		// Exit statuses are chosen in exitCode, not by the library.
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageError(fmt.Errorf("%w (see 'rsup %s --help')", err, c.Command.Name))
}

package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/rsup/rsup/monitor"
)

func sysinfoCommand() *cli.Command {
	return &cli.Command{
		Name:  "sysinfo",
		Usage: "print the platform, kernel, processor, CPUs, memory and cgroup mode rsup works with",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
		},
		OnUsageError: onUsageError,
		Action: func(c *cli.Context) error {
			info, err := monitor.ReadSystemInfo("/proc", "/sys/fs/cgroup")
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err = fmt.Fprint(os.Stdout, info.String())
			return err
		},
	}
}

// Command consul is the test peer the mesh is verified against: the real Consul
// CLI and agent, compiled from the pinned github.com/hashicorp/consul module.
// It only wires Consul's own command table to a CLI runner; all behaviour is
// Consul's. Built by scripts/provision.mjs into the git-ignored cache.
package main

import (
	"fmt"
	"io"
	"log"
	"os"
	"sort"

	mcli "github.com/mitchellh/cli"

	"github.com/hashicorp/consul/command"
	consulcli "github.com/hashicorp/consul/command/cli"
	"github.com/hashicorp/consul/command/version"
)

func main() {
	// Consul's own libraries log through the standard logger before the agent
	// sets up its own; keep that noise out of test output.
	log.SetOutput(io.Discard)

	ui := &consulcli.BasicUI{BasicUi: mcli.BasicUi{Writer: os.Stdout, ErrorWriter: os.Stderr}}
	commands := command.RegisteredCommands(ui)
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)

	runner := &mcli.CLI{
		Name:        "consul",
		Args:        os.Args[1:],
		Commands:    commands,
		HelpFunc:    mcli.FilteredHelpFunc(names, mcli.BasicHelpFunc("consul")),
		HelpWriter:  os.Stdout,
		ErrorWriter: os.Stderr,
	}
	if runner.IsVersion() {
		os.Exit(version.New(ui).Run(nil))
	}
	code, err := runner.Run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "consul: %v\n", err)
		os.Exit(1)
	}
	os.Exit(code)
}

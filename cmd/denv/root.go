package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/alebellu/denv/diag"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Main runs the denv command line with args and returns the exit code.
// Errors are printed here and nowhere else.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(context.Background()); err != nil {
		printError(stderr, err)
		return 1
	}
	return 0
}

// printError prints err once: diagnostics as they are, one
// "file:line:col: message" per line; anything else after "denv: ".
func printError(w io.Writer, err error) {
	var list diag.List
	var d *diag.Diagnostic
	if errors.As(err, &list) || (errors.As(err, &d) && d.Pos.File != "") {
		fmt.Fprintln(w, err.Error())
		return
	}
	fmt.Fprintln(w, "denv: "+err.Error())
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "denv",
		Short:         "Compose and run container-based environments",
		Version:       version,
		SilenceErrors: true,
		SilenceUsage:  true,
		// cobra's "Did you mean" suggestions would make the error several lines
		DisableSuggestions: true,
	}
	a := newApp()
	root.AddCommand(
		newCompileCmd(a),
		newRunCmd(a),
		newEnvsCmd(a),
		newStartCmd(a),
		newStopCmd(a),
		newRmCmd(a),
		newLogsCmd(a),
		newAddCmd(a),
		newDefsCmd(a),
		newDefCmd(a),
		newCloneCmd(a),
		newSnapshotCmd(a),
		newSnapshotsCmd(a),
		newRestoreCmd(a),
		newUpdateCmd(a),
	)
	root.AddCommand(newCopierCmds()...)
	root.AddCommand(newSnapshotCopierCmds()...)
	root.SetHelpCommand(newHelpCmd())
	strictCompletionCmd(root)
	return root
}

// strictCompletionCmd makes cobra's `completion` command refuse a missing
// or unknown shell: by itself it prints its help and exits 0 for both.
func strictCompletionCmd(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() != "completion" {
			continue
		}
		var shells []string
		for _, sh := range c.Commands() {
			shells = append(shells, sh.Name())
		}
		want := strings.Join(shells, ", ")
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("completion: want SHELL (%s); see 'denv completion --help'", want)
			}
			return fmt.Errorf("completion: unknown shell %q: want %s", args[0], want)
		}
	}
}

// newHelpCmd replaces cobra's help command, which prints the usage and
// exits 0 for a topic that does not exist.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Help about any command",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 || (len(args) > 0 && target == cmd.Root()) {
				return fmt.Errorf("help: unknown command %q; see 'denv help'", strings.Join(args, " "))
			}
			return target.Help()
		},
	}
}

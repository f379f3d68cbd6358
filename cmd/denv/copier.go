package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"

	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/internal/copier"
)

// newCopierCmds returns the hidden subcommands that make the denv binary
// the volume copier: volumecopy imports this executable (with its
// loader and libraries when dynamically linked) as an image and runs it in
// the engine with the volumes mounted, so that no helper image has to be
// pulled and users need no Go toolchain.
// They are not meant to be typed by users.
func newCopierCmds() []*cobra.Command {
	return []*cobra.Command{
		{
			Use:    volumecopy.CopierCopyArg + " [--wait] SRC DST [SRC DST]...",
			Short:  "Copy each tree SRC into DST faithfully (used inside the engine by clone)",
			Hidden: true,
			// its own arguments: --wait is copier.Command's
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return copier.Command(args, cmd.InOrStdin(), cmd.OutOrStdout())
			},
		},
		{
			Use:                volumecopy.CopierReplaceArg + " [--wait] SRC DST [SRC DST]...",
			Short:              "Replace the contents of each DST with a copy of SRC, all or none (used inside the engine by restore)",
			Hidden:             true,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return copier.ReplaceCommand(args, cmd.InOrStdin(), cmd.OutOrStdout())
			},
		},
		{
			Use:    volumecopy.CopierChecksumArg + " DIR",
			Short:  "Print the checksum listing of the tree DIR (used inside the engine)",
			Hidden: true,
			Args:   cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return copier.Checksum(args[0], cmd.OutOrStdout())
			},
		},
	}
}

// copierEnv is the environment variable that says where volume copies
// run: "container" keeps every copy in a confined container of the copier
// image; empty or "auto" lets denv run a copy as a process of this host
// when it is root there and nothing else uses the volumes (see
// volumecopy.Where).
const copierEnv = "DENV_COPY_IN"

// copier returns the volume copier over b, as DENV_COPY_IN says.
func (a *app) copier(b *backend.Backend) (*volumecopy.Copier, error) {
	vc := volumecopy.New(b)
	switch v := a.getenv(copierEnv); v {
	case "", "auto":
	case "container":
		vc.Where = volumecopy.InContainer
	default:
		return nil, fmt.Errorf("%s=%q: want container or auto", copierEnv, v)
	}
	return vc, nil
}

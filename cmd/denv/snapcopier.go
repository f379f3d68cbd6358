package main

import (
	"github.com/spf13/cobra"

	"github.com/alebellu/denv/internal/snaparchive"
)

// newSnapshotCopierCmds returns the hidden subcommands that make the denv
// binary the snapshot exporter and importer inside the engine, as
// newCopierCmds does for the volume copy: the copier image runs them with
// the volumes mounted. They are not meant to be typed by users.
func newSnapshotCopierCmds() []*cobra.Command {
	return []*cobra.Command{
		{
			Use:   snaparchive.ExportArg + " [--progress] DIR...",
			Short: "Write the snapshot file of the DIRs to stdout, its manifest JSON read on stdin (used inside the engine)",
			Args:  cobra.MinimumNArgs(1), Hidden: true,
			// its own arguments: --progress is snaparchive's
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return snaparchive.ExportCommand(args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			},
		},
		{
			Use:   snaparchive.ImportArg + " [--progress] DIR...",
			Short: "Verify the snapshot file on stdin and extract it into the DIRs (used inside the engine)",
			Args:  cobra.MinimumNArgs(1), Hidden: true,
			DisableFlagParsing: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return snaparchive.ImportCommand(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			},
		},
		{
			Use:   snaparchive.SumArg + " DIR",
			Short: "Print the bytes, entries and SHA-256 of the canonical tar of DIR (used inside the engine)",
			Args:  cobra.ExactArgs(1), Hidden: true,
			RunE: func(cmd *cobra.Command, args []string) error {
				return snaparchive.SumCommand(args, cmd.OutOrStdout())
			},
		},
	}
}

package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

type logsOptions struct {
	follow bool
}

func newLogsCmd(a *app) *cobra.Command {
	var opts logsOptions
	cmd := &cobra.Command{
		Use:   "logs ID [SERVICE...] [-f]",
		Short: "Print the logs of an environment",
		Long: `Logs prints the logs of the containers of the environment ID, or only of
the compose services named (e.g. web-env-web), each line prefixed with its
container's name. With -f it keeps following until interrupted.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return exactArgs(1, "ID [SERVICE...]")(cmd, args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLogs(cmd, a, opts, args[0], args[1:])
		},
	}
	cmd.Flags().BoolVarP(&opts.follow, "follow", "f", false, "keep following the output")
	return cmd
}

func runLogs(cmd *cobra.Command, a *app, opts logsOptions, id string, services []string) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, e, _, _, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	err = e.Logs(ctx, id, services, opts.follow, cmd.OutOrStdout())
	if opts.follow && errors.Is(err, context.Canceled) {
		return nil // interrupted: the normal end of following
	}
	return err
}

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/records"
)

func newStartCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "start ID",
		Short: "Start a stopped environment",
		Long: `Start starts the containers of the environment ID again, with the data its
volumes kept. When its containers are gone (status "missing" in
'denv envs --all'), they are created again from the project recorded when
it was first run, not from the definition as it is now.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStart(cmd, a, args[0])
		},
	}
}

func runStart(cmd *cobra.Command, a *app, id string) error {
	ctx := cmd.Context()
	b, e, _, rec, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	if err := e.Start(ctx, deployment(rec)); err != nil {
		return err
	}
	return printEndpoints(ctx, cmd.OutOrStdout(), e, id)
}

func newStopCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "stop ID",
		Short: "Stop an environment, keeping its containers and data",
		Args:  exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStop(cmd, a, args[0])
		},
	}
}

func runStop(cmd *cobra.Command, a *app, id string) error {
	ctx := cmd.Context()
	b, e, _, _, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	return e.Stop(ctx, id)
}

type rmOptions struct {
	volumes bool
	force   bool
}

func newRmCmd(a *app) *cobra.Command {
	var opts rmOptions
	cmd := &cobra.Command{
		Use:   "rm ID [--volumes] [--force]",
		Short: "Remove an environment",
		Long: `Rm removes the containers and networks of the environment ID and its
record. Like 'docker rm', it refuses an environment that has running
containers unless --force is given (which stops them first). Named volumes
are kept unless --volumes is given.

An environment whose run was killed midway (status "incomplete" in
'denv envs --all') has no record: rm removes every container and network
(and with --volumes every volume) labelled with its project name, then its
directory, and the name is free again.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRm(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().BoolVarP(&opts.volumes, "volumes", "v", false, "also remove the environment's named volumes")
	cmd.Flags().BoolVarP(&opts.force, "force", "f", false, "remove the environment even when it is running")
	return cmd
}

func runRm(cmd *cobra.Command, a *app, opts rmOptions, id string) error {
	ctx := cmd.Context()
	// A damaged record is removed without the daemon; openEnvs creates
	// the records' directory, so look for the record's own first.
	if recordDirExists(id) {
		es, err := a.openEnvs()
		if err != nil {
			return err
		}
		if _, err := es.Get(id); errors.Is(err, records.ErrDamaged) {
			// Which engine it ran on is unknown: remove the record only.
			if err := es.Remove(id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "removed the damaged record of %q; containers of project %q, if any, are left running\n", id, id)
			return nil
		}
	}
	b, e, es, _, err := a.openEnv(ctx, cmd, id)
	if errors.As(err, new(noEnvError)) {
		if handled, ierr := rmIncomplete(ctx, cmd, a, opts, id); handled {
			return ierr
		}
	}
	if err != nil {
		return err
	}
	defer b.Close()
	// An update of id in progress: refuse rather than remove what it is
	// converging (and it refuses to start while rm runs).
	hold, err := es.Hold(id)
	if err != nil {
		return err
	}
	defer hold.Release()
	if err := e.Remove(ctx, id, opts.force, opts.volumes); err != nil {
		return err
	}
	return es.Remove(id)
}

// recordDirExists reports whether environment id has a record directory.
func recordDirExists(id string) bool {
	dir, err := recordsDir()
	if err != nil || records.ValidID(id) != nil {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, id))
	return err == nil
}

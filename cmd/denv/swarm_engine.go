package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/envs"
	"github.com/alebellu/denv/swarm"
)

// The engines an environment runs on (envs.Record.Engine).
const (
	engineLocal = "local"
	engineSwarm = "swarm"
)

// stackWait bounds how long run and start wait for a stack's tasks to run.
const stackWait = 2 * time.Minute

// validEngine checks --engine and --publish-mode.
func validEngine(e, publishMode string) error {
	if e != engineLocal && e != engineSwarm {
		return fmt.Errorf("run: unknown --engine %q: want local or swarm", e)
	}
	if publishMode != "ingress" && publishMode != "host" {
		return fmt.Errorf("run: unknown --publish-mode %q: want ingress or host", publishMode)
	}
	if e == engineLocal && publishMode != "ingress" {
		return fmt.Errorf("run: --publish-mode is for --engine swarm")
	}
	return nil
}

// stackFile renders p as the stack file of the swarm engine; it is what
// the record keeps as its project.
func stackFile(p *types.Project, wd, publishMode string) ([]byte, error) {
	return swarm.Compose(p, swarm.Options{WorkDir: wd, PublishMode: publishMode})
}

// deployRecord deploys the recorded stack file of rec as the stack rec.ID
// and waits for its tasks to run; if they do not, the stack is removed.
func deployRecord(ctx context.Context, b *backend.Backend, rec envs.Record) error {
	cfg, err := backend.LoadStack(rec.Project, rec.WorkDir)
	if err != nil {
		return err
	}
	if err := b.DeployStack(ctx, rec.ID, cfg); err != nil {
		return err
	}
	if err := b.WaitStack(ctx, rec.ID, stackWait); err != nil {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := b.RemoveStack(rmCtx, rec.ID, false); rerr != nil {
			return fmt.Errorf("%w (and removing the stack failed: %v)", err, rerr)
		}
		return err
	}
	return nil
}

// printStackEndpoints prints "SERVICE  http://127.0.0.1:PORT" for each
// published TCP port of stack id: ingress ports answer on every node,
// this one included.
func printStackEndpoints(ctx context.Context, w io.Writer, b *backend.Backend, id string) error {
	svcs, err := b.Stack(ctx, id)
	if err != nil {
		return err
	}
	for _, s := range svcs {
		if err := printPorts(w, s.Ports); err != nil {
			return err
		}
	}
	return nil
}

// startStack scales the stack of rec back to one task per service, or
// deploys the recorded stack file again when its services are gone.
func startStack(ctx context.Context, w io.Writer, b *backend.Backend, rec envs.Record) error {
	err := b.ScaleStack(ctx, rec.ID, 1)
	if err == nil {
		err = b.WaitStack(ctx, rec.ID, stackWait)
	} else if errors.Is(err, backend.ErrNotFound) {
		err = deployRecord(ctx, b, rec)
	}
	if err != nil {
		return err
	}
	return printStackEndpoints(ctx, w, b, rec.ID)
}

// rmStack removes stack id, refusing one with running tasks unless force.
// With force, on an engine that is no longer a swarm manager (the stack is
// gone with the swarm), only the record is removed.
func rmStack(ctx context.Context, b *backend.Backend, id string, force, volumes bool) error {
	if force {
		if _, manager, err := b.SwarmActive(ctx); err == nil && !manager {
			return nil
		}
	}
	if !force {
		svcs, err := b.Stack(ctx, id)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if s.Running > 0 || s.Desired > 0 {
				return fmt.Errorf("environment %q is running: stop it first or use 'denv rm --force %s'", id, id)
			}
		}
	}
	return b.RemoveStack(ctx, id, volumes)
}

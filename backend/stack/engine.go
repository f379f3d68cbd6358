// Package stack is denv's swarm runtime: it deploys an environment as a
// Docker Swarm stack (the stack file package swarm compiles) and
// implements [backend.Engine] for it. Package swarm, the stack-file
// compiler, stays a pure target: this package is the part that talks to
// the engine.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/swarm"
)

// Name is the engine's name in run records and --engine.
const Name = "swarm"

// waitTimeout bounds how long deploy and start wait for a stack's tasks
// to run.
const waitTimeout = 2 * time.Minute

// Engine runs environments as swarm stacks over a Docker connection.
type Engine struct {
	conn *backend.Backend
	api  client.APIClient
	// planned is the new stack the last Plan prepared, for Update.
	planned *plannedStack
}

var _ backend.Engine = (*Engine)(nil)

// New returns the swarm runtime over the Docker connection conn (which
// the caller closes).
func New(conn *backend.Backend) *Engine {
	return &Engine{conn: conn, api: conn.API()}
}

// Render compiles p to the stack file the record keeps.
func (e *Engine) Render(p *types.Project, opts backend.RenderOptions) ([]byte, error) {
	return swarm.StackFile(p, swarm.Options{WorkDir: opts.WorkDir, PublishMode: opts.PublishMode})
}

// Deploy deploys the stack file of d as the stack d.ID and waits for its
// tasks to run (whatever wait says: a stack has no "started" short of
// running); if they do not, the stack is removed.
func (e *Engine) Deploy(ctx context.Context, d backend.Deployment, wait bool) error {
	cfg, err := LoadStack(d.Project, d.WorkDir)
	if err != nil {
		return err
	}
	if err := e.DeployStack(ctx, d.ID, cfg); err != nil {
		return err
	}
	if err := e.WaitStack(ctx, d.ID, waitTimeout); err != nil {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := e.RemoveStack(rmCtx, d.ID, false); rerr != nil {
			return fmt.Errorf("%w (and removing the stack failed: %v)", err, rerr)
		}
		return err
	}
	return nil
}

// Start scales the stack of d back to one task per service, or deploys
// the recorded stack file again when its services are gone.
func (e *Engine) Start(ctx context.Context, d backend.Deployment) error {
	err := e.ScaleStack(ctx, d.ID, 1)
	if err == nil {
		return e.WaitStack(ctx, d.ID, waitTimeout)
	}
	if errors.Is(err, backend.ErrNotFound) {
		return e.Deploy(ctx, d, true)
	}
	return err
}

// Stop scales every service of stack id to zero tasks.
func (e *Engine) Stop(ctx context.Context, id string) error {
	return e.ScaleStack(ctx, id, 0)
}

// Remove removes stack id, refusing one with running tasks unless force.
// With force, on an engine that is no longer a swarm manager (the stack is
// gone with the swarm), there is nothing to remove.
func (e *Engine) Remove(ctx context.Context, id string, force, volumes bool) error {
	if force {
		if _, manager, err := e.SwarmActive(ctx); err == nil && !manager {
			return nil
		}
	}
	if !force {
		svcs, err := e.Stack(ctx, id)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if s.Running > 0 || s.Desired > 0 {
				return fmt.Errorf("environment %q is running: stop it first or use 'denv rm --force %s'", id, id)
			}
		}
	}
	return e.RemoveStack(ctx, id, volumes)
}

// Logs writes the logs of the services of stack id.
func (e *Engine) Logs(ctx context.Context, id string, services []string, follow bool, w io.Writer) error {
	return e.StackLogs(ctx, id, services, follow, w)
}

// Status describes each stack of ids that has services.
func (e *Engine) Status(ctx context.Context, ids []string) (map[string]backend.EnvState, error) {
	out := make(map[string]backend.EnvState, len(ids))
	for _, id := range ids {
		env, ok, err := e.StackEnv(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out[id] = env
		}
	}
	return out, nil
}

// Endpoints returns the published ports of stack id: ingress ports answer
// on every node, this one included.
func (e *Engine) Endpoints(ctx context.Context, id string) ([]backend.Port, error) {
	svcs, err := e.Stack(ctx, id)
	if err != nil {
		return nil, err
	}
	var ports []backend.Port
	for _, s := range svcs {
		ports = append(ports, s.Ports...)
	}
	return ports, nil
}

// Volumes returns the names of the named volumes of d's stack file
// (ID_KEY, or the fixed name), sorted.
func (e *Engine) Volumes(ctx context.Context, d backend.Deployment) ([]string, error) {
	cfg, err := LoadStack(d.Project, d.WorkDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		v := cfg.Volumes[k]
		if v.External.External {
			continue
		}
		name := v.Name
		if name == "" {
			name = d.ID + "_" + k
		}
		names = append(names, name)
	}
	return names, nil
}

// PublishMode is the publish mode ("ingress" or "host") the stack file
// was rendered with ([backend.RenderOptions.PublishMode]), which the
// record does not keep: host when a port is published in host mode or a
// service that publishes its image's ports has no virtual IP (dnsrr,
// which the renderer gives every service in host mode), else ingress.
func PublishMode(stackFile []byte, workDir string) (string, error) {
	cfg, err := LoadStack(stackFile, workDir)
	if err != nil {
		return "", err
	}
	for _, s := range cfg.Services {
		for _, p := range s.Ports {
			if p.Mode == "host" {
				return "host", nil
			}
		}
		if backend.PublishesImagePorts(s.Labels) && s.Deploy.EndpointMode == "dnsrr" {
			return "host", nil
		}
	}
	return "ingress", nil
}

// Package compose is denv's local runtime: it runs an environment as a
// Docker Compose project through the Compose SDK calls of package backend
// and implements [backend.Engine] for it.
package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
)

// Name is the engine's name in run records and --engine.
const Name = "local"

// Engine runs environments as compose projects over a Docker connection.
type Engine struct {
	conn *backend.Backend
	// planned is the new project Plan prepared, reused by Update for the
	// same deployment (update.go).
	planned *plannedProject
	// loaded is the last project Deploy or Plan loaded through the
	// loader, encoded for the record (LoadedProject, update.go).
	loaded *loadedProject
}

var _ backend.Engine = (*Engine)(nil)

// New returns the local runtime over the Docker connection conn (which
// the caller closes).
func New(conn *backend.Backend) *Engine { return &Engine{conn: conn} }

// Render renders p as the compose file the record keeps.
func (e *Engine) Render(p *types.Project, _ backend.RenderOptions) ([]byte, error) {
	return compile.YAML(p)
}

// Deploy loads the recorded project, pulls the images its pull policies
// ask for, publishes the image ports of the services that ask for it, and
// starts it; with wait, it waits until the containers run, else it returns
// once they are started, like `up -d`; either way it waits until the
// services with a healthcheck (READY or their image's) are healthy.
func (e *Engine) Deploy(ctx context.Context, d backend.Deployment, wait bool) error {
	p, err := backend.Load(ctx, d.Project, d.ID, d.WorkDir)
	if err != nil {
		return err
	}
	e.remember(d, p)
	if err := e.conn.PrepareImages(ctx, p); err != nil {
		return err
	}
	return e.conn.Up(ctx, p, backend.UpOptions{NoWait: !wait, KeepOnFailure: d.KeepOnFailure})
}

// Start starts the containers of d again; when they are gone it creates
// them again from the recorded project and waits until they run.
func (e *Engine) Start(ctx context.Context, d backend.Deployment) error {
	err := e.conn.Start(ctx, d.ID)
	if errors.Is(err, backend.ErrNotFound) {
		err = e.Deploy(ctx, d, true)
	}
	return err
}

// Stop stops the containers of project id.
func (e *Engine) Stop(ctx context.Context, id string) error { return e.conn.Stop(ctx, id) }

// Remove takes project id down, refusing one with running containers
// unless force.
func (e *Engine) Remove(ctx context.Context, id string, force, volumes bool) error {
	if !force {
		cs, err := e.conn.Ps(ctx, id)
		if err != nil {
			return err
		}
		for _, c := range cs {
			if c.State == "running" || c.State == "restarting" {
				return fmt.Errorf("environment %q is running: stop it first or use 'denv rm --force %s'", id, id)
			}
		}
	}
	return e.conn.Down(ctx, id, volumes)
}

// Logs writes the logs of the containers of project id.
func (e *Engine) Logs(ctx context.Context, id string, services []string, follow bool, w io.Writer) error {
	return e.conn.Logs(ctx, id, services, follow, w)
}

// Status lists the compose projects once, whatever the number of ids, and
// keeps those of ids.
func (e *Engine) Status(ctx context.Context, ids []string) (map[string]backend.EnvState, error) {
	running, err := e.conn.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]backend.EnvState, len(ids))
	for _, env := range running {
		if slices.Contains(ids, env.Name) {
			out[env.Name] = env
		}
	}
	return out, nil
}

// Endpoints returns the published ports of the containers of project id.
func (e *Engine) Endpoints(ctx context.Context, id string) ([]backend.Port, error) {
	return e.conn.Endpoints(ctx, id)
}

// Volumes returns the names of the named (non-external) volumes of d's
// project, by key.
func (e *Engine) Volumes(ctx context.Context, d backend.Deployment) ([]string, error) {
	p, err := backend.Load(ctx, d.Project, d.ID, d.WorkDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, k := range slices.Sorted(maps.Keys(p.Volumes)) {
		if v := p.Volumes[k]; !v.External {
			names = append(names, v.Name)
		}
	}
	return names, nil
}

var _ backend.Salvager = (*Engine)(nil)

// Leftovers lists the containers, networks and volumes labelled with
// compose project id.
func (e *Engine) Leftovers(ctx context.Context, id string) (backend.Leftovers, error) {
	return e.conn.Leftovers(ctx, id)
}

// RemoveLeftovers removes what carries compose project id's label.
func (e *Engine) RemoveLeftovers(ctx context.Context, id string, volumes bool) error {
	return e.conn.RemoveLeftovers(ctx, id, volumes)
}

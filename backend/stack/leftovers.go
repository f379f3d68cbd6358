package stack

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
)

var _ backend.Salvager = (*Engine)(nil)

// Leftovers lists what carries the namespace label of stack id, whatever
// made it (a `denv run --engine swarm` killed midway leaves no record):
// services, configs and secrets when the engine is a swarm manager, and
// networks and volumes (volumes are made on each node as tasks start,
// labelled by the docker CLI's convert).
func (e *Engine) Leftovers(ctx context.Context, id string) (backend.Leftovers, error) {
	var l backend.Leftovers
	f := stackFilter(id)
	_, manager, err := e.SwarmActive(ctx)
	if err != nil {
		return l, err
	}
	if manager {
		svcs, err := e.stackServices(ctx, id)
		if err != nil {
			return l, err
		}
		for _, s := range svcs {
			ls := backend.LeftoverService{ID: s.ID, Name: s.Spec.Name}
			if s.ServiceStatus != nil {
				ls.Running = s.ServiceStatus.RunningTasks
			}
			l.Services = append(l.Services, ls)
		}
		cfgs, err := e.api.ConfigList(ctx, client.ConfigListOptions{Filters: f})
		if err != nil {
			return l, fmt.Errorf("stack %s: cannot list configs: %s", id, backend.OneLine(err))
		}
		for _, c := range cfgs.Items {
			l.Configs = append(l.Configs, c.Spec.Name)
		}
		secrets, err := e.api.SecretList(ctx, client.SecretListOptions{Filters: f})
		if err != nil {
			return l, fmt.Errorf("stack %s: cannot list secrets: %s", id, backend.OneLine(err))
		}
		for _, s := range secrets.Items {
			l.Secrets = append(l.Secrets, s.Spec.Name)
		}
	}
	err = e.conn.LeftoverNetworksAndVolumes(ctx, f, "stack "+id, &l)
	return l, err
}

// RemoveLeftovers removes everything labelled with stack namespace id
// (volumes only with volumes), without the stack file
// (backend.ClearLeftovers). On an engine in no swarm, which creates no
// stack resource, no request of a dead run can be in flight: it returns
// once a listing finds nothing.
func (e *Engine) RemoveLeftovers(ctx context.Context, id string, volumes bool) error {
	active, _, err := e.SwarmActive(ctx)
	if err != nil {
		return err
	}
	return backend.ClearLeftovers(ctx, "cannot remove what "+id+" left on the swarm", volumes, !active, func(ctx context.Context) (backend.Leftovers, error) {
		return e.Leftovers(ctx, id)
	}, func(ctx context.Context, l backend.Leftovers) error {
		return e.removeLeftovers(ctx, id, l)
	})
}

// removeLeftovers removes l: services first, then what they used
// (configs, secrets; networks and volumes once the tasks' containers are
// gone, which swarm does asynchronously).
func (e *Engine) removeLeftovers(ctx context.Context, id string, l backend.Leftovers) error {
	var errs []error
	gone := func(err error) bool { return err == nil || errdefs.IsNotFound(err) }
	for _, s := range l.Services {
		if _, err := e.api.ServiceRemove(ctx, s.ID, client.ServiceRemoveOptions{}); !gone(err) {
			errs = append(errs, fmt.Errorf("remove service %s: %s", s.Name, backend.OneLine(err)))
		}
	}
	for _, c := range l.Configs {
		if _, err := e.api.ConfigRemove(ctx, c, client.ConfigRemoveOptions{}); !gone(err) {
			errs = append(errs, fmt.Errorf("remove config %s: %s", c, backend.OneLine(err)))
		}
	}
	for _, s := range l.Secrets {
		if _, err := e.api.SecretRemove(ctx, s, client.SecretRemoveOptions{}); !gone(err) {
			errs = append(errs, fmt.Errorf("remove secret %s: %s", s, backend.OneLine(err)))
		}
	}
	for _, n := range l.Networks {
		// a network is busy until the tasks' containers are gone
		if err := retry(ctx, func() error {
			if _, err := e.api.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); !gone(err) {
				return err
			}
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("remove network %s: %s", n.Name, backend.OneLine(err)))
		}
	}
	for _, v := range l.Volumes {
		// a volume is in use until the tasks' containers are gone
		if err := retry(ctx, func() error {
			if _, err := e.api.VolumeRemove(ctx, v, client.VolumeRemoveOptions{}); !gone(err) {
				return err
			}
			return nil
		}); err != nil {
			errs = append(errs, fmt.Errorf("remove volume %s: %s", v, backend.OneLine(err)))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("stack %s: %w", id, errors.Join(errs...))
	}
	return nil
}

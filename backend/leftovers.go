package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"
)

// Leftovers are the resources the engine holds with a compose project's
// label, whatever made them: what a run that died midway (no record, no
// compose file) left behind is found this way.
type Leftovers struct {
	// Containers are the project's containers, stopped ones included.
	Containers []LeftoverContainer
	// Networks are the project's networks (one name may be there twice:
	// network names are not unique).
	Networks []LeftoverNetwork
	// Volumes are the names of the project's volumes.
	Volumes []string
	// Services are a swarm stack's services (the swarm engine's
	// leftovers; the local engine has none).
	Services []LeftoverService
	// Configs and Secrets are the names of a swarm stack's configs and
	// secrets.
	Configs, Secrets []string
}

// LeftoverService is one swarm service of [Leftovers].
type LeftoverService struct {
	ID   string
	Name string
	// Running counts its running tasks.
	Running uint64
}

// Salvager is implemented by the engines that find and remove what a run
// left of environment id without its record (a run killed midway: `denv
// envs --all` shows it incomplete, `denv rm` removes it), by the labels
// the engine puts on everything it creates (compose project, stack
// namespace).
type Salvager interface {
	// Leftovers lists what environment id has on this engine.
	Leftovers(ctx context.Context, id string) (Leftovers, error)
	// RemoveLeftovers removes it all; volumes only with volumes.
	RemoveLeftovers(ctx context.Context, id string, volumes bool) error
}

// LeftoverNetwork is one network of [Leftovers].
type LeftoverNetwork struct {
	ID   string
	Name string
}

// LeftoverContainer is one container of [Leftovers].
type LeftoverContainer struct {
	ID   string
	Name string
	// State is the engine's: created, running, paused, restarting,
	// exited, ...
	State string
}

// Running returns the names of the containers that run (or restart) and
// of the services that run tasks.
func (l Leftovers) Running() []string {
	var names []string
	for _, c := range l.Containers {
		if c.State == "running" || c.State == "restarting" {
			names = append(names, c.Name)
		}
	}
	for _, s := range l.Services {
		if s.Running > 0 {
			names = append(names, "service "+s.Name)
		}
	}
	return names
}

// Empty reports whether nothing is left.
func (l Leftovers) Empty() bool {
	return len(l.Containers) == 0 && len(l.Networks) == 0 && len(l.Volumes) == 0 &&
		len(l.Services) == 0 && len(l.Configs) == 0 && len(l.Secrets) == 0
}

// leftoverFilter selects what carries the compose project label of
// project.
func leftoverFilter(project string) client.Filters {
	return make(client.Filters).Add("label", api.ProjectLabel+"="+project)
}

// Leftovers lists the containers, networks and volumes labelled
// com.docker.compose.project=project.
func (b *Backend) Leftovers(ctx context.Context, project string) (Leftovers, error) {
	var l Leftovers
	f := leftoverFilter(project)
	cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return l, fmt.Errorf("%s: cannot list containers: %s", project, oneLine(err))
	}
	for _, c := range cs.Items {
		name := c.ID
		if len(c.Names) > 0 {
			name = c.Names[0]
			if len(name) > 0 && name[0] == '/' {
				name = name[1:]
			}
		}
		l.Containers = append(l.Containers, LeftoverContainer{ID: c.ID, Name: name, State: string(c.State)})
	}
	err = b.LeftoverNetworksAndVolumes(ctx, f, project, &l)
	return l, err
}

// LeftoverNetworksAndVolumes adds the networks and volumes that filter f
// selects to l (what names them in errors): both engines label theirs.
func (b *Backend) LeftoverNetworksAndVolumes(ctx context.Context, f client.Filters, what string, l *Leftovers) error {
	ns, err := b.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("%s: cannot list networks: %s", what, oneLine(err))
	}
	for _, n := range ns.Items {
		l.Networks = append(l.Networks, LeftoverNetwork{ID: n.ID, Name: n.Name})
	}
	vs, err := b.api.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return fmt.Errorf("%s: cannot list volumes: %s", what, oneLine(err))
	}
	for _, v := range vs.Items {
		l.Volumes = append(l.Volumes, v.Name)
	}
	return nil
}

// leftoverPasses bounds how often ClearLeftovers lists and removes.
const leftoverPasses = 4

// leftoverSettle is how long ClearLeftovers waits before listing again:
// requests the dead run sent before it died (a network or service create)
// complete on the engine after it is gone, and a name it made twice (a
// network) makes the next run's fail as ambiguous.
const leftoverSettle = time.Second

// ClearLeftovers is how both engines remove what a dead run left
// (Salvager.RemoveLeftovers): it lists with list and removes with remove
// (volumes only with volumes) until a listing made leftoverSettle after
// the last removal finds nothing, after a few passes at most. With
// settled, the first listing counts as made after one (no request of a
// dead run can be in flight). A failed removal is tried again at the next
// pass; the error starts with what and ends with the last removal's
// failure, or says that resources keep appearing.
func ClearLeftovers(ctx context.Context, what string, volumes, settled bool, list func(context.Context) (Leftovers, error), remove func(context.Context, Leftovers) error) error {
	var last error
	for range leftoverPasses {
		l, err := list(ctx)
		if err != nil {
			return err
		}
		if !volumes {
			l.Volumes = nil
		}
		if l.Empty() && settled {
			return nil
		}
		last = remove(ctx, l)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", what, ctx.Err())
		case <-time.After(leftoverSettle):
			settled = true
		}
	}
	if last != nil {
		return fmt.Errorf("%s: %w", what, last)
	}
	return fmt.Errorf("%s: resources keep appearing", what)
}

// RemoveLeftovers removes every container (forced, with its anonymous
// volumes), every network and, when volumes, every volume labelled
// com.docker.compose.project=project, without needing the project's
// definition (ClearLeftovers); the error names what could not be removed.
func (b *Backend) RemoveLeftovers(ctx context.Context, project string, volumes bool) error {
	return ClearLeftovers(ctx, "cannot remove what "+project+" left on the engine", volumes, false, func(ctx context.Context) (Leftovers, error) {
		return b.Leftovers(ctx, project)
	}, b.removeLeftovers)
}

// removeLeftovers removes l's containers, networks and volumes, going on
// after a failure; the error names each that could not be removed.
func (b *Backend) removeLeftovers(ctx context.Context, l Leftovers) error {
	var errs []string
	for _, c := range l.Containers {
		_, err := b.api.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Sprintf("container %s: %s", c.Name, oneLine(err)))
		}
	}
	for _, n := range l.Networks {
		if _, err := b.api.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Sprintf("network %s: %s", n.Name, oneLine(err)))
		}
	}
	for _, v := range l.Volumes {
		if _, err := b.api.VolumeRemove(ctx, v, client.VolumeRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Sprintf("volume %s: %s", v, oneLine(err)))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

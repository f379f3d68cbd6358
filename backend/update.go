package backend

import (
	"context"
	"fmt"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/plan"
)

// ErrUpdateUnsupported is matched (errors.Is) by the error of an engine
// that cannot update an environment in place.
const ErrUpdateUnsupported = sentinelError("update is not supported on this engine yet")

// Updater is implemented by the engines that converge a running
// environment to a new project (`denv update`). It is separate from
// [Engine] so that an engine without it still runs environments.
type Updater interface {
	// Plan says what Update(old, new) would do to environment old.ID,
	// from both projects and the live containers. It changes nothing.
	Plan(ctx context.Context, old, new Deployment) (*plan.Plan, error)
	// Update converges environment old.ID to new: only the services
	// whose configuration changed are recreated, the ones no longer in
	// new are removed (their named volumes kept unless listed in
	// opts.RemoveVolumes), the rest keep running untouched. When it
	// fails, what this call created is removed.
	Update(ctx context.Context, old, new Deployment, opts UpdateOptions) error
}

// ProjectCache is implemented by the engines that can hand back the
// project of a deployment as they loaded it ([EncodeLoaded]), for the
// record to keep as [Deployment.Loaded]: a later plan then need not load
// the recorded project again (compose-go's loader takes seconds on a
// graph of thousands of services).
type ProjectCache interface {
	// LoadedProject returns d's project as the last Deploy, Plan or
	// Update of d loaded it, or nil.
	LoadedProject(d Deployment) []byte
}

// UpdateOptions tunes [Updater.Update].
type UpdateOptions struct {
	// Wait waits until the containers run (healthy when they have a
	// healthcheck), as run --wait does.
	Wait bool
	// RemoveVolumes are project keys (of old) of the named volumes to
	// remove after the convergence: those of the removed services, with
	// --volumes.
	RemoveVolumes []string
}

// LiveServices returns, for each service of the environment name that has
// a container, the container's compose config-hash and image labels: what
// compose compares to decide what to recreate (plan.Live).
func (b *Backend) LiveServices(ctx context.Context, name string) (map[string]plan.LiveService, error) {
	cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of environment %s: %s", name, oneLine(err))
	}
	out := map[string]plan.LiveService{}
	for _, c := range cs.Items {
		svc := c.Labels[api.ServiceLabel]
		if svc == "" || c.Labels[api.OneoffLabel] == "True" {
			continue
		}
		out[svc] = plan.LiveService{ConfigHash: c.Labels[api.ConfigHashLabel], ImageDigest: c.Labels[api.ImageDigestLabel]}
	}
	return out, nil
}

// RemoveVolumes removes the volumes named (engine names); one already gone
// is not an error.
func (b *Backend) RemoveVolumes(ctx context.Context, names []string) error {
	for _, v := range names {
		if _, err := b.api.VolumeRemove(ctx, v, client.VolumeRemoveOptions{}); err != nil && !isNotFound(err) {
			return fmt.Errorf("cannot remove volume %s: %s", v, oneLine(err))
		}
	}
	return nil
}

package compose

import (
	"context"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/plan"
)

var _ backend.Updater = (*Engine)(nil)

// plannedProject is a prepared project and the deployment it was prepared
// from: Plan keeps the new one so that Update does not load and inspect it
// again (compose-go's loader dominates on large graphs).
type plannedProject struct {
	d backend.Deployment
	p *types.Project
}

// same reports whether a and b are the same deployment.
func same(a, b backend.Deployment) bool {
	return a.ID == b.ID && a.WorkDir == b.WorkDir && string(a.Project) == string(b.Project)
}

// loadedProject is a deployment and its project as the loader loaded it
// (backend.EncodeLoaded), for the record.
type loadedProject struct {
	d    backend.Deployment
	data []byte
}

var _ backend.ProjectCache = (*Engine)(nil)

// remember keeps p, just loaded from d through the loader, encoded for
// LoadedProject.
func (e *Engine) remember(d backend.Deployment, p *types.Project) {
	e.loaded = &loadedProject{d: d, data: backend.EncodeLoaded(p, d.Project)}
}

// LoadedProject returns d's project as Deploy, Plan or Update loaded it
// last, encoded (backend.EncodeLoaded), or nil.
func (e *Engine) LoadedProject(d backend.Deployment) []byte {
	if e.loaded == nil || !same(e.loaded.d, d) {
		return nil
	}
	return e.loaded.data
}

// prepared loads d's project and publishes the image ports of the
// services that ask for it, exactly as Deploy does.
func (e *Engine) prepared(ctx context.Context, d backend.Deployment) (*types.Project, error) {
	p, err := backend.Load(ctx, d.Project, d.ID, d.WorkDir)
	if err != nil {
		return nil, err
	}
	e.remember(d, p)
	return p, e.conn.PublishImagePorts(ctx, p, backend.ImagePortServices(p))
}

// Plan compares the recorded project old, the new one and the containers
// of project old.ID (their config-hash labels). The projects are
// restored from their loaded form when it matches them, else loaded
// (backend.LoadPlanned), then prepared as Deploy prepares them (image
// ports published): the old and new projects of a plan must be prepared
// identically, or their hashes differ where nothing changed. A restored
// project is planned with, never deployed: Update loads it again.
func (e *Engine) Plan(ctx context.Context, old, new backend.Deployment) (*plan.Plan, error) {
	op, np, newLoaded, err := backend.LoadPlanned(ctx, old, new)
	if err != nil {
		return nil, err
	}
	if newLoaded {
		e.remember(new, np)
	}
	if err := e.conn.PublishImagePorts(ctx, op, backend.ImagePortServices(op)); err != nil {
		return nil, err
	}
	if np != op {
		if err := e.conn.PublishImagePorts(ctx, np, backend.ImagePortServices(np)); err != nil {
			return nil, err
		}
	}
	live, err := e.conn.LiveServices(ctx, old.ID)
	if err != nil {
		return nil, err
	}
	if newLoaded {
		e.planned = &plannedProject{d: new, p: np}
	}
	return plan.Compute(op, np, &plan.Live{Services: live})
}

// Update converges project old.ID to new with compose's up (recreating
// what diverged, removing orphans), then removes the volumes asked for.
func (e *Engine) Update(ctx context.Context, old, new backend.Deployment, opts backend.UpdateOptions) error {
	var np *types.Project
	if e.planned != nil && same(e.planned.d, new) {
		np = e.planned.p
	} else {
		var err error
		if np, err = e.prepared(ctx, new); err != nil {
			return err
		}
	}
	e.planned = nil
	if err := e.conn.Up(ctx, np, backend.UpOptions{RemoveOrphans: true, NoWait: !opts.Wait}); err != nil {
		return err
	}
	if len(opts.RemoveVolumes) == 0 {
		return nil
	}
	op, err := backend.Load(ctx, old.Project, old.ID, old.WorkDir)
	if err != nil {
		return err
	}
	var names []string
	for _, k := range opts.RemoveVolumes {
		if v, ok := op.Volumes[k]; ok && !bool(v.External) {
			names = append(names, v.Name)
		}
	}
	return e.conn.RemoveVolumes(ctx, names)
}

package stack

import (
	"context"
	"fmt"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/plan"
)

var _ backend.Updater = (*Engine)(nil)

// Plan is not implemented for stacks yet: see [Engine.Update].
func (e *Engine) Plan(ctx context.Context, old, new backend.Deployment) (*plan.Plan, error) {
	return nil, unsupported(old.ID)
}

// Update is not implemented for stacks yet: a stack redeploy converges
// services, but its plan (swarm compares service specs, not compose's
// config hash) and the rollback of a failed update are still to be
// written. It fails with backend.ErrUpdateUnsupported.
func (e *Engine) Update(ctx context.Context, old, new backend.Deployment, opts backend.UpdateOptions) error {
	return unsupported(old.ID)
}

func unsupported(id string) error {
	return fmt.Errorf("environment %s runs on the swarm engine: %w (rm and run it again)", id, backend.ErrUpdateUnsupported)
}

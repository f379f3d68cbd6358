package backend

import (
	"context"
	"errors"
	"fmt"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
)

// Create creates every network, volume and container of project without
// starting anything (compose's `create`), for `denv clone --no-start`; a
// later [Backend.Start] starts it. Like [Backend.Up], when it fails it
// removes what this call created and nothing else.
func (b *Backend) Create(ctx context.Context, project *types.Project) error {
	if project == nil || project.Name == "" {
		return errors.New("cannot create an environment: no project")
	}
	before, err := b.snapshot(ctx, project.Name)
	if err != nil {
		return fmt.Errorf("cannot create environment %s: %w", project.Name, err)
	}
	rec := &eventRecorder{}
	svc, err := b.newCompose(rec)
	if err != nil {
		return err
	}
	createErr := svc.Create(ctx, project, api.CreateOptions{
		Recreate:             api.RecreateDiverged,
		RecreateDependencies: api.RecreateDiverged,
		Inherit:              true,
		QuietPull:            true,
	})
	if createErr == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	removed, cleanErr := b.removeCreatedSince(cctx, project.Name, before)
	msg := fmt.Sprintf("cannot create environment %s: %s%s", project.Name, failedAt(project.Name, rec), composeMsg(createErr))
	if removed != "" {
		msg += "; removed what it had created: " + removed
	}
	if cleanErr != nil {
		msg += "; cleanup failed: " + oneLine(cleanErr)
	}
	return errors.New(msg)
}

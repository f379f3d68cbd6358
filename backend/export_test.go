package backend

import (
	"context"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/client"
)

// APIClient exposes the engine client to the external tests, which check
// the engine state directly.
func APIClient(b *Backend) client.APIClient { return b.api }

// StartProject exposes startProject: the project the start phase of an
// Up is given after its create phase.
func StartProject(ctx context.Context, b *Backend, project *types.Project) (*types.Project, error) {
	return b.startProject(ctx, project)
}

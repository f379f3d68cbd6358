package backend

import (
	"context"

	"github.com/moby/moby/client"
)

// APIClient exposes the engine client to the external tests, which check
// the engine state directly.
func APIClient(b *Backend) client.APIClient { return b.api }

// CopierImage exposes the copier image's check and import to the tests of
// its trust by content.
func CopierImage(ctx context.Context, b *Backend, exe string) (string, error) {
	return b.copierImage(ctx, exe)
}

package backend

import "github.com/moby/moby/client"

// APIClient exposes the engine client to the external tests, which check
// the engine state directly.
func APIClient(b *Backend) client.APIClient { return b.api }

package volumecopy

import "context"

// CopierImage exposes the copier image's check and import to the tests of
// its trust by content.
func CopierImage(ctx context.Context, b *Copier, exe string) (string, error) {
	return b.copierImage(ctx, exe)
}

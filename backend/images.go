package backend

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/moby/moby/client"
)

// ImportImage creates the local image ref from a root filesystem tar
// (`docker import`), applying the Dockerfile-like changes given (e.g.
// `ENTRYPOINT ["/app"]`, `EXPOSE 8080`, `LABEL k=v`). Nothing is pulled or
// pushed. It is used to make small local images, e.g. for tests.
func (b *Backend) ImportImage(ctx context.Context, ref string, rootfs io.Reader, changes ...string) error {
	res, err := b.api.ImageImport(ctx, client.ImageImportSource{Source: rootfs, SourceName: "-"}, ref, client.ImageImportOptions{Changes: changes})
	if err != nil {
		return fmt.Errorf("cannot import image %s: %s", ref, oneLine(err))
	}
	defer func() { _ = res.Close() }()
	// The engine reports progress and errors in a JSON stream; the import
	// is only done once the stream is consumed.
	dec := json.NewDecoder(res)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("cannot import image %s: %s", ref, oneLine(err))
		}
		if msg.Error != "" {
			return fmt.Errorf("cannot import image %s: %s", ref, msg.Error)
		}
	}
	if _, err := b.api.ImageInspect(ctx, ref); err != nil {
		return fmt.Errorf("cannot import image %s: %s", ref, oneLine(err))
	}
	return nil
}

// ImageLabels returns the labels of the local image ref, and whether the
// image exists locally.
func (b *Backend) ImageLabels(ctx context.Context, ref string) (map[string]string, bool, error) {
	res, err := b.api.ImageInspect(ctx, ref)
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("cannot inspect image %s: %s", ref, oneLine(err))
	}
	if res.Config == nil {
		return map[string]string{}, true, nil
	}
	return res.Config.Labels, true, nil
}

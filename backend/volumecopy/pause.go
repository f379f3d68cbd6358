package volumecopy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
)

// unpauseTimeout bounds the unpausing of the containers paused by
// [Copier.PauseVolumeUsers].
const unpauseTimeout = 30 * time.Second

// PauseVolumeUsers pauses (freezes, like `docker pause`) every running
// container that mounts one of the named volumes, so that their files do
// not change while they are copied, and returns the function that unpauses
// exactly those containers. Containers that were already paused or stopped
// are left alone, so the source comes back as it was.
//
// Pausing was chosen over stopping: it takes milliseconds where a stop
// waits for the process to exit (up to its stop timeout) and a restart for
// it to be ready again, it keeps the processes, their connections and their
// in-memory state, and the source's containers are not recreated. A paused
// process cannot be in the middle of a write system call, but data it has
// buffered in memory and not yet written is not in the copy: what is copied
// is what a crash at that instant would leave on disk, which databases are
// built to recover from.
//
// resume uses its own context (not ctx), so that it also works after ctx
// was cancelled (Ctrl-C); call it in every case, e.g. deferred. If pausing
// fails halfway, PauseVolumeUsers unpauses what it paused and returns an
// error.
func (b *Copier) PauseVolumeUsers(ctx context.Context, volumes []string) (resume func() error, err error) {
	seen := map[string]bool{}
	var paused []string
	resume = func() error {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unpauseTimeout)
		defer cancel()
		var errs []error
		var unpaused []string
		for _, id := range paused {
			if _, err := b.api.ContainerUnpause(rctx, id, client.ContainerUnpauseOptions{}); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("cannot unpause container %.12s: %s", id, backend.OneLine(err)))
				continue
			}
			unpaused = append(unpaused, id)
		}
		paused = nil
		if err := b.waitUnpaused(rctx, unpaused); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	for _, v := range volumes {
		// without All, only running containers (not paused ones) are listed
		res, err := b.api.ContainerList(ctx, client.ContainerListOptions{
			Filters: make(client.Filters).Add("volume", v).Add("status", "running"),
		})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("cannot list the containers using volume %s: %s", v, backend.OneLine(err)), resume())
		}
		for _, c := range res.Items {
			if seen[c.ID] || c.Labels[copierLabel] != "" {
				continue // a copier started ahead mounts the volume too
			}
			seen[c.ID] = true
			if _, err := b.api.ContainerPause(ctx, c.ID, client.ContainerPauseOptions{}); err != nil {
				return nil, errors.Join(fmt.Errorf("cannot pause container %s: %s", containerName(c.Names, c.ID), backend.OneLine(err)), resume())
			}
			paused = append(paused, c.ID)
		}
	}
	return resume, nil
}

func containerName(names []string, id string) string {
	if len(names) > 0 && len(names[0]) > 1 {
		return names[0][1:]
	}
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// unpausePoll is how often [Copier.waitUnpaused] asks the engine.
const unpausePoll = 20 * time.Millisecond

// waitUnpaused returns once the engine reports none of ids as paused.
// Engine 20.10 records a pause twice: at once, in the pause call, and again
// when containerd's "paused" event reaches its event loop. A container
// unpaused quickly (a copy of a small volume) can see that late event after
// the unpause call returned and show as paused until containerd's "resumed"
// event follows a moment later, although its processes run. Waiting for the
// engine to settle makes resume's promise true for whoever looks next
// (a test, compose's own state checks).
func (b *Copier) waitUnpaused(ctx context.Context, ids []string) error {
	for _, id := range ids {
		for {
			res, err := b.api.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if errdefs.IsNotFound(err) || (err == nil && (res.Container.State == nil || !res.Container.State.Paused)) {
				break
			}
			if err != nil {
				return fmt.Errorf("cannot inspect container %.12s after unpausing it: %s", id, backend.OneLine(err))
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("container %.12s still shows as paused after unpausing it", id)
			case <-time.After(unpausePoll):
			}
		}
	}
	return nil
}

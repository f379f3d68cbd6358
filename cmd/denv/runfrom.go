package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/clone"
)

// `denv run DEF --from SNAPSHOT`: the environment is created as run
// creates it, its named volumes filled from the snapshot's volumes of the
// same keys (as restore matches them), then started as run starts it.
// The steps are clone's (cmd/denv/clone.go): the volumes created first,
// the containers created while the copier starts, the copy, the start;
// and so is the rollback when a step fails.

// checkFrom checks run's --from before the definition or the daemon is
// asked: a snapshot's name, and an engine whose volumes are the daemon's.
func checkFrom(from, engine string) error {
	if from == "" {
		return nil
	}
	if k := engines()[engine]; !k.cloneable {
		return fmt.Errorf("run: --from is for --engine %s: a snapshot holds volumes of this daemon, a %s environment's are on its nodes", defaultEngine, engine)
	}
	return validSnapshotName(from)
}

// seedSnapshot returns the complete snapshot name, refusing it, in one
// line naming both sides, when its volume keys are not those of the
// compiled project p (def, as the user named it).
func seedSnapshot(ctx context.Context, vc *volumecopy.Copier, name, def string, p *types.Project) (*snapshotInfo, error) {
	s, err := getSnapshot(ctx, vc, name)
	if err != nil {
		return nil, err
	}
	if why := volumeMismatch(def, clone.Pairs(p, ""), s); why != "" {
		return nil, fmt.Errorf("cannot run %s from snapshot %s: %s", def, s.Name, why)
	}
	return s, nil
}

// seedPairs pairs every named volume of p, the new environment's project,
// with snapshot s's volume of the same key, sorted by key; the keys have
// been matched (volumeMismatch).
func seedPairs(p *types.Project, s *snapshotInfo) []clone.VolumePair {
	pairs := clone.Pairs(p, "")
	for i := range pairs {
		pairs[i].Src = s.volumes[pairs[i].Key]
	}
	return pairs
}

// deploySeeded creates the local environment d (its volumes, then its
// containers, not started, while the copier starts), copies snapshot s's
// volumes into its named volumes (progress on out), and starts it as the local engine's
// Deploy does (with wait, until every container runs; else until the
// services with a healthcheck are healthy). When a step fails, everything
// of d is removed, or, with d.KeepOnFailure once its containers exist,
// kept (unrecorded) and the error says so.
func deploySeeded(ctx context.Context, out io.Writer, b *backend.Backend, vc *volumecopy.Copier, d backend.Deployment, s *snapshotInfo, wait bool, copierExe string) (err error) {
	p, err := backend.Load(ctx, d.Project, d.ID, d.WorkDir)
	if err != nil {
		return err
	}
	// the project as recorded, checked again: the same keys as compiled
	if why := volumeMismatch(d.ID, clone.Pairs(p, ""), s); why != "" {
		return fmt.Errorf("cannot run %s from snapshot %s: %s", d.ID, s.Name, why)
	}
	rb := clone.Rollback{ID: d.ID, What: fmt.Sprintf("run %s from snapshot %s", d.ID, s.Name)}
	defer func() {
		if err == nil {
			return
		}
		if d.KeepOnFailure && rb.Started {
			err = backend.Kept(err, d.ID)
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		// run releases the id itself
		err = rb.Run(cctx, cloneRemover{b, vc}, backend.ErrNotFound, func() error { return nil }, err)
	}()

	// Containers left by someone else under this name would be adopted
	// by the create and removed by the rollback.
	if cs, err := b.Ps(ctx, d.ID); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	} else if len(cs) > 0 {
		return fmt.Errorf("docker already has containers of a project named %s", d.ID)
	}
	if err := b.PrepareImages(ctx, p); err != nil {
		return err
	}
	// never into a volume it did not create
	rb.Volumes, err = vc.CreateVolumes(ctx, p)
	if err != nil {
		return err
	}
	rb.Started = true
	cp, err := createAndStartCopier(ctx, b, vc, p, seedPairs(p, s), copierExe)
	if err != nil {
		return err
	}
	if cp != nil {
		fmt.Fprintf(out, "seeding %s from snapshot %s\n", d.ID, s.Name)
		err := copyVolumes(ctx, vc, out, cp)
		cp.copy.Close()
		if err != nil {
			return err
		}
	}
	return b.Up(ctx, p, backend.UpOptions{NoWait: !wait, KeepOnFailure: d.KeepOnFailure})
}

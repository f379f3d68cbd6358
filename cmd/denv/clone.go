package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/term"
	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/clone"
	"github.com/alebellu/denv/records"
)

type cloneOptions struct {
	name    string
	noStart bool
	// copier is the executable copying the volumes (empty: this one);
	// DENV_COPIER overrides it.
	copier string
}

func newCloneCmd(a *app) *cobra.Command {
	var opts cloneOptions
	cmd := &cobra.Command{
		Use:   "clone ID [-n NEWNAME] [--no-start]",
		Short: "Copy an environment, its volume data included",
		Long: `Clone creates a new environment from the exact compiled project that the
environment ID runs (the one recorded by 'denv run'), copies every named
volume of ID into the new environment's own volumes, and starts it (only
creates it with --no-start). Without -n the new id is "ID-clone-N".

While the volumes are copied, the source containers that mount them are
paused (frozen), so that a database is not copied mid-write; they are
unpaused afterwards, also when the copy fails or is interrupted. The source
is never modified otherwise.

The clone shares nothing with the source: its own containers, networks and
volumes. Fixed host ports (PORT 9000:8080) become ephemeral ones, so the
clone never takes the source's ports. Bind mounts are not copied: the clone
mounts the same host paths. If anything fails, everything of the new
environment is removed.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.copier = a.getenv("DENV_COPIER")
			return runClone(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().StringVarP(&opts.name, "name", "n", "", "id `NEWNAME` of the clone (default: a free ID-clone-N)")
	cmd.Flags().BoolVar(&opts.noStart, "no-start", false, "create the clone without starting it")
	return cmd
}

func runClone(cmd *cobra.Command, a *app, opts cloneOptions, srcID string) (err error) {
	out := cmd.OutOrStdout()
	if opts.name != "" {
		if err := records.ValidID(opts.name); err != nil {
			return err
		}
	}
	// Ctrl-C stops the copy; the cleanup below and the unpause use
	// contexts of their own.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, e, es, src, err := a.openEnv(ctx, cmd, srcID)
	if err != nil {
		return err
	}
	defer b.Close()
	if k, _ := engineKindOf(src); !k.cloneable {
		// A stack's volumes live on whichever nodes its tasks ran on.
		return fmt.Errorf("cannot clone %s: it runs on the %s engine; clone copies local (Docker Compose) environments only", src.ID, src.Engine)
	}
	var res *records.Reservation
	if opts.name != "" {
		res, err = es.Reserve(opts.name)
	} else {
		res, err = reserveFree(es, srcID+"-clone")
	}
	if err != nil {
		return err
	}
	id := res.ID()
	vc, err := a.copier(b)
	if err != nil {
		return err
	}

	// Everything made for the clone goes if any step fails.
	rb := clone.Rollback{SrcID: srcID, ID: id}
	committed := false
	defer func() {
		// Once recorded the clone is kept: an error printing its
		// endpoints (a closed stdout) must not remove what the record
		// describes.
		if err == nil || committed {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		err = rb.Run(cctx, cloneRemover{b, vc}, backend.ErrNotFound, res.Abort, err)
	}()

	if cs, err := b.Ps(ctx, id); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	} else if len(cs) > 0 {
		return fmt.Errorf("docker already has containers of a project named %s", id)
	}
	yamlDoc, ports, err := clone.Rewrite(src.Project, id)
	if err != nil {
		return err
	}
	p, err := backend.Load(ctx, yamlDoc, id, src.WorkDir)
	if err != nil {
		return err
	}
	// kept as run keeps it, as loaded (before anything changes p): the
	// clone's first update or snapshot need not load its project again
	loaded := backend.EncodeLoaded(p, yamlDoc)
	if err := clone.CheckIndependent(p); err != nil {
		return err
	}
	for _, pt := range ports {
		fmt.Fprintf(out, "%s: host port %s is the source's; the clone gets an ephemeral port for %d/%s\n", pt.Service, pt.Published, pt.Target, pt.Protocol)
	}
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type == types.VolumeTypeBind {
				fmt.Fprintf(out, "%s: bind mount %s is not copied: the clone mounts the same host path at %s\n", name, v.Source, v.Target)
			}
		}
	}

	rb.Volumes, err = vc.CreateVolumes(ctx, p)
	if err != nil {
		return err
	}
	if err := b.PrepareImages(ctx, p); err != nil {
		return err
	}
	// The clone's containers are created before the copy: creating a
	// container on overlayfs flushes the host's dirty pages, which after
	// the copy would be the whole copy. The copier starts meanwhile.
	rb.Started = true
	cp, err := createAndStartCopier(ctx, b, vc, p, clone.Pairs(p, src.ID), opts.copier)
	if err != nil {
		return err
	}
	if cp != nil {
		err := copyVolumes(ctx, vc, out, cp)
		cp.copy.Close()
		if err != nil {
			return err
		}
	}
	if !opts.noStart {
		// like denv run: started, waited for only until the services
		// with a healthcheck are healthy
		if err := b.Up(ctx, p, backend.UpOptions{NoWait: true}); err != nil {
			return err
		}
	}
	rec := records.Record{
		ID:         id,
		Definition: src.Definition,
		Digest:     digest(yamlDoc),
		Created:    time.Now().UTC(),
		ClonedFrom: src.ID,
		Engine:     src.Engine,
		WorkDir:    src.WorkDir,
		Project:    yamlDoc,
		Params:     src.Params,
		Loaded:     loaded,
	}
	if err := res.Commit(rec); err != nil {
		return err
	}
	committed = true
	if opts.noStart {
		_, err := fmt.Fprintf(out, "cloned %s to %s (not started: denv start %s)\n", src.ID, id, id)
		return err
	}
	fmt.Fprintf(out, "cloned %s to %s\n", src.ID, id)
	return printEndpoints(ctx, out, e, id)
}

// cloneCopy is the copier of a clone (or of a run seeded from a
// snapshot), started and waiting.
type cloneCopy struct {
	copy *volumecopy.VolumeCopy
	// pairs are the source's and the new environment's volume of each
	// key of the project, in the copier's order.
	pairs []clone.VolumePair
}

// createAndStartCopier creates the new environment p's containers and,
// at the same time, starts a copier for pairs (each source volume into
// p's volume of the same key; nil when there is none). On error, a
// copier it started is closed.
func createAndStartCopier(ctx context.Context, b *backend.Backend, vc *volumecopy.Copier, p *types.Project, pairs []clone.VolumePair, copier string) (*cloneCopy, error) {
	cc := cloneCopy{pairs: pairs}
	if len(cc.pairs) == 0 {
		return nil, b.Create(ctx, p)
	}
	vp := make([]volumecopy.VolumePair, len(cc.pairs))
	for i, pr := range cc.pairs {
		vp[i] = volumecopy.VolumePair{Src: pr.Src, Dst: pr.Dst}
	}
	created := make(chan error, 1)
	go func() { created <- b.Create(ctx, p) }()
	var err error
	cc.copy, err = vc.StartCopy(ctx, vp, copier)
	if cerr := <-created; cerr != nil {
		if cc.copy != nil {
			cc.copy.Close()
		}
		return nil, cerr
	}
	if err != nil {
		return nil, err
	}
	return &cc, nil
}

// cloneRemover is what clone.Rollback removes with.
type cloneRemover struct {
	b  *backend.Backend
	vc *volumecopy.Copier
}

func (r cloneRemover) Down(ctx context.Context, id string, volumes bool) error {
	return r.b.Down(ctx, id, volumes)
}

func (r cloneRemover) RemoveVolumes(ctx context.Context, names []string) error {
	return r.vc.RemoveVolumes(ctx, names)
}

// copyVolumes copies every named volume of the source into the clone's,
// with the source's containers that mount them paused for the whole copy:
// volumes used together (data and journal) are then consistent with each
// other too.
func copyVolumes(ctx context.Context, vc *volumecopy.Copier, out io.Writer, cc *cloneCopy) (err error) {
	sources := make([]string, len(cc.pairs))
	for i, pr := range cc.pairs {
		sources[i] = pr.Src
	}
	resume, err := vc.PauseVolumeUsers(ctx, sources)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := resume(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("the source may still be paused: %w", rerr))
		}
	}()
	tty := isTerminal(out)
	start := time.Now()
	current, totals := -1, make([]int64, len(cc.pairs))
	end := func(i int) {
		if tty {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "volume %s: copied %s in %.1fs\n", cc.pairs[i].Key, size(totals[i]), time.Since(start).Seconds())
		start = time.Now()
	}
	err = cc.copy.Run(ctx, func(i int, copied, total int64) {
		if i != current {
			if current >= 0 {
				end(current)
			}
			current = i
			if !tty {
				fmt.Fprintf(out, "copying volume %s (%s to %s)\n", cc.pairs[i].Key, cc.pairs[i].Src, cc.pairs[i].Dst)
			}
		}
		totals[i] = total
		if tty {
			fmt.Fprintf(out, "\rvolume %s: %s of %s", cc.pairs[i].Key, size(copied), size(total))
		}
	})
	if err != nil {
		if tty && current >= 0 {
			fmt.Fprintln(out)
		}
		return err
	}
	if current >= 0 {
		end(current)
	}
	return nil
}

func isTerminal(w io.Writer) bool {
	_, tty := term.GetFdInfo(w)
	return tty
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}

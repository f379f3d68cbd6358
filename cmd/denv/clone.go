package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/term"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/envs"
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
		if err := envs.ValidID(opts.name); err != nil {
			return err
		}
	}
	// Ctrl-C stops the copy; the cleanup below and the unpause use
	// contexts of their own.
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, es, src, err := a.openEnv(ctx, cmd, srcID)
	if err != nil {
		return err
	}
	defer b.Close()
	if src.Engine != "" && src.Engine != engineLocal {
		// A stack's volumes live on whichever nodes its tasks ran on.
		return fmt.Errorf("cannot clone %s: it runs on the %s engine; clone copies local (Docker Compose) environments only", src.ID, src.Engine)
	}
	var res *envs.Reservation
	if opts.name != "" {
		res, err = es.Reserve(opts.name)
	} else {
		res, err = reserveFree(es, srcID+"-clone")
	}
	if err != nil {
		return err
	}
	id := res.ID()

	// Everything made for the clone goes if any step fails.
	var volumes []string
	started := false
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		var errs []error
		if started {
			if derr := b.Down(cctx, id, true); derr != nil && !errors.Is(derr, backend.ErrNotFound) {
				errs = append(errs, derr)
			}
		}
		errs = append(errs, b.RemoveVolumes(cctx, volumes), res.Abort())
		msg := fmt.Sprintf("cannot clone %s to %s: %s; nothing of %s was kept", srcID, id, oneLine(err), id)
		if cerr := errors.Join(errs...); cerr != nil {
			msg = fmt.Sprintf("cannot clone %s to %s: %s; removing %s failed: %s", srcID, id, oneLine(err), id, oneLine(cerr))
		}
		err = errors.New(msg)
	}()

	if cs, err := b.Ps(ctx, id); err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	} else if len(cs) > 0 {
		return fmt.Errorf("docker already has containers of a project named %s", id)
	}
	yamlDoc, ports, err := cloneYAML(src.Project, id)
	if err != nil {
		return err
	}
	p, err := backend.Load(ctx, yamlDoc, id, src.WorkDir)
	if err != nil {
		return err
	}
	if err := checkIndependent(p); err != nil {
		return err
	}
	for _, pt := range ports {
		fmt.Fprintf(out, "%s: host port %s is the source's; the clone gets an ephemeral port for %d/%s\n", pt.service, pt.published, pt.target, pt.protocol)
	}
	for _, name := range p.ServiceNames() {
		for _, v := range p.Services[name].Volumes {
			if v.Type == types.VolumeTypeBind {
				fmt.Fprintf(out, "%s: bind mount %s is not copied: the clone mounts the same host path at %s\n", name, v.Source, v.Target)
			}
		}
	}

	volumes, err = b.CreateVolumes(ctx, p)
	if err != nil {
		return err
	}
	if err := b.PublishImagePorts(ctx, p, imagePortServices(p)); err != nil {
		return err
	}
	// The clone's containers are created before the copy: creating a
	// container on overlayfs flushes the host's dirty pages, which after
	// the copy would be the whole copy. The copier starts meanwhile.
	started = true
	cp, err := createAndStartCopier(ctx, b, p, src.ID, opts.copier)
	if err != nil {
		return err
	}
	if cp != nil {
		err := copyVolumes(ctx, b, out, cp)
		cp.copy.Close()
		if err != nil {
			return err
		}
	}
	if !opts.noStart {
		// like denv run: started, not waited for
		if err := b.Up(ctx, p, backend.UpOptions{NoWait: true}); err != nil {
			return err
		}
	}
	rec := envs.Record{
		ID:         id,
		Definition: src.Definition,
		Digest:     digest(yamlDoc),
		Created:    time.Now().UTC(),
		ClonedFrom: src.ID,
		Engine:     src.Engine,
		WorkDir:    src.WorkDir,
		Project:    yamlDoc,
	}
	if err := res.Commit(rec); err != nil {
		return err
	}
	if opts.noStart {
		_, err := fmt.Fprintf(out, "cloned %s to %s (not started: denv start %s)\n", src.ID, id, id)
		return err
	}
	fmt.Fprintf(out, "cloned %s to %s\n", src.ID, id)
	return printEndpoints(ctx, out, b, id)
}

// cloneCopy is the copier of a clone, started and waiting.
type cloneCopy struct {
	copy *backend.VolumeCopy
	// keys are the volume keys of the project, in the copier's order, and
	// pairs the source's and the clone's volume of each.
	keys  []string
	pairs []backend.VolumePair
}

// createAndStartCopier creates the clone p's containers and, at the same
// time, starts a copier for every named volume of the source environment
// srcID (nil when there is none). On error, a copier it started is
// closed. The source's volume of key k is srcID_k: the clone's project is
// the source's renamed, and checkIndependent has checked that its volume
// names are PROJECT_KEY.
func createAndStartCopier(ctx context.Context, b *backend.Backend, p *types.Project, srcID, copier string) (*cloneCopy, error) {
	var cc cloneCopy
	for k, v := range p.Volumes {
		if !v.External {
			cc.keys = append(cc.keys, k)
		}
	}
	slices.Sort(cc.keys)
	if len(cc.keys) == 0 {
		return nil, b.Create(ctx, p)
	}
	for _, k := range cc.keys {
		cc.pairs = append(cc.pairs, backend.VolumePair{Src: srcID + "_" + k, Dst: p.Volumes[k].Name})
	}
	created := make(chan error, 1)
	go func() { created <- b.Create(ctx, p) }()
	var err error
	cc.copy, err = b.StartCopy(ctx, cc.pairs, copier)
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

// copyVolumes copies every named volume of the source into the clone's,
// with the source's containers that mount them paused for the whole copy:
// volumes used together (data and journal) are then consistent with each
// other too.
func copyVolumes(ctx context.Context, b *backend.Backend, out io.Writer, cc *cloneCopy) (err error) {
	sources := make([]string, len(cc.pairs))
	for i, pr := range cc.pairs {
		sources[i] = pr.Src
	}
	resume, err := b.PauseVolumeUsers(ctx, sources)
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
	current, totals := -1, make([]int64, len(cc.keys))
	end := func(i int) {
		if tty {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "volume %s: copied %s in %.1fs\n", cc.keys[i], size(totals[i]), time.Since(start).Seconds())
		start = time.Now()
	}
	err = cc.copy.Run(ctx, func(i int, copied, total int64) {
		if i != current {
			if current >= 0 {
				end(current)
			}
			current = i
			if !tty {
				fmt.Fprintf(out, "copying volume %s (%s to %s)\n", cc.keys[i], cc.pairs[i].Src, cc.pairs[i].Dst)
			}
		}
		totals[i] = total
		if tty {
			fmt.Fprintf(out, "\rvolume %s: %s of %s", cc.keys[i], size(copied), size(total))
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

// checkIndependent refuses a project whose clone would share a resource
// with the source: a fixed volume, network or container name is the same
// in every project.
func checkIndependent(p *types.Project) error {
	for k, v := range p.Volumes {
		if v.External || v.Name != p.Name+"_"+k {
			return fmt.Errorf("volume %s has a fixed name (%s): a clone would share it", k, v.Name)
		}
	}
	for k, n := range p.Networks {
		if n.External || n.Name != p.Name+"_"+k {
			return fmt.Errorf("network %s has a fixed name (%s): a clone would share it", k, n.Name)
		}
	}
	for name, s := range p.Services {
		if s.ContainerName != "" {
			return fmt.Errorf("service %s has a fixed container name: a clone cannot have its own", name)
		}
	}
	return nil
}

// movedPort is a fixed host port the clone does not take.
type movedPort struct {
	service, published, protocol string
	target                       int
}

// cloneYAML returns the recorded compose YAML named id, with every fixed
// host port removed (the engine then picks an ephemeral one), and the
// ports it removed.
// It edits the YAML tree rather than regenerating it, so that the clone
// runs exactly the source's project otherwise.
func cloneYAML(doc []byte, id string) ([]byte, []movedPort, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, nil, fmt.Errorf("invalid recorded project: %s", oneLine(err))
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("invalid recorded project: not a mapping")
	}
	if name := mapValue(root.Content[0], "name"); name != nil {
		name.Value = id
	}
	var moved []movedPort
	services := mapValue(root.Content[0], "services")
	if services != nil && services.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(services.Content); i += 2 {
			name, svc := services.Content[i].Value, services.Content[i+1]
			ports := mapValue(svc, "ports")
			if ports == nil || ports.Kind != yaml.SequenceNode {
				continue
			}
			for _, pt := range ports.Content {
				if pt.Kind != yaml.MappingNode {
					return nil, nil, fmt.Errorf("service %s: short port syntax %q is not supported by clone", name, pt.Value)
				}
				published := mapValue(pt, "published")
				if published == nil || published.Value == "" {
					continue
				}
				mp := movedPort{service: name, published: published.Value, protocol: "tcp"}
				if t := mapValue(pt, "target"); t != nil {
					fmt.Sscan(t.Value, &mp.target)
				}
				if pr := mapValue(pt, "protocol"); pr != nil {
					mp.protocol = pr.Value
				}
				moved = append(moved, mp)
				deleteKey(pt, "published")
			}
		}
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return nil, nil, err
	}
	return out, moved, nil
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
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

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/clone"
	"github.com/alebellu/denv/internal/copier"
	"github.com/alebellu/denv/internal/snaparchive"
	"github.com/alebellu/denv/records"
)

// A snapshot NAME is kept by the engine as volumes (docs/SNAPSHOTS.md):
// one data volume per named volume of the environment, denv-snap-NAME.KEY,
// and, created last, an empty head volume denv-snap-NAME carrying the
// metadata (environment, definition, project, created, sizes). The '.'
// cannot occur in a snapshot name, so the names never collide.
const snapVolumePrefix = "denv-snap-"

func snapHeadVolume(name string) string      { return snapVolumePrefix + name }
func snapDataVolume(name, key string) string { return snapVolumePrefix + name + "." + key }
func snapshotCtx(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	// Ctrl-C stops the copy; cleanups use contexts of their own
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

// snapshotInfo is one snapshot as listed.
type snapshotInfo struct {
	Name        string           `json:"name"`
	Environment string           `json:"environment"`
	Definition  string           `json:"definition"`
	Digest      string           `json:"digest,omitempty"`
	Created     time.Time        `json:"created"`
	Bytes       int64            `json:"bytes"`
	Volumes     map[string]int64 `json:"volumes"`
	// Incomplete is set for the leftovers of an interrupted snapshot or
	// import (data volumes without a head): only snapshot rm uses them.
	Incomplete bool `json:"incomplete,omitempty"`
	project    string
	volumes    map[string]string // key -> data volume name
	all        []string          // every volume, head included
}

// snapshotsFrom groups snapshot volumes by snapshot.
func snapshotsFrom(vs []volumecopy.LabeledVolume) []*snapshotInfo {
	by := map[string]*snapshotInfo{}
	for _, v := range vs {
		name := v.Labels[volumecopy.SnapshotLabel]
		s := by[name]
		if s == nil {
			s = &snapshotInfo{Name: name, Incomplete: true, Volumes: map[string]int64{}, volumes: map[string]string{}}
			by[name] = s
		}
		s.all = append(s.all, v.Name)
		if v.Labels[volumecopy.SnapshotCompleteLabel] == "true" {
			s.Incomplete = false
			s.Environment = v.Labels[volumecopy.SnapshotEnvLabel]
			s.Definition = v.Labels[volumecopy.SnapshotDefinitionLabel]
			s.Digest = v.Labels[volumecopy.SnapshotDigestLabel]
			s.Created, _ = time.Parse(time.RFC3339Nano, v.Labels[volumecopy.SnapshotCreatedLabel])
			s.project = v.Labels[volumecopy.SnapshotProjectLabel]
			var sizes map[string]int64
			_ = json.Unmarshal([]byte(v.Labels[volumecopy.SnapshotBytesLabel]), &sizes)
			for k, n := range sizes {
				s.Volumes[k] = n
				s.Bytes += n
			}
			continue
		}
		if k := v.Labels[volumecopy.SnapshotVolumeLabel]; k != "" {
			s.volumes[k] = v.Name
			if _, ok := s.Volumes[k]; !ok {
				s.Volumes[k] = 0
			}
		}
	}
	var out []*snapshotInfo
	for _, s := range by {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// keys returns the snapshot's volume keys, sorted.
func (s *snapshotInfo) keys() []string {
	var ks []string
	for k := range s.volumes {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// getSnapshot returns the complete snapshot name, or a one-line error.
func getSnapshot(ctx context.Context, vc *volumecopy.Copier, name string) (*snapshotInfo, error) {
	vs, err := vc.SnapshotVolumes(ctx, name)
	if err != nil {
		return nil, err
	}
	ss := snapshotsFrom(vs)
	if len(ss) == 0 {
		return nil, fmt.Errorf("no snapshot named %q (denv snapshots lists them)", name)
	}
	if ss[0].Incomplete {
		return nil, fmt.Errorf("snapshot %s is incomplete (an interrupted snapshot or import): remove it with denv snapshot rm %s", name, name)
	}
	return ss[0], nil
}

func validSnapshotName(name string) error {
	if records.ValidID(name) != nil {
		return fmt.Errorf("invalid snapshot name %q: use lower-case letters, digits, '-' and '_', starting with a letter or digit, at most %d characters", name, records.MaxIDLen)
	}
	return nil
}

// freeSnapshotName checks that name is free, or, when empty, returns the
// first free ID-N.
func freeSnapshotName(ctx context.Context, vc *volumecopy.Copier, name, id string) (string, error) {
	vs, err := vc.SnapshotVolumes(ctx, "")
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, v := range vs {
		taken[v.Labels[volumecopy.SnapshotLabel]] = true
	}
	if name != "" {
		if err := validSnapshotName(name); err != nil {
			return "", err
		}
		if taken[name] {
			return "", fmt.Errorf("snapshot %s already exists (denv snapshot rm %s first)", name, name)
		}
		return name, nil
	}
	for n := 1; ; n++ {
		c := fmt.Sprintf("%s-%d", id, n)
		if !taken[c] {
			return c, validSnapshotName(c)
		}
	}
}

// envVolumes loads rec's recorded project and returns its named volumes
// (key, volume), sorted by key.
func envVolumes(ctx context.Context, es *records.Store, rec records.Record) ([]clone.VolumePair, error) {
	// the project as run and update kept it, when it matches, spares a
	// loader pass (10-100 ms): only its volumes' keys and names are read
	rec.Loaded = es.LoadedProject(rec.ID)
	p, _, err := backend.LoadDeployment(ctx, deployment(rec))
	if err != nil {
		return nil, err
	}
	return clone.Pairs(p, rec.ID), nil
}

type snapshotOptions struct {
	name   string
	copier string // DENV_COPIER, empty: this executable
}

func newSnapshotCmd(a *app) *cobra.Command {
	var opts snapshotOptions
	cmd := &cobra.Command{
		Use:   "snapshot ID [-n NAME] | snapshot rm|export|import ...",
		Short: "Keep a copy of an environment's volume data, to restore or export",
		Long: `Snapshot copies every named volume of the environment ID into volumes kept
by the engine (denv-snap-NAME.KEY) and prints the snapshot's name (default:
the first free ID-N). The containers that mount the volumes are paused
(frozen) during the copy only, as for clone, so a database is captured as a
crash would leave it, which it recovers from. Bind mounts are not captured.

'denv restore ID NAME' puts the data back; 'denv run DEF --from NAME'
starts a new environment with it; 'denv snapshots' lists them;
'denv snapshot rm|export|import' remove, write to a file and read back.
'denv rm --volumes' does not remove an environment's snapshots.`,
		Args: exactArgs(1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.copier = a.getenv("DENV_COPIER")
			return runSnapshot(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().StringVarP(&opts.name, "name", "n", "", "`NAME` of the snapshot (default: a free ID-N)")
	cmd.AddCommand(newSnapshotRmCmd(a), newSnapshotExportCmd(a), newSnapshotImportCmd(a))
	return cmd
}

func runSnapshot(cmd *cobra.Command, a *app, opts snapshotOptions, id string) (err error) {
	out := cmd.OutOrStdout()
	if opts.name != "" {
		if err := validSnapshotName(opts.name); err != nil {
			return err
		}
	}
	ctx, stop := snapshotCtx(cmd)
	defer stop()
	b, _, es, rec, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	if k, _ := engineKindOf(rec); !k.cloneable {
		return fmt.Errorf("cannot snapshot %s: it runs on the %s engine; snapshots are of local (Docker Compose) environments only", id, rec.Engine)
	}
	vc, err := a.copier(b)
	if err != nil {
		return err
	}
	name, err := freeSnapshotName(ctx, vc, opts.name, id)
	if err != nil {
		return err
	}
	vols, err := envVolumes(ctx, es, rec)
	if err != nil {
		return err
	}
	if len(vols) == 0 {
		return fmt.Errorf("cannot snapshot %s: it has no named volume", id)
	}
	if err := vc.PrepareCopier(ctx, opts.copier); err != nil {
		return err
	}
	var created []string
	defer func() {
		if err != nil && len(created) > 0 {
			err = removeSnapshotVolumes(ctx, vc, created, err, "snapshot "+name)
		}
	}()
	pairs := make([]clone.VolumePair, len(vols))
	for i, v := range vols {
		pairs[i] = clone.VolumePair{Key: v.Key, Src: v.Src, Dst: snapDataVolume(name, v.Key)}
		if err := vc.CreateLabeledVolume(ctx, pairs[i].Dst, map[string]string{
			volumecopy.SnapshotLabel:       name,
			volumecopy.SnapshotVolumeLabel: v.Key,
		}); err != nil {
			return err
		}
		created = append(created, pairs[i].Dst)
	}
	totals, err := copyPairs(ctx, vc, out, pairs, opts.copier)
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for i, p := range pairs {
		sizes[p.Key] = totals[i]
	}
	m := snaparchive.Manifest{
		Name: name, Environment: id,
		Definition: snaparchive.Definition{Name: rec.Definition, Digest: rec.Digest},
		Project:    string(rec.Project), Created: time.Now().UTC(),
	}
	if err := createHead(ctx, vc, m, sizes); err != nil {
		return err
	}
	created = append(created, snapHeadVolume(name))
	_, err = fmt.Fprintln(out, name)
	return err
}

// createHead creates the head volume of snapshot m.Name: the last step,
// that makes the snapshot complete.
func createHead(ctx context.Context, vc *volumecopy.Copier, m snaparchive.Manifest, sizes map[string]int64) error {
	sz, _ := json.Marshal(sizes)
	return vc.CreateLabeledVolume(ctx, snapHeadVolume(m.Name), map[string]string{
		volumecopy.SnapshotLabel:           m.Name,
		volumecopy.SnapshotCompleteLabel:   "true",
		volumecopy.SnapshotEnvLabel:        m.Environment,
		volumecopy.SnapshotDefinitionLabel: m.Definition.Name,
		volumecopy.SnapshotDigestLabel:     m.Definition.Digest,
		volumecopy.SnapshotCreatedLabel:    m.Created.UTC().Format(time.RFC3339Nano),
		volumecopy.SnapshotProjectLabel:    m.Project,
		volumecopy.SnapshotBytesLabel:      string(sz),
	})
}

// removeSnapshotVolumes removes what a failed step made, also after
// Ctrl-C, and says so when it cannot.
func removeSnapshotVolumes(ctx context.Context, vc *volumecopy.Copier, names []string, cause error, what string) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if rerr := vc.RemoveVolumesAfterCopiers(cctx, names); rerr != nil {
		return errors.Join(cause, fmt.Errorf("%s is incomplete: remove it with denv snapshot rm: %w", what, rerr))
	}
	return cause
}

// copyPairs copies each pair's Src into its Dst (emptied first) in one
// copier container, the running containers that mount a source paused
// for the copy (as clone does), with progress on out (clone's line on a
// terminal, else a line per volume); it returns each pair's bytes as the
// copier counted them.
func copyPairs(ctx context.Context, vc *volumecopy.Copier, out io.Writer, pairs []clone.VolumePair, copierExe string) (totals []int64, err error) {
	vp := make([]volumecopy.VolumePair, len(pairs))
	sources := make([]string, len(pairs))
	for i, p := range pairs {
		vp[i] = volumecopy.VolumePair{Src: p.Src, Dst: p.Dst}
		sources[i] = p.Src
	}
	cp, err := vc.StartCopy(ctx, vp, copierExe)
	if err != nil {
		return nil, err
	}
	defer cp.Close()
	resume, err := vc.PauseVolumeUsers(ctx, sources)
	if err != nil {
		return nil, err
	}
	defer func() {
		if rerr := resume(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("the source may still be paused: %w", rerr))
		}
	}()
	return runCopy(ctx, out, cp, pairs)
}

// runCopy runs the started copier cp of pairs with progress on out
// (clone's line on a terminal, else a line per volume) and returns each
// pair's bytes as the copier counted them.
func runCopy(ctx context.Context, out io.Writer, cp *volumecopy.VolumeCopy, pairs []clone.VolumePair) (totals []int64, err error) {
	tty := isTerminal(out)
	start := time.Now()
	current := -1
	totals = make([]int64, len(pairs))
	end := func(i int) {
		if tty {
			fmt.Fprintln(out)
		}
		fmt.Fprintf(out, "volume %s: copied %s in %.1fs\n", pairs[i].Key, size(totals[i]), time.Since(start).Seconds())
		start = time.Now()
	}
	err = cp.Run(ctx, func(i int, copied, total int64) {
		if i != current {
			if current >= 0 {
				end(current)
			}
			current = i
			if !tty {
				fmt.Fprintf(out, "copying volume %s (%s to %s)\n", pairs[i].Key, pairs[i].Src, pairs[i].Dst)
			}
		}
		totals[i] = total
		if tty {
			fmt.Fprintf(out, "\rvolume %s: %s of %s", pairs[i].Key, size(copied), size(total))
		}
	})
	if err != nil {
		if tty && current >= 0 {
			fmt.Fprintln(out)
		}
		return nil, err
	}
	if current >= 0 {
		end(current)
	}
	return totals, nil
}

func newSnapshotsCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "snapshots [ID] [--format table|json]",
		Short: "List snapshots (of environment ID)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("invalid --format %q: use table or json", format)
			}
			ctx := cmd.Context()
			b, err := a.backend(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer b.Close()
			vs, err := volumecopy.New(b).SnapshotVolumes(ctx, "")
			if err != nil {
				return err
			}
			list := []*snapshotInfo{}
			for _, s := range snapshotsFrom(vs) {
				if len(args) == 0 || s.Environment == args[0] {
					list = append(list, s)
				}
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tENVIRONMENT\tDEFINITION\tCREATED\tSIZE\tVOLUMES")
			for _, s := range list {
				var ks []string
				for k := range s.Volumes {
					ks = append(ks, k)
				}
				slices.Sort(ks)
				if s.Incomplete {
					fmt.Fprintf(tw, "%s\t(incomplete)\t-\t-\t-\t%s\n", s.Name, strings.Join(ks, ","))
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Environment, orDash(s.Definition),
					s.Created.Local().Format("2006-01-02 15:04:05"), size(s.Bytes), strings.Join(ks, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "output `format`: table or json")
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newSnapshotRmCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a snapshot (also an incomplete one)",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			b, err := a.backend(ctx, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			defer b.Close()
			vc, err := a.copier(b)
			if err != nil {
				return err
			}
			vs, err := vc.SnapshotVolumes(ctx, args[0])
			if err != nil {
				return err
			}
			if len(vs) == 0 {
				return fmt.Errorf("no snapshot named %q (denv snapshots lists them)", args[0])
			}
			// the head first: a snapshot removed halfway is incomplete,
			// never complete with missing data
			head := snapHeadVolume(args[0])
			if slices.ContainsFunc(vs, func(v volumecopy.LabeledVolume) bool { return v.Name == head }) {
				if err := vc.RemoveVolumesAfterCopiers(ctx, []string{head}); err != nil {
					return err
				}
			}
			var rest []string
			for _, v := range vs {
				if v.Name != head {
					rest = append(rest, v.Name)
				}
			}
			return vc.RemoveVolumesAfterCopiers(ctx, rest)
		},
	}
}

func newRestoreCmd(a *app) *cobra.Command {
	var copierExe string
	cmd := &cobra.Command{
		Use:   "restore ID SNAPSHOT",
		Short: "Put a snapshot's data back into an environment's volumes",
		Long: `Restore replaces the contents of every named volume of the environment ID
with the snapshot's, which must have exactly the same volume keys. It stops
ID, moves the current contents of each volume aside (into a hidden
directory inside it: no copy), copies the snapshot in, removes the former
contents and starts ID again if it was running (as 'denv start' does). If
copying the snapshot in fails or is interrupted, the former contents are
moved back: ID's data is as it was. The snapshot is left unchanged and can
be restored again.`,
		Args: exactArgs(2, "ID SNAPSHOT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			copierExe = a.getenv("DENV_COPIER")
			return runRestore(cmd, a, copierExe, args[0], args[1])
		},
	}
	return cmd
}

func runRestore(cmd *cobra.Command, a *app, copierExe, id, snap string) (err error) {
	out := cmd.OutOrStdout()
	ctx, stop := snapshotCtx(cmd)
	defer stop()
	b, e, es, rec, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	if k, _ := engineKindOf(rec); !k.cloneable {
		return fmt.Errorf("cannot restore %s: it runs on the %s engine; snapshots are of local (Docker Compose) environments only", id, rec.Engine)
	}
	vc, err := a.copier(b)
	if err != nil {
		return err
	}
	s, err := getSnapshot(ctx, vc, snap)
	if err != nil {
		return err
	}
	vols, err := envVolumes(ctx, es, rec)
	if err != nil {
		return err
	}
	if err := matchKeys(id, vols, s); err != nil {
		return err
	}
	if err := vc.PrepareCopier(ctx, copierExe); err != nil {
		return err
	}
	cs, err := b.Ps(ctx, id)
	if err != nil && !errors.Is(err, backend.ErrNotFound) {
		return err
	}
	running := slices.ContainsFunc(cs, func(c backend.Container) bool { return c.State == "running" || c.State == "paused" })

	// The copier starts while ID still runs: creating a container right
	// after a copy waits for its dirty pages. It replaces the contents of
	// ID's volumes all or none, moving the current entries aside inside
	// each volume (no copy), so that a restore costs one copy.
	pairs := make([]clone.VolumePair, len(vols))
	vp := make([]volumecopy.VolumePair, len(vols))
	for i, v := range vols {
		pairs[i] = clone.VolumePair{Key: v.Key, Src: s.volumes[v.Key], Dst: v.Src}
		vp[i] = volumecopy.VolumePair{Src: pairs[i].Src, Dst: pairs[i].Dst}
	}
	cp, err := vc.StartReplace(ctx, vp, copierExe)
	if err != nil {
		return err
	}
	defer cp.Close()
	if running {
		if err := e.Stop(ctx, id); err != nil {
			return err
		}
	}
	restart := func(cause error) error {
		if !running {
			return cause
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if serr := e.Start(sctx, deployment(rec)); serr != nil {
			return errors.Join(cause, fmt.Errorf("%s is stopped: %w", id, serr))
		}
		return cause
	}
	fmt.Fprintf(out, "restoring %s into %s\n", snap, id)
	if _, err := runCopy(ctx, out, cp, pairs); err != nil {
		if cp.Undone() {
			return restart(fmt.Errorf("restore of %s from %s failed, %s's data is as it was: %w", id, snap, id, err))
		}
		// the copier's error says where the former data is
		return fmt.Errorf("restore of %s from %s failed and %s's data could not all be put back (left stopped): %w", id, snap, id, err)
	}
	if err := restart(nil); err != nil {
		return err
	}
	fmt.Fprintf(out, "restored %s into %s\n", snap, id)
	if running {
		return printEndpoints(ctx, out, e, id)
	}
	return nil
}

// matchKeys refuses a snapshot whose volume keys are not the
// environment's, naming the difference.
func matchKeys(id string, vols []clone.VolumePair, s *snapshotInfo) error {
	if why := volumeMismatch(id, vols, s); why != "" {
		return fmt.Errorf("cannot restore snapshot %s into %s: %s", s.Name, id, why)
	}
	return nil
}

// volumeMismatch says how the volume keys of vols (the named volumes of
// who) differ from snapshot s's, naming both sides, or returns "" when
// they are the same: restore and run --from refuse such a snapshot.
func volumeMismatch(who string, vols []clone.VolumePair, s *snapshotInfo) string {
	env := map[string]bool{}
	var missing, extra []string
	for _, v := range vols {
		env[v.Key] = true
		if _, ok := s.volumes[v.Key]; !ok {
			missing = append(missing, v.Key)
		}
	}
	for _, k := range s.keys() {
		if !env[k] {
			extra = append(extra, k)
		}
	}
	var why []string
	if len(missing) > 0 {
		why = append(why, fmt.Sprintf("%s has volumes %s that the snapshot lacks", who, strings.Join(missing, ", ")))
	}
	if len(extra) > 0 {
		why = append(why, fmt.Sprintf("the snapshot has volumes %s that %s lacks", strings.Join(extra, ", "), who))
	}
	return strings.Join(why, "; ")
}

func newSnapshotExportCmd(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "export NAME -o FILE|-",
		Short: "Write a snapshot to one compressed, verifiable file",
		Args:  exactArgs(1, "NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output == "" {
				return errors.New("snapshot export needs -o FILE (- for standard output)")
			}
			return runSnapshotExport(cmd, a, a.getenv("DENV_COPIER"), args[0], output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "`FILE` to write (- for standard output)")
	return cmd
}

func runSnapshotExport(cmd *cobra.Command, a *app, copierExe, name, output string) (err error) {
	ctx, stop := snapshotCtx(cmd)
	defer stop()
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer b.Close()
	vc, err := a.copier(b)
	if err != nil {
		return err
	}
	s, err := getSnapshot(ctx, vc, name)
	if err != nil {
		return err
	}
	m := snaparchive.Manifest{
		Format: snaparchive.Version, Name: s.Name, Environment: s.Environment,
		Definition: snaparchive.Definition{Name: s.Definition, Digest: s.Digest},
		Project:    s.project, Created: s.Created,
	}
	args := []string{snaparchive.ExportArg}
	var mounts []volumecopy.VolumeMount
	for i, k := range s.keys() {
		m.Volumes = append(m.Volumes, snaparchive.Volume{Name: k})
		dir := fmt.Sprintf("/src/%d", i)
		args = append(args, dir)
		mounts = append(mounts, volumecopy.VolumeMount{Volume: s.volumes[k], Target: dir, ReadOnly: true})
	}
	manifest, err := json.Marshal(m)
	if err != nil {
		return err
	}
	what := "cannot export snapshot " + name
	prog := newStreamProgress(cmd.ErrOrStderr(), "exporting", s.keys())
	defer prog.end()
	if prog.tty {
		args = append([]string{args[0], snaparchive.ProgressFlag}, args[1:]...)
	}
	if output == "-" {
		return vc.RunStreamProgress(ctx, copierExe, args, mounts, bytes.NewReader(manifest), cmd.OutOrStdout(), what, prog.event)
	}
	// a temporary file beside the output, renamed at the end: an
	// interrupted export leaves no partial file under the name
	f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := vc.RunStreamProgress(ctx, copierExe, args, mounts, bytes.NewReader(manifest), f, what, prog.event); err != nil {
		return err
	}
	// CreateTemp makes it 0600; a snapshot file is as readable as any
	// exported file (0644)
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	// Not synced to disk before the rename, as `tar -c | zstd > FILE`,
	// `cp` or `docker save -o` do not: an fsync of the 667 MiB file of a
	// 1 GiB snapshot cost 0.7-1.3 s here. The rename keeps the name from
	// ever showing a partial file while the system runs; after a power
	// loss a file whose data was not yet written is refused by import
	// (its checksums and end are verified).
	if err := f.Close(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := os.Rename(f.Name(), output); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// streamProgress shows the progress of an export or import as one line
// on a terminal (w), from its first second on: short work prints nothing.
type streamProgress struct {
	mu    sync.Mutex
	w     io.Writer
	tty   bool
	verb  string
	keys  []string // volume keys, in the file's order
	start time.Time
	total map[int]int64
	shown bool
}

func newStreamProgress(w io.Writer, verb string, keys []string) *streamProgress {
	return &streamProgress{w: w, tty: isTerminal(w), verb: verb, keys: keys, start: time.Now(), total: map[int]int64{}}
}

// event takes one progress line of the exporter or importer (nil when
// not on a terminal: no progress is asked for).
func (p *streamProgress) event(ev copier.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Kind == copier.KindTotal {
		p.total[ev.Tree] = ev.Bytes
		return
	}
	if ev.Kind != copier.KindCopied && ev.Kind != copier.KindDone || time.Since(p.start) < time.Second {
		return
	}
	key := fmt.Sprint(ev.Tree)
	if ev.Tree < len(p.keys) {
		key = p.keys[ev.Tree]
	}
	// \x1b[K clears what a longer line before left
	fmt.Fprintf(p.w, "\r%s volume %s: %s of %s\x1b[K", p.verb, key, size(ev.Bytes), size(p.total[ev.Tree]))
	p.shown = true
}

// end ends the progress line, if one was shown.
func (p *streamProgress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}

func newSnapshotImportCmd(a *app) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "import FILE|- [-n NAME]",
		Short: "Read a snapshot file back into a snapshot (verified first)",
		Long: `Import reads a file written by 'denv snapshot export' (- for standard
input) into a new snapshot, named as in the file unless -n is given. The
file is verified (checksums of every volume, nothing after its end) before
the snapshot exists: a truncated or altered file is refused and nothing is
left of the import.`,
		Args: exactArgs(1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSnapshotImport(cmd, a, a.getenv("DENV_COPIER"), args[0], name)
		},
	}
	cmd.Flags().StringVarP(&name, "name", "n", "", "`NAME` of the snapshot (default: the name in the file)")
	return cmd
}

func runSnapshotImport(cmd *cobra.Command, a *app, copierExe, file, name string) (err error) {
	if name != "" {
		if err := validSnapshotName(name); err != nil {
			return err
		}
	}
	ctx, stop := snapshotCtx(cmd)
	defer stop()
	if file == "-" {
		// read twice (manifest, then data): spool standard input
		tmp, err := os.CreateTemp("", "denv-import-*")
		if err != nil {
			return err
		}
		defer func() { _ = os.Remove(tmp.Name()) }()
		if _, err := io.Copy(tmp, cmd.InOrStdin()); err != nil {
			_ = tmp.Close()
			return fmt.Errorf("cannot read the snapshot file from standard input: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		file = tmp.Name()
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("cannot import snapshot: %w", err)
	}
	defer func() { _ = f.Close() }()
	r, err := snaparchive.NewReader(f)
	if err != nil {
		return fmt.Errorf("cannot import snapshot from %s: %w", file, err)
	}
	m := r.Manifest()
	r.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer b.Close()
	vc, err := a.copier(b)
	if err != nil {
		return err
	}
	if name == "" {
		name = m.Name
	}
	if name, err = freeSnapshotName(ctx, vc, name, ""); err != nil {
		return err
	}
	if err := vc.PrepareCopier(ctx, copierExe); err != nil {
		return err
	}
	var created []string
	defer func() {
		if err != nil && len(created) > 0 {
			err = removeSnapshotVolumes(ctx, vc, created, err, "snapshot "+name)
		}
	}()
	args := []string{snaparchive.ImportArg}
	var mounts []volumecopy.VolumeMount
	for i, v := range m.Volumes {
		vol := snapDataVolume(name, v.Name)
		if err := vc.CreateLabeledVolume(ctx, vol, map[string]string{
			volumecopy.SnapshotLabel:       name,
			volumecopy.SnapshotVolumeLabel: v.Name,
		}); err != nil {
			return err
		}
		created = append(created, vol)
		dir := fmt.Sprintf("/dst/%d", i)
		args = append(args, dir)
		mounts = append(mounts, volumecopy.VolumeMount{Volume: vol, Target: dir})
	}
	var keys []string
	for _, v := range m.Volumes {
		keys = append(keys, v.Name)
	}
	prog := newStreamProgress(cmd.ErrOrStderr(), "importing", keys)
	if prog.tty {
		args = append([]string{args[0], snaparchive.ProgressFlag}, args[1:]...)
	}
	var res bytes.Buffer
	err = vc.RunStreamProgress(ctx, copierExe, args, mounts, f, &res, "cannot import snapshot from "+file, prog.event)
	prog.end()
	if err != nil {
		return err
	}
	var got snaparchive.Manifest
	if err := json.Unmarshal(bytes.TrimSpace(res.Bytes()), &got); err != nil {
		return fmt.Errorf("cannot import snapshot from %s: the importer's answer: %s", file, backend.OneLine(err))
	}
	sizes := map[string]int64{}
	for _, v := range got.Volumes {
		sizes[v.Name] = v.Bytes
	}
	got.Name = name
	if err := createHead(ctx, vc, got, sizes); err != nil {
		return err
	}
	created = append(created, snapHeadVolume(name))
	_, err = fmt.Fprintln(cmd.OutOrStdout(), name)
	return err
}

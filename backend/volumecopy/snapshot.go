package volumecopy

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/internal/copier"
)

// Labels of snapshot volumes (see docs/SNAPSHOTS.md). A snapshot is the set
// of volumes with the same [SnapshotLabel]; its metadata is repeated on
// each of them, so that the engine alone holds a snapshot (no record on
// the host to lose or to keep in step). They carry no compose project
// label, so `denv rm --volumes` (which removes by project label) never
// removes them.
const (
	SnapshotLabel           = "denv.snapshot"
	SnapshotEnvLabel        = "denv.snapshot.env"
	SnapshotDefinitionLabel = "denv.snapshot.definition"
	SnapshotDigestLabel     = "denv.snapshot.digest"
	SnapshotCreatedLabel    = "denv.snapshot.created"
	SnapshotVolumeLabel     = "denv.snapshot.volume"
	SnapshotBytesLabel      = "denv.snapshot.bytes"
	SnapshotProjectLabel    = "denv.snapshot.project"
	// SnapshotCompleteLabel marks the snapshot's head: an empty volume
	// created last, once every data volume holds its data, that carries
	// the snapshot's metadata. Engine volumes cannot be relabelled, so
	// this is how a snapshot becomes complete in one step; data volumes
	// without a head are the leftovers of an interrupted snapshot or
	// import (listed as incomplete, removed by snapshot rm).
	SnapshotCompleteLabel = "denv.snapshot.complete"
)

// LabeledVolume is a volume and its labels.
type LabeledVolume struct {
	Name   string
	Labels map[string]string
}

// SnapshotVolumes lists the snapshot volumes: of snapshot name, or of
// every snapshot when name is empty, sorted by name.
func (b *Copier) SnapshotVolumes(ctx context.Context, name string) ([]LabeledVolume, error) {
	f := SnapshotLabel
	if name != "" {
		f += "=" + name
	}
	res, err := b.api.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", f)})
	if err != nil {
		return nil, fmt.Errorf("cannot list snapshot volumes: %s", backend.OneLine(err))
	}
	var vs []LabeledVolume
	for _, v := range res.Items {
		vs = append(vs, LabeledVolume{Name: v.Name, Labels: v.Labels})
	}
	slices.SortFunc(vs, func(a, b LabeledVolume) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return vs, nil
}

// CreateLabeledVolume creates the local volume name with labels, and fails
// if it already exists: a snapshot never writes into a volume it did not
// make.
func (b *Copier) CreateLabeledVolume(ctx context.Context, name string, labels map[string]string) error {
	if _, err := b.api.VolumeInspect(ctx, name, client.VolumeInspectOptions{}); err == nil {
		return fmt.Errorf("cannot create volume %s: it already exists", name)
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("cannot create volume %s: %s", name, backend.OneLine(err))
	}
	if _, err := b.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Labels: labels}); err != nil {
		return fmt.Errorf("cannot create volume %s: %s", name, backend.OneLine(err))
	}
	return nil
}

// VolumeMount is a named volume mounted in a copier container.
type VolumeMount struct {
	Volume, Target string
	ReadOnly       bool
}

// RunStream runs the copier executable (empty: the running one) with args
// and the volumes mounted, its standard input read from in (closed at the
// end of in; nil: none) and its standard output written to out, and
// returns when it has exited: an error starting with what, with the
// copier's last line on stderr, when it fails. On cancellation the
// container is killed and removed.
func (b *Copier) RunStream(ctx context.Context, copierExe string, args []string, mounts []VolumeMount, in io.Reader, out io.Writer, what string) error {
	return b.RunStreamProgress(ctx, copierExe, args, mounts, in, out, what, nil)
}

// RunStreamProgress is [Copier.RunStream] with progress: when progress is
// not nil, it is called with the event lines (copier.Event) that the
// copier writes on its stderr (the snapshot exporter's and importer's
// --progress, which the caller puts in args); other lines are kept for
// the error, as by RunStream.
func (b *Copier) RunStreamProgress(ctx context.Context, copierExe string, args []string, mounts []VolumeMount, in io.Reader, out io.Writer, what string, progress func(copier.Event)) error {
	var ms []mount.Mount
	for _, m := range mounts {
		mm := mount.Mount{Type: mount.TypeVolume, Source: m.Volume, Target: m.Target, ReadOnly: m.ReadOnly}
		if !m.ReadOnly {
			mm.VolumeOptions = &mount.VolumeOptions{NoCopy: true}
		}
		ms = append(ms, mm)
	}
	var errLines io.Writer
	if progress != nil {
		errLines = &lineWriter{fn: func(line string) {
			if ev, ok := copier.ParseEvent(line); ok {
				progress(ev)
			}
		}}
	}
	h, err := b.startReader(ctx, what, copierExe, args, ms, in != nil, out, errLines)
	if err != nil {
		return err
	}
	defer h.close()
	fed := make(chan error, 1)
	if in != nil {
		go func() {
			_, err := io.Copy(h.stdin, in)
			if cerr := h.closeStdin(); err == nil {
				err = cerr
			}
			fed <- err
		}()
	}
	if err := h.waitExit(ctx, what); err != nil {
		return err
	}
	if in != nil {
		select {
		case err := <-fed:
			if err != nil {
				return fmt.Errorf("%s: cannot write its input: %s", what, backend.OneLine(err))
			}
		case <-time.After(10 * time.Second):
			// both the exporter and the importer read their input
			// to its end before they succeed
			return fmt.Errorf("%s: the copier exited before reading all its input", what)
		}
	}
	return nil
}

// RemoveVolumesAfterCopiers removes the named volumes, ignoring those
// already gone, after waiting for the copier containers that still mount
// them: after a copy the engine removes the copier by itself (AutoRemove),
// which can take a moment, and a volume in use cannot be removed.
func (b *Copier) RemoveVolumesAfterCopiers(ctx context.Context, names []string) error {
	for _, v := range names {
		cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", copierLabel+"=true").Add("volume", v)})
		if err != nil {
			return fmt.Errorf("cannot list containers: %s", backend.OneLine(err))
		}
		for _, c := range cs.Items {
			wctx, cancel := context.WithTimeout(ctx, backend.CleanupTimeout)
			w := b.api.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
			select {
			case <-w.Result:
			case <-w.Error: // gone already, or still there: the removal says
			}
			cancel()
		}
	}
	return b.RemoveVolumes(ctx, names)
}

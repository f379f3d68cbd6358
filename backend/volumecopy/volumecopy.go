// Package volumecopy copies the named volumes of an environment inside the
// Docker engine, for clone: it builds the copier image (the denv
// executable, with its loader and libraries when dynamically linked, laid
// out by internal/rootfs and imported as a one-layer image), starts copier
// containers ([Copier.StartCopy]), pauses the source's containers while
// copying ([Copier.PauseVolumeUsers]) and checksums trees to compare
// copies ([Copier.VolumeChecksum]).
package volumecopy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/containerd/errdefs"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/internal/atomicfile"
	"github.com/alebellu/denv/internal/copier"
	"github.com/alebellu/denv/internal/rootfs"
)

// How volumes are copied: the engine has no registry to pull a helper image
// from, so denv makes its own. The copier is the denv executable itself,
// which has hidden subcommands for this, static or not: it is imported
// (with its loader and shared libraries when it has them, see
// internal/rootfs) as the one-layer image denv/copier:<hash of the
// executable's build id> (a few seconds, once per denv build). One
// container of that image mounts every source volume read-only at /src/N
// and its destination at /dst/N, waits for a go-ahead on its standard
// input (so that it can be started while the source still runs) and copies in the engine (copy_file_range, 4 files at
// a time, no data through the API), writing progress lines on stdout. The
// copy itself is faster than a host `cp -a` (see docs/PERFORMANCE.md),
// where the archive API (CopyFromContainer/CopyToContainer) tars
// everything through the client, about twice as slow.
// Copier copies volumes and checks copies, over a Docker connection.
type Copier struct {
	conn *backend.Backend
	api  client.APIClient
	// Where says where copies may run (the zero value: on this host
	// when allowed, else in a container).
	Where Where
}

// New returns a Copier over conn (which the caller closes).
func New(conn *backend.Backend) *Copier {
	return &Copier{conn: conn, api: conn.API()}
}

const (
	// CopierCopyArg is the hidden subcommand of the copier executable that
	// copies volumes: `COPIER __copy-volume [--wait] SRC DST [SRC DST]...`
	// (copier.Command).
	CopierCopyArg = "__copy-volume"
	// CopierReplaceArg is the hidden subcommand of the copier executable
	// that replaces the contents of volumes, all or none:
	// `COPIER __replace-volume [--wait] SRC DST [SRC DST]...`
	// (copier.ReplaceCommand).
	CopierReplaceArg = "__replace-volume"
	// CopierChecksumArg is the hidden subcommand that prints the checksum
	// listing of a tree: `COPIER __checksum /src`.
	CopierChecksumArg = "__checksum"
	// CopierImageRepo is the repository of the helper images.
	CopierImageRepo = "denv/copier"
	// copierLabel marks the helper images and containers (backend's Down
	// waits for such containers before removing volumes).
	copierLabel = backend.CopierLabel
)

// CopyOptions tunes [Copier.CopyVolume] and [Copier.VolumeChecksum].
type CopyOptions struct {
	// Copier is the path of a Linux executable (static, or dynamic with
	// its libraries on this host) that has the [CopierCopyArg] and
	// [CopierChecksumArg] subcommands; empty means the running executable
	// (the denv binary, however it was built).
	Copier string
	// Progress, when set, is called with the bytes copied so far and the
	// total to copy (the sum of the regular file sizes).
	Progress func(copied, total int64)
}

// CopyVolume copies every file of the named volume src into the named
// volume dst, replacing what dst held, and keeping contents, modes, owners,
// symlinks, hard links, empty directories and times: [Copier.StartCopy]
// and [VolumeCopy.Run] for one volume.
func (b *Copier) CopyVolume(ctx context.Context, src, dst string, opts CopyOptions) error {
	c, err := b.StartCopy(ctx, []VolumePair{{Src: src, Dst: dst}}, opts.Copier)
	if err != nil {
		return err
	}
	defer c.Close()
	var progress func(int, int64, int64)
	if opts.Progress != nil {
		progress = func(_ int, copied, total int64) { opts.Progress(copied, total) }
	}
	return c.Run(ctx, progress)
}

// VolumePair is a named volume to copy and the named volume to copy it into.
type VolumePair struct{ Src, Dst string }

// VolumeCopy is one copier container, started by [Copier.StartCopy] with
// the volumes mounted, that copies when [VolumeCopy.Run] tells it to.
// Starting a container is most of the fixed cost of a copy (0.2 s here),
// so it is done ahead, while the source still runs.
type VolumeCopy struct {
	*helper
	events chan copier.Event // progress lines, closed when the output ends
	quit   chan struct{}
	closed bool
	// replace is set for [Copier.StartReplace]; undone once the copier
	// said it put every destination back.
	replace, undone bool
	// what it was started with, to start it again in a container
	pairs     []VolumePair
	copierExe string
	volumes   []string
}

// OnHost says whether the copy runs as a process of this host rather
// than in a container (see [Where]).
func (c *VolumeCopy) OnHost() bool { return c.onHost }

// undoTimeout bounds the wait for a replacing copier to put the
// destinations back after an interruption.
const undoTimeout = 10 * time.Minute

// Undone reports whether a [Copier.StartReplace] copier that failed put
// every destination back as it was.
func (c *VolumeCopy) Undone() bool { return c.undone }

// StartCopy starts one copier container with every pair mounted (sources
// read-only) and returns once it runs, waiting for [VolumeCopy.Run]; it
// changes no volume. copierExe is the copier executable (empty: the
// running one). Call [VolumeCopy.Close] in every case.
//
// The container is removed by the engine when it exits rather than by
// denv: on overlayfs the removal of any container flushes every dirty page
// of the host filesystem (about 0.5 s after a 1 GiB copy here), which a
// host `cp -a` does not wait for either.
func (b *Copier) StartCopy(ctx context.Context, pairs []VolumePair, copierExe string) (*VolumeCopy, error) {
	return b.startCopy(ctx, pairs, copierExe, false)
}

// StartReplace is [Copier.StartCopy] for a replacement, all or none, of
// the destinations' contents (copier.ReplaceCommand): [VolumeCopy.Run]
// moves each destination's entries aside inside it, copies the source in
// and removes the former entries only once every copy is complete. If it
// fails or ctx is cancelled (Ctrl-C), the copier puts every destination
// back as it was before Run returns ([VolumeCopy.Undone] says whether it
// could); so does the copier by itself if denv goes away (its input ends).
// A restore costs one copy this way, where a copy aside in other volumes
// cost two.
func (b *Copier) StartReplace(ctx context.Context, pairs []VolumePair, copierExe string) (*VolumeCopy, error) {
	return b.startCopy(ctx, pairs, copierExe, true)
}

func (b *Copier) startCopy(ctx context.Context, pairs []VolumePair, copierExe string, replace bool) (*VolumeCopy, error) {
	var names []string
	for _, p := range pairs {
		names = append(names, p.Src+" to "+p.Dst)
	}
	what := "cannot copy volume " + strings.Join(names, ", ")
	if replace {
		what = "cannot replace the contents of volume " + strings.Join(names, ", ")
	}
	if len(pairs) == 0 {
		return nil, errors.New("cannot copy volumes: none given")
	}
	args := []string{CopierCopyArg, copier.WaitFlag}
	if replace {
		args[0] = CopierReplaceArg
	}
	var volumes []string
	for _, p := range pairs {
		volumes = append(volumes, p.Src, p.Dst)
	}
	vols, err := b.inspectVolumes(ctx, volumes)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", what, backend.OneLine(err))
	}
	c := &VolumeCopy{events: make(chan copier.Event, 16), quit: make(chan struct{}), replace: replace,
		pairs: pairs, copierExe: copierExe, volumes: volumes}
	// the goroutines hold the channels, not c: inContainer replaces *c
	events, quit := c.events, c.quit
	lines := &lineWriter{fn: func(line string) {
		if ev, ok := copier.ParseEvent(line); ok {
			select {
			case events <- ev:
			case <-quit:
			}
		}
	}}
	var h *helper
	// the sources may still run: whether they are idle is checked by Run
	if dirs, ok := b.hostDirs(ctx, vols, false); ok {
		if replace {
			// a process of its own, which puts the destinations back
			// by itself should denv go away (its input then ends)
			// (the former contents moved beside each volume's
			// directory and removed once it said it finished, not
			// waited for: about as long as their copy)
			args = append(args, copier.BesideFlag)
			h, err = b.startProcess(what, copierExe, append(args, dirs...), true, lines, nil)
		} else {
			// a copy: in denv's own process (starting the denv
			// executable costs 20-100 ms of package initialisation);
			// if denv goes away, so does the copy, and the caller's
			// rollback with it, as when denv is killed during any step
			h = b.startInProcess(what, dirs, lines)
		}
	} else {
		var mounts []mount.Mount
		for i, p := range pairs {
			src, dst := fmt.Sprintf("/src/%d", i), fmt.Sprintf("/dst/%d", i)
			args = append(args, src, dst)
			mounts = append(mounts,
				mount.Mount{Type: mount.TypeVolume, Source: p.Src, Target: src, ReadOnly: true},
				mount.Mount{Type: mount.TypeVolume, Source: p.Dst, Target: dst, VolumeOptions: &mount.VolumeOptions{NoCopy: true}})
		}
		h, err = b.startHelper(ctx, what, copierExe, args, mounts, true, lines)
	}
	if err != nil {
		return nil, err
	}
	c.helper = h
	go func() {
		<-h.output
		close(events)
	}()
	return c, nil
}

// helper is a running copier: a container of the copier image, or a
// process of the copier executable on this host (see [Where]).
type helper struct {
	b    *Copier
	what string // how its errors start
	// stdin is its standard input (nil without), closeStdin ends it
	stdin      io.Writer
	closeStdin func() error
	exit       chan exitResult // its exit, once
	stderr     *lockedBuffer
	output     chan struct{} // closed when its output has ended
	// finished is set once it has done its work: it exits by itself (and
	// the engine removes its container: AutoRemove).
	finished bool
	onHost   bool
	release  func() // see close
	// goAhead lets a copier started with copier.WaitFlag begin (nil: it
	// writes the go-ahead on its standard input)
	begin func() error
}

// goAhead lets a copier started with copier.WaitFlag begin.
func (h *helper) goAhead() error {
	if h.begin != nil {
		return h.begin()
	}
	_, err := io.WriteString(h.stdin, copier.Go())
	return err
}

// exitResult is how a helper ended: its exit status, or why it is unknown.
type exitResult struct {
	code int64
	err  error
}

// startHelper creates and starts a container of the copier image running
// args (as root, to restore every owner) with mounts, its stdout copied to
// stdout by one goroutine; with stdin, its standard input is attached too.
//
// The container is removed by the engine when it exits rather than by
// denv: on overlayfs the removal of any container flushes every dirty page
// of the host filesystem (about 0.5 s after a 1 GiB copy here), which a
// host `cp -a` does not wait for either.
func (b *Copier) startHelper(ctx context.Context, what, copierExe string, args []string, mounts []mount.Mount, stdin bool, stdout io.Writer) (*helper, error) {
	return b.startHelperErr(ctx, what, copierExe, args, mounts, stdin, stdout, nil)
}

// startHelperErr is startHelper with the helper's stderr also written to
// stderr (when not nil).
func (b *Copier) startHelperErr(ctx context.Context, what, copierExe string, args []string, mounts []mount.Mount, stdin bool, stdout, stderr io.Writer) (*helper, error) {
	ref, err := b.copierImage(ctx, copierExe)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	res, err := b.api.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:        ref,
			Entrypoint:   []string{"/copier"},
			Cmd:          args,
			User:         "0:0",
			Labels:       map[string]string{copierLabel: "true"},
			OpenStdin:    stdin,
			StdinOnce:    stdin,
			AttachStdin:  stdin,
			AttachStdout: true,
			AttachStderr: true,
		},
		HostConfig: &container.HostConfig{
			Mounts: mounts,
			// The copier opens no socket. Its own network namespace, even
			// an empty one (none), made a clone of a small volume 0.38 s
			// slower here (median of 9: 0.95 s against 0.57 s, see
			// docs/PERFORMANCE.md); the host's costs nothing, and without
			// any NET_ capability it can do nothing there but connect.
			NetworkMode: network.NetworkHost,
			AutoRemove:  true,
			// Its output is read through the attachment only. With the
			// engine's default json-file driver every byte of it was also
			// logged to disk as JSON, which held an export (the archive
			// on stdout) to about 5 MB/s.
			LogConfig: container.LogConfig{Type: "none"},
			// Root, for a faithful copy, but with only what it needs:
			// CHOWN (owners, of symlinks too), DAC_OVERRIDE (read and
			// write whatever the modes), FOWNER (modes, times and hard
			// links of files it does not own), FSETID (set-group-ID bits),
			// MKNOD (device nodes); no way to gain more, no writable root.
			CapDrop:        []string{"ALL"},
			CapAdd:         []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_MKNOD"},
			SecurityOpt:    []string{"no-new-privileges"},
			ReadonlyRootfs: true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: cannot create the copier container: %s", what, backend.OneLine(err))
	}
	id := res.ID
	h := &helper{b: b, what: what, stderr: &lockedBuffer{}, output: make(chan struct{}), exit: make(chan exitResult, 1)}
	var attach client.HijackedResponse
	h.release = func() {
		if attach.Conn != nil {
			attach.Close()
		}
		if h.finished {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), backend.CleanupTimeout)
		defer cancel()
		_, _ = b.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
		// AutoRemove may race the forced removal; wait until it is gone
		w := b.api.ContainerWait(ctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
		select {
		case <-w.Result:
		case <-w.Error:
		}
	}
	// The attachment and the wait last as long as the container, not ctx:
	// a replacing copier is told to stop by the end of its input and
	// waited for after Ctrl-C (its removal otherwise ends both).
	ares, err := b.api.ContainerAttach(context.WithoutCancel(ctx), id, client.ContainerAttachOptions{Stream: true, Stdin: stdin, Stdout: true, Stderr: true})
	if err != nil {
		h.close()
		return nil, fmt.Errorf("%s: cannot attach to the copier: %s", what, backend.OneLine(err))
	}
	attach = ares.HijackedResponse
	if stdin {
		h.stdin, h.closeStdin = attach.Conn, attach.CloseWrite
	}
	wait := b.api.ContainerWait(context.WithoutCancel(ctx), id, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	go func() {
		select {
		case r := <-wait.Result:
			h.exit <- exitResult{code: r.StatusCode}
		case err := <-wait.Error:
			h.exit <- exitResult{err: err}
		}
	}()
	if _, err := b.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		h.close()
		return nil, fmt.Errorf("%s: cannot start the copier: %s", what, backend.OneLine(err))
	}
	go func() {
		var errOut io.Writer = h.stderr
		if stderr != nil {
			errOut = io.MultiWriter(h.stderr, stderr)
		}
		_, _ = stdcopy.StdCopy(stdout, errOut, attach.Reader)
		close(h.output)
	}()
	return h, nil
}

// exitErr is the error for the helper's exit status: nil for 0, else its
// last line on stderr.
func (h *helper) exitErr(status int64) error {
	if status == 0 {
		return nil
	}
	// the copier is denv: its errors start with "denv: " like ours
	msg := strings.TrimPrefix(lastLine(h.stderr.String()), "denv: ")
	if msg == "" {
		msg = fmt.Sprintf("the copier exited with status %d", status)
	}
	return fmt.Errorf("%s: %s", h.what, msg)
}

// close releases the helper: once finished, it exits by itself (and the
// engine removes its container); otherwise it is killed (its container
// removed), with a context of its own so that it works after Ctrl-C.
func (h *helper) close() {
	h.release()
}

// Run lets the copier copy every pair, in order, and returns when it is
// done, calling progress (when not nil) with the pair's index, the bytes
// copied so far and the pair's total. Each destination is emptied first
// (the engine may have filled a new volume with its image's files). On
// error or cancellation, what was already written stays: the caller owns
// the destinations and removes them; except for a copier of
// [Copier.StartReplace], which puts them back itself (on cancellation,
// Run tells it to and waits for it).
func (c *VolumeCopy) Run(ctx context.Context, progress func(pair int, copied, total int64)) error {
	if c.onHost {
		// root on this host walks the trees only if nothing else can
		// change them meanwhile; otherwise the copy runs confined
		if busy, err := c.b.volumesInUse(ctx, c.volumes); err != nil || busy {
			if err := c.inContainer(ctx); err != nil {
				return err
			}
		}
	}
	if err := c.goAhead(); err != nil {
		// it may have exited already: its exit says why
		select {
		case <-c.output:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s: cannot start the copy: %s", c.what, backend.OneLine(err))
		}
	}
	totals := map[int]int64{}
	handle := func(ev copier.Event) {
		switch ev.Kind {
		case copier.KindFinished:
			c.finished = true
		case copier.KindUndone:
			c.undone = true
		case copier.KindTotal:
			totals[ev.Tree] = ev.Bytes
			if progress != nil {
				progress(ev.Tree, 0, ev.Bytes)
			}
		default:
			if progress != nil {
				progress(ev.Tree, ev.Bytes, totals[ev.Tree])
			}
		}
	}
	events := c.events
	done := ctx.Done()
	var cause error             // the cancellation, once the copier was told to stop
	var giveUp <-chan time.Time // how long a stopping copier is waited for
	stop := func() error {
		cause = context.Cause(ctx)
		if !c.replace {
			return fmt.Errorf("%s: %w", c.what, cause)
		}
		// the end of its input stops it: it puts the destinations back
		// (or, if every copy is complete, finishes) and exits
		done = nil
		giveUp = time.After(undoTimeout)
		if err := c.closeStdin(); err != nil {
			return fmt.Errorf("%s: %w, and the copier could not be told to stop: %s", c.what, cause, backend.OneLine(err))
		}
		return nil
	}
	for {
		// a cancellation goes first, before events that came with it
		if done != nil && ctx.Err() != nil {
			if err := stop(); err != nil {
				return err
			}
		}
		select {
		case <-done:
			if err := stop(); err != nil {
				return err
			}
		case <-giveUp:
			return fmt.Errorf("%s: %w, and the copier did not stop within %s", c.what, cause, undoTimeout)
		case ev, ok := <-events:
			if !ok {
				events = nil // the output ended: the exit status follows
				continue
			}
			handle(ev)
		case r := <-c.exit:
			if r.err != nil {
				return fmt.Errorf("%s: %s", c.what, backend.OneLine(r.err))
			}
			// the exit is known; the rest of the output follows at once
			timeout := time.After(10 * time.Second)
			for events != nil {
				select {
				case ev, ok := <-events:
					if !ok {
						events = nil
						continue
					}
					handle(ev)
				case <-timeout:
					events = nil
				}
			}
			if c.finished && r.code == 0 {
				return nil // also when interrupted after every copy was complete
			}
			err := c.exitErr(r.code)
			if cause != nil && c.undone {
				return fmt.Errorf("%s: %w", c.what, cause)
			}
			if err != nil {
				return err
			}
			return fmt.Errorf("%s: the copier ended before it was done", c.what)
		}
		if c.finished {
			return nil
		}
	}
}

// inContainer replaces the copier process on this host, not yet told to
// start, with a copier container.
func (c *VolumeCopy) inContainer(ctx context.Context) error {
	b := *c.b
	b.Where = InContainer
	nc, err := b.startCopy(ctx, c.pairs, c.copierExe, c.replace)
	if err != nil {
		return err
	}
	c.Close()
	*c = *nc
	return nil
}

// Close releases the copier: once [VolumeCopy.Run] succeeded the container
// exits and the engine removes it; otherwise it is removed (killed if it
// still runs), also after Ctrl-C.
func (c *VolumeCopy) Close() {
	if c.closed {
		return
	}
	c.closed = true
	close(c.quit)
	c.close()
}

// lineWriter calls fn with each complete line written to it.
type lineWriter struct {
	fn      func(string)
	partial []byte
}

// Write implements io.Writer.
func (w *lineWriter) Write(b []byte) (int, error) {
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.fn(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(b)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// PrepareCopier makes sure the helper image of the copier executable
// (empty: the running one) exists, importing it when missing (a few
// seconds, once per denv executable). Call it before pausing anything, so
// that the pause lasts only for the copy.
func (b *Copier) PrepareCopier(ctx context.Context, copier string) error {
	_, err := b.copierImage(ctx, copier)
	return err
}

// VolumeChecksum returns the checksum listing of the named volume: one
// line per file, directory or link with its path, type, mode, owner, time,
// size and SHA-256 (or link target). Two volumes hold the same tree when
// their listings are equal. opts.Progress is not used.
func (b *Copier) VolumeChecksum(ctx context.Context, volume string, opts CopyOptions) (string, error) {
	what := "cannot checksum volume " + volume
	if _, err := b.api.VolumeInspect(ctx, volume, client.VolumeInspectOptions{}); err != nil {
		return "", fmt.Errorf("%s: %s", what, backend.OneLine(err))
	}
	var out lockedBuffer
	err := b.runCopier(ctx, opts.Copier, []string{CopierChecksumArg, "/src"}, []mount.Mount{
		{Type: mount.TypeVolume, Source: volume, Target: "/src", ReadOnly: true, VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
	}, &out, what)
	return out.String(), err
}

// CreateVolumes creates the named volumes of project exactly as compose
// would (same labels and configuration hash, so that a later [backend.Backend.Up]
// adopts them), and fails if one already exists: a clone must never write
// into a volume it does not own. It returns the names it created, also on
// error, for the caller to remove.
func (b *Copier) CreateVolumes(ctx context.Context, project *types.Project) ([]string, error) {
	var created []string
	for key, vol := range project.Volumes {
		if vol.External {
			continue
		}
		if _, err := b.api.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err == nil {
			return created, fmt.Errorf("cannot create volume %s: it already exists", vol.Name)
		} else if !errdefs.IsNotFound(err) {
			return created, fmt.Errorf("cannot create volume %s: %s", vol.Name, backend.OneLine(err))
		}
		// The same labels as compose's prepareVolumes and createVolume.
		vol.CustomLabels = vol.CustomLabels.
			Add(api.VolumeLabel, key).
			Add(api.ProjectLabel, project.Name).
			Add(api.VersionLabel, api.ComposeVersion)
		hash, err := compose.VolumeHash(vol)
		if err != nil {
			return created, fmt.Errorf("cannot create volume %s: %w", vol.Name, err)
		}
		labels := map[string]string{}
		for k, v := range vol.Labels {
			labels[k] = v
		}
		for k, v := range vol.CustomLabels {
			labels[k] = v
		}
		labels[api.ConfigHashLabel] = hash
		if _, err := b.api.VolumeCreate(ctx, client.VolumeCreateOptions{
			Name: vol.Name, Driver: vol.Driver, DriverOpts: vol.DriverOpts, Labels: labels,
		}); err != nil {
			return created, fmt.Errorf("cannot create volume %s: %s", vol.Name, backend.OneLine(err))
		}
		created = append(created, vol.Name)
	}
	return created, nil
}

// RemoveVolumes removes the named volumes, ignoring those already gone.
func (b *Copier) RemoveVolumes(ctx context.Context, names []string) error {
	var errs []error
	for _, v := range names {
		if _, err := b.api.VolumeRemove(ctx, v, client.VolumeRemoveOptions{Force: true}); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("cannot remove volume %s: %s", v, backend.OneLine(err)))
		}
	}
	return errors.Join(errs...)
}

// runCopier runs the copier image with args and mounts to its end, its
// stdout to out, and returns an error starting with what when it fails
// (with the copier's last stderr line). The container is gone in every
// case.
func (b *Copier) runCopier(ctx context.Context, copierExe string, args []string, mounts []mount.Mount, out io.Writer, what string) error {
	h, err := b.startReader(ctx, what, copierExe, args, mounts, false, out, nil)
	if err != nil {
		return err
	}
	// close waits until it is removed: no volume is left in use
	defer h.close()
	return h.waitExit(ctx, what)
}

// waitExit waits until the helper container has exited and its output
// stream has ended, and returns its failure (an error starting with
// what), or the context's.
func (h *helper) waitExit(ctx context.Context, what string) error {
	select {
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	case r := <-h.exit:
		if r.err != nil {
			return fmt.Errorf("%s: %s", what, backend.OneLine(r.err))
		}
		// the exit is known; the output stream ends right after
		select {
		case <-h.output:
		case <-time.After(10 * time.Second):
		}
		return h.exitErr(r.code)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// copierImage returns the helper image for the copier executable (the
// running executable when empty), importing it when missing. Each denv
// executable file has its own tag, so an upgrade never runs an old copier
// (old images stay until removed: docker image rm denv/copier:TAG).
//
// The image is trusted by its content, not its name: its one layer must be
// the root filesystem denv makes of the executable (rootfs.Layout, the
// loader and shared libraries included when it is dynamically linked), its
// configuration the one denv gives it. An image tagged denv/copier:TAG
// with anything else (built, pulled or re-tagged by someone else) is
// replaced by a fresh import. Once checked, the image ID is recorded in
// the user's cache directory, so that later clones skip hashing the
// executable (about 80 ms for 60 MB here).
func (b *Copier) copierImage(ctx context.Context, copier string) (string, error) {
	if copier == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("cannot find the denv executable for the copier: %w", err)
		}
		copier = exe
	}
	// The tag comes from the Go build ID of the executable (a small ELF
	// note, the same for the same build, different for any change), else
	// from the file's identity (path, inode, size, time): hashing a 60 MB
	// binary costs more than the copy of a small volume.
	key, err := copierKey(copier)
	if err != nil {
		return "", fmt.Errorf("cannot read the copier: %w", err)
	}
	sum := sha256.Sum256([]byte(key))
	tag := hex.EncodeToString(sum[:8])
	ref := CopierImageRepo + ":" + tag
	record := copierRecord(tag)
	img, err := b.api.ImageInspect(ctx, ref)
	found := err == nil
	if err != nil && !errdefs.IsNotFound(err) {
		return "", fmt.Errorf("cannot inspect image %s: %s", ref, backend.OneLine(err))
	}
	if found && record != "" {
		if id, err := os.ReadFile(record); err == nil && string(id) == img.ID {
			return ref, nil
		}
	}
	layout, err := rootfs.For(copier, "copier")
	if err != nil {
		return "", fmt.Errorf("cannot make the copier image: %w", err)
	}
	layout.Dirs = []string{"src", "dst", "tmp"}
	var tarball bytes.Buffer
	h := sha256.New()
	if err := layout.WriteTar(io.MultiWriter(&tarball, h)); err != nil {
		return "", fmt.Errorf("cannot make the copier image: %w", err)
	}
	// the engine's diff_id of an uncompressed layer is the digest of its tar
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	changes := []string{`ENTRYPOINT ["/copier"]`, "LABEL " + copierLabel + "=true"}
	var env []string
	if len(layout.LibraryPath) > 0 {
		env = []string{"LD_LIBRARY_PATH=" + strings.Join(layout.LibraryPath, ":")}
		changes = append(changes, "ENV "+env[0])
	}
	if !found || !isCopierImage(img.InspectResponse, digest, env) {
		if err := b.conn.ImportImage(ctx, ref, &tarball, changes...); err != nil {
			return "", err
		}
		if img, err = b.api.ImageInspect(ctx, ref); err != nil {
			return "", fmt.Errorf("cannot inspect image %s: %s", ref, backend.OneLine(err))
		}
		if !isCopierImage(img.InspectResponse, digest, env) {
			return "", fmt.Errorf("the imported copier image %s does not hold the layer %s denv made", ref, digest)
		}
	}
	if record != "" && os.MkdirAll(filepath.Dir(record), 0o700) == nil {
		// a cache: without it, the next clone hashes again
		_ = atomicfile.Write(record, []byte(img.ID), 0o600, ".copier-")
	}
	return ref, nil
}

// isCopierImage says whether img is the copier image denv imports: one
// layer with the given diff_id, and nothing in its configuration that
// denv did not put there (entrypoint, label, environment, no volumes or
// health check); the container sets its command and user itself.
func isCopierImage(img image.InspectResponse, digest string, env []string) bool {
	if len(img.RootFS.Layers) != 1 || img.RootFS.Layers[0] != digest || img.Config == nil {
		return false
	}
	c := img.Config
	return slices.Equal(c.Entrypoint, []string{"/copier"}) && slices.Equal(c.Env, env) &&
		len(c.Volumes) == 0 && c.Healthcheck == nil && c.WorkingDir == "" && c.Labels[copierLabel] == "true"
}

// copierRecord is the file recording the ID of the copier image tag that
// denv checked or imported ("" without a cache directory).
func copierRecord(tag string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "denv", "copier-images", tag)
}

// copierKey identifies the copier executable without reading all of it.
func copierKey(path string) (string, error) {
	f, err := elf.Open(path)
	if err == nil {
		defer func() { _ = f.Close() }()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			if data, err := sec.Data(); err == nil && len(data) > 16 {
				return "go-build-id\x00" + string(data), nil
			}
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	return fmt.Sprintf("file\x00%s\x00%d\x00%d\x00%d", path, ino, fi.Size(), fi.ModTime().UnixNano()), nil
}

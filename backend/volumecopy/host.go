package volumecopy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/internal/copier"
	"github.com/alebellu/denv/internal/rootfs"
)

// Where a copy runs. Starting a container is most of the fixed cost of a
// copy (0.2-0.5 s here, against 0.2-0.3 s for the copy of a gigabyte in
// the page cache), so when denv runs as root on the engine's own host and
// can see a volume's directory there, the copier executable runs as a
// process of this host with the volumes' directories as its arguments
// (the same hidden subcommands, arguments and protocol as in the
// container), and only otherwise as a container of the copier image.
//
// A process on the host as root has none of the container's confinement
// (its own root, five capabilities), so it is only used where that
// confinement protects nothing:
//
//   - Only trees already in volumes are copied (copies, restores,
//     checksums, exports). Bytes from outside - a snapshot file being
//     imported - are always extracted by a confined container.
//   - No running container mounts any of the volumes when the work
//     starts (the sources of a clone or snapshot are paused by then, the
//     environment being restored is stopped): no process can swap a
//     directory for a symbolic link while root walks the tree. The copier
//     itself never follows a symbolic link (it reads and recreates them).
//     If such a container is found, the copy runs in a container.
//   - The directory is the one the engine uses: the volume uses the local
//     driver without options (a volume with driver options, e.g. NFS or a
//     bind, is only mounted while a container uses it), and the inode
//     change time of the directory (or of the volume's directory above
//     it) on this host is the volume's CreatedAt as the engine reports it
//     (the engine's local driver reports the change time of its
//     directory, read when asked; a directory of the same name seen
//     through another filesystem - a remote engine, a VM - does not match
//     it to the second).
//
// DENV_COPY_IN=container (cmd/denv) keeps every copy in a container.
type Where int

const (
	// Anywhere runs a copy as a host process where allowed, else in a
	// container.
	Anywhere Where = iota
	// InContainer runs every copy in a container of the copier image.
	InContainer
)

// inspectVolumes inspects the named volumes, failing on the first that
// cannot be.
func (b *Copier) inspectVolumes(ctx context.Context, names []string) ([]volume.Volume, error) {
	vols := make([]volume.Volume, len(names))
	for i, v := range names {
		res, err := b.api.VolumeInspect(ctx, v, client.VolumeInspectOptions{})
		if err != nil {
			return nil, err
		}
		vols[i] = res.Volume
	}
	return vols, nil
}

// hostDirs returns the directory on this host of each volume, when a
// copier may run on this host for them (see [Where]); ok is false
// otherwise. With idle, no running container may mount one of them.
func (b *Copier) hostDirs(ctx context.Context, vols []volume.Volume, idle bool) (dirs []string, ok bool) {
	if b.Where != Anywhere || runtime.GOOS != "linux" || os.Geteuid() != 0 || len(vols) == 0 {
		return nil, false
	}
	var names []string
	for _, vol := range vols {
		if vol.Driver != "local" || len(vol.Options) > 0 || !filepath.IsAbs(vol.Mountpoint) {
			return nil, false
		}
		created, err := time.Parse(time.RFC3339Nano, vol.CreatedAt)
		if err != nil {
			return nil, false
		}
		if fi, err := os.Lstat(vol.Mountpoint); err != nil || !fi.IsDir() ||
			!(changedAt(vol.Mountpoint, created) || changedAt(filepath.Dir(vol.Mountpoint), created)) {
			return nil, false
		}
		dirs = append(dirs, vol.Mountpoint)
		names = append(names, vol.Name)
	}
	if idle {
		if busy, err := b.volumesInUse(ctx, names); err != nil || busy {
			return nil, false
		}
	}
	return dirs, true
}

// changedAt says whether the inode change time of path is t, to the
// second.
func changedAt(path string, t time.Time) bool {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return false
	}
	return time.Unix(st.Ctim.Unix()).Truncate(time.Second).Equal(t.Truncate(time.Second))
}

// volumesInUse says whether a running container other than a copier
// mounts one of the named volumes.
func (b *Copier) volumesInUse(ctx context.Context, volumes []string) (bool, error) {
	f := make(client.Filters).Add("status", "running", "restarting")
	for _, v := range volumes {
		f = f.Add("volume", v)
	}
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return false, fmt.Errorf("cannot list the containers using the volumes: %s", backend.OneLine(err))
	}
	for _, c := range res.Items {
		if c.Labels[copierLabel] == "" {
			return true, nil
		}
	}
	return false, nil
}

// startProcess starts the copier executable (empty: the running one) as
// a process of this host with args, its stdout to stdout and its stderr
// kept (and written to stderr when not nil); with stdin, its standard
// input is a pipe. It runs in a process group of its own: a Ctrl-C at the
// terminal reaches denv, which tells it to stop by closing its input (as
// for the container), and it finishes or undoes its work if denv is gone.
func (b *Copier) startProcess(what, copierExe string, args []string, stdin bool, stdout, stderr io.Writer) (*helper, error) {
	if copierExe == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("%s: cannot find the denv executable for the copier: %w", what, err)
		}
		copierExe = exe
	}
	if err := rootfs.CheckExecutable(copierExe); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	h := &helper{b: b, what: what, stderr: &lockedBuffer{}, output: make(chan struct{}), exit: make(chan exitResult, 1), onHost: true}
	cmd := exec.Command(copierExe, args...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout = stdout
	cmd.Stderr = h.stderr
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(h.stderr, stderr)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if stdin {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, fmt.Errorf("%s: cannot start the copier: %w", what, err)
		}
		h.stdin = w
		h.closeStdin = w.Close
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: cannot start the copier: %w", what, err)
	}
	exited := make(chan struct{})
	go func() {
		// Wait returns once the process exited and its output was copied
		err := cmd.Wait()
		close(h.output)
		var ee *exec.ExitError
		switch {
		case err == nil:
			h.exit <- exitResult{}
		case errors.As(err, &ee):
			code := int64(ee.ExitCode())
			if code < 0 {
				code = 128 + 9 // killed by a signal
			}
			h.exit <- exitResult{code: code}
		default:
			h.exit <- exitResult{err: err}
		}
		close(exited)
	}()
	h.release = func() {
		if h.closeStdin != nil {
			_ = h.closeStdin()
		}
		if h.finished {
			return
		}
		_ = cmd.Process.Kill()
		<-exited
	}
	return h, nil
}

// startReader starts the copier with args and mounts as
// [Copier.startHelperErr] does, but as a process of this host when every
// mount is a read-only volume that may be read there (see [Where]): each
// argument that is a mount's target is then that volume's directory.
func (b *Copier) startReader(ctx context.Context, what, copierExe string, args []string, mounts []mount.Mount, stdin bool, stdout, stderr io.Writer) (*helper, error) {
	var volumes []string
	targets := map[string]int{}
	for _, m := range mounts {
		if m.Type != mount.TypeVolume || !m.ReadOnly {
			return b.startHelperErr(ctx, what, copierExe, args, mounts, stdin, stdout, stderr)
		}
		targets[m.Target] = len(volumes)
		volumes = append(volumes, m.Source)
	}
	vols, err := b.inspectVolumes(ctx, volumes)
	if err != nil {
		// the container's creation says what is wrong
		return b.startHelperErr(ctx, what, copierExe, args, mounts, stdin, stdout, stderr)
	}
	dirs, ok := b.hostDirs(ctx, vols, true)
	if !ok {
		return b.startHelperErr(ctx, what, copierExe, args, mounts, stdin, stdout, stderr)
	}
	hostArgs := make([]string, len(args))
	for i, a := range args {
		hostArgs[i] = a
		if j, ok := targets[a]; ok {
			hostArgs[i] = dirs[j]
		}
	}
	return b.startProcess(what, copierExe, hostArgs, stdin, stdout, stderr)
}

// startInProcess starts the copy of the directory pairs dirs (SRC DST...)
// in this process, as copier.Command runs it: it begins when told to
// ([helper.goAhead]) and stops, with an error, when its input is closed
// (closeStdin) or it is released.
func (b *Copier) startInProcess(what string, dirs []string, events io.Writer) *helper {
	h := &helper{b: b, what: what, stderr: &lockedBuffer{}, output: make(chan struct{}), exit: make(chan exitResult, 1), onHost: true}
	start, stop := make(chan struct{}), make(chan struct{})
	var startOnce, stopOnce sync.Once
	h.begin = func() error {
		startOnce.Do(func() { close(start) })
		return nil
	}
	h.closeStdin = func() error {
		stopOnce.Do(func() { close(stop) })
		return nil
	}
	go func() {
		var err error
		select {
		case <-start:
			err = copier.CopyPairs(dirs, stop, events)
		case <-stop:
			err = errors.New("copy not started: no go-ahead received")
		}
		close(h.output)
		if err != nil {
			// as the copier executable reports it: its last line
			fmt.Fprintf(h.stderr, "denv: %s\n", err)
			h.exit <- exitResult{code: 1}
			return
		}
		h.exit <- exitResult{}
	}()
	h.release = func() {
		_ = h.closeStdin()
		<-h.output // stopped, or finished
	}
	return h
}

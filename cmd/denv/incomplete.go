package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/records"
)

// statusIncomplete is the status of an environment whose run did not
// record it: still starting, or killed midway (SIGKILL, OOM).
const statusIncomplete = "incomplete"

// appendIncomplete adds the incomplete environments of es to list (for
// `envs --all`), with what the engine has of them (live, by project
// label, asked of status), sorted by ID with the rest.
func appendIncomplete(list []envJSON, es *records.Store, status func(ids []string) (map[string]backend.EnvState, error)) ([]envJSON, error) {
	incs, err := es.Incomplete()
	if err != nil {
		return nil, err
	}
	if len(incs) == 0 {
		return list, nil
	}
	ids := make([]string, len(incs))
	for i, inc := range incs {
		ids[i] = inc.ID
	}
	live, err := status(ids)
	if err != nil {
		return nil, err
	}
	for _, inc := range incs {
		e, ok := live[inc.ID]
		j := merge(records.Record{ID: inc.ID, Created: inc.Created}, e, ok)
		j.Status = statusIncomplete
		j.RunAlive = inc.Alive
		list = append(list, j)
	}
	sort.SliceStable(list, func(i, k int) bool { return list[i].ID < list[k].ID })
	return list, nil
}

// statusText is the status shown in the table: an incomplete environment
// whose run still lives is "incomplete (starting)".
func statusText(e envJSON) string {
	if e.Status == statusIncomplete && e.RunAlive {
		return e.Status + " (starting)"
	}
	if h := e.Health; h != nil {
		var notes []string
		if h.Waiting > 0 {
			notes = append(notes, strconv.Itoa(h.Waiting)+" waiting")
		}
		if h.Unhealthy > 0 {
			notes = append(notes, strconv.Itoa(h.Unhealthy)+" unhealthy")
		}
		if len(notes) > 0 {
			return e.Status + " (" + strings.Join(notes, ", ") + ")"
		}
	}
	return e.Status
}

// rmIncomplete removes id when it is incomplete and its run is dead:
// every container, network (and with --volumes, volume) carrying its
// project label, then its directory. It returns handled false when id is
// not incomplete (recorded or unknown), for rm to go on as usual. Like rm
// of a recorded environment, it refuses running containers without
// --force; it never touches an environment whose run still lives.
func rmIncomplete(ctx context.Context, cmd *cobra.Command, a *app, opts rmOptions, id string) (handled bool, err error) {
	es, err := a.openEnvs()
	if err != nil {
		return true, err
	}
	res, err := es.TakeOver(id)
	var ie *records.IncompleteError
	switch {
	case errors.As(err, &ie):
		pid := ""
		if ie.PID > 0 {
			pid = fmt.Sprintf(" (pid %d)", ie.PID)
		}
		return true, fmt.Errorf("environment %q is being started by another denv process%s: wait for it, or stop that process, then 'denv rm %s'", id, pid, id)
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrExist):
		return false, nil
	case err != nil:
		return true, err
	}
	// Released without removing the directory when something fails: the
	// environment stays incomplete, for another rm.
	defer res.Release()
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return true, err
	}
	defer b.Close()
	if !opts.force {
		l, err := b.Leftovers(ctx, id)
		if err != nil {
			return true, err
		}
		if running := l.Running(); len(running) > 0 {
			return true, fmt.Errorf("environment %q (an interrupted run) has running containers (%s): use 'denv rm --force %s'", id, strings.Join(running, ", "), id)
		}
	}
	if err := b.RemoveLeftovers(ctx, id, opts.volumes); err != nil {
		return true, err
	}
	return true, res.Abort()
}

// noEnvError is the error of a command naming an environment that has no
// record; it matches fs.ErrNotExist.
type noEnvError struct{ id string }

func (e noEnvError) Error() string {
	return fmt.Sprintf("no environment %q (see 'denv envs --all')", e.id)
}

func (e noEnvError) Unwrap() error { return fs.ErrNotExist }

// progressWriter passes progress on to w until a write fails (a closed
// pipe: `denv run ... 2>&1 | head`), then drops it: progress is not worth
// failing a run halfway for.
type progressWriter struct {
	w      io.Writer
	failed atomic.Bool
}

// Write implements io.Writer; it never fails.
func (p *progressWriter) Write(b []byte) (int, error) {
	if !p.failed.Load() {
		if _, err := p.w.Write(b); err != nil {
			p.failed.Store(true)
		}
	}
	return len(b), nil
}

// progressFile is a progressWriter over a file that keeps the file's Fd,
// so that compose still draws its terminal display on a terminal.
type progressFile struct {
	*progressWriter
	f *os.File
}

// Fd returns the file's descriptor.
func (p progressFile) Fd() uintptr { return p.f.Fd() }

// forgiving wraps w (nil stays nil) in a writer whose failures do not
// reach its caller.
func forgiving(w io.Writer) io.Writer {
	if w == nil {
		return nil
	}
	pw := &progressWriter{w: w}
	if f, ok := w.(*os.File); ok {
		return progressFile{pw, f}
	}
	return pw
}

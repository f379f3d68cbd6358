package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
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
	// The run left no record saying which engine it was on: every engine
	// that can is asked.
	engs := salvagers(b)
	if !opts.force {
		var running []string
		for _, e := range engs {
			l, err := e.Leftovers(ctx, id)
			if err != nil {
				return true, err
			}
			running = append(running, l.Running()...)
		}
		if len(running) > 0 {
			return true, fmt.Errorf("environment %q (an interrupted run) has running containers (%s): use 'denv rm --force %s'", id, strings.Join(running, ", "), id)
		}
	}
	for _, e := range engs {
		if err := e.RemoveLeftovers(ctx, id, opts.volumes); err != nil {
			return true, err
		}
	}
	return true, res.Abort()
}

// engineOrder is the names of the engines, the default (local) first.
func engineOrder() []string {
	names := []string{defaultEngine}
	for _, n := range slices.Sorted(maps.Keys(engines())) {
		if n != defaultEngine {
			names = append(names, n)
		}
	}
	return names
}

// salvagers are the engines over b that can find and remove what an
// interrupted run left (backend.Salvager), the local one first.
func salvagers(b *backend.Backend) []backend.Salvager {
	var out []backend.Salvager
	for _, n := range engineOrder() {
		if s, ok := engines()[n].open(b).(backend.Salvager); ok {
			out = append(out, s)
		}
	}
	return out
}

// anyEngineStatus is the state of each of ids on the first engine (local
// first) that has it: an interrupted run's engine is not recorded.
func anyEngineStatus(ctx context.Context, b *backend.Backend, ids []string) (map[string]backend.EnvState, error) {
	out := map[string]backend.EnvState{}
	for _, n := range engineOrder() {
		st, err := engines()[n].open(b).Status(ctx, ids)
		if err != nil {
			return nil, err
		}
		for id, e := range st {
			if _, ok := out[id]; !ok {
				out[id] = e
			}
		}
	}
	return out, nil
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

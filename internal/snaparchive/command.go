package snaparchive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/alebellu/denv/internal/copier"
)

// ProgressFlag makes [ExportCommand] and [ImportCommand] write progress
// lines on their error output, in the format of internal/copier's events
// (total, copied and done per volume, then finished; see copier.Event).
// An error is the last line.
const ProgressFlag = "--progress"

// ExportCommand is the export as it runs inside the engine ([ExportArg]):
//
//	[--progress] DIR...
//
// It reads a [Manifest] as JSON on in (its volumes name the directories
// in order; Bytes, Files and checksums are measured), writes the snapshot
// file of the directories to out and nothing else there.
func ExportCommand(args []string, in io.Reader, out, errOut io.Writer) error {
	progress, dirs := parseArgs(args)
	if len(dirs) == 0 {
		return fmt.Errorf("usage: [%s] DIR... (the manifest on standard input)", ProgressFlag)
	}
	data, err := io.ReadAll(io.LimitReader(in, maxRecord+1))
	if err != nil {
		return fmt.Errorf("cannot read the manifest: %w", err)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("invalid manifest on standard input: %s", oneLine(err))
	}
	if len(m.Volumes) != len(dirs) {
		return fmt.Errorf("the manifest lists %d volumes for %d directories", len(m.Volumes), len(dirs))
	}
	var opts WriteOptions
	var ev *events
	if progress {
		ev = &events{w: errOut}
		opts.Progress = ev.progress
	}
	m.Format = Version
	if _, err := Write(out, m, dirs, opts); err != nil {
		return err
	}
	ev.finish()
	return nil
}

// ImportCommand is the import as it runs inside the engine ([ImportArg]):
//
//	[--progress] DIR...
//
// It reads a snapshot file on in and extracts volume i into DIR i, as
// [Reader.Extract] (verified first; every DIR empty or missing, and left
// so on error), then writes the verified manifest, with its checksums, as
// one line of JSON on out.
func ImportCommand(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) error {
	progress, dirs := parseArgs(args)
	if len(dirs) == 0 {
		return fmt.Errorf("usage: [%s] DIR... (the snapshot file on standard input)", ProgressFlag)
	}
	r, err := NewReader(in)
	if err != nil {
		return err
	}
	defer r.Close()
	var opts ExtractOptions
	var ev *events
	if progress {
		ev = &events{w: errOut}
		opts.Progress = ev.progress
		for i, v := range r.Manifest().Volumes {
			ev.progress(i, 0, v.Bytes)
		}
	}
	m, err := r.Extract(ctx, dirs, opts)
	if err != nil {
		return err
	}
	ev.finish()
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", line)
	return err
}

// SumCommand prints the measures of the tree DIR ([SumArg] DIR) as one
// line of JSON: a [Volume] without its name.
func SumCommand(args []string, out io.Writer) error {
	if len(args) != 1 {
		return errors.New("usage: DIR")
	}
	v, err := TreeSum(args[0])
	if err != nil {
		return err
	}
	line, _ := json.Marshal(v)
	_, err = fmt.Fprintf(out, "%s\n", line)
	return err
}

func parseArgs(args []string) (progress bool, dirs []string) {
	if len(args) > 0 && args[0] == ProgressFlag {
		return true, args[1:]
	}
	return false, args
}

// events writes [Progress] calls as copier event lines: a total line the
// first time a volume is seen, one done line when it is complete.
type events struct {
	mu   sync.Mutex
	w    io.Writer
	seen map[int]bool // volumes with a total line
	done map[int]bool // volumes with a done line
}

func (e *events) progress(volume int, done, total int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen, e.done = map[int]bool{}, map[int]bool{}
	}
	if !e.seen[volume] {
		e.seen[volume] = true
		fmt.Fprintf(e.w, "%s %d %d\n", copier.KindTotal, volume, total)
		if done == 0 {
			return
		}
	}
	kind := copier.KindCopied
	if done == total {
		if e.done[volume] {
			return
		}
		e.done[volume] = true
		kind = copier.KindDone
	}
	fmt.Fprintf(e.w, "%s %d %d\n", kind, volume, done)
}

func (e *events) finish() {
	if e != nil {
		fmt.Fprintln(e.w, copier.KindFinished)
	}
}

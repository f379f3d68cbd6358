package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/stack"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/records"
)

type updateOptions struct {
	sets     []string
	dryRun   bool
	format   string
	yes      bool
	volumes  bool
	previous bool
	wait     bool
}

func newUpdateCmd(a *app) *cobra.Command {
	var opts updateOptions
	cmd := &cobra.Command{
		Use:   "update ID [DEF]",
		Short: "Change a running environment to a new definition, with a plan",
		Long: `Update compiles DEF (default: the definition ID was run from, as it is now,
with the parameters it was run with unless --set) into a project for ID,
prints the plan (what is created, recreated, restarted, removed, left
alone) and converges the environment to it: only what changed is
recreated, the rest keeps running (same containers), named volumes keep
their data. --dry-run prints the plan and changes nothing.

Services no longer in the definition are removed; their named volumes are
kept unless --volumes (asked on a terminal unless --yes). The record is
replaced only when the update succeeded; the project it replaces is kept,
and 'denv update ID --previous' converges back to it. A failed update
converges the environment back to its recorded project and says so.`,
		Args: rangeArgs(1, 2, "ID [DEF]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			def := ""
			if len(args) == 2 {
				def = args[1]
			}
			return runUpdate(cmd, a, opts, args[0], def)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.sets, "set", nil, "give the definition's parameter a value, `NAME=VALUE` (repeatable; others keep their recorded values)")
	f.BoolVar(&opts.dryRun, "dry-run", false, "print the plan and change nothing")
	f.StringVar(&opts.format, "format", "text", "plan `FORMAT`: text or json")
	f.BoolVar(&opts.yes, "yes", false, "do not ask before removing volumes")
	f.BoolVar(&opts.volumes, "volumes", false, "also remove the named volumes of the services removed")
	f.BoolVar(&opts.previous, "previous", false, "converge back to the project the last update replaced")
	f.BoolVar(&opts.wait, "wait", false, "wait until every container runs (healthy, when it has a healthcheck)")
	return cmd
}

func runUpdate(cmd *cobra.Command, a *app, opts updateOptions, id, def string) (err error) {
	if opts.format != "text" && opts.format != "json" {
		return fmt.Errorf("invalid --format %q: use text or json", opts.format)
	}
	if opts.previous && (def != "" || len(opts.sets) > 0) {
		return errors.New("--previous takes no DEF and no --set: it converges to the recorded previous project")
	}
	if err := records.ValidID(id); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, e, es, rec, err := a.openEnv(ctx, cmd, id)
	if err != nil {
		return err
	}
	defer b.Close()
	up, ok := e.(backend.Updater)
	if !ok {
		return fmt.Errorf("environment %s: %w", id, backend.ErrUpdateUnsupported)
	}
	// The environment is held from the plan to the record's replacement:
	// a racing update or rm of it refuses (records.BusyError). The record
	// is read again under the lock, in case one finished meanwhile.
	hold, err := es.Hold(id)
	if err != nil {
		return err
	}
	defer hold.Release()
	if rec, err = getRecord(es, id); err != nil {
		return err
	}
	rec.Loaded = es.LoadedProject(id)
	next, err := a.nextRecord(ctx, es, e, rec, def, opts)
	if err != nil {
		return err
	}
	p, err := up.Plan(ctx, deployment(rec), deployment(next))
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if err := writePlan(out, p, opts.format); err != nil {
		return err
	}
	if opts.dryRun {
		return nil
	}
	var drop []string
	if opts.volumes {
		drop = removedVolumes(p)
	}
	if lost := lostVolumes(p, drop); len(lost) > 0 && !opts.yes {
		if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), fmt.Sprintf("This update removes or recreates the volumes %s of %s; their data is lost.", strings.Join(lost, ", "), id)); err != nil {
			return err
		}
	}
	if p.Empty() && bytesEqual(rec.Project, next.Project) {
		return nil
	}
	if err := up.Update(ctx, deployment(rec), deployment(next), backend.UpdateOptions{Wait: opts.wait, RemoveVolumes: drop}); err != nil {
		return rollBack(ctx, up, rec, next, opts.wait, err)
	}
	next.Loaded = loadedOf(e, deployment(next))
	if next.Loaded == nil && next.Digest == rec.Digest {
		next.Loaded = rec.Loaded
	}
	if _, err := es.Replace(rec, next); err != nil {
		return fmt.Errorf("environment %s was updated but its record could not be replaced (it still describes the old project; 'denv update %s' again records it): %w", id, id, err)
	}
	if opts.format == "text" {
		return printEndpoints(ctx, out, e, id)
	}
	return nil
}

// nextRecord is the record the update would write: the new project,
// compiled (or, with --previous, the recorded previous one) and rendered
// for rec's engine.
func (a *app) nextRecord(ctx context.Context, es *records.Store, e backend.Engine, rec records.Record, def string, opts updateOptions) (records.Record, error) {
	next := rec
	next.Previous = nil
	if opts.previous {
		prev, err := es.PreviousProject(rec)
		if err != nil {
			return next, err
		}
		next.Project, next.Digest = prev, digest(prev)
		next.Definition, next.Params, next.Source = rec.Previous.Definition, rec.Previous.Params, rec.Previous.Source
		return next, nil
	}
	explicit := def != ""
	if !explicit {
		def = recordedDef(rec)
	}
	p, g, err := a.buildWith(ctx, def, rec.ID, updateSets(rec.Params, opts.sets))
	if err != nil {
		if !explicit {
			return next, fmt.Errorf("the definition %s was run from no longer compiles (%s): give the definition to update to, 'denv update %s DEF'", rec.Definition, backend.OneLine(err), rec.ID)
		}
		return next, err
	}
	p.Name = rec.ID
	wd := p.WorkingDir
	if wd == "" {
		wd = rec.WorkDir
	}
	mode, err := publishModeOf(rec)
	if err != nil {
		return next, err
	}
	yaml, err := e.Render(p, backend.RenderOptions{WorkDir: wd, PublishMode: mode})
	if err != nil {
		return next, err
	}
	next.Definition, next.Params, next.Source = g.Root.Def, g.Root.ShownParams(), sourceArg(def)
	next.Project, next.Digest, next.WorkDir = yaml, digest(yaml), wd
	return next, nil
}

// recordedDef is the definition rec was run from, as it can be found from
// here: the recorded argument (a file made absolute), else (older records)
// the definition's name, as a file in the directory it was run in first.
func recordedDef(rec records.Record) string {
	if rec.Source != "" {
		return rec.Source
	}
	d := rec.Definition
	for _, name := range []string{d, d + ".denv"} {
		if abs := filepath.Join(rec.WorkDir, name); !filepath.IsAbs(d) && fileExists(abs) {
			return abs
		}
	}
	return d
}

// sourceArg is the definition argument def as a record keeps it: a file
// that exists made absolute, anything else (a stored name, github:) as is.
func sourceArg(def string) string {
	if strings.HasPrefix(def, "github:") {
		return def
	}
	for _, name := range []string{def, def + ".denv"} {
		if fileExists(name) {
			if abs, err := filepath.Abs(name); err == nil {
				return abs
			}
		}
	}
	return def
}

func fileExists(name string) bool {
	st, err := os.Stat(name)
	return err == nil && st.Mode().IsRegular()
}

// publishModeOf is the swarm publish mode rec was run with, read from its
// stack file (the record does not keep it); only the swarm engine reads it.
func publishModeOf(rec records.Record) (string, error) {
	if rec.Engine != stack.Name {
		return "ingress", nil
	}
	return stack.PublishMode(rec.Project, rec.WorkDir)
}

// updateSets are the recorded parameter values, overridden by sets; the
// recorded secret ones ("***") are left out: the definition's default or
// a --set gives them.
func updateSets(recorded map[string]string, sets []string) []string {
	var out []string
	for _, k := range sortedKeys(recorded) {
		if v := recorded[k]; v != "***" {
			out = append(out, k+"="+v)
		}
	}
	return append(out, sets...)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func writePlan(w io.Writer, p *plan.Plan, format string) error {
	if format == "json" {
		data, err := p.JSON()
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err := w.Write(p.Text())
	return err
}

// removedVolumes are the named volumes of the services the plan removes,
// and the volumes it removes, by project key.
func removedVolumes(p *plan.Plan) []string {
	var out []string
	for _, s := range p.Services {
		if s.Action == plan.Remove {
			out = append(out, s.Volumes...)
		}
	}
	for _, v := range p.Volumes {
		if v.Action == plan.Remove {
			out = append(out, v.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// lostVolumes are the volumes whose data the update loses: those removed
// (drop) and those the plan recreates.
func lostVolumes(p *plan.Plan, drop []string) []string {
	out := slices.Clone(drop)
	for _, v := range p.Volumes {
		if v.Action == plan.Recreate {
			out = append(out, v.Name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// confirm asks on a terminal; elsewhere it refuses, pointing at --yes.
func confirm(in io.Reader, out io.Writer, what string) error {
	f, ok := in.(*os.File)
	if !ok || !isTerminal(f) {
		return fmt.Errorf("%s Not a terminal: use --yes to go on", what)
	}
	fmt.Fprintf(out, "%s Go on? [y/N] ", what)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
		return errors.New("update cancelled: nothing changed")
	}
	return nil
}

// rollBack converges the environment back to rec's project after the
// update to next failed with err, and says what state it is in.
func rollBack(ctx context.Context, up backend.Updater, rec, next records.Record, wait bool, err error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*backend.DefaultWaitTimeout)
	defer cancel()
	if rerr := up.Update(rctx, deployment(next), deployment(rec), backend.UpdateOptions{Wait: wait}); rerr != nil {
		return fmt.Errorf("update of %s failed: %s; converging back to its recorded project failed too: %s; the environment is partly updated: 'denv update %s' to retry or 'denv rm --force %s'", rec.ID, backend.OneLine(err), backend.OneLine(rerr), rec.ID, rec.ID)
	}
	return fmt.Errorf("update of %s failed, the environment runs its recorded project again (record unchanged): %s", rec.ID, backend.OneLine(err))
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

// rangeArgs is cobra.RangeArgs with an error that names what is expected.
func rangeArgs(lo, hi int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return fmt.Errorf("%s: want %s, got %d argument(s); see '%s --help'", cmd.Name(), names, len(args), cmd.CommandPath())
		}
		return nil
	}
}

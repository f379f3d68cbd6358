package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/volumecopy"
	"github.com/alebellu/denv/records"
	"github.com/alebellu/denv/store"
)

// endpointHost is the host printed in endpoints: published ports are bound
// on every interface of the daemon's machine, which for the local engine
// denv targets is this one.
const endpointHost = "127.0.0.1"

type runOptions struct {
	name        string
	engine      string
	publishMode string
	wait        bool
	keep        bool
	sets        []string
	// from is the snapshot to seed the volumes with (--from); copier is
	// the executable copying them (DENV_COPIER, empty: this one).
	from   string
	copier string
}

func newRunCmd(a *app) *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run DEF [-n NAME] [--from SNAPSHOT]",
		Short: "Start an environment",
		Long: `Run compiles DEF (a .denv file, a stored definition or a github: reference)
and starts it, detached, as the Docker Compose project NAME, then prints
each published endpoint. Like 'docker compose up -d' it returns once the
containers are started; --wait also waits until they run. Without -n the id is the first free
"ENV-1", "ENV-2", ... after the root environment's name.

The compiled project is kept under $DENV_HOME/envs/NAME/compose.yaml; later
commands (envs, start, stop, rm, logs) act on it. If starting fails, what
this run created is removed and nothing is recorded (with
--keep-on-failure its containers are kept, unrecorded, to inspect them:
'denv envs --all' shows NAME as incomplete and 'denv rm --force NAME'
removes them). Services with READY, or whose
image declares a HEALTHCHECK, are waited for until healthy: one not ready
in time fails the run, naming it with its last checks and log lines. If denv is killed
midway, 'denv envs --all' shows NAME as incomplete and
'denv rm --force NAME' removes what it left.

With --engine swarm the environment is deployed as the Docker Swarm stack
NAME on the engine (which must be a swarm manager): overlay networks per
environment, one replica per service, published ports in ingress mode.
envs, start, stop (scale to 0), rm work on it as on a local one.

With --from SNAPSHOT the environment starts with the snapshot's data: its
containers are created, every named volume is filled with the snapshot's
volume of the same key (the snapshot must have exactly the project's
volume keys, as for 'denv restore'), then it is started as above. If
anything fails, nothing of NAME is kept (with --keep-on-failure, what
was created is kept, unrecorded). Local engine only.`,
		Args:              exactArgs(1, "DEF"),
		ValidArgsFunction: completeDefs(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.copier = a.getenv("DENV_COPIER")
			return runRun(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().StringVar(&opts.from, "from", "", "fill the named volumes with the data of snapshot `SNAPSHOT` before starting")
	cmd.Flags().StringVarP(&opts.name, "name", "n", "", "environment id `NAME` (default: a free id from the definition's name)")
	cmd.Flags().StringArrayVar(&opts.sets, "set", nil, "give the definition's parameter a value, `NAME=VALUE` (repeatable)")
	cmd.Flags().BoolVar(&opts.wait, "wait", false, "wait until every container runs (healthy, when it has a healthcheck), like 'docker compose up --wait'")
	cmd.Flags().BoolVar(&opts.keep, "keep-on-failure", false, "when starting fails, keep what this run created (unrecorded) instead of removing it")
	cmd.Flags().StringVar(&opts.engine, "engine", defaultEngine, "`ENGINE` to run on: local (Docker Compose) or swarm (a stack)")
	cmd.Flags().StringVar(&opts.publishMode, "publish-mode", "ingress", "with --engine swarm, publish ports in `MODE` ingress (routing mesh) or host (the task's node; for kernels without IPVS)")
	return cmd
}

func runRun(cmd *cobra.Command, a *app, opts runOptions, def string) (err error) {
	if err := validEngine(opts.engine, opts.publishMode); err != nil {
		return err
	}
	if opts.name != "" {
		if err := records.ValidID(opts.name); err != nil {
			return err
		}
	}
	if err := checkFrom(opts.from, opts.engine); err != nil {
		return err
	}
	// Ctrl-C while starting still cleans up (Up removes what it created).
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The definition first (it writes nothing), so that its errors are
	// reported with or without a daemon; then the daemon, before anything
	// is written.
	p, g, err := a.buildWith(ctx, def, opts.name, opts.sets)
	if err != nil {
		return err
	}
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer b.Close()
	// the snapshot is matched before anything is written
	var seed *snapshotInfo
	var vc *volumecopy.Copier
	if opts.from != "" {
		if vc, err = a.copier(b); err != nil {
			return err
		}
		if seed, err = seedSnapshot(ctx, vc, opts.from, def, p); err != nil {
			return err
		}
	}
	es, err := a.openEnvs()
	if err != nil {
		return err
	}
	var res *records.Reservation
	if opts.name != "" {
		res, err = es.Reserve(opts.name)
	} else {
		res, err = reserveFree(es, idBase(g.Root.Name))
	}
	if err != nil {
		return err
	}
	defer func() {
		switch {
		case err == nil:
		case errors.Is(err, backend.ErrKeptOnFailure):
			// what was kept holds the name: envs --all shows it as
			// incomplete, rm --force removes it
			res.Release()
		default:
			res.Abort()
		}
	}()
	p.Name = res.ID()
	wd := p.WorkingDir
	if wd == "" {
		if wd, err = os.Getwd(); err != nil {
			return err
		}
	}
	e := engines()[opts.engine].open(b)
	yaml, err := e.Render(p, backend.RenderOptions{WorkDir: wd, PublishMode: opts.publishMode})
	if err != nil {
		return err
	}
	rec := records.Record{
		ID:         res.ID(),
		Definition: g.Root.Def,
		Source:     sourceArg(def),
		Digest:     digest(yaml),
		Created:    time.Now().UTC(),
		Engine:     opts.engine,
		WorkDir:    wd,
		Project:    yaml,
		Params:     g.Root.ShownParams(),
	}
	d := deployment(rec)
	d.KeepOnFailure = opts.keep
	if seed != nil {
		rec.SeededFrom = seed.Name
		// the copy's progress on stderr, with compose's: stdout is
		// the endpoints, as for every run
		err = deploySeeded(ctx, cmd.ErrOrStderr(), b, vc, d, seed, opts.wait, opts.copier)
	} else {
		err = e.Deploy(ctx, d, opts.wait)
	}
	if err != nil {
		return err
	}
	rec.Loaded = loadedOf(e, d)
	if err := res.Commit(rec); err != nil {
		// Nothing recorded: do not leave an environment no command knows
		// (nor, when seeded, the copy of the snapshot's data).
		downCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if derr := e.Remove(downCtx, rec.ID, true, seed != nil); derr != nil {
			return fmt.Errorf("%w (and removing the environment failed: %v)", err, derr)
		}
		return err
	}
	return printEndpoints(ctx, cmd.OutOrStdout(), e, rec.ID)
}

// reserveFree claims the first free "base-N", retrying when a concurrent
// run claims the same one first.
func reserveFree(es *records.Store, base string) (*records.Reservation, error) {
	for {
		id, err := es.FreeID(base)
		if err != nil {
			return nil, err
		}
		res, err := es.Reserve(id)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return res, err
	}
}

// idBase turns an environment name into a valid id prefix: environment
// names may hold '.', which compose project names may not.
func idBase(name string) string {
	base := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	base = strings.TrimLeft(base, "-_")
	if base == "" {
		return "env"
	}
	return base
}

func digest(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// printPorts prints "SERVICE  http://127.0.0.1:PORT" for each TCP port.
func printPorts(w io.Writer, ports []backend.Port) error {
	for _, p := range ports {
		if p.Protocol != "tcp" {
			continue
		}
		if _, err := fmt.Fprintf(w, "%s  http://%s:%d\n", p.Service, endpointHost, p.HostPort); err != nil {
			return err
		}
	}
	return nil
}

// backend connects to the user's Docker daemon, with compose progress on
// progress; a write to progress that fails (a closed pipe) does not fail
// the operation.
func (a *app) backend(ctx context.Context, progress io.Writer) (*backend.Backend, error) {
	return backend.New(ctx, backend.WithProgress(forgiving(progress)))
}

// openEnvs opens the records of started environments, $DENV_HOME/envs.
func (a *app) openEnvs() (*records.Store, error) {
	dir, err := recordsDir()
	if err != nil {
		return nil, err
	}
	return records.Open(dir)
}

// recordsDir is where the records of environments live: $DENV_HOME/envs.
func recordsDir() (string, error) {
	dir, err := store.DefaultDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "envs"), nil
}

// openEnv opens what every command acting on one environment needs: the
// Docker connection, the records, environment id's record and the engine
// it runs on (the record says which). The caller closes b.
func (a *app) openEnv(ctx context.Context, cmd *cobra.Command, id string) (*backend.Backend, backend.Engine, *records.Store, records.Record, error) {
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, nil, records.Record{}, err
	}
	es, err := a.openEnvs()
	if err == nil {
		var rec records.Record
		if rec, err = getRecord(es, id); err == nil {
			var k engineKind
			if k, err = engineKindOf(rec); err == nil {
				return b, k.open(b), es, rec, nil
			}
		}
	}
	b.Close()
	return nil, nil, nil, records.Record{}, err
}

// getRecord returns the record of id, or a one-line error naming it.
func getRecord(es *records.Store, id string) (records.Record, error) {
	rec, err := es.Get(id)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, noEnvError{id}
	}
	return rec, err
}

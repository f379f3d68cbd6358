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

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/spf13/cobra"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/envs"
	"github.com/alebellu/denv/store"
)

// publishImagePortsLabel marks the services whose image's EXPOSE ports the
// runtime publishes (root-exposed services without PORT clauses).
const publishImagePortsLabel = "denv.publish-image-ports"

// endpointHost is the host printed in endpoints: published ports are bound
// on every interface of the daemon's machine, which for the local engine
// denv targets is this one.
const endpointHost = "127.0.0.1"

type runOptions struct {
	name        string
	engine      string
	publishMode string
	wait        bool
}

func newRunCmd(a *app) *cobra.Command {
	var opts runOptions
	cmd := &cobra.Command{
		Use:   "run DEF [-n NAME]",
		Short: "Start an environment",
		Long: `Run compiles DEF (a .denv file, a stored definition or a github: reference)
and starts it, detached, as the Docker Compose project NAME, then prints
each published endpoint. Like 'docker compose up -d' it returns once the
containers are started; --wait also waits until they run. Without -n the id is the first free
"ENV-1", "ENV-2", ... after the root environment's name.

The compiled project is kept under $DENV_HOME/envs/NAME/compose.yaml; later
commands (envs, start, stop, rm, logs) act on it. If starting fails, what
this run created is removed and nothing is recorded. If denv is killed
midway, 'denv envs --all' shows NAME as incomplete and
'denv rm --force NAME' removes what it left.

With --engine swarm the environment is deployed as the Docker Swarm stack
NAME on the engine (which must be a swarm manager): overlay networks per
environment, one replica per service, published ports in ingress mode.
envs, start, stop (scale to 0), rm work on it as on a local one.`,
		Args:              exactArgs(1, "DEF"),
		ValidArgsFunction: completeDefs(a),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd, a, opts, args[0])
		},
	}
	cmd.Flags().StringVarP(&opts.name, "name", "n", "", "environment id `NAME` (default: a free id from the definition's name)")
	cmd.Flags().BoolVar(&opts.wait, "wait", false, "wait until every container runs (healthy, when it has a healthcheck), like 'docker compose up --wait'")
	cmd.Flags().StringVar(&opts.engine, "engine", engineLocal, "`ENGINE` to run on: local (Docker Compose) or swarm (a stack)")
	cmd.Flags().StringVar(&opts.publishMode, "publish-mode", "ingress", "with --engine swarm, publish ports in `MODE` ingress (routing mesh) or host (the task's node; for kernels without IPVS)")
	return cmd
}

func runRun(cmd *cobra.Command, a *app, opts runOptions, def string) (err error) {
	if err := validEngine(opts.engine, opts.publishMode); err != nil {
		return err
	}
	if opts.name != "" {
		if err := envs.ValidID(opts.name); err != nil {
			return err
		}
	}
	// Ctrl-C while starting still cleans up (Up removes what it created).
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The definition first (it writes nothing), so that its errors are
	// reported with or without a daemon; then the daemon, before anything
	// is written.
	p, g, err := a.build(ctx, def, opts.name)
	if err != nil {
		return err
	}
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer b.Close()
	es, err := a.openEnvs()
	if err != nil {
		return err
	}
	var res *envs.Reservation
	if opts.name != "" {
		res, err = es.Reserve(opts.name)
	} else {
		res, err = reserveFree(es, idBase(g.Root.Name))
	}
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
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
	var yaml []byte
	if opts.engine == engineSwarm {
		yaml, err = stackFile(p, wd, opts.publishMode)
	} else {
		yaml, err = compile.YAML(p)
	}
	if err != nil {
		return err
	}
	rec := envs.Record{
		ID:         res.ID(),
		Definition: g.Root.Def,
		Digest:     digest(yaml),
		Created:    time.Now().UTC(),
		Engine:     opts.engine,
		WorkDir:    wd,
		Project:    yaml,
	}
	if rec.Engine == engineSwarm {
		err = deployRecord(ctx, b, rec)
	} else {
		err = upRecord(ctx, b, rec, opts.wait)
	}
	if err != nil {
		return err
	}
	if err := res.Commit(rec); err != nil {
		// Nothing recorded: do not leave an environment no command knows.
		downCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		down := func() error { return b.Down(downCtx, rec.ID, false) }
		if rec.Engine == engineSwarm {
			down = func() error { return b.RemoveStack(downCtx, rec.ID, false) }
		}
		if derr := down(); derr != nil {
			return fmt.Errorf("%w (and removing the environment failed: %v)", err, derr)
		}
		return err
	}
	if rec.Engine == engineSwarm {
		return printStackEndpoints(ctx, cmd.OutOrStdout(), b, rec.ID)
	}
	return printEndpoints(ctx, cmd.OutOrStdout(), b, rec.ID)
}

// upRecord loads the recorded project, publishes the image ports of the
// services that ask for it, and starts it; with wait, it waits until the
// containers run, else it returns once they are started, like `up -d`.
func upRecord(ctx context.Context, b *backend.Backend, rec envs.Record, wait bool) error {
	p, err := backend.Load(ctx, rec.Project, rec.ID, rec.WorkDir)
	if err != nil {
		return err
	}
	if err := b.PublishImagePorts(ctx, p, imagePortServices(p)); err != nil {
		return err
	}
	return b.Up(ctx, p, backend.UpOptions{NoWait: !wait})
}

// imagePortServices lists the services labelled denv.publish-image-ports.
func imagePortServices(p *types.Project) []string {
	var names []string
	for _, name := range p.ServiceNames() {
		if p.Services[name].Labels[publishImagePortsLabel] == "true" {
			names = append(names, name)
		}
	}
	return names
}

// reserveFree claims the first free "base-N", retrying when a concurrent
// run claims the same one first.
func reserveFree(es *envs.Store, base string) (*envs.Reservation, error) {
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

// printEndpoints prints "SERVICE  http://127.0.0.1:PORT" for each published
// TCP port of the environment id.
func printEndpoints(ctx context.Context, w io.Writer, b *backend.Backend, id string) error {
	cs, err := b.Ps(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := printPorts(w, c.Ports); err != nil {
			return err
		}
	}
	return nil
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
func (a *app) openEnvs() (*envs.Store, error) {
	dir, err := store.DefaultDir()
	if err != nil {
		return nil, err
	}
	return envs.Open(filepath.Join(dir, "envs"))
}

// getRecord returns the record of id, or a one-line error naming it.
// openEnv opens what every command acting on one environment needs: the
// backend, the records and environment id's record. The caller closes b.
func (a *app) openEnv(ctx context.Context, cmd *cobra.Command, id string) (*backend.Backend, *envs.Store, envs.Record, error) {
	b, err := a.backend(ctx, cmd.ErrOrStderr())
	if err != nil {
		return nil, nil, envs.Record{}, err
	}
	es, err := a.openEnvs()
	if err == nil {
		var rec envs.Record
		if rec, err = getRecord(es, id); err == nil {
			return b, es, rec, nil
		}
	}
	b.Close()
	return nil, nil, envs.Record{}, err
}

func getRecord(es *envs.Store, id string) (envs.Record, error) {
	rec, err := es.Get(id)
	if errors.Is(err, fs.ErrNotExist) {
		return rec, noEnvError{id}
	}
	return rec, err
}

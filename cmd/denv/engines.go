package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/compose"
	"github.com/alebellu/denv/backend/stack"
	"github.com/alebellu/denv/records"
)

// defaultEngine is --engine's default, and the engine of records written
// before records named one.
const defaultEngine = compose.Name

// engineKind is one runtime denv can run an environment on.
type engineKind struct {
	// open returns the runtime over the Docker connection conn.
	open func(conn *backend.Backend) backend.Engine
	// publishModes: the runtime takes --publish-mode.
	publishModes bool
	// cloneable: clone can copy its environments (their volumes are on
	// this daemon).
	cloneable bool
}

// engines is the set of runtimes by name (records.Record.Engine, --engine):
// a new runtime is one entry here and its implementation of
// backend.Engine. It is built per call, not kept in a package variable.
func engines() map[string]engineKind {
	return map[string]engineKind{
		compose.Name: {open: func(c *backend.Backend) backend.Engine { return compose.New(c) }, cloneable: true},
		stack.Name:   {open: func(c *backend.Backend) backend.Engine { return stack.New(c) }, publishModes: true},
	}
}

// engineKindOf returns the runtime of rec.
func engineKindOf(rec records.Record) (engineKind, error) {
	name := rec.Engine
	if name == "" {
		name = defaultEngine
	}
	k, ok := engines()[name]
	if !ok {
		return engineKind{}, fmt.Errorf("environment %q runs on engine %q, which this denv does not know", rec.ID, name)
	}
	return k, nil
}

// validEngine checks --engine against the set, and --publish-mode.
func validEngine(e, publishMode string) error {
	set := engines()
	k, ok := set[e]
	if !ok {
		return fmt.Errorf("run: unknown --engine %q: want %s", e, strings.Join(slices.Sorted(maps.Keys(set)), " or "))
	}
	if publishMode != "ingress" && publishMode != "host" {
		return fmt.Errorf("run: unknown --publish-mode %q: want ingress or host", publishMode)
	}
	if !k.publishModes && publishMode != "ingress" {
		var with []string
		for _, n := range slices.Sorted(maps.Keys(set)) {
			if set[n].publishModes {
				with = append(with, n)
			}
		}
		return fmt.Errorf("run: --publish-mode is for --engine %s", strings.Join(with, " or "))
	}
	return nil
}

// deployment is what an engine needs of rec.
func deployment(rec records.Record) backend.Deployment {
	return backend.Deployment{ID: rec.ID, Project: rec.Project, WorkDir: rec.WorkDir, Loaded: rec.Loaded}
}

// loadedOf is d's project as e last loaded it, for the record to keep
// (Record.Loaded), or nil when e does not say.
func loadedOf(e backend.Engine, d backend.Deployment) []byte {
	if pc, ok := e.(backend.ProjectCache); ok {
		return pc.LoadedProject(d)
	}
	return nil
}

// printEndpoints prints "SERVICE  http://127.0.0.1:PORT" for each published
// TCP port of the environment id on e.
func printEndpoints(ctx context.Context, w io.Writer, e backend.Engine, id string) error {
	ports, err := e.Endpoints(ctx, id)
	if err != nil {
		return err
	}
	return printPorts(w, ports)
}

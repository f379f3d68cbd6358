package main

import (
	"context"
	"os"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/remote"
	"github.com/alebellu/denv/resolve"
	"github.com/alebellu/denv/store"
)

// app is what the commands share: how to reach the store, remote sources
// and the working directory. Commands get it passed in; nothing is global.
type app struct {
	getenv func(string) string
}

func newApp() *app { return &app{getenv: os.Getenv} }

// openStore opens the definition store ($DENV_HOME, else the XDG data dir).
func (a *app) openStore() (*store.Store, error) {
	dir, err := store.DefaultDir()
	if err != nil {
		return nil, err
	}
	return store.Open(dir)
}

// fetcher fetches github: references from the store's cache first, then
// from the network, so that stored definitions work offline.
type fetcher struct {
	st  *store.Store
	net resolve.Fetcher
}

// Fetch implements resolve.Fetcher.
func (f fetcher) Fetch(ctx context.Context, owner, repo, ref, path string) ([]byte, error) {
	if f.st != nil {
		data, ok, err := f.st.CachedRemote(owner, repo, ref, path)
		if err != nil {
			return nil, err
		}
		if ok {
			return data, nil
		}
	}
	return f.net.Fetch(ctx, owner, repo, ref, path)
}

// resolveOptions are the resolver's options for this process: the working
// directory, the store st (may be nil) and remote fetching through it.
func (a *app) resolveOptions(st *store.Store) (resolve.Options, error) {
	wd, err := os.Getwd()
	if err != nil {
		return resolve.Options{}, err
	}
	opts := resolve.Options{WorkDir: wd, Fetcher: fetcher{st: st, net: remote.NewFetcher(a.getenv)}}
	if st != nil {
		opts.Store = st
	}
	return opts, nil
}

// build resolves def (a file, a stored name or a github: reference) and
// compiles it into a compose project named name (empty: the root's name).
func (a *app) build(ctx context.Context, def, name string) (*types.Project, *resolve.Graph, error) {
	st, err := a.openStore()
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.resolveOptions(st)
	if err != nil {
		return nil, nil, err
	}
	g, err := resolve.New(opts).Resolve(ctx, def)
	if err != nil {
		return nil, nil, err
	}
	p, err := compile.Compile(g, compile.Options{Name: name, BaseDir: opts.WorkDir})
	if err != nil {
		return nil, nil, err
	}
	return p, g, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

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
	data, err := f.net.Fetch(ctx, owner, repo, ref, path)
	if err != nil && f.st != nil && !errors.Is(err, fs.ErrNotExist) {
		// The resolver probes candidate paths (the includer's directory
		// first); offline, a probe that add found missing fails to
		// connect. Only then, for a repository add saw at this ref (add
		// refuses every failure but "not found", so a file of it missing
		// from the cache was not found), does the failure count as missing
		// and the lookup go on. Any other failure (a 503, a timeout) is an
		// error: falling through would silently use another definition.
		seen, serr := f.st.CachesRepository(owner, repo, ref)
		if serr != nil {
			return nil, serr
		}
		if seen {
			return nil, notCached{err}
		}
	}
	return data, err
}

// notCached is a remote file missing from the store's cache whose fetch
// failed; it matches fs.ErrNotExist and keeps the fetch error's text.
type notCached struct{ err error }

func (e notCached) Error() string   { return e.err.Error() + " (and not in the store's cache)" }
func (e notCached) Unwrap() []error { return []error{e.err, fs.ErrNotExist} }

// resolveOptions are the resolver's options for this process: the working
// directory, the store st (may be nil) and remote fetching through it.
func (a *app) resolveOptions(st *store.Store) (resolve.Options, error) {
	wd, err := os.Getwd()
	if err != nil {
		return resolve.Options{}, err
	}
	net, err := a.netFetcher()
	if err != nil {
		return resolve.Options{}, err
	}
	opts := resolve.Options{WorkDir: wd, Fetcher: fetcher{st: st, net: net}}
	if st != nil {
		opts.Store = st
		opts.StoredHostBinds = func(name string) bool {
			d, err := st.Get(name)
			return err == nil && d.HostBinds
		}
	}
	return opts, nil
}

// netFetcher fetches github: references over the network, configured from
// the environment: DENV_GITHUB_URL, GITHUB_TOKEN and DENV_FETCH_TIMEOUT (a Go
// duration such as 30s bounding each fetch; tests shorten it).
func (a *app) netFetcher() (*remote.Fetcher, error) {
	f := remote.NewFetcher(a.getenv)
	if v := a.getenv("DENV_FETCH_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("DENV_FETCH_TIMEOUT=%q: want a positive duration such as 30s", v)
		}
		f.Timeout = d
	}
	return f, nil
}

// build resolves def (a file, a stored name or a github: reference) and
// compiles it into a compose project named name (empty: the root's name).
func (a *app) build(ctx context.Context, def, name string) (*types.Project, *resolve.Graph, error) {
	return a.buildWith(ctx, def, name, nil)
}

// buildWith is build with the root's parameter values given as --set
// NAME=VALUE words.
func (a *app) buildWith(ctx context.Context, def, name string, sets []string) (*types.Project, *resolve.Graph, error) {
	params, err := resolve.ParseSets(sets)
	if err != nil {
		return nil, nil, err
	}
	st, err := a.openStore()
	if err != nil {
		return nil, nil, err
	}
	opts, err := a.resolveOptions(st)
	if err != nil {
		return nil, nil, err
	}
	opts.Params = params
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

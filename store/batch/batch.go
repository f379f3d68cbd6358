// Package batch holds the parts of `denv add` that check a batch of
// definitions before the store takes it, apart from the CLI: the store as
// it will be once the batch is added ([Overlay]), the fetcher that records
// the remote files a batch uses to cache them with it ([Recorder]), what a
// graph runs independent of where its files were read ([Fingerprint]),
// and the stored definitions a graph uses ([StoredIncludes]). No Docker,
// no network of its own: unit-tested with fakes.
package batch

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/alebellu/denv/resolve"
	"github.com/alebellu/denv/store"
)

// Overlay is the store as it will be once the batch is added, plus one
// extra definition (the root add resolves each definition from).
type Overlay struct {
	// Batch are the definitions being added, by name.
	Batch map[string]*store.Definition
	// Store is the store as it is.
	Store resolve.Store
	// Extra is the name of the extra definition and ExtraData its content.
	Extra     string
	ExtraData []byte
}

// Lookup implements resolve.Store: the extra definition, then the batch,
// then the store.
func (o Overlay) Lookup(name string) ([]byte, string, bool, error) {
	if name == o.Extra {
		return o.ExtraData, "stdin", true, nil
	}
	if d, ok := o.Batch[name]; ok {
		return d.Content, d.Origin, true, nil
	}
	return o.Store.Lookup(name)
}

// Recorder fetches remote files through Net, once each, and keeps them to
// be cached in the store with the batch. add fetches afresh rather than
// from the store's cache so that re-adding a reference updates it. It is
// safe for concurrent use.
type Recorder struct {
	net   resolve.Fetcher
	mu    sync.Mutex
	files map[string]store.RemoteFile
}

// NewRecorder returns a Recorder fetching through net.
func NewRecorder(net resolve.Fetcher) *Recorder {
	return &Recorder{net: net, files: map[string]store.RemoteFile{}}
}

// Get returns the file recorded under key (a store.RemoteFile's String).
func (r *Recorder) Get(key string) (store.RemoteFile, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.files[key]
	return f, ok
}

// Fetch implements resolve.Fetcher.
func (r *Recorder) Fetch(ctx context.Context, owner, repo, ref, p string) ([]byte, error) {
	f := store.RemoteFile{Owner: owner, Repo: repo, Ref: ref, Path: p}
	if got, ok := r.Get(f.String()); ok {
		return got.Content, nil
	}
	data, err := r.net.Fetch(ctx, owner, repo, ref, p)
	if err != nil {
		return nil, err
	}
	f.Content = data
	r.mu.Lock()
	r.files[f.String()] = f
	r.mu.Unlock()
	return data, nil
}

// Remotes returns the files fetched, sorted by reference.
func (r *Recorder) Remotes() []store.RemoteFile {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]store.RemoteFile, 0, len(r.files))
	for _, f := range r.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// StoredIncludes lists the stored definitions the graph of def uses,
// directly or not, so that none can be removed while def needs it; skip
// is the extra root's name.
func StoredIncludes(g *resolve.Graph, def, skip string) []string {
	var out []string
	for _, e := range g.Envs[1:] {
		if !e.Remote && e.Def != def && e.Def != skip {
			out = append(out, e.Def)
		}
	}
	return out
}

// Fingerprint describes what a graph runs, leaving out where its
// definitions were read from and the root's own name: a local file and
// its stored copy must have the same.
func Fingerprint(envs []*resolve.Env, root *resolve.Env) string {
	var b strings.Builder
	name := func(e *resolve.Env) string {
		if e == root {
			return "."
		}
		return e.Name
	}
	for _, e := range envs {
		fmt.Fprintf(&b, "env %s\n", name(e))
		for _, inc := range e.Includes {
			fmt.Fprintf(&b, " env %s\n", name(inc.Env))
		}
		for _, s := range e.Services {
			fmt.Fprintf(&b, " image %s %s %q\n", s.Name, s.Image, s.Command)
			for _, l := range s.Links {
				if l.Service != nil {
					fmt.Fprintf(&b, "  link %s\n", l.Service.Name)
				} else {
					fmt.Fprintf(&b, "  link env %s\n", name(l.Env))
				}
			}
			for _, v := range s.Volumes {
				fmt.Fprintf(&b, "  volume %d %s %s %s %v\n", v.Kind, v.Name, v.Source, v.Target, v.ReadOnly)
			}
			for _, p := range s.Ports {
				fmt.Fprintf(&b, "  port %d %d %s\n", p.Host, p.Container, p.Protocol)
			}
			for _, v := range s.Environ {
				fmt.Fprintf(&b, "  set %s=%s\n", v.Key, v.Value)
			}
		}
		for _, x := range e.Exposed {
			fmt.Fprintf(&b, " expose %s %s/%s\n", x.Name, name(x.Service.Env), x.Service.Name)
		}
	}
	return b.String()
}

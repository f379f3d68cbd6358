package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/remote"
	"github.com/alebellu/denv/resolve"
	"github.com/alebellu/denv/store"
)

type addOptions struct {
	name           string
	allowHostBinds bool
}

func newAddCmd(a *app) *cobra.Command {
	var opts addOptions
	cmd := &cobra.Command{
		Use:   "add [FILE|REF ...]",
		Short: "Add definitions to the local store",
		Long: `Add validates definitions and stores them so that they can be run by name,
offline. FILE is a .denv file, stored under its base name without .denv; REF is
github:OWNER:REPO[@REF]:PATH, stored under PATH. With no argument the definition
is read from standard input and --name is required.

Everything a definition needs is stored with it in one transaction: the local
files it includes (under their paths relative to its directory, in its
namespace) and every remote file it references, transitively. Nothing is
written unless every argument resolves.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAdd(cmd, a, opts, args)
		},
	}
	cmd.Flags().StringVar(&opts.name, "name", "", "store the definition as `NAME` (one argument or standard input)")
	cmd.Flags().BoolVar(&opts.allowHostBinds, "allow-host-binds", false, "let remote definitions bind host paths")
	return cmd
}

// checkRoot is the name under which the definitions of a batch are
// resolved as the store will see them: a stored definition that includes
// just the one being checked. Resolving the name itself would find a file of
// that name in the working directory first; no file is named like this.
const checkRoot = "0denv-add-check-0"

func runAdd(cmd *cobra.Command, a *app, opts addOptions, args []string) error {
	if opts.name != "" && len(args) > 1 {
		return fmt.Errorf("add: --name names one definition; got %d arguments", len(args))
	}
	if len(args) == 0 && opts.name == "" {
		return errors.New("add: reading a definition from standard input needs --name NAME")
	}
	if opts.name != "" {
		if err := store.ValidName(opts.name); err != nil {
			return fmt.Errorf("add: --name: %w", err)
		}
	}
	st, err := a.openStore()
	if err != nil {
		return err
	}
	net, err := a.netFetcher()
	if err != nil {
		return err
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	ad := &adder{
		ctx:   cmd.Context(),
		opts:  opts,
		st:    st,
		wd:    wd,
		fetch: &recorder{net: net, files: map[string]store.RemoteFile{}},
		batch: map[string]*store.Definition{},
	}
	if len(args) == 0 {
		if err := ad.addStdin(cmd.InOrStdin()); err != nil {
			return err
		}
	}
	for _, arg := range args {
		if err := ad.addArg(arg); err != nil {
			return err
		}
	}
	defs, err := ad.check()
	if err != nil {
		return err
	}
	if err := st.Add(defs, ad.fetch.remotes()); err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	for _, d := range defs {
		fmt.Fprintf(out, "added %s (%s)\n", d.Name, d.Origin)
	}
	return nil
}

// adder collects one add's batch: nothing is written until every argument
// has been resolved and the batch checked as a whole.
type adder struct {
	ctx   context.Context
	opts  addOptions
	st    *store.Store
	wd    string
	fetch *recorder
	batch map[string]*store.Definition
	roots []localRoot // local files named on the command line
}

// localRoot is a local file added with the graph it resolved to, to check
// that its stored copy resolves the same.
type localRoot struct {
	name string
	g    *resolve.Graph
}

func (ad *adder) put(name string, content []byte, origin string) error {
	if err := store.ValidName(name); err != nil {
		return fmt.Errorf("cannot store %s: %w; choose a name with --name", origin, err)
	}
	if old, ok := ad.batch[name]; ok {
		if old.Origin == origin && string(old.Content) == string(content) {
			return nil
		}
		return fmt.Errorf("cannot store both %s and %s as %q", old.Origin, origin, name)
	}
	ad.batch[name] = &store.Definition{Name: name, Content: content, Origin: origin}
	return nil
}

func (ad *adder) addStdin(r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, remote.DefaultMaxBytes+1))
	if err != nil {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if len(data) > remote.DefaultMaxBytes {
		return fmt.Errorf("standard input is larger than %d bytes", remote.DefaultMaxBytes)
	}
	return ad.put(ad.opts.name, data, "stdin")
}

func (ad *adder) addArg(arg string) error {
	if strings.HasPrefix(arg, remote.Scheme) {
		ref, err := remote.ParseRef(arg)
		if err != nil {
			return err
		}
		if _, err := resolve.New(ad.resolveOptions(ad.st, nil)).Resolve(ad.ctx, ref.String()); err != nil {
			return err
		}
		f, ok := ad.fetch.get(ref.String())
		if !ok {
			return fmt.Errorf("internal: %s resolved without being fetched", ref)
		}
		name := ad.opts.name
		if name == "" {
			name = ref.Path
		}
		return ad.put(name, f.Content, ref.String())
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return err
	}
	abs, err = regularFile(abs)
	if err != nil {
		return fmt.Errorf("cannot add %s: %w", arg, err)
	}
	files := map[string][]byte{}
	var mu sync.Mutex
	read := func(name string) ([]byte, error) {
		data, err := os.ReadFile(name)
		if err == nil {
			mu.Lock()
			files[name] = data
			mu.Unlock()
		}
		return data, err
	}
	g, err := resolve.New(ad.resolveOptions(ad.st, read)).Resolve(ad.ctx, abs)
	if err != nil {
		return err
	}
	name := ad.opts.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(abs), ".denv")
	}
	if _, ok := files[abs]; !ok {
		return fmt.Errorf("internal: %s resolved without being read", abs)
	}
	if err := ad.put(name, files[abs], abs); err != nil {
		return err
	}
	ad.roots = append(ad.roots, localRoot{name: name, g: g})
	// The local files it includes are stored beside it, in its namespace,
	// under their paths relative to its directory: the names under which a
	// stored definition finds them first.
	dir := filepath.Dir(abs)
	ns := path.Dir(name)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if p == abs {
			continue
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return fmt.Errorf("cannot add %s: it includes %s, which is outside its directory %s; add that definition first", arg, p, dir)
		}
		inc := strings.TrimSuffix(filepath.ToSlash(rel), ".denv")
		if ns != "." {
			inc = ns + "/" + inc
		}
		if err := ad.put(inc, files[p], p); err != nil {
			return err
		}
	}
	return nil
}

// regularFile returns abs, or abs+".denv" when only that exists (the
// suffix may be left out, as with compile), if it is a regular file.
func regularFile(abs string) (string, error) {
	st, err := os.Stat(abs)
	if err != nil && !strings.HasSuffix(abs, ".denv") {
		if st2, err2 := os.Stat(abs + ".denv"); err2 == nil {
			abs, st, err = abs+".denv", st2, nil
		}
	}
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	return abs, nil
}

func (ad *adder) resolveOptions(st resolve.Store, read func(string) ([]byte, error)) resolve.Options {
	return resolve.Options{
		WorkDir:          ad.wd,
		Store:            st,
		Fetcher:          ad.fetch,
		AllowRemoteBinds: ad.opts.allowHostBinds,
		ReadFile:         read,
		// a stored definition gets its values when it is run
		ParamsOptional: true,
	}
}

// check resolves every definition of the batch as the store will hold it
// and returns the batch, sorted by name, with images and includes counted.
func (ad *adder) check() ([]store.Definition, error) {
	graphs := map[string]*resolve.Graph{}
	var defs []store.Definition
	names := make([]string, 0, len(ad.batch))
	for n := range ad.batch {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ov := overlay{batch: ad.batch, st: ad.st, extra: checkRoot, extraData: []byte("ENV " + n + "\n")}
		g, err := resolve.New(ad.resolveOptions(ov, nil)).Resolve(ad.ctx, checkRoot)
		if err != nil {
			var list diag.List
			if errors.As(err, &list) {
				return nil, err // already names the file
			}
			return nil, fmt.Errorf("%s as stored: %w", n, err)
		}
		graphs[n] = g
		d := *ad.batch[n]
		d.Images = len(graphImages(g.Envs[1:]))
		d.Includes = storedIncludes(g, n)
		defs = append(defs, d)
	}
	for _, r := range ad.roots {
		stored := graphs[r.name]
		if fingerprint(r.g.Envs, r.g.Root) != fingerprint(stored.Envs[1:], stored.Envs[1]) {
			return nil, fmt.Errorf("cannot add %s as %q: its stored copy would resolve its includes to other definitions; add them separately first", ad.batch[r.name].Origin, r.name)
		}
	}
	return defs, nil
}

// storedIncludes lists the stored definitions the graph of def uses,
// directly or not, so that none can be removed while def needs it.
func storedIncludes(g *resolve.Graph, def string) []string {
	var out []string
	for _, e := range g.Envs[1:] {
		if !e.Remote && e.Def != def && e.Def != checkRoot {
			out = append(out, e.Def)
		}
	}
	return out
}

// graphImages returns the distinct images of envs, in order of appearance,
// with the environments that use each.
func graphImages(envs []*resolve.Env) []imageUse {
	var out []imageUse
	idx := map[string]int{}
	for _, e := range envs {
		for _, s := range e.Services {
			i, ok := idx[s.Image]
			if !ok {
				i = len(out)
				idx[s.Image] = i
				out = append(out, imageUse{Image: s.Image})
			}
			if n := len(out[i].Environments); n == 0 || out[i].Environments[n-1] != e.Name {
				out[i].Environments = append(out[i].Environments, e.Name)
			}
		}
	}
	return out
}

// fingerprint describes what a graph runs, leaving out where its
// definitions were read from and the root's own name.
func fingerprint(envs []*resolve.Env, root *resolve.Env) string {
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

// overlay is the store as it will be once the batch is added, plus one
// extra definition (checkRoot).
type overlay struct {
	batch     map[string]*store.Definition
	st        *store.Store
	extra     string
	extraData []byte
}

// Lookup implements resolve.Store.
func (o overlay) Lookup(name string) ([]byte, string, bool, error) {
	if name == o.extra {
		return o.extraData, "stdin", true, nil
	}
	if d, ok := o.batch[name]; ok {
		return d.Content, d.Origin, true, nil
	}
	return o.st.Lookup(name)
}

// recorder fetches remote files from the network, once each, and keeps
// them to be cached in the store with the batch. add fetches afresh rather
// than from the store's cache so that re-adding a reference updates it.
type recorder struct {
	net   *remote.Fetcher
	mu    sync.Mutex
	files map[string]store.RemoteFile
}

func (r *recorder) get(key string) (store.RemoteFile, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.files[key]
	return f, ok
}

// Fetch implements resolve.Fetcher.
func (r *recorder) Fetch(ctx context.Context, owner, repo, ref, p string) ([]byte, error) {
	f := store.RemoteFile{Owner: owner, Repo: repo, Ref: ref, Path: p}
	if got, ok := r.get(f.String()); ok {
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

func (r *recorder) remotes() []store.RemoteFile {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]store.RemoteFile, 0, len(r.files))
	for _, f := range r.files {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

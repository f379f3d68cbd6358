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
	"github.com/alebellu/denv/store/batch"
)

type addOptions struct {
	name           string
	allowHostBinds bool
	force          bool
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
	cmd.Flags().BoolVarP(&opts.force, "force", "f", false, "let a remote definition replace a local stored one that others include")
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
		fetch: batch.NewRecorder(net),
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
	if !opts.force {
		replaced, err := st.ReplacedLocals(defs)
		if err != nil {
			return err
		}
		if len(replaced) > 0 {
			return fmt.Errorf("adding would replace the local definition %s with a remote one; use --force to replace it", strings.Join(replaced, "; "))
		}
	}
	if err := st.Add(defs, ad.fetch.Remotes()); err != nil {
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
	fetch *batch.Recorder
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
	ad.batch[name] = &store.Definition{Name: name, Content: content, Origin: origin, HostBinds: ad.opts.allowHostBinds}
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
		f, ok := ad.fetch.Get(ref.String())
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
	abs, err = resolve.LocalFile(abs)
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
		ov := batch.Overlay{Batch: ad.batch, Store: ad.st, Extra: checkRoot, ExtraData: []byte("ENV " + n + "\n")}
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
		d.Includes = batch.StoredIncludes(g, n, checkRoot)
		defs = append(defs, d)
	}
	for _, r := range ad.roots {
		stored := graphs[r.name]
		if batch.Fingerprint(r.g.Envs, r.g.Root) != batch.Fingerprint(stored.Envs[1:], stored.Envs[1]) {
			return nil, fmt.Errorf("cannot add %s as %q: its stored copy would resolve its includes to other definitions; add them separately first", ad.batch[r.name].Origin, r.name)
		}
	}
	return defs, nil
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

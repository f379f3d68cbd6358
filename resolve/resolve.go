// Package resolve turns a root definition into one graph of environment
// instances: it finds every referenced definition (LANGUAGE.md section 3),
// parses it, and checks the references between environments and services.
//
// An environment instance is identified by its name: a definition reached
// by several paths under one name (a diamond) is one instance, and two
// different definitions under one name are an error.
package resolve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/grammar"
)

// Store finds definitions in the local definition store.
type Store interface {
	// Lookup returns a stored definition's bytes and origin: an absolute
	// file path, "stdin", or a github: reference. found is false when no
	// definition has that name.
	Lookup(name string) (data []byte, origin string, found bool, err error)
}

// Fetcher fetches a remote definition file: PATH.denv of a repository at
// a ref. A missing file is an error wrapping fs.ErrNotExist.
type Fetcher interface {
	Fetch(ctx context.Context, owner, repo, ref, path string) ([]byte, error)
}

// Options configure a Resolver.
type Options struct {
	// WorkDir is the directory file names are shown relative to.
	WorkDir string
	// Store is the definition store; nil means none.
	Store Store
	// Fetcher fetches github: references; nil means they are an error.
	Fetcher Fetcher
	// AllowRemoteBinds lets remote definitions bind host paths.
	AllowRemoteBinds bool
	// StoredHostBinds, when set, reports whether the stored definition
	// name was added with --allow-host-binds. Resolving such a definition
	// by its name (the root of the graph) lets the remote definitions of
	// its graph bind host paths: the user consented once, at add, for that
	// source. Included by another definition, it gets no such allowance.
	StoredHostBinds func(name string) bool
	// ReadFile reads local files; nil means a reader that refuses files
	// that are not regular and reads at most grammar.MaxFileSize+1 bytes.
	ReadFile func(name string) ([]byte, error)
	// Params are the root's parameter values (denv compile|run --set).
	Params map[string]string
	// ParamsOptional lets the required parameters of the root and of the
	// definitions it includes directly go without a value, for checking a
	// definition before it is given any (denv add, denv def): what uses
	// them is taken as written and not checked further.
	ParamsOptional bool
}

// Resolver resolves definitions. It holds no state between calls.
type Resolver struct {
	opts   Options
	parser *grammar.Parser
}

// New returns a Resolver.
func New(opts Options) *Resolver {
	if opts.ReadFile == nil {
		opts.ReadFile = readDefFile
	}
	return &Resolver{opts: opts, parser: grammar.NewParser()}
}

// Resolve resolves the definition arg names: a path to a .denv file, a
// github: reference, or a store name. Every problem found is reported in
// one diag.List.
func (r *Resolver) Resolve(ctx context.Context, arg string) (*Graph, error) {
	rn := &run{
		resolver: r,
		ctx:      ctx,
		files:    map[string]*file{},
		byName:   map[string]*Env{},
		defOf:    map[*Env]string{},
		roots:    map[string]string{},
		onStack:  map[string]bool{},
	}
	f, err := rn.root(arg)
	if err != nil {
		return nil, err
	}
	name := lastElem(f.loc.defName())
	g := &Graph{HostBinds: rn.hostBinds}
	rn.graph = g
	vals := make([]passed, 0, len(r.opts.Params))
	for k, v := range r.opts.Params {
		vals = append(vals, passed{name: k, val: pval{v: v}})
	}
	g.Root = rn.instantiate(f, name, diag.Pos{}, vals)
	if err := rn.diags.Err(); err != nil {
		return nil, err
	}
	return g, nil
}

// run is the state of one Resolve call.
type run struct {
	resolver *Resolver
	ctx      context.Context
	graph    *Graph
	diags    diag.List
	files    map[string]*file  // parsed files by location key
	byName   map[string]*Env   // instances by name
	defOf    map[*Env]string   // instance -> location key of its definition
	roots    map[string]string // directory -> source root, for local files
	stack    []frame           // the includes being resolved, for cycles
	onStack  map[string]bool   // location keys of the stack's files
	// remoteFiles counts the remote files loaded, for MaxRemoteFiles
	remoteFiles int
	// hostBinds: the root is a stored definition added with
	// --allow-host-binds (Options.StoredHostBinds)
	hostBinds bool
}

type frame struct {
	file *file
	pos  diag.Pos // the ENV statement that leads to the next frame
	ref  string   // its reference
}

// errorf records a diagnostic. String arguments are the user's words and
// may be up to a megabyte long: they are shortened so that the message
// stays a readable line.
func (r *run) errorf(pos diag.Pos, format string, args ...any) {
	const maxArg = 200
	for i, a := range args {
		if w, ok := a.(string); ok && len(w) > maxArg {
			args[i] = strings.ToValidUTF8(w[:maxArg/2], "") + "..." + strings.ToValidUTF8(w[len(w)-maxArg/4:], "")
		}
	}
	r.diags = append(r.diags, diag.Errorf(pos, format, args...))
}

// file is one located and parsed definition.
type file struct {
	loc    location
	ast    *grammar.File
	params *[]ParamDecl // checked declarations, once known
	src    []byte       // the bytes ast was parsed from, for positions inside nodes
}

// root locates the definition named on the command line.
func (r *run) root(arg string) (*file, error) {
	if strings.HasPrefix(arg, "github:") {
		loc, err := parseGitHub(arg)
		if err != nil {
			return nil, err
		}
		return r.load(loc, diag.Pos{})
	}
	if arg == "" {
		return nil, fmt.Errorf("empty definition argument: give a .denv file, a stored name or a github: reference")
	}
	tried := []string{}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return nil, err
	}
	if p, err := LocalFile(abs); err == nil {
		return r.load(r.fileLoc(p), diag.Pos{})
	}
	tried = append(tried, r.display(abs))
	if !strings.HasSuffix(arg, ".denv") {
		tried = append(tried, r.display(abs+".denv"))
		if r.resolver.opts.Store != nil && validDefName(arg) == nil {
			data, origin, found, err := r.resolver.opts.Store.Lookup(arg)
			if err != nil {
				return nil, err
			}
			if found {
				r.hostBinds = r.resolver.opts.StoredHostBinds != nil && r.resolver.opts.StoredHostBinds(arg)
				return r.fromStore(arg, data, origin, diag.Pos{})
			}
			tried = append(tried, fmt.Sprintf("store %q", arg))
		}
	}
	return nil, fmt.Errorf("cannot find definition %q: tried %s", arg, strings.Join(tried, ", "))
}

// load reads and parses the definition at loc, once per location.
func (r *run) load(loc location, pos diag.Pos) (*file, error) {
	if f, ok := r.files[loc.key()]; ok {
		return f, nil
	}
	var data []byte
	var err error
	switch loc.kind {
	case kindFile:
		data, err = r.resolver.opts.ReadFile(loc.path)
	case kindRemote:
		if r.resolver.opts.Fetcher == nil {
			return nil, fmt.Errorf("cannot fetch %s: remote definitions are not enabled", loc.key())
		}
		if r.remoteFiles >= MaxRemoteFiles {
			return nil, fmt.Errorf("cannot fetch %s: the graph has more than %d remote files", loc.key(), MaxRemoteFiles)
		}
		data, err = r.resolver.opts.Fetcher.Fetch(r.ctx, loc.owner, loc.repo, loc.ref, loc.path)
	default:
		return nil, fmt.Errorf("internal: load of store definition %q", loc.path)
	}
	if err != nil {
		return nil, err
	}
	if loc.kind == kindRemote {
		r.remoteFiles++
	}
	return r.parse(loc, data)
}

// fromStore turns a stored definition into a located file: one that came
// from a remote source stays remote, so that its own references resolve in
// its repository.
func (r *run) fromStore(name string, data []byte, origin string, pos diag.Pos) (*file, error) {
	loc := location{kind: kindStore, path: name, origin: origin}
	if strings.HasPrefix(origin, "github:") {
		rl, err := parseGitHub(origin)
		if err != nil {
			return nil, fmt.Errorf("stored definition %q has a bad origin: %w", name, err)
		}
		loc = rl
	}
	if f, ok := r.files[loc.key()]; ok {
		return f, nil
	}
	return r.parse(loc, data)
}

func (r *run) parse(loc location, data []byte) (*file, error) {
	ast, err := r.resolver.parser.Parse(r.display(loc.displayPath()), data)
	if err != nil {
		return nil, err
	}
	f := &file{loc: loc, ast: ast, src: data}
	r.files[loc.key()] = f
	return f, nil
}

// lookup finds the definition a bare or github: reference written in from
// names, in the order of LANGUAGE.md section 3.
func (r *run) lookup(from *file, ref string, pos diag.Pos) (*file, error) {
	if strings.HasPrefix(ref, "github:") {
		loc, err := parseGitHub(ref)
		if err != nil {
			return nil, err
		}
		return r.load(loc, pos)
	}
	if err := validDefName(ref); err != nil {
		return nil, err
	}
	var tried []string
	var cands []location
	switch from.loc.kind {
	case kindFile:
		dir := filepath.Dir(from.loc.path)
		cands = append(cands, r.fileLoc(filepath.Join(dir, filepath.FromSlash(ref)+".denv")))
		if root := r.sourceRoot(dir); root != dir {
			cands = append(cands, r.fileLoc(filepath.Join(root, filepath.FromSlash(ref)+".denv")))
		}
	case kindRemote:
		if dir := path.Dir(from.loc.path); dir != "." {
			cands = append(cands, from.loc.sibling(path.Join(dir, ref)))
		}
		cands = append(cands, from.loc.sibling(ref))
	case kindStore:
		if dir := path.Dir(from.loc.path); dir != "." {
			cands = append(cands, location{kind: kindStore, path: path.Join(dir, ref)})
		}
	}
	for _, c := range cands {
		if c.kind == kindStore {
			f, found, err := r.storeLookup(c.path, pos)
			if found || err != nil {
				return f, err
			}
			tried = append(tried, fmt.Sprintf("store %q", c.path))
			continue
		}
		f, err := r.load(c, pos)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		tried = append(tried, r.display(c.displayPath()))
	}
	if r.resolver.opts.Store != nil {
		f, found, err := r.storeLookup(ref, pos)
		if found || err != nil {
			return f, err
		}
		tried = append(tried, fmt.Sprintf("store %q", ref))
	}
	return nil, fmt.Errorf("cannot find definition %q: tried %s", ref, strings.Join(tried, ", "))
}

func (r *run) storeLookup(name string, pos diag.Pos) (*file, bool, error) {
	if r.resolver.opts.Store == nil {
		return nil, false, nil
	}
	data, origin, found, err := r.resolver.opts.Store.Lookup(name)
	if err != nil || !found {
		return nil, false, err
	}
	f, err := r.fromStore(name, data, origin, pos)
	return f, true, err
}

// sourceRoot is the nearest ancestor of dir holding .git, else dir.
func (r *run) sourceRoot(dir string) string {
	if root, ok := r.roots[dir]; ok {
		return root
	}
	root := dir
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, ".git")); err == nil {
			root = d
			break
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	r.roots[dir] = root
	return root
}

func (r *run) fileLoc(abs string) location {
	return location{kind: kindFile, path: abs, root: r.sourceRoot(filepath.Dir(abs))}
}

// display shows a file path relative to the working directory.
func (r *run) display(p string) string {
	if !filepath.IsAbs(p) || r.resolver.opts.WorkDir == "" {
		return p
	}
	rel, err := filepath.Rel(r.resolver.opts.WorkDir, p)
	if err != nil {
		return p
	}
	return rel
}

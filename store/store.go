// Package store is the local definition store: the .denv definitions a user
// has added, under names like worker-env or ex/web-env, and the remote files
// fetched while adding them, so that everything runs offline afterwards.
//
// # Location
//
// The store lives in $DENV_HOME if set, else $XDG_DATA_HOME/denv, else
// ~/.local/share/denv (see DefaultDir).
//
// # Layout
//
//	index.json               every definition and cached remote file, with
//	                         metadata; the single source of truth
//	objects/<sha256>.denv    content, one file per distinct content, named
//	                         by the hex SHA-256 of its bytes
//	lock                     empty file; flock'ed for the length of each
//	                         transaction (exclusive to write, shared to read)
//
// index.json is indented JSON (abridged here):
//
//	{
//	  "version": 1,
//	  "definitions": [
//	    {"name": "ex/web-env", "origin": "/home/me/ex/web-env.denv",
//	     "sha256": "9f86...", "added": "2025-01-02T03:04:05Z",
//	     "images": 2, "includes": []}
//	  ],
//	  "remotes": [
//	    {"owner": "alebellu", "repo": "ex", "ref": "HEAD",
//	     "path": "ex/expert-system-env", "sha256": "...",
//	     "added": "2025-01-02T03:04:05Z"}
//	  ]
//	}
//
// Definitions are sorted by name and remote files by owner, repo, ref and
// path. To read a definition by hand, look up its sha256 in index.json and
// open objects/<sha256>.denv.
//
// Content is addressed by digest rather than stored under the definition's
// name because names may nest ("a.denv" and "a.denv/x" are both valid
// names), so no mapping of names onto files and directories is free of
// collisions, and because it makes a batch atomic: a transaction first
// writes any new objects, then replaces index.json by rename, and that one
// rename is the commit point. Objects no longer named by the index are
// deleted at the end of each write transaction, as are temporary files left
// by a crashed process.
//
// # Concurrency
//
// Every write happens through a temporary file in the target's directory,
// fsync and rename, while an exclusive flock on the lock file is held for
// the whole read-modify-write of the index, so concurrent processes adding
// different names all land. Reads of content hold a shared lock so that an
// object cannot be collected between reading the index and reading it.
package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Store is a definition store rooted at a directory. Besides that directory
// it holds only a cache of the decoded index, checked against the file on
// every read; any number of Store values and processes may use one
// directory at the same time. A Store is safe for concurrent use.
type Store struct {
	dir string

	mu    sync.Mutex
	cache struct {
		idx  *index
		stat os.FileInfo
	}
}

// Definition is a stored definition.
type Definition struct {
	// Name is the name the definition is stored under; see ValidName.
	Name string
	// Content is the definition's source. List leaves it nil.
	Content []byte
	// Origin is where the content came from: an absolute file path,
	// "stdin", or a remote reference such as
	// github:alebellu:ex@HEAD:ex/expert-system-env.
	Origin string
	// Digest is the hex SHA-256 of Content. Add computes it; a value
	// supplied to Add is ignored.
	Digest string
	// Added is when the definition was added, in UTC to the second. Add
	// sets it; a value supplied to Add is ignored.
	Added time.Time
	// Images is the number of images the definition builds or pulls, as
	// counted by the caller.
	Images int
	// Includes names the stored definitions this one includes. While a
	// definition is included by another, Remove refuses it unless forced.
	// Add stores it sorted and without duplicates.
	Includes []string
	// HostBinds records that the user added the definition with
	// --allow-host-binds: its remote files may bind host paths when it is
	// compiled or run by its name.
	HostBinds bool
}

// RemoteFile is a remote file cached in the store: PATH.denv of the GitHub
// repository Owner/Repo at Ref, as fetched.
type RemoteFile struct {
	// Owner is the GitHub user or organisation.
	Owner string
	// Repo is the repository name.
	Repo string
	// Ref is the branch, tag or commit the file was fetched at, as written
	// in the reference (HEAD when none was).
	Ref string
	// Path is the file's path in the repository, without .denv.
	Path string
	// Content is the file as fetched.
	Content []byte
}

// String returns the file's reference, github:OWNER:REPO@REF:PATH.
func (r RemoteFile) String() string {
	return "github:" + r.Owner + ":" + r.Repo + "@" + r.Ref + ":" + r.Path
}

// DefaultDir returns the store directory: $DENV_HOME if set, else
// $XDG_DATA_HOME/denv if that is an absolute path, else ~/.local/share/denv.
func DefaultDir() (string, error) {
	return defaultDir(os.Getenv, os.UserHomeDir)
}

func defaultDir(getenv func(string) string, home func() (string, error)) (string, error) {
	if d := getenv("DENV_HOME"); d != "" {
		abs, err := filepath.Abs(d)
		if err != nil {
			return "", err
		}
		return abs, checkHome(abs)
	}
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "denv"), nil
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("cannot locate the definition store, set DENV_HOME: %w", err)
	}
	return filepath.Join(h, ".local", "share", "denv"), nil
}

// checkHome says what is wrong with a DENV_HOME that exists but cannot be
// the store's directory, where creating it later would only say "mkdir
// ...: file exists".
func checkHome(dir string) error {
	lst, err := os.Lstat(dir)
	if err != nil {
		return nil // missing: the first write creates it
	}
	st, err := os.Stat(dir)
	switch {
	case err != nil && lst.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(dir)
		return fmt.Errorf("DENV_HOME %s is a symlink to %s, which does not exist: create that directory or point DENV_HOME elsewhere", dir, target)
	case err != nil:
		return fmt.Errorf("DENV_HOME %s: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("DENV_HOME %s is not a directory", dir)
	}
	return nil
}

// Open opens the store in dir, creating the directory (mode 0o700: definitions may hold secrets) if it
// does not exist.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	// The directory is made by the first write: reading a store that was
	// never written (denv compile of a plain file) leaves no trace.
	if st, err := os.Stat(abs); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("cannot open the definition store: %s is not a directory", abs)
	}
	return &Store{dir: abs}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) objectsDir() string { return filepath.Join(s.dir, "objects") }
func (s *Store) indexPath() string  { return filepath.Join(s.dir, "index.json") }
func (s *Store) objectPath(digest string) string {
	return filepath.Join(s.objectsDir(), digest+".denv")
}

// notStoredError reports a name absent from the store; it matches
// fs.ErrNotExist.
type notStoredError struct{ name string }

func (e *notStoredError) Error() string {
	return fmt.Sprintf("definition %q is not in the store", e.name)
}
func (e *notStoredError) Unwrap() error { return fs.ErrNotExist }

// Add stores a batch of definitions and remote files in one transaction:
// either all of them become visible or, if anything fails, none does.
// Re-adding a name replaces the stored definition, as reinstalling a
// package does; re-adding a remote file replaces its cached content.
//
// Every definition needs a valid name (see ValidName), an origin that is an
// absolute path, "stdin" or a github: reference, and includes that name
// definitions stored already or added in the same batch.
func (s *Store) Add(defs []Definition, remotes []RemoteFile) error {
	defs, err := checkDefs(defs)
	if err != nil {
		return err
	}
	remotes, err = checkRemotes(remotes)
	if err != nil {
		return err
	}
	if len(defs) == 0 && len(remotes) == 0 {
		return nil
	}
	return s.update(func(idx *index, put func([]byte) (string, error)) error {
		added := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
		for _, d := range defs {
			digest, err := put(d.Content)
			if err != nil {
				return err
			}
			idx.putDef(defEntry{
				Name:      d.Name,
				Origin:    d.Origin,
				SHA256:    digest,
				Added:     added,
				Images:    d.Images,
				Includes:  d.Includes,
				HostBinds: d.HostBinds,
			})
		}
		for _, r := range remotes {
			digest, err := put(r.Content)
			if err != nil {
				return err
			}
			idx.putRemote(remoteEntry{
				Owner: r.Owner, Repo: r.Repo, Ref: r.Ref, Path: r.Path,
				SHA256: digest, Added: added,
			})
		}
		for _, d := range defs {
			for _, inc := range d.Includes {
				if _, ok := idx.findDef(inc); !ok {
					return fmt.Errorf("definition %q includes %q, which is neither stored nor being added", d.Name, inc)
				}
			}
		}
		return nil
	})
}

// checkDefs validates a batch of definitions and returns copies with their
// includes sorted and deduplicated.
func checkDefs(defs []Definition) ([]Definition, error) {
	out := make([]Definition, 0, len(defs))
	seen := make(map[string]bool, len(defs))
	for _, d := range defs {
		if err := ValidName(d.Name); err != nil {
			return nil, err
		}
		if seen[d.Name] {
			return nil, fmt.Errorf("definition %q appears twice in one batch", d.Name)
		}
		seen[d.Name] = true
		if d.Origin != "stdin" && !filepath.IsAbs(d.Origin) && !strings.HasPrefix(d.Origin, "github:") {
			return nil, fmt.Errorf("definition %q: origin %q must be an absolute file path, \"stdin\" or a github: reference", d.Name, d.Origin)
		}
		if d.Images < 0 {
			return nil, fmt.Errorf("definition %q: images count %d is negative", d.Name, d.Images)
		}
		incs := slices.Clone(d.Includes)
		slices.Sort(incs)
		incs = slices.Compact(incs)
		for _, inc := range incs {
			if inc == d.Name {
				return nil, fmt.Errorf("definition %q includes itself", d.Name)
			}
			if err := ValidName(inc); err != nil {
				return nil, fmt.Errorf("definition %q includes %w", d.Name, err)
			}
		}
		if incs == nil {
			incs = []string{}
		}
		d.Includes = incs
		out = append(out, d)
	}
	return out, nil
}

// checkRemotes validates a batch of remote files and drops exact repeats.
func checkRemotes(remotes []RemoteFile) ([]RemoteFile, error) {
	out := make([]RemoteFile, 0, len(remotes))
	type key struct{ owner, repo, ref, path string }
	seen := make(map[key]int, len(remotes))
	for _, r := range remotes {
		for _, f := range []struct{ what, v string }{{"owner", r.Owner}, {"repo", r.Repo}, {"ref", r.Ref}, {"path", r.Path}} {
			if f.v == "" {
				return nil, fmt.Errorf("remote file %s: empty %s", r, f.what)
			}
			if strings.ContainsFunc(f.v, func(c rune) bool { return c < ' ' || c == 0x7f }) {
				return nil, fmt.Errorf("remote file %q: %s contains a control character", r.String(), f.what)
			}
		}
		k := key{r.Owner, r.Repo, r.Ref, r.Path}
		if i, ok := seen[k]; ok {
			if !bytes.Equal(out[i].Content, r.Content) {
				return nil, fmt.Errorf("remote file %s appears twice in one batch with different content", r)
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, r)
	}
	return out, nil
}

// Get returns the definition stored under name, with its content. The error
// matches fs.ErrNotExist when there is none.
func (s *Store) Get(name string) (Definition, error) {
	if err := ValidName(name); err != nil {
		return Definition{}, err
	}
	var d Definition
	err := s.read(func(idx *index) error {
		e, ok := idx.findDef(name)
		if !ok {
			return &notStoredError{name}
		}
		content, err := s.readObject(e.SHA256, fmt.Sprintf("definition %q", name))
		if err != nil {
			return err
		}
		d, err = e.definition()
		d.Content = content
		return err
	})
	return d, err
}

// Lookup returns the content and origin of the definition stored under
// name. found is false, with a nil error, when there is none, including
// when name is not a valid name and so cannot be stored.
func (s *Store) Lookup(name string) (data []byte, origin string, found bool, err error) {
	if ValidName(name) != nil {
		return nil, "", false, nil
	}
	d, err := s.Get(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, err
	}
	return d.Content, d.Origin, true, nil
}

// ReplacedLocals describes the stored definitions that adding defs would
// replace where that silently changes other definitions: a definition of
// defs with a remote (github:) origin whose name is stored with a local
// origin and included by other stored definitions. Each is one phrase:
// NAME (from ORIGIN, included by A, B).
func (s *Store) ReplacedLocals(defs []Definition) ([]string, error) {
	var out []string
	err := s.read(func(idx *index) error {
		for _, d := range defs {
			if !strings.HasPrefix(d.Origin, "github:") {
				continue
			}
			old, ok := idx.findDef(d.Name)
			if !ok || strings.HasPrefix(old.Origin, "github:") {
				continue
			}
			var by []string
			for _, e := range idx.Definitions {
				if e.Name != d.Name && slices.Contains(e.Includes, d.Name) {
					by = append(by, e.Name)
				}
			}
			if len(by) > 0 {
				out = append(out, fmt.Sprintf("%s (from %s, included by %s)", d.Name, old.Origin, strings.Join(by, ", ")))
			}
		}
		return nil
	})
	return out, err
}

// List returns every stored definition sorted by name, without content.
func (s *Store) List() ([]Definition, error) {
	// The index is replaced by rename, so reading it needs no lock.
	idx, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	out := make([]Definition, len(idx.Definitions))
	for i, e := range idx.Definitions {
		if out[i], err = e.definition(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Remove deletes the definition stored under name. While other stored
// definitions include it, Remove refuses, naming them, unless force is set.
// The error matches fs.ErrNotExist when there is no such definition.
// Cached remote files are kept.
func (s *Store) Remove(name string, force bool) error {
	if err := ValidName(name); err != nil {
		return err
	}
	if _, err := os.Stat(s.indexPath()); errors.Is(err, fs.ErrNotExist) {
		return &notStoredError{name} // and no store directory made for it
	}
	return s.update(func(idx *index, _ func([]byte) (string, error)) error {
		if _, ok := idx.findDef(name); !ok {
			return &notStoredError{name}
		}
		var by []string
		for _, e := range idx.Definitions {
			if e.Name != name && slices.Contains(e.Includes, name) {
				by = append(by, fmt.Sprintf("%q", e.Name))
			}
		}
		if len(by) > 0 && !force {
			return fmt.Errorf("%q is included by %s; use --force", name, strings.Join(by, ", "))
		}
		idx.deleteDef(name)
		return nil
	})
}

// CachedRemote returns the cached content of PATH.denv in owner/repo at
// ref. ok is false, with a nil error, when it is not cached.
func (s *Store) CachedRemote(owner, repo, ref, path string) (data []byte, ok bool, err error) {
	key := RemoteFile{Owner: owner, Repo: repo, Ref: ref, Path: path}
	err = s.read(func(idx *index) error {
		e, found := idx.findRemote(key)
		if !found {
			return nil
		}
		data, err = s.readObject(e.SHA256, "cached remote file "+key.String())
		ok = err == nil
		return err
	})
	return data, ok, err
}

// CachesRepository reports whether any file of owner/repo at ref is
// cached: the repository was seen at that ref by an add, which fetched every
// file its graph probes and refused any failure but "not found".
func (s *Store) CachesRepository(owner, repo, ref string) (bool, error) {
	var found bool
	err := s.read(func(idx *index) error {
		for _, e := range idx.Remotes {
			if e.Owner == owner && e.Repo == repo && e.Ref == ref {
				found = true
				return nil
			}
		}
		return nil
	})
	return found, err
}

// readObject reads the object with the given digest and checks it.
func (s *Store) readObject(digest, what string) ([]byte, error) {
	p := s.objectPath(digest)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store is damaged: content of %s is missing (%s)", what, p)
	}
	if err != nil {
		return nil, err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != digest {
		return nil, fmt.Errorf("store is damaged: content of %s does not match its digest (%s)", what, p)
	}
	return data, nil
}

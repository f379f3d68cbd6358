package resolve

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/alebellu/denv/remote"
)

type kind int

const (
	kindFile   kind = iota // a local file
	kindRemote             // a file of a remote repository
	kindStore              // a definition of the store with no remote origin
)

// location says where a definition lives.
type location struct {
	kind kind
	// path is the absolute file path (kindFile), the path in the repository
	// without .denv (kindRemote), or the store name (kindStore).
	path             string
	root             string // source root directory (kindFile)
	owner, repo, ref string // kindRemote
	origin           string // kindStore: where the stored definition came from
}

// key identifies the definition: two locations with one key are the same
// definition.
func (l location) key() string {
	switch l.kind {
	case kindRemote:
		return remote.Ref{Owner: l.owner, Repo: l.repo, Ref: l.ref, Path: l.path}.String()
	case kindStore:
		return "store:" + l.path
	}
	return l.path
}

// displayPath is the file name shown in diagnostics.
func (l location) displayPath() string {
	if l.kind == kindStore {
		return l.path + ".denv"
	}
	return l.key()
}

// defName is the definition's name: its path without .denv relative to its
// source root, its store name, or its github: reference.
func (l location) defName() string {
	switch l.kind {
	case kindFile:
		rel, err := filepath.Rel(l.root, l.path)
		if err != nil {
			rel = filepath.Base(l.path)
		}
		return strings.TrimSuffix(filepath.ToSlash(rel), ".denv")
	case kindRemote:
		return l.key()
	}
	return l.path
}

// sibling is another file of the same repository.
func (l location) sibling(p string) location {
	return location{kind: kindRemote, owner: l.owner, repo: l.repo, ref: l.ref, path: p}
}

// bindBase is the directory relative bind mounts of the definition start
// from, or "" when it has none (remote and standard-input definitions).
func (l location) bindBase() string {
	switch l.kind {
	case kindFile:
		return filepath.Dir(l.path)
	case kindStore:
		if filepath.IsAbs(l.origin) {
			return filepath.Dir(l.origin)
		}
	}
	return ""
}

var (
	defSegment = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// validDefName checks a bare definition reference: lowercase path segments
// separated by '/', none of them "." or "..".
func validDefName(name string) error {
	if name == "" {
		return fmt.Errorf("empty definition name")
	}
	if strings.HasPrefix(name, "/") || filepath.IsAbs(name) {
		return fmt.Errorf("reference %q escapes its root: it is an absolute path", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." || seg == "." {
			return fmt.Errorf("reference %q escapes its root: it has a %q segment", name, seg)
		}
		if !defSegment.MatchString(seg) {
			return fmt.Errorf("invalid definition name %q: use lowercase letters, digits, '.', '_', '-' and '/' between segments", name)
		}
	}
	if len(name) > 255 {
		return fmt.Errorf("definition name %q is longer than 255 characters", name[:40]+"...")
	}
	return nil
}

// parseGitHub parses github:OWNER:REPO[@REF]:PATH.
func parseGitHub(s string) (location, error) {
	r, err := remote.ParseRef(s)
	if err != nil {
		return location{}, err
	}
	return location{kind: kindRemote, owner: r.Owner, repo: r.Repo, ref: r.Ref, path: r.Path}, nil
}

// lastElem is the last path element of a reference.
func lastElem(ref string) string {
	if strings.HasPrefix(ref, "github:") {
		ref = ref[strings.LastIndexByte(ref, ':')+1:]
	}
	return path.Base(ref)
}

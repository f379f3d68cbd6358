// Package remote parses github: references to .denv definitions and fetches
// them over HTTP.
//
// A reference has the form
//
//	github:OWNER:REPO[@REF]:PATH
//
// and names the file PATH.denv in the repository OWNER/REPO at REF (a branch,
// tag or commit; HEAD when omitted). A Fetcher downloads it from
// {base}/{OWNER}/{REPO}/{REF}/{PATH}.denv, where base defaults to
// https://raw.githubusercontent.com.
package remote

import (
	"fmt"
	"strings"
)

// Scheme is the prefix every remote reference starts with.
const Scheme = "github:"

// DefaultRef is the REF used when a reference does not name one.
const DefaultRef = "HEAD"

// Ref is a parsed remote reference: the file Path + ".denv" in the GitHub
// repository Owner/Repo at Ref.
type Ref struct {
	// Owner is the GitHub user or organisation.
	Owner string
	// Repo is the repository name.
	Repo string
	// Ref is a branch, tag or commit; HEAD is the default branch.
	Ref string
	// Path is the file's "/"-separated path from the repository root,
	// without the .denv extension.
	Path string
}

// ParseRef parses s, of the form github:OWNER:REPO[@REF]:PATH, where PATH is
// written without the .denv extension and REF defaults to HEAD. It refuses
// references whose PATH would escape the repository and owner, repository
// or ref names GitHub would not accept.
func ParseRef(s string) (Ref, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Ref{}, fmt.Errorf("invalid remote reference %q: must start with %q", s, Scheme)
	}
	parts := strings.SplitN(rest, ":", 3)
	if len(parts) != 3 {
		return Ref{}, fmt.Errorf("invalid remote reference %q: want github:OWNER:REPO[@REF]:PATH", s)
	}
	r := Ref{Owner: parts[0], Repo: parts[1], Ref: DefaultRef, Path: parts[2]}
	if repo, ref, found := strings.Cut(parts[1], "@"); found {
		r.Repo, r.Ref = repo, ref
	}
	if err := r.check(); err != nil {
		return Ref{}, fmt.Errorf("invalid remote reference %q: %w", s, err)
	}
	return r, nil
}

// String returns the canonical form github:OWNER:REPO@REF:PATH.
func (r Ref) String() string {
	return Scheme + r.Owner + ":" + r.Repo + "@" + r.Ref + ":" + r.Path
}

// Validate reports whether every field of r is acceptable: see ParseRef.
func (r Ref) Validate() error {
	if err := r.check(); err != nil {
		return fmt.Errorf("invalid remote reference %q: %w", r.String(), err)
	}
	return nil
}

// Join returns the reference to rel, a PATH relative to the root of r's
// repository at r's ref (how a bare name found inside a remote file is
// resolved). rel is checked like any PATH.
func (r Ref) Join(rel string) (Ref, error) {
	j := Ref{Owner: r.Owner, Repo: r.Repo, Ref: r.Ref, Path: rel}
	if err := j.Validate(); err != nil {
		return Ref{}, err
	}
	return j, nil
}

func (r Ref) check() error {
	if err := checkOwner(r.Owner); err != nil {
		return err
	}
	if err := checkRepo(r.Repo); err != nil {
		return err
	}
	if err := checkGitRef(r.Ref); err != nil {
		return err
	}
	return checkPath(r.Path)
}

// checkOwner accepts GitHub user and organisation names: letters, digits,
// "-" and "_" (GitHub Enterprise), not starting with "-" or "_", at most 39
// characters.
func checkOwner(owner string) error {
	if owner == "" {
		return fmt.Errorf("empty OWNER")
	}
	if len(owner) > 39 {
		return fmt.Errorf("owner %q is longer than 39 characters", owner)
	}
	for i, c := range owner {
		if isAlnum(c) || (i > 0 && (c == '-' || c == '_')) {
			continue
		}
		return fmt.Errorf("owner %q: use letters, digits, \"-\" and \"_\", starting with a letter or digit", owner)
	}
	return nil
}

// checkRepo accepts GitHub repository names: letters, digits, ".", "-" and
// "_", at most 100 characters, other than "." and "..".
func checkRepo(repo string) error {
	if repo == "" {
		return fmt.Errorf("empty REPO")
	}
	if repo == "." || repo == ".." {
		return fmt.Errorf("repository %q is not a repository name", repo)
	}
	if len(repo) > 100 {
		return fmt.Errorf("repository %q is longer than 100 characters", repo)
	}
	for _, c := range repo {
		if isAlnum(c) || c == '.' || c == '-' || c == '_' {
			continue
		}
		return fmt.Errorf("repository %q: use letters, digits, \".\", \"-\" and \"_\"", repo)
	}
	return nil
}

// checkGitRef applies the rules of git check-ref-format that matter here, on
// a ref that may contain "/" (feature/x, refs/heads/main).
func checkGitRef(ref string) error {
	if ref == "" {
		return fmt.Errorf("empty REF after \"@\"")
	}
	bad := func(why string) error { return fmt.Errorf("ref %q %s", ref, why) }
	for _, c := range ref {
		if c <= ' ' || c == 0x7f || strings.ContainsRune(`~^:?*[\`, c) {
			return bad(fmt.Sprintf("contains %q, which git does not allow in refs", c))
		}
	}
	switch {
	case ref == "@":
		return bad("is not a ref name")
	case strings.Contains(ref, ".."):
		return bad("contains \"..\"")
	case strings.Contains(ref, "@{"):
		return bad("contains \"@{\"")
	case strings.HasPrefix(ref, "-"):
		return bad("starts with \"-\"")
	case strings.HasPrefix(ref, "/"), strings.HasSuffix(ref, "/"), strings.Contains(ref, "//"):
		return bad("has an empty \"/\"-separated component")
	case strings.HasSuffix(ref, "."):
		return bad("ends with \".\"")
	}
	for _, seg := range strings.Split(ref, "/") {
		if strings.HasPrefix(seg, ".") || strings.HasSuffix(seg, ".lock") {
			return bad("has a component starting with \".\" or ending with \".lock\"")
		}
	}
	return nil
}

// checkPath accepts a "/"-separated path inside the repository, without the
// .denv extension, that cannot escape the repository root.
func checkPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("empty PATH")
	case strings.HasPrefix(path, "/"):
		return fmt.Errorf("path %q is absolute; write it relative to the repository root", path)
	case strings.Contains(path, `\`):
		return fmt.Errorf("path %q contains a backslash; separate directories with \"/\"", path)
	case strings.HasSuffix(path, ".denv"):
		return fmt.Errorf("path %q: leave out the .denv extension, it is added", path)
	}
	for _, c := range path {
		if c < ' ' || c == 0x7f {
			return fmt.Errorf("path %q contains a control character", path)
		}
	}
	for _, seg := range strings.Split(path, "/") {
		switch seg {
		case "..":
			return fmt.Errorf("path %q escapes the repository", path)
		case ".", "":
			return fmt.Errorf("path %q has an empty or \".\" component", path)
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9')
}

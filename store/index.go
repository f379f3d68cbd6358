package store

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"
)

// indexVersion is the version of index.json this package writes.
const indexVersion = 1

// index is the content of index.json.
type index struct {
	Version     int           `json:"version"`
	Definitions []defEntry    `json:"definitions"`
	Remotes     []remoteEntry `json:"remotes"`
	// absent is set when there was no index.json to read: objects found
	// then may belong to an index that was lost, so none are collected.
	absent bool
}

type defEntry struct {
	Name     string   `json:"name"`
	Origin   string   `json:"origin"`
	SHA256   string   `json:"sha256"`
	Added    string   `json:"added"`
	Images   int      `json:"images"`
	Includes []string `json:"includes"`
	// HostBinds: added with --allow-host-binds (see Definition.HostBinds)
	HostBinds bool `json:"allow_host_binds,omitempty"`
}

type remoteEntry struct {
	Owner  string `json:"owner"`
	Repo   string `json:"repo"`
	Ref    string `json:"ref"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	Added  string `json:"added"`
}

func (e defEntry) definition() (Definition, error) {
	added, err := time.Parse(time.RFC3339, e.Added)
	if err != nil {
		return Definition{}, fmt.Errorf("store index is damaged: definition %q has added time %q", e.Name, e.Added)
	}
	return Definition{
		Name:      e.Name,
		Origin:    e.Origin,
		Digest:    e.SHA256,
		Added:     added.UTC(),
		Images:    e.Images,
		Includes:  slices.Clone(e.Includes),
		HostBinds: e.HostBinds,
	}, nil
}

func compareRemote(a remoteEntry, owner, repo, ref, path string) int {
	return cmp.Or(
		strings.Compare(a.Owner, owner),
		strings.Compare(a.Repo, repo),
		strings.Compare(a.Ref, ref),
		strings.Compare(a.Path, path),
	)
}

func (idx *index) findDef(name string) (defEntry, bool) {
	i, ok := slices.BinarySearchFunc(idx.Definitions, name, func(e defEntry, n string) int {
		return strings.Compare(e.Name, n)
	})
	if !ok {
		return defEntry{}, false
	}
	return idx.Definitions[i], true
}

func (idx *index) putDef(e defEntry) {
	i, ok := slices.BinarySearchFunc(idx.Definitions, e.Name, func(e defEntry, n string) int {
		return strings.Compare(e.Name, n)
	})
	if ok {
		idx.Definitions[i] = e
		return
	}
	idx.Definitions = slices.Insert(idx.Definitions, i, e)
}

func (idx *index) deleteDef(name string) {
	idx.Definitions = slices.DeleteFunc(idx.Definitions, func(e defEntry) bool { return e.Name == name })
}

func (idx *index) findRemote(k RemoteFile) (remoteEntry, bool) {
	i, ok := slices.BinarySearchFunc(idx.Remotes, k, func(e remoteEntry, k RemoteFile) int {
		return compareRemote(e, k.Owner, k.Repo, k.Ref, k.Path)
	})
	if !ok {
		return remoteEntry{}, false
	}
	return idx.Remotes[i], true
}

func (idx *index) putRemote(e remoteEntry) {
	i, ok := slices.BinarySearchFunc(idx.Remotes, e, func(a, b remoteEntry) int {
		return compareRemote(a, b.Owner, b.Repo, b.Ref, b.Path)
	})
	if ok {
		idx.Remotes[i] = e
		return
	}
	idx.Remotes = slices.Insert(idx.Remotes, i, e)
}

// referenced returns the set of object digests the index names.
func (idx *index) referenced() map[string]bool {
	refs := make(map[string]bool, len(idx.Definitions)+len(idx.Remotes))
	for _, e := range idx.Definitions {
		refs[e.SHA256] = true
	}
	for _, e := range idx.Remotes {
		refs[e.SHA256] = true
	}
	return refs
}

func (idx *index) clone() *index {
	return &index{
		Version:     idx.Version,
		Definitions: slices.Clone(idx.Definitions),
		Remotes:     slices.Clone(idx.Remotes),
	}
}

// readIndex reads index.json; a store without one is empty. The decoded
// index is kept and reused while the file is the same one (same inode,
// size and modification time): every write replaces the file by rename,
// and a resolve of a stored graph looks names up once per include, which
// decoded the whole index each time (4-5 ms at 1,000 definitions). The
// index returned is shared: callers must not modify it (writes clone it).
func (s *Store) readIndex() (*index, error) {
	f, err := os.Open(s.indexPath())
	if errors.Is(err, fs.ErrNotExist) {
		return &index{Version: indexVersion, absent: true}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.cache; c.idx != nil && os.SameFile(c.stat, st) && c.stat.Size() == st.Size() && c.stat.ModTime().Equal(st.ModTime()) {
		return c.idx, nil
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	idx, err := s.decodeIndex(data)
	if err != nil {
		return nil, err
	}
	s.cache.idx, s.cache.stat = idx, st
	return idx, nil
}

// decodeIndex parses index.json.
func (s *Store) decodeIndex(data []byte) (*index, error) {
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("store index %s is damaged: %v", s.indexPath(), err)
	}
	// `{}`, `null` or an index without its version decode without error
	// into an empty index; taking that for an empty store would let the next
	// write delete every object it no longer names. Only an index this
	// package wrote (version 1 or later) is trusted.
	if idx.Version < 1 {
		return nil, fmt.Errorf("store index %s is damaged: it has no version (want %d)", s.indexPath(), indexVersion)
	}
	if idx.Version > indexVersion {
		return nil, fmt.Errorf("store index %s has version %d; this denv reads up to version %d", s.indexPath(), idx.Version, indexVersion)
	}
	// Entries are kept sorted; re-sort in case the file was edited by hand,
	// since lookups search it.
	byName := func(a, b defEntry) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(idx.Definitions, byName) {
		slices.SortFunc(idx.Definitions, byName)
	}
	byKey := func(a, b remoteEntry) int { return compareRemote(a, b.Owner, b.Repo, b.Ref, b.Path) }
	if !slices.IsSortedFunc(idx.Remotes, byKey) {
		slices.SortFunc(idx.Remotes, byKey)
	}
	return &idx, nil
}

func (idx *index) encode() ([]byte, error) {
	if idx.Definitions == nil {
		idx.Definitions = []defEntry{}
	}
	if idx.Remotes == nil {
		idx.Remotes = []remoteEntry{}
	}
	idx.Version = indexVersion
	data, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

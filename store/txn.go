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
	"strings"

	"github.com/alebellu/denv/internal/atomicfile"
)

// tmpPrefix starts the name of every temporary file the store writes.
const tmpPrefix = ".tmp-"

// lock opens the lock file, creating it if needed, and flocks it; the
// returned func releases it.
func (s *Store) lock(exclusive bool) (func(), error) {
	if exclusive {
		if err := os.MkdirAll(s.objectsDir(), 0o700); err != nil {
			return nil, fmt.Errorf("cannot create the definition store: %w", err)
		}
	}
	path := filepath.Join(s.dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil && !exclusive {
		if errors.Is(err, fs.ErrNotExist) {
			// no store yet: nothing to read, nothing to lock (its index
			// reads as empty)
			return func() {}, nil
		}
		// A reader may lack write access to a shared store.
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot lock the definition store: %w", err)
	}
	if err := flock(f, exclusive); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock the definition store: %w", err)
	}
	return func() { f.Close() }, nil
}

// read runs fn on the index under a shared lock.
func (s *Store) read(fn func(*index) error) error {
	unlock, err := s.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	idx, err := s.readIndex()
	if err != nil {
		return err
	}
	return fn(idx)
}

// update runs one write transaction under the exclusive lock. change edits
// a copy of the index and stores content through put, which returns its
// digest. If change succeeds the new index is written by rename, the commit
// point; whatever happens, objects the resulting index does not name and
// stray temporary files are then deleted, so a failed transaction leaves
// the store as it was.
func (s *Store) update(change func(idx *index, put func([]byte) (string, error)) error) error {
	unlock, err := s.lock(true)
	if err != nil {
		return err
	}
	defer unlock()
	old, err := s.readIndex()
	if err != nil {
		return err
	}
	if old.absent && !s.hasObjects() {
		// A new store: nothing an older index could name.
		old = old.clone()
	}
	idx := old.clone()
	idx.absent = old.absent
	wrote := false
	put := func(content []byte) (string, error) {
		sum := sha256.Sum256(content)
		digest := hex.EncodeToString(sum[:])
		if have, err := os.ReadFile(s.objectPath(digest)); err == nil && bytes.Equal(have, content) {
			return digest, nil
		}
		if err := writeAtomic(s.objectPath(digest), content); err != nil {
			return "", err
		}
		wrote = true
		return digest, nil
	}

	if err := change(idx, put); err != nil {
		s.collect(old)
		return err
	}
	if wrote {
		if err := syncDir(s.objectsDir()); err != nil {
			s.collect(old)
			return storeWriteError(err)
		}
	}
	data, err := idx.encode()
	if err == nil {
		err = writeAtomic(s.indexPath(), data)
	}
	if err != nil {
		s.collect(old)
		return err
	}
	// Committed. A failure to sync the directory now only risks the change
	// not surviving a power cut; the index on disk is the new one.
	err = syncDir(s.dir)
	s.collect(idx)
	if err != nil {
		return storeWriteError(err)
	}
	return nil
}

// collect deletes objects idx does not name and temporary files left by
// this or a crashed transaction. It runs under the exclusive lock, so no
// other writer has temporary files in flight and no reader is between
// reading the index and reading an object. Errors are ignored: what is left
// is garbage, never data.
//
// When the transaction started without an index.json (idx.absent), objects
// are kept: they may be named by an index that was deleted or lost, and only
// an index read whole may decide that an object is garbage.
func (s *Store) collect(idx *index) {
	refs := idx.referenced()
	entries, _ := os.ReadDir(s.objectsDir())
	for _, e := range entries {
		name := e.Name()
		digest, isObject := strings.CutSuffix(name, ".denv")
		if strings.HasPrefix(name, tmpPrefix) || (!idx.absent && isObject && isDigest(digest) && !refs[digest]) {
			os.Remove(filepath.Join(s.objectsDir(), name))
		}
	}
	entries, _ = os.ReadDir(s.dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			os.Remove(filepath.Join(s.dir, e.Name()))
		}
	}
}

// hasObjects reports whether the objects directory holds any object.
func (s *Store) hasObjects() bool {
	entries, _ := os.ReadDir(s.objectsDir())
	for _, e := range entries {
		if d, ok := strings.CutSuffix(e.Name(), ".denv"); ok && isDigest(d) {
			return true
		}
	}
	return false
}

func isDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9') && !('a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// writeAtomic replaces path with data (atomicfile.Write: temporary file
// named tmpPrefix*, fsync, rename), private to the user (0600) since
// definitions may hold secrets in SET values. On error no temporary file is
// left.
func writeAtomic(path string, data []byte) error {
	if err := atomicfile.Write(path, data, 0o600, tmpPrefix); err != nil {
		return storeWriteError(err)
	}
	return nil
}

// syncDir fsyncs a directory so that renames into it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func storeWriteError(err error) error {
	return fmt.Errorf("cannot write to the definition store: %w", err)
}

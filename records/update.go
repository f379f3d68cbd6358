package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Previous is what an environment ran before its last update.
type Previous struct {
	// Definition and Params are those of the replaced record.
	Definition string            `json:"definition"`
	Source     string            `json:"source,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	// Digest is the sha256 of the replaced project.
	Digest string `json:"digest"`
	// Project is the replaced project, stored as previous.yaml.
	Project []byte `json:"-"`
}

// Replace records that environment old.ID now runs rec (an update): the
// old project is kept as previous.yaml and described in rec.Previous,
// rec.Updated is set to now. Each file is replaced atomically, in the
// order previous.yaml, compose.yaml, record.json, so that a record.json
// always has its project; an interrupted Replace leaves the old record
// speaking for the environment (with at worst a newer compose.yaml, which
// the digest in record.json tells apart). rec.ID must be old.ID.
func (s *Store) Replace(old, rec Record) (Record, error) {
	if rec.ID != old.ID {
		return rec, fmt.Errorf("record id %q does not match the updated id %q", rec.ID, old.ID)
	}
	unlock, err := s.lockStore()
	if err != nil {
		return rec, err
	}
	defer unlock()
	dir := filepath.Join(s.dir, rec.ID)
	if _, err := os.Stat(filepath.Join(dir, RecordFile)); err != nil {
		return rec, fmt.Errorf("environment %q is no longer recorded: %w", rec.ID, err)
	}
	rec.Previous = &Previous{Definition: old.Definition, Source: old.Source, Params: old.Params, Digest: old.Digest, Project: old.Project}
	rec.Updated = time.Now().UTC()
	if err := writeFile(filepath.Join(dir, PreviousFile), old.Project); err != nil {
		return rec, err
	}
	if err := writeFile(filepath.Join(dir, ProjectFile), rec.Project); err != nil {
		return rec, err
	}
	if err := writeLoaded(dir, rec.Loaded); err != nil {
		return rec, err
	}
	data, err := marshalRecord(rec)
	if err != nil {
		return rec, err
	}
	return rec, writeFile(filepath.Join(dir, RecordFile), data)
}

// PreviousProject returns the project rec ran before its last update, or
// an error saying there is none.
func (s *Store) PreviousProject(rec Record) ([]byte, error) {
	if rec.Previous == nil {
		return nil, fmt.Errorf("environment %q was never updated: no previous project", rec.ID)
	}
	data, err := os.ReadFile(filepath.Join(s.dir, rec.ID, PreviousFile))
	if err != nil {
		return nil, fmt.Errorf("environment %q: the previous project is missing: %w", rec.ID, err)
	}
	return data, nil
}

// marshalRecord is record.json's content for rec, as Commit writes it.
func marshalRecord(rec Record) ([]byte, error) {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// writeLoaded writes the loaded form of a project into an environment's
// directory dir, or removes the one there when there is none (it would
// describe another project; its reader checks that anyway).
func writeLoaded(dir string, loaded []byte) error {
	name := filepath.Join(dir, LoadedFile)
	if len(loaded) == 0 {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeFile(name, loaded)
}

// LoadedProject returns the loaded form of the project recorded for id
// (Record.Loaded), or nil when there is none or it cannot be read: it is
// only a cache.
func (s *Store) LoadedProject(id string) []byte {
	if ValidID(id) != nil {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(s.dir, id, LoadedFile))
	if err != nil {
		return nil
	}
	return data
}

// BusyError is the error of [Store.Hold] for an environment another
// process holds.
type BusyError struct {
	ID string
	// PID is the holder's process id, 0 when unknown.
	PID int
}

// Error implements error.
func (e *BusyError) Error() string {
	pid := ""
	if e.PID > 0 {
		pid = fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("environment %q is busy: another denv process%s is updating or removing it; try again when it is done", e.ID, pid)
}

// Hold takes the lock of the recorded environment id (its lock file, the
// one a run holds until it records the environment) for a command that
// changes it and its record (update, rm), without waiting: when another
// process holds it, the error is a *[BusyError]. The error wraps
// fs.ErrNotExist when id is not recorded. The lock is held until the
// returned Reservation is released (or the process ends); committing or
// aborting it is not meant for a recorded environment.
func (s *Store) Hold(id string) (*Reservation, error) {
	if ValidID(id) != nil {
		return nil, fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
	}
	unlockStore, err := s.lockStore()
	if err != nil {
		return nil, err
	}
	defer unlockStore()
	if !s.recorded(id) {
		return nil, fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
	}
	r, err := s.claim(id)
	if errors.Is(err, errLocked) {
		busy := &BusyError{ID: id}
		if inc, perr := s.probe(id); perr == nil {
			busy.PID = inc.PID
		}
		return nil, busy
	}
	return r, err
}

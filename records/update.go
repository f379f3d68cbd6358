package records

import (
	"encoding/json"
	"fmt"
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

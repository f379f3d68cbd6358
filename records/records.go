// Package records keeps the records of the environments denv started, one
// directory per environment under $DENV_HOME/envs/<ID>/: record.json (what
// was started, from which definition, when) and compose.yaml (the exact
// compiled project). Later commands act on these records, not on a
// definition that may have changed since.
//
// Creating the directory of an ID is the lock that claims it: two racing
// runs with the same ID cannot both succeed (see [Store.Reserve]).
package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/alebellu/denv/internal/atomicfile"
)

// File names inside an environment's directory.
const (
	RecordFile  = "record.json"
	ProjectFile = "compose.yaml"
)

// MaxIDLen bounds an ID: Docker derives container and network names from
// it, and 63 characters keeps them valid DNS labels.
const MaxIDLen = 63

// idRule is Docker Compose's rule for project names.
var idRule = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)

// ValidID reports whether id is usable as an environment ID, i.e. as a
// compose project name: lower-case letters, digits, '-' and '_', starting
// with a letter or digit, at most MaxIDLen characters.
func ValidID(id string) error {
	if len(id) > MaxIDLen || !idRule.MatchString(id) {
		return fmt.Errorf("invalid environment id %q: use lower-case letters, digits, '-' and '_', starting with a letter or digit, at most %d characters", id, MaxIDLen)
	}
	return nil
}

// Record describes an environment denv started.
type Record struct {
	// ID is the compose project name.
	ID string `json:"id"`
	// Definition is the definition name (graph.Root.Def) as given.
	Definition string `json:"definition"`
	// Digest is the sha256 of Project ("sha256:HEX").
	Digest string `json:"digest"`
	// Created is when the environment was started.
	Created time.Time `json:"created"`
	// ClonedFrom is the ID of the source when made by clone, else "".
	ClonedFrom string `json:"cloned_from,omitempty"`
	// Engine is the runtime it runs on, a name in cmd/denv's engine set:
	// "local" (Docker Compose; also when empty) or "swarm" (a stack).
	Engine string `json:"engine"`
	// WorkDir is the working directory the project was compiled in.
	WorkDir string `json:"work_dir"`
	// Params are the root definition's parameter values it was run with
	// (given with --set, else defaults), secret ones as "***"
	// (resolve.Env.ShownParams). Empty for a definition without any.
	Params map[string]string `json:"params,omitempty"`
	// Project is the exact compiled compose YAML that was started. It is
	// stored beside the record as compose.yaml, not inside record.json.
	Project []byte `json:"-"`
	// Damaged is set by List, instead of failing, for a record that
	// cannot be read: the one-line reason. Only ID is set then.
	Damaged string `json:"-"`
}

// ErrDamaged is matched by the error of Get for a record that exists but
// cannot be read or decoded; Remove still removes it.
var ErrDamaged = errors.New("damaged environment record")

type damagedError struct{ err error }

func (e damagedError) Error() string   { return e.err.Error() }
func (e damagedError) Unwrap() []error { return []error{e.err, ErrDamaged} }

// Store is the directory holding the environment records.
type Store struct {
	dir string
}

// Open opens the record store in dir (normally $DENV_HOME/envs), creating
// it if needed.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the environment records directory: %w", err)
	}
	return &Store{dir: abs}, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Reservation is an ID claimed by [Store.Reserve], to be completed with
// [Reservation.Commit] or released with [Reservation.Abort].
type Reservation struct {
	s  *Store
	id string
}

// ID returns the reserved ID.
func (r *Reservation) ID() string { return r.id }

// Reserve atomically claims id: the directory envs/<id> is created with
// os.Mkdir, which succeeds for exactly one of several racing callers. The
// error wraps fs.ErrExist when the ID is taken (committed or reserved).
func (s *Store) Reserve(id string) (*Reservation, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	err := os.Mkdir(filepath.Join(s.dir, id), 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("environment %q already exists: %w", id, fs.ErrExist)
	}
	if err != nil {
		return nil, err
	}
	return &Reservation{s: s, id: id}, nil
}

// Commit writes the record and its compose.yaml into the claimed
// directory, each through a temporary file renamed into place. compose.yaml
// is written first, so that a record.json present always has its project.
func (r *Reservation) Commit(rec Record) error {
	if rec.ID != r.id {
		return fmt.Errorf("record id %q does not match the reserved id %q", rec.ID, r.id)
	}
	dir := filepath.Join(r.s.dir, r.id)
	if err := writeFile(filepath.Join(dir, ProjectFile), rec.Project); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, RecordFile), append(data, '\n'))
}

// Abort removes the claimed directory and everything in it.
func (r *Reservation) Abort() error {
	return os.RemoveAll(filepath.Join(r.s.dir, r.id))
}

// Get returns the record of id. The error wraps fs.ErrNotExist when there
// is none (also while the ID is only reserved).
func (s *Store) Get(id string) (Record, error) {
	return s.get(id, true)
}

// get reads the record of id, and its project when withProject.
func (s *Store) get(id string, withProject bool) (Record, error) {
	if ValidID(id) != nil {
		return Record{}, fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
	}
	dir := filepath.Join(s.dir, id)
	data, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Record{}, fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
	}
	if err != nil {
		return Record{}, damagedError{err}
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, damagedError{fmt.Errorf("%s: %w", filepath.Join(dir, RecordFile), err)}
	}
	if withProject {
		if rec.Project, err = os.ReadFile(filepath.Join(dir, ProjectFile)); err != nil {
			return Record{}, err
		}
	}
	rec.ID = id
	return rec, nil
}

// List returns every committed record, sorted by ID, without its Project
// (Get has it): listing is on the path of 'denv envs', which is measured
// against 'docker compose ls'. IDs only reserved (a run in progress) are
// left out.
func (s *Store) List() ([]Record, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var recs []Record
	for _, e := range entries {
		if !e.IsDir() || ValidID(e.Name()) != nil {
			continue
		}
		rec, err := s.get(e.Name(), false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if errors.Is(err, ErrDamaged) {
			// one unreadable record must not hide the others
			rec = Record{ID: e.Name(), Damaged: err.Error()}
		} else if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ID < recs[j].ID })
	return recs, nil
}

// Remove deletes the record of id, also one that is damaged. The error
// wraps fs.ErrNotExist when there is none.
func (s *Store) Remove(id string) error {
	if _, err := s.Get(id); err != nil && !errors.Is(err, ErrDamaged) {
		return err
	}
	// Rename first so that a crash never leaves a half-removed record that
	// List would trip on.
	dir := filepath.Join(s.dir, id)
	tmp, err := os.MkdirTemp(s.dir, ".rm-"+id+"-")
	if err != nil {
		return err
	}
	gone := filepath.Join(tmp, id)
	if err := os.Rename(dir, gone); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.RemoveAll(tmp)
}

// FreeID returns the first of "base-1", "base-2", ... that has no
// directory yet. It does not claim it: [Store.Reserve] still decides, and
// a caller racing another should retry on fs.ErrExist. base is shortened
// so that the result stays within MaxIDLen.
func (s *Store) FreeID(base string) (string, error) {
	for n := 1; ; n++ {
		suffix := "-" + strconv.Itoa(n)
		b := base
		if len(b)+len(suffix) > MaxIDLen {
			b = b[:MaxIDLen-len(suffix)]
		}
		id := b + suffix
		if err := ValidID(id); err != nil {
			return "", err
		}
		_, err := os.Lstat(filepath.Join(s.dir, id))
		if errors.Is(err, fs.ErrNotExist) {
			return id, nil
		}
		if err != nil {
			return "", err
		}
	}
}

// writeFile replaces name with data atomically, readable by its owner
// only (records may name private paths).
func writeFile(name string, data []byte) error {
	return atomicfile.Write(name, data, 0o600, "."+filepath.Base(name)+".")
}

// Package records keeps the records of the environments denv started, one
// directory per environment under $DENV_HOME/envs/<ID>/: record.json (what
// was started, from which definition, when) and compose.yaml (the exact
// compiled project). Later commands act on these records, not on a
// definition that may have changed since.
//
// An ID is claimed by creating its directory and flock'ing the file
// envs/<ID>/lock in it; the claimant holds that lock until it commits the
// record or aborts.
// Two racing runs with the same ID cannot both succeed (see
// [Store.Reserve]), and a directory without a record whose lock nobody
// holds is the remains of a run that died midway (SIGKILL, OOM): it is
// listed by [Store.Incomplete] and can be taken over to be cleaned up
// ([Store.TakeOver]). The lock is what tells a living claimant from a dead
// one, not the directory's existence.
package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// LockFile is flock'ed (exclusively) by the process that claimed the
	// ID, from [Store.Reserve] or [Store.TakeOver] until the claim is
	// committed, aborted or released; it holds that process's claim (pid
	// and time, JSON) for display.
	LockFile = "lock"
	// PreviousFile keeps the project an update replaced.
	PreviousFile = "previous.yaml"
	// LoadedFile keeps the project as compose-go's loader loaded it
	// (Record.Loaded), when the engine gave it: a cache for planning.
	LoadedFile = "loaded.json"
)

// storeLockFile, in the store's directory, is flock'ed while an ID is
// claimed, taken over or probed, so that nobody probes a directory between
// its creation and the locking of its lock file, and so that probing (which
// briefly takes a dead claimant's lock) never makes a racing take-over see
// a living claimant.
const storeLockFile = ".lock"

// errLocked is returned by lock when another open file holds the lock.
var errLocked = errors.New("locked by another process")

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
	// Source is the definition argument run was given, a file path made
	// absolute (what `denv update` compiles again by default); empty in
	// records written before it.
	Source string `json:"source,omitempty"`
	// Digest is the sha256 of Project ("sha256:HEX").
	Digest string `json:"digest"`
	// Created is when the environment was started.
	Created time.Time `json:"created"`
	// Updated is when `denv update` last changed it (zero if never).
	Updated time.Time `json:"updated,omitzero"`
	// ClonedFrom is the ID of the source when made by clone, else "".
	ClonedFrom string `json:"cloned_from,omitempty"`
	// SeededFrom is the snapshot its volumes were filled from when made
	// by `denv run --from`, else "".
	SeededFrom string `json:"seeded_from,omitempty"`
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
	// Previous is what the environment ran before its last update (nil
	// if never updated); its project is kept beside the record as
	// previous.yaml, for `denv update --previous`.
	Previous *Previous `json:"previous,omitempty"`
	// Loaded is Project as the engine's loader loaded it
	// (backend.EncodeLoaded), optional: `denv update` plans with it
	// instead of loading Project again. Stored beside the record as
	// loaded.json, written by Commit and Replace, read by
	// [Store.LoadedProject] (not by Get).
	Loaded []byte `json:"-"`
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

// Reservation is an ID claimed by [Store.Reserve] or [Store.TakeOver], to
// be completed with [Reservation.Commit] or given up with
// [Reservation.Abort] (or [Reservation.Release]). It holds the ID's lock
// until then: a process that dies holding it leaves an incomplete ID, not
// a wedged one.
type Reservation struct {
	s    *Store
	id   string
	lock *os.File // nil once committed, aborted or released
}

// ID returns the reserved ID.
func (r *Reservation) ID() string { return r.id }

// Incomplete is an ID whose directory has no record: claimed by a run that
// is still starting it (Alive) or by one that died midway.
type Incomplete struct {
	// ID is the claimed ID.
	ID string
	// Alive reports whether the claimant still runs (holds the lock).
	Alive bool
	// PID is the claimant's process id, 0 when unknown.
	PID int
	// Created is when the ID was claimed (the directory's modification
	// time when the claim does not say).
	Created time.Time
}

// IncompleteError is the error of [Store.Reserve] for an ID that is
// incomplete, and of [Store.TakeOver] for one whose claimant is alive. It
// matches fs.ErrExist.
type IncompleteError struct {
	Incomplete
}

// Error implements error.
func (e *IncompleteError) Error() string {
	if e.Alive {
		pid := ""
		if e.PID > 0 {
			pid = fmt.Sprintf(" (pid %d)", e.PID)
		}
		return fmt.Sprintf("environment %q already exists: another denv process%s is starting it", e.ID, pid)
	}
	return fmt.Sprintf("environment %q already exists as an interrupted run: remove it with 'denv rm --force %s'", e.ID, e.ID)
}

// Unwrap makes errors.Is(err, fs.ErrExist) true.
func (e *IncompleteError) Unwrap() error { return fs.ErrExist }

// claim is what a claimant writes into its lock file.
type claim struct {
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
}

// Reserve atomically claims id: under the store's lock, the directory
// envs/<id> is created with os.Mkdir, which succeeds for exactly one of
// several racing callers, and its lock file is locked. The error wraps
// fs.ErrExist when the ID is taken: recorded, or incomplete (then it is an
// *[IncompleteError], saying whether its claimant is alive). An incomplete
// ID whose claimant is dead is not reserved again here: what its run left
// on the engine must go first ([Store.TakeOver]).
func (s *Store) Reserve(id string) (*Reservation, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	unlockStore, err := s.lockStore()
	if err != nil {
		return nil, err
	}
	defer unlockStore()
	dir := filepath.Join(s.dir, id)
	err = os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil, s.existsError(id)
	}
	if err != nil {
		return nil, err
	}
	r, err := s.claim(id)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// TakeOver claims the incomplete id whose claimant is dead, for its caller
// to remove what the dead run left (then [Reservation.Abort]) or to start
// it afresh (then [Reservation.Commit]). The error wraps fs.ErrNotExist
// when id has no directory, fs.ErrExist when it is recorded (not
// incomplete), and is an *[IncompleteError] with Alive set when its
// claimant still runs: a living claimant's ID is never taken.
func (s *Store) TakeOver(id string) (*Reservation, error) {
	if ValidID(id) != nil {
		return nil, fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
	}
	exists := func() error {
		if _, err := os.Stat(filepath.Join(s.dir, id)); errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no environment %q: %w", id, fs.ErrNotExist)
		} else if err != nil {
			return err
		}
		if s.recorded(id) {
			return fmt.Errorf("environment %q is recorded, not an interrupted run: %w", id, fs.ErrExist)
		}
		return nil
	}
	// Checked before taking the store's lock too, so that looking for an
	// ID that is not incomplete writes nothing.
	if err := exists(); err != nil {
		return nil, err
	}
	unlockStore, err := s.lockStore()
	if err != nil {
		return nil, err
	}
	defer unlockStore()
	if err := exists(); err != nil {
		return nil, err
	}
	r, err := s.claim(id)
	if errors.Is(err, errLocked) {
		inc, perr := s.probe(id)
		if perr != nil {
			return nil, perr
		}
		inc.Alive = true
		return nil, &IncompleteError{inc}
	}
	if err != nil {
		return nil, err
	}
	// The claimant may have committed and released between the check and
	// the lock: a record written under the lock is final.
	if s.recorded(id) {
		r.Release()
		return nil, fmt.Errorf("environment %q is recorded, not an interrupted run: %w", id, fs.ErrExist)
	}
	return r, nil
}

// Incomplete lists the IDs that have a directory but no record, sorted by
// ID: runs in progress (Alive) and runs that died midway.
func (s *Store) Incomplete() ([]Incomplete, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if id := e.Name(); e.IsDir() && ValidID(id) == nil && !s.recorded(id) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 { // the common case: no lock, nothing written
		return nil, nil
	}
	unlockStore, err := s.lockStore()
	if err != nil {
		return nil, err
	}
	defer unlockStore()
	var list []Incomplete
	for _, id := range ids {
		inc, err := s.probe(id)
		if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
			continue
		}
		if err != nil {
			return nil, err
		}
		// Probed first, then the record: a claimant that commits releases
		// its lock after writing the record, so a free lock and no record
		// mean a dead claimant.
		if s.recorded(id) {
			continue
		}
		list = append(list, inc)
	}
	return list, nil
}

// existsError describes the existing directory of id; the store's lock is
// held.
func (s *Store) existsError(id string) error {
	inc, err := s.probe(id)
	if err == nil && !s.recorded(id) {
		return &IncompleteError{inc}
	}
	return fmt.Errorf("environment %q already exists: %w", id, fs.ErrExist)
}

// probe tells whether the claimant of id is alive by trying its lock (and
// releasing it at once); the store's lock is held, so that nobody claims
// or takes over meanwhile. A directory without a lock file (a claimant that
// died before locking, or an older denv) has a dead claimant.
func (s *Store) probe(id string) (Incomplete, error) {
	dir := filepath.Join(s.dir, id)
	fi, err := os.Stat(dir)
	if err != nil {
		return Incomplete{}, err
	}
	inc := Incomplete{ID: id, Created: fi.ModTime().UTC()}
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return inc, nil
	}
	if err != nil {
		return Incomplete{}, err
	}
	defer f.Close()
	switch err := lock(f, false); {
	case errors.Is(err, errLocked):
		inc.Alive = true
	case err != nil:
		return Incomplete{}, err
	default:
		unlock(f)
	}
	var c claim
	if data, err := io.ReadAll(f); err == nil && json.Unmarshal(data, &c) == nil {
		inc.PID = c.PID
		if !c.Created.IsZero() {
			inc.Created = c.Created
		}
	}
	return inc, nil
}

// recorded reports whether id has a record file.
func (s *Store) recorded(id string) bool {
	_, err := os.Lstat(filepath.Join(s.dir, id, RecordFile))
	return err == nil
}

// claim opens (creating it if needed) the lock file of id, locks it
// without waiting (errLocked when held) and writes this process's claim
// into it, keeping the first claim's time. The store's lock is held.
func (s *Store) claim(id string) (*Reservation, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, id, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lock(f, false); err != nil {
		f.Close()
		return nil, err
	}
	// A take-over keeps when the ID was first claimed: that is when the
	// environment was started, for 'envs --all'.
	c := claim{PID: os.Getpid(), Created: time.Now().UTC()}
	var old claim
	if data, err := io.ReadAll(f); err == nil && json.Unmarshal(data, &old) == nil && !old.Created.IsZero() {
		c.Created = old.Created
	}
	data, err := json.Marshal(c)
	if err == nil {
		err = f.Truncate(0)
	}
	if err == nil {
		_, err = f.WriteAt(append(data, '\n'), 0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Reservation{s: s, id: id, lock: f}, nil
}

// lockStore takes the store's lock, waiting for it, and returns its
// release.
func (s *Store) lockStore() (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, storeLockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lock(f, true); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// errDone is the error of Commit on a reservation already given up.
var errDone = errors.New("the reservation was already committed, aborted or released")

// Commit writes the record and its compose.yaml into the claimed
// directory, each through a temporary file renamed into place, then
// releases the lock: the record now speaks for the environment.
// compose.yaml is written first, so that a record.json present always has
// its project.
func (r *Reservation) Commit(rec Record) error {
	if rec.ID != r.id {
		return fmt.Errorf("record id %q does not match the reserved id %q", rec.ID, r.id)
	}
	if r.lock == nil {
		return errDone
	}
	dir := filepath.Join(r.s.dir, r.id)
	if err := writeFile(filepath.Join(dir, ProjectFile), rec.Project); err != nil {
		return err
	}
	if err := writeLoaded(dir, rec.Loaded); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, RecordFile), append(data, '\n')); err != nil {
		return err
	}
	return r.Release()
}

// Abort removes the claimed directory and everything in it, then releases
// the lock. After Commit it does nothing: the committed environment is
// removed with [Store.Remove].
func (r *Reservation) Abort() error {
	if r.lock == nil {
		return nil
	}
	// Renamed away first, so that nobody sees a half-removed directory.
	err := r.s.removeDir(r.id)
	if rerr := r.Release(); err == nil {
		err = rerr
	}
	return err
}

// Release gives the claim up and keeps the directory: an uncommitted ID
// stays incomplete, with a dead claimant, until taken over. It does
// nothing the second time.
func (r *Reservation) Release() error {
	if r.lock == nil {
		return nil
	}
	err := r.lock.Close()
	r.lock = nil
	return err
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
// against 'docker compose ls'. IDs only reserved (a run in progress) or
// left incomplete are left out ([Store.Incomplete] has them).
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
	return s.removeDir(id)
}

// removeDir removes the directory of id, renaming it away first so that a
// crash never leaves a half-removed record that List would trip on.
func (s *Store) removeDir(id string) error {
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

package records

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	for _, id := range []string{"a", "web-env-1", "x_y", "0abc", strings.Repeat("a", 63)} {
		if err := ValidID(id); err != nil {
			t.Errorf("ValidID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "Web", "-a", "_a", "a.b", "a/b", "..", strings.Repeat("a", 64)} {
		err := ValidID(id)
		if err == nil || !strings.Contains(err.Error(), "lower-case letters") {
			t.Errorf("ValidID(%q) = %v, want the rule", id, err)
		}
	}
}

func TestReserveCommitGetListRemove(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "envs"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Reserve("b")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get of a reserved id = %v, want ErrNotExist", err)
	}
	if _, err := s.Reserve("b"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Reserve = %v, want ErrExist", err)
	}
	want := Record{ID: "b", Definition: "examples/x", Digest: "sha256:00", Created: time.Now().UTC().Truncate(time.Second), Engine: "local", WorkDir: "/w", Project: []byte("name: b\n"),
		Params: map[string]string{"version": "16", "password": "***"}}
	if err := r.Commit(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("b")
	if err != nil {
		t.Fatal(err)
	}
	if got.Definition != want.Definition || string(got.Project) != string(want.Project) || !got.Created.Equal(want.Created) || got.Engine != "local" || got.Params["version"] != "16" || got.Params["password"] != "***" {
		t.Fatalf("Get = %+v, want %+v", got, want)
	}
	if raw, err := os.ReadFile(filepath.Join(s.Dir(), "b", RecordFile)); err != nil || !strings.Contains(string(raw), `"params": {`) && !strings.Contains(string(raw), `"params":{`) {
		t.Fatalf("record.json = %s, %v: want the params", raw, err)
	}
	yaml, err := os.ReadFile(filepath.Join(s.Dir(), "b", ProjectFile))
	if err != nil || string(yaml) != "name: b\n" {
		t.Fatalf("compose.yaml = %q, %v", yaml, err)
	}
	r2, err := s.Reserve("a")
	if err != nil {
		t.Fatal(err)
	}
	if err := r2.Commit(Record{ID: "a", Project: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve("c"); err != nil { // reserved only: not listed
		t.Fatal(err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
		t.Fatalf("List = %+v", list)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Get after Remove = %v", err)
	}
	if err := s.Remove("b"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Remove twice = %v", err)
	}
	entries, _ := os.ReadDir(s.Dir())
	if len(entries) != 3 || entries[0].Name() != storeLockFile { // .lock, a and the reserved c
		t.Fatalf("left in store: %v", entries)
	}
}

func TestAbortRemovesEverything(t *testing.T) {
	s, _ := Open(t.TempDir())
	r, err := s.Reserve("x")
	if err != nil {
		t.Fatal(err)
	}
	// something of a run's making beside the lock
	if err := os.WriteFile(filepath.Join(s.Dir(), "x", ProjectFile), []byte("y"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "x")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dir after Abort: %v", err)
	}
	if entries, _ := os.ReadDir(s.Dir()); len(entries) != 1 || entries[0].Name() != storeLockFile {
		t.Fatalf("left in store after Abort: %v", entries)
	}
	if _, err := s.Reserve("x"); err != nil {
		t.Fatalf("Reserve after Abort: %v", err)
	}
}

// An error after Commit (printing the endpoints to a closed stdout) must
// not lose the record of a started environment: Abort is then a no-op.
func TestAbortAfterCommitKeepsRecord(t *testing.T) {
	s, _ := Open(t.TempDir())
	r, err := s.Reserve("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(Record{ID: "x", Project: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("x"); err != nil {
		t.Fatalf("Get after Commit and Abort: %v", err)
	}
	if err := r.Commit(Record{ID: "x", Project: []byte("z")}); err == nil {
		t.Fatal("second Commit accepted")
	}
}

func TestReserveRace(t *testing.T) {
	s, _ := Open(t.TempDir())
	const n = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Reserve("same")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, fs.ErrExist):
				lost++
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != n-1 {
		t.Fatalf("won %d, lost %d; want exactly one winner", won, lost)
	}
}

func TestFreeID(t *testing.T) {
	s, _ := Open(t.TempDir())
	id, err := s.FreeID("web-env")
	if err != nil || id != "web-env-1" {
		t.Fatalf("FreeID = %q, %v", id, err)
	}
	if _, err := s.Reserve("web-env-1"); err != nil {
		t.Fatal(err)
	}
	if id, _ := s.FreeID("web-env"); id != "web-env-2" {
		t.Fatalf("FreeID = %q, want web-env-2", id)
	}
	long, err := s.FreeID(strings.Repeat("a", 80))
	if err != nil || len(long) != MaxIDLen || !strings.HasSuffix(long, "-1") {
		t.Fatalf("FreeID(long) = %q, %v", long, err)
	}
	if _, err := s.FreeID("Bad"); err == nil {
		t.Fatal("FreeID(Bad) accepted an invalid base")
	}
}

// TestDamagedRecordListedAndRemovable: one unreadable record.json made
// List (and so 'denv envs') fail for every environment, and Remove refused
// it. List now returns the others and marks it; Remove removes it.
func TestDamagedRecordListedAndRemovable(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		r, err := s.Reserve(id)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Commit(Record{ID: id, Definition: "d-" + id, Engine: "local", Project: []byte("name: " + id + "\n")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir(), "b", RecordFile), []byte("{broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	recs, err := s.List()
	if err != nil {
		t.Fatalf("List with one damaged record: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID+"="+r.Definition+"/"+strconv.FormatBool(r.Damaged != ""))
	}
	if want := "a=d-a/false b=/true c=d-c/false"; strings.Join(got, " ") != want {
		t.Errorf("List = %s, want %s", strings.Join(got, " "), want)
	}
	if _, err := s.Get("b"); !errors.Is(err, ErrDamaged) {
		t.Errorf("Get of the damaged record = %v, want ErrDamaged", err)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatalf("Remove of the damaged record: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("record directory still there: %v", err)
	}
}

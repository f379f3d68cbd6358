package records

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReplaceKeepsPrevious(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Reserve("web-1")
	if err != nil {
		t.Fatal(err)
	}
	old := Record{ID: "web-1", Definition: "web", Digest: "sha256:old", Created: time.Now().UTC(), Project: []byte("old: 1\n"), Params: map[string]string{"A": "1"}}
	if err := res.Commit(old); err != nil {
		t.Fatal(err)
	}
	old, err = s.Get("web-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PreviousProject(old); err == nil {
		t.Fatal("PreviousProject of a never-updated record: no error")
	}
	upd := old
	upd.Digest, upd.Project, upd.Params = "sha256:new", []byte("new: 2\n"), map[string]string{"A": "2"}
	if _, err := s.Replace(old, upd); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("web-1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Project, upd.Project) || got.Params["A"] != "2" || got.Updated.IsZero() || !got.Created.Equal(old.Created) {
		t.Fatalf("record after Replace: %+v", got)
	}
	if got.Previous == nil || got.Previous.Digest != "sha256:old" || got.Previous.Params["A"] != "1" {
		t.Fatalf("previous: %+v", got.Previous)
	}
	prev, err := s.PreviousProject(got)
	if err != nil || !bytes.Equal(prev, old.Project) {
		t.Fatalf("PreviousProject = %q, %v", prev, err)
	}
	if data, _ := os.ReadFile(filepath.Join(s.Dir(), "web-1", PreviousFile)); !bytes.Equal(data, old.Project) {
		t.Fatalf("previous.yaml = %q", data)
	}
	other := upd
	other.ID = "web-2"
	if _, err := s.Replace(old, other); err == nil {
		t.Fatal("Replace with another id: no error")
	}
}

// TestHold checks that a recorded environment held by one process (here
// one open lock file) is refused to a second holder with the first's pid,
// free again once released, and that an unrecorded ID cannot be held.
func TestHold(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hold("web-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Hold of an unknown id: %v", err)
	}
	res, err := s.Reserve("web-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Hold("web-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Hold of an id being run: %v", err)
	}
	if err := res.Commit(Record{ID: "web-1", Project: []byte("p: 1\n")}); err != nil {
		t.Fatal(err)
	}
	h, err := s.Hold("web-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Hold("web-1")
	var busy *BusyError
	if !errors.As(err, &busy) || busy.PID != os.Getpid() || !strings.Contains(err.Error(), fmt.Sprintf(`environment "web-1" is busy: another denv process (pid %d)`, os.Getpid())) {
		t.Fatalf("second Hold: %v", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	h, err = s.Hold("web-1")
	if err != nil {
		t.Fatalf("Hold after Release: %v", err)
	}
	// rm holds it while removing the record
	if err := s.Remove("web-1"); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if _, err := s.Hold("web-1"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Hold of a removed id: %v", err)
	}
}

// TestLoadedFile checks that Commit and Replace keep Record.Loaded beside
// the record, and that a Replace without it removes the stale one.
func TestLoadedFile(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Reserve("web-1")
	if err != nil {
		t.Fatal(err)
	}
	rec := Record{ID: "web-1", Project: []byte("p: 1\n"), Loaded: []byte(`{"one":1}`)}
	if err := res.Commit(rec); err != nil {
		t.Fatal(err)
	}
	if got := s.LoadedProject("web-1"); string(got) != `{"one":1}` {
		t.Fatalf("LoadedProject after Commit = %q", got)
	}
	upd := rec
	upd.Project, upd.Loaded = []byte("p: 2\n"), []byte(`{"two":2}`)
	if _, err := s.Replace(rec, upd); err != nil {
		t.Fatal(err)
	}
	if got := s.LoadedProject("web-1"); string(got) != `{"two":2}` {
		t.Fatalf("LoadedProject after Replace = %q", got)
	}
	upd2 := upd
	upd2.Project, upd2.Loaded = []byte("p: 3\n"), nil
	if _, err := s.Replace(upd, upd2); err != nil {
		t.Fatal(err)
	}
	if got := s.LoadedProject("web-1"); got != nil {
		t.Fatalf("LoadedProject after a Replace without it = %q", got)
	}
}

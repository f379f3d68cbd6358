package records

import (
	"bytes"
	"os"
	"path/filepath"
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

package batch_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/alebellu/denv/resolve"
	"github.com/alebellu/denv/store"
	"github.com/alebellu/denv/store/batch"
)

// mapStore is a resolve.Store over a map.
type mapStore map[string]string

func (m mapStore) Lookup(name string) ([]byte, string, bool, error) {
	d, ok := m[name]
	return []byte(d), "stored:" + name, ok, nil
}

func TestOverlayOrder(t *testing.T) {
	o := batch.Overlay{
		Batch: map[string]*store.Definition{"a": {Name: "a", Content: []byte("batch a"), Origin: "/a.denv"}},
		Store: mapStore{"a": "store a", "b": "store b"},
		Extra: "root", ExtraData: []byte("ENV a\n"),
	}
	for _, c := range []struct {
		name, data, origin string
		found              bool
	}{
		{"root", "ENV a\n", "stdin", true},
		{"a", "batch a", "/a.denv", true},
		{"b", "store b", "stored:b", true},
		{"c", "", "stored:c", false},
	} {
		data, origin, found, err := o.Lookup(c.name)
		if err != nil || string(data) != c.data || origin != c.origin || found != c.found {
			t.Errorf("Lookup(%q) = %q, %q, %v, %v; want %q, %q, %v", c.name, data, origin, found, err, c.data, c.origin, c.found)
		}
	}
}

// countingFetcher serves files by path and counts the fetches.
type countingFetcher struct {
	files map[string]string
	calls int
}

func (f *countingFetcher) Fetch(_ context.Context, owner, repo, ref, p string) ([]byte, error) {
	f.calls++
	d, ok := f.files[p]
	if !ok {
		return nil, errors.New("404 " + p)
	}
	return []byte(d), nil
}

func TestRecorderFetchesOnceAndRecords(t *testing.T) {
	net := &countingFetcher{files: map[string]string{"b.denv": "B", "a.denv": "A"}}
	r := batch.NewRecorder(net)
	ctx := context.Background()
	for _, p := range []string{"b.denv", "a.denv", "b.denv"} {
		if _, err := r.Fetch(ctx, "o", "r", "main", p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Fetch(ctx, "o", "r", "main", "missing.denv"); err == nil {
		t.Error("fetching a missing file succeeded")
	}
	if net.calls != 3 {
		t.Errorf("fetches = %d, want 3 (b and a once, the missing one)", net.calls)
	}
	want := []store.RemoteFile{
		{Owner: "o", Repo: "r", Ref: "main", Path: "a.denv", Content: []byte("A")},
		{Owner: "o", Repo: "r", Ref: "main", Path: "b.denv", Content: []byte("B")},
	}
	if diff := cmp.Diff(want, r.Remotes()); diff != "" {
		t.Errorf("remotes (-want +got):\n%s", diff)
	}
	if f, ok := r.Get(want[1].String()); !ok || string(f.Content) != "B" {
		t.Errorf("Get(%s) = %+v, %v", want[1].String(), f, ok)
	}
}

// graph builds root (named rootName, definition def) including lib,
// which runs image.
func graph(rootName, def, image string) (*resolve.Env, []*resolve.Env) {
	lib := &resolve.Env{Name: "lib", Def: "lib"}
	lib.Services = []*resolve.Service{{Env: lib, Name: "db", Image: image}}
	root := &resolve.Env{Name: rootName, Def: def, Includes: []*resolve.Include{{Env: lib}}}
	root.Exposed = []resolve.Exposed{{Name: "db", Service: lib.Services[0]}}
	return root, []*resolve.Env{root, lib}
}

func TestFingerprint(t *testing.T) {
	root, envs := graph("web", "/home/u/web.denv", "ex/db")
	same, sameEnvs := graph("stored-web", "web", "ex/db")
	other, otherEnvs := graph("web", "/home/u/web.denv", "ex/db:2")
	fp := batch.Fingerprint(envs, root)
	if got := batch.Fingerprint(sameEnvs, same); got != fp {
		t.Errorf("the same graph read elsewhere under another root name differs:\n%s\nvs\n%s", fp, got)
	}
	if got := batch.Fingerprint(otherEnvs, other); got == fp {
		t.Errorf("graphs running other images have the same fingerprint:\n%s", fp)
	}
}

func TestStoredIncludes(t *testing.T) {
	a := &resolve.Env{Name: "check", Def: "0check"}
	g := &resolve.Graph{Envs: []*resolve.Env{a,
		{Name: "web", Def: "web"},
		{Name: "lib", Def: "lib"},
		{Name: "gh", Def: "github:o/r/x", Remote: true},
	}}
	if diff := cmp.Diff([]string{"lib"}, batch.StoredIncludes(g, "web", "0check")); diff != "" {
		t.Errorf("includes (-want +got):\n%s", diff)
	}
}

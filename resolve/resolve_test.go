package resolve_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alebellu/denv/resolve"
)

// memStore is a definition store in memory.
type memStore map[string][2]string // name -> {content, origin}

func (m memStore) Lookup(name string) ([]byte, string, bool, error) {
	d, ok := m[name]
	return []byte(d[0]), d[1], ok, nil
}

// memRepos serves github: files from memory and counts fetches.
type memRepos struct {
	files   map[string]string // "owner/repo/ref/path" -> content
	fetched []string
}

func (m *memRepos) Fetch(_ context.Context, owner, repo, ref, path string) ([]byte, error) {
	k := fmt.Sprintf("%s/%s/%s/%s", owner, repo, ref, path)
	m.fetched = append(m.fetched, k)
	c, ok := m.files[k]
	if !ok {
		return nil, fmt.Errorf("not found: %s: %w", k, fs.ErrNotExist)
	}
	return []byte(c), nil
}

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func envNames(g *resolve.Graph) string {
	var names []string
	for _, e := range g.Envs {
		names = append(names, e.Name+"="+e.Def)
	}
	return strings.Join(names, " ")
}

// TestLookupOrder: the directory of the file wins over the source root,
// which wins over the store.
func TestLookupOrder(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".git/HEAD":         "",
		"app/root.denv":     "ENV near\nENV far\nENV stored\nIMAGE ex/a LINK near, far, stored\n",
		"app/near.denv":     "IMAGE ex/near\nEXPOSE near\n",
		"near.denv":         "IMAGE ex/wrong\nEXPOSE wrong\n",
		"far.denv":          "IMAGE ex/far\nEXPOSE far\n",
		"app/sub/deep.denv": "",
	})
	st := memStore{"stored": {"IMAGE ex/s\nEXPOSE s\n", "stdin"}, "far": {"IMAGE ex/x\nEXPOSE x\n", "stdin"}}
	g, err := resolve.New(resolve.Options{WorkDir: dir, Store: st}).Resolve(context.Background(), filepath.Join(dir, "app/root.denv"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := envNames(g), "root=app/root near=app/near far=far stored=stored"; got != want {
		t.Errorf("envs = %q, want %q", got, want)
	}
	if img := g.Envs[1].Services[0].Image; img != "ex/near" {
		t.Errorf("near resolved to %s, want the file beside root", img)
	}
}

// TestRemote: a github: reference is fetched, and its bare references
// resolve inside the same repository (directory of the file, then the
// repository root) before the store.
func TestRemote(t *testing.T) {
	repos := &memRepos{files: map[string]string{
		"alebellu/ex/HEAD/ex/expert-system-env": "ENV ex/web-env\nIMAGE ex/expert-system LINK web-env\nEXPOSE ex/expert-system\n",
		"alebellu/ex/HEAD/ex/web-env":           "ENV worker-env\nIMAGE ex/db\nIMAGE ex/web LINK db, worker-env\nEXPOSE web\n",
		"alebellu/ex/HEAD/ex/worker-env":        "IMAGES ex/worker\nEXPOSE worker\n",
	}}
	g, err := resolve.New(resolve.Options{WorkDir: t.TempDir(), Fetcher: repos}).Resolve(context.Background(), "github:alebellu:ex:ex/expert-system-env")
	if err != nil {
		t.Fatal(err)
	}
	want := "expert-system-env=github:alebellu:ex@HEAD:ex/expert-system-env web-env=github:alebellu:ex@HEAD:ex/web-env worker-env=github:alebellu:ex@HEAD:ex/worker-env"
	if got := envNames(g); got != want {
		t.Errorf("envs = %q\nwant   %q", got, want)
	}
	for _, e := range g.Envs {
		if !e.Remote {
			t.Errorf("%s is not marked remote", e.Name)
		}
	}
	// ENV ex/web-env from ex/: tried ex/ex/web-env first, then ex/web-env.
	if got := strings.Join(repos.fetched, " "); !strings.Contains(got, "alebellu/ex/HEAD/ex/ex/web-env alebellu/ex/HEAD/ex/web-env") {
		t.Errorf("fetch order: %s", got)
	}
}

// TestRemoteBinds: a remote definition may not bind host paths unless
// allowed.
func TestRemoteBinds(t *testing.T) {
	repos := &memRepos{files: map[string]string{"o/r/HEAD/x": "IMAGE ex/x VOLUME /etc:/host-etc\n"}}
	_, err := resolve.New(resolve.Options{Fetcher: repos}).Resolve(context.Background(), "github:o:r:x")
	if err == nil || !strings.Contains(err.Error(), `may not bind the host path "/etc"`) {
		t.Fatalf("err = %v", err)
	}
	g, err := resolve.New(resolve.Options{Fetcher: repos, AllowRemoteBinds: true}).Resolve(context.Background(), "github:o:r:x")
	if err != nil {
		t.Fatal(err)
	}
	if v := g.Root.Services[0].Volumes[0]; v.Kind != resolve.BindMount || v.Source != "/etc" {
		t.Errorf("volume = %+v", v)
	}
}

// TestStoredRemoteOrigin: a stored definition that came from a repository
// resolves its references in that repository.
func TestStoredRemoteOrigin(t *testing.T) {
	repos := &memRepos{files: map[string]string{"o/r/v1/lib/base": "IMAGE ex/base\nEXPOSE base\n"}}
	st := memStore{"app": {"ENV lib/base\nIMAGE ex/app LINK base\n", "github:o:r@v1:app"}}
	g, err := resolve.New(resolve.Options{Store: st, Fetcher: repos}).Resolve(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := envNames(g), "app=github:o:r@v1:app base=github:o:r@v1:lib/base"; got != want {
		t.Errorf("envs = %q, want %q", got, want)
	}
}

// TestDeepChain: a chain of 2,000 includes resolves (no recursion limit
// hit) and a chain that closes on itself is one cycle error.
func TestDeepChain(t *testing.T) {
	files := map[string]string{}
	const n = 2000
	for i := range n {
		files[fmt.Sprintf("e%d.denv", i)] = fmt.Sprintf("ENV e%d\nIMAGE ex/s%d\nEXPOSE s%d\n", i+1, i, i)
	}
	files[fmt.Sprintf("e%d.denv", n)] = "IMAGE ex/last\nEXPOSE last\n"
	dir := writeFiles(t, files)
	g, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), filepath.Join(dir, "e0.denv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Envs) != n+1 {
		t.Errorf("%d envs, want %d", len(g.Envs), n+1)
	}
	os.WriteFile(filepath.Join(dir, fmt.Sprintf("e%d.denv", n)), []byte("ENV e0\nIMAGE ex/last\n"), 0o644)
	_, err = resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), filepath.Join(dir, "e0.denv"))
	if err == nil || strings.Count(err.Error(), "\n") != 0 || !strings.Contains(err.Error(), "include cycle: e0.denv:1 ENV e1 -> ") {
		t.Errorf("want one cycle error, got %.300v", err)
	}
}

// TestLocalFile checks the "file or file.denv" rule Resolve and denv add share.
func TestLocalFile(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"a.denv", "b", "b.denv", "d.denv"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("IMAGE x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"d", "e", "f.denv"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ arg, want, err string }{
		{"a", "a.denv", ""},
		{"a.denv", "a.denv", ""},
		{"b", "b", ""},      // the file itself comes first
		{"d", "d.denv", ""}, // a directory does not hide d.denv
		{"e", "", "not a regular file"},
		{"f", "", "not a regular file"},
		{"g", "", "no such file"},
		{"g.denv", "", "no such file"},
	} {
		got, err := resolve.LocalFile(filepath.Join(dir, c.arg))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("LocalFile(%s) = %q, %v; want error %q", c.arg, got, err, c.err)
			}
			continue
		}
		if err != nil || got != filepath.Join(dir, c.want) {
			t.Errorf("LocalFile(%s) = %q, %v; want %s", c.arg, got, err, c.want)
		}
	}
}

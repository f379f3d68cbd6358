package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func openTemp(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "denv"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func def(name, content string, includes ...string) Definition {
	return Definition{Name: name, Content: []byte(content), Origin: "/src/" + name + ".denv", Images: 1, Includes: includes}
}

// readIndexFile decodes index.json as a generic document, independently of
// the package's own types.
func readIndexFile(t *testing.T, s *Store) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.Dir(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatalf("index.json is not JSON: %v", err)
	}
	return doc
}

// objectFiles lists the names in objects/.
func objectFiles(t *testing.T, s *Store) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.Dir(), "objects"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // never written
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// tempFiles lists temporary files anywhere in the store.
func tempFiles(t *testing.T, s *Store) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			found = append(found, p)
		}
		return nil
	})
	return found
}

func TestDefaultDir(t *testing.T) {
	home := func() (string, error) { return "/home/me", nil }
	noHome := func() (string, error) { return "", errors.New("$HOME is not defined") }
	tests := []struct {
		env  map[string]string
		home func() (string, error)
		want string
	}{
		{map[string]string{"DENV_HOME": "/opt/denv", "XDG_DATA_HOME": "/xdg"}, home, "/opt/denv"},
		{map[string]string{"XDG_DATA_HOME": "/xdg"}, home, "/xdg/denv"},
		{map[string]string{"XDG_DATA_HOME": "relative/xdg"}, home, "/home/me/.local/share/denv"},
		{map[string]string{}, home, "/home/me/.local/share/denv"},
		{map[string]string{"DENV_HOME": "/opt/denv"}, noHome, "/opt/denv"},
	}
	for _, tt := range tests {
		got, err := defaultDir(func(k string) string { return tt.env[k] }, tt.home)
		if err != nil || got != tt.want {
			t.Errorf("defaultDir(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
	_, err := defaultDir(func(string) string { return "" }, noHome)
	if err == nil || !strings.Contains(err.Error(), "DENV_HOME") {
		t.Errorf("defaultDir without HOME: err = %v, want one suggesting DENV_HOME", err)
	}
}

func TestValidName(t *testing.T) {
	for _, name := range []string{"worker-env", "ex/web-env", "a", "0", "a.b_c-d/e1", strings.Repeat("a", 128), "a/b/c/d"} {
		if err := ValidName(name); err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", name, err)
		}
	}
	bad := map[string]string{
		"":                       "empty",
		strings.Repeat("a", 129): "129 characters",
		"/abs":                   `starts with "/"`,
		"ex/":                    `ends with "/"`,
		"ex//web":                "empty segment",
		"../x":                   `".."`,
		"a..b":                   `".."`,
		"Web":                    `segment "Web" must start`,
		"ex/.hidden":             `segment ".hidden" must start`,
		"ex/-x":                  `segment "-x" must start`,
		"web env":                `segment "web env" contains ' '`,
		`ex\web`:                 "contains '\\\\'",
		"ex:web":                 "contains ':'",
	}
	for name, want := range bad {
		err := ValidName(name)
		if err == nil {
			t.Errorf("ValidName(%q) = nil, want an error", name)
			continue
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "[a-z0-9][a-z0-9._-]*") {
			t.Errorf("ValidName(%q) = %q, want it to contain %q and state the rule", name, err, want)
		}
	}
}

// TestOpenCreatesDirOnFirstWrite: reading a store that was never written
// creates nothing; the first write creates the directory.
func TestOpenCreatesDirOnFirstWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b", "denv")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", s.Dir(), dir)
	}
	if defs, err := s.List(); err != nil || len(defs) != 0 {
		t.Errorf("List of a new store = %v, %v; want nothing", defs, err)
	}
	if _, _, found, err := s.Lookup("web"); err != nil || found {
		t.Errorf("Lookup in a new store: found %v, err %v", found, err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("reading a new store created %s", dir)
	}
	if err := s.Add([]Definition{{Name: "web", Origin: "stdin", Content: []byte("IMAGE ex/web\n")}}, nil); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("the first Add did not create %s: %v", dir, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(file); err == nil {
		t.Error("Open on a regular file succeeded")
	}
}

func TestAddGetRoundTrip(t *testing.T) {
	s := openTemp(t)
	content := []byte("env web-env {\n}\n")
	before := time.Now().UTC().Truncate(time.Second)
	err := s.Add([]Definition{{
		Name:     "ex/web-env",
		Content:  content,
		Origin:   "github:alebellu:ex@HEAD:ex/web-env",
		Digest:   "ignored",
		Images:   3,
		Includes: nil,
	}, {
		Name:     "ex/expert-system-env",
		Content:  []byte("env expert-system-env { include web-env }\n"),
		Origin:   "stdin",
		Images:   2,
		Includes: []string{"ex/web-env", "ex/web-env"},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UTC()

	d, err := s.Get("ex/web-env")
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "ex/web-env" || string(d.Content) != string(content) ||
		d.Origin != "github:alebellu:ex@HEAD:ex/web-env" || d.Images != 3 || len(d.Includes) != 0 {
		t.Errorf("Get = %+v", d)
	}
	if d.Digest != digestOf(content) {
		t.Errorf("Digest = %q, want %q", d.Digest, digestOf(content))
	}
	if d.Added.Before(before) || d.Added.After(after) || d.Added.Location() != time.UTC || d.Added.Nanosecond() != 0 {
		t.Errorf("Added = %v, want a UTC second between %v and %v", d.Added, before, after)
	}

	// The bytes on disk: the object named by the digest holds the content,
	// and the index records the metadata.
	onDisk, err := os.ReadFile(filepath.Join(s.Dir(), "objects", digestOf(content)+".denv"))
	if err != nil || string(onDisk) != string(content) {
		t.Fatalf("object file = %q, %v; want the content", onDisk, err)
	}
	doc := readIndexFile(t, s)
	if doc["version"] != 1.0 {
		t.Errorf("index version = %v", doc["version"])
	}
	defs := doc["definitions"].([]any)
	if len(defs) != 2 {
		t.Fatalf("index has %d definitions, want 2", len(defs))
	}
	first := defs[0].(map[string]any)
	if first["name"] != "ex/expert-system-env" || first["origin"] != "stdin" || first["images"] != 2.0 {
		t.Errorf("first index entry = %v", first)
	}
	if incs := first["includes"].([]any); len(incs) != 1 || incs[0] != "ex/web-env" {
		t.Errorf("includes on disk = %v, want [ex/web-env]", incs)
	}
	if _, err := time.Parse(time.RFC3339, first["added"].(string)); err != nil || !strings.HasSuffix(first["added"].(string), "Z") {
		t.Errorf("added on disk = %v, want UTC RFC3339", first["added"])
	}
	if info, err := os.Stat(filepath.Join(s.Dir(), "index.json")); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("index.json mode = %v, %v; want 0600 (definitions may hold secrets)", info.Mode(), err)
	}

	data, origin, found, err := s.Lookup("ex/expert-system-env")
	if err != nil || !found || origin != "stdin" || string(data) != "env expert-system-env { include web-env }\n" {
		t.Errorf("Lookup = %q, %q, %v, %v", data, origin, found, err)
	}

	// A second Store on the same directory sees the same thing.
	s2, err := Open(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if d2, err := s2.Get("ex/web-env"); err != nil || d2.Digest != d.Digest {
		t.Errorf("Get through a second Store = %+v, %v", d2, err)
	}
}

func TestGetLookupMissing(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("present", "x")}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get("absent")
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != `definition "absent" is not in the store` {
		t.Errorf("Get(absent) error = %v, want not-in-store matching fs.ErrNotExist", err)
	}
	for _, name := range []string{"absent", "Invalid Name", "../x", ""} {
		data, origin, found, err := s.Lookup(name)
		if found || err != nil || data != nil || origin != "" {
			t.Errorf("Lookup(%q) = %q, %q, %v, %v; want not found, no error", name, data, origin, found, err)
		}
	}
	if _, err := s.Get("Bad"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(Bad) = %v, want the name rule", err)
	}
}

func TestEmptyStore(t *testing.T) {
	s := openTemp(t)
	defs, err := s.List()
	if err != nil || len(defs) != 0 {
		t.Errorf("List on an empty store = %v, %v", defs, err)
	}
	if _, ok, err := s.CachedRemote("o", "r", "HEAD", "p"); ok || err != nil {
		t.Errorf("CachedRemote on an empty store = %v, %v", ok, err)
	}
}

func TestReAddReplaces(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("web", "version 1")}, nil); err != nil {
		t.Fatal(err)
	}
	v2 := def("web", "version 2")
	v2.Origin, v2.Images = "stdin", 7
	if err := s.Add([]Definition{v2}, nil); err != nil {
		t.Fatal(err)
	}
	d, err := s.Get("web")
	if err != nil || string(d.Content) != "version 2" || d.Origin != "stdin" || d.Images != 7 {
		t.Fatalf("Get after re-add = %+v, %v", d, err)
	}
	if got, want := objectFiles(t, s), []string{digestOf([]byte("version 2")) + ".denv"}; !slices.Equal(got, want) {
		t.Errorf("objects after re-add = %v, want only %v", got, want)
	}
	if defs, _ := s.List(); len(defs) != 1 {
		t.Errorf("List after re-add has %d entries, want 1", len(defs))
	}
}

func TestSharedContentIsOneObject(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("a", "same"), def("b", "same")}, []RemoteFile{{"o", "r", "HEAD", "a", []byte("same")}}); err != nil {
		t.Fatal(err)
	}
	obj := digestOf([]byte("same")) + ".denv"
	if got := objectFiles(t, s); !slices.Equal(got, []string{obj}) {
		t.Fatalf("objects = %v, want just %s", got, obj)
	}
	if err := s.Remove("a", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("b", false); err != nil {
		t.Fatal(err)
	}
	// Still named by the cached remote file.
	if got := objectFiles(t, s); !slices.Equal(got, []string{obj}) {
		t.Fatalf("objects after removing both definitions = %v, want %s kept for the remote cache", got, obj)
	}
	if data, ok, err := s.CachedRemote("o", "r", "HEAD", "a"); !ok || err != nil || string(data) != "same" {
		t.Errorf("CachedRemote = %q, %v, %v", data, ok, err)
	}
}

func TestAddRefusesBadBatches(t *testing.T) {
	tests := []struct {
		name    string
		defs    []Definition
		remotes []RemoteFile
		wantErr string
	}{
		{"bad name", []Definition{def("Web", "x")}, nil, `invalid definition name "Web"`},
		{"twice", []Definition{def("a", "x"), def("a", "y")}, nil, `"a" appears twice`},
		{"relative origin", []Definition{{Name: "a", Origin: "rel/a.denv"}}, nil, `origin "rel/a.denv" must be`},
		{"empty origin", []Definition{{Name: "a"}}, nil, `origin "" must be`},
		{"negative images", []Definition{{Name: "a", Origin: "stdin", Images: -1}}, nil, "negative"},
		{"self include", []Definition{def("a", "x", "a")}, nil, `"a" includes itself`},
		{"bad include", []Definition{def("a", "x", "B")}, nil, `"a" includes invalid definition name "B"`},
		{"missing include", []Definition{def("a", "x", "b")}, nil, `"a" includes "b", which is neither stored nor being added`},
		{"remote without path", nil, []RemoteFile{{"o", "r", "HEAD", "", nil}}, "empty path"},
		{"remote control char", nil, []RemoteFile{{"o", "r", "HEAD", "a\nb", nil}}, "control character"},
		{"remote conflict", nil, []RemoteFile{{"o", "r", "HEAD", "p", []byte("1")}, {"o", "r", "HEAD", "p", []byte("2")}}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTemp(t)
			err := s.Add(tt.defs, tt.remotes)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Add = %v, want an error containing %q", err, tt.wantErr)
			}
			if _, err := os.Stat(filepath.Join(s.Dir(), "index.json")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("a refused batch wrote index.json (%v)", err)
			}
			if objs := objectFiles(t, s); len(objs) != 0 {
				t.Errorf("a refused batch left objects %v", objs)
			}
		})
	}
}

func TestAddIncludesWithinBatchAndStore(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("ex/top", "t", "ex/web"), def("ex/web", "w")}, nil); err != nil {
		t.Fatalf("include added in the same batch: %v", err)
	}
	if err := s.Add([]Definition{def("other", "o", "ex/web")}, nil); err != nil {
		t.Fatalf("include already stored: %v", err)
	}
	if err := s.Add(nil, []RemoteFile{{"o", "r", "HEAD", "p", []byte("1")}, {"o", "r", "HEAD", "p", []byte("1")}}); err != nil {
		t.Fatalf("an exact repeat of a remote file: %v", err)
	}
}

// TestAddIsAllOrNothing makes the third object of a batch impossible to
// write (a directory sits where it goes) and checks that nothing of the
// batch is visible afterwards and no temporary file is left.
func TestAddIsAllOrNothing(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("keep", "kept content")}, []RemoteFile{{"o", "r", "HEAD", "old", []byte("old remote")}}); err != nil {
		t.Fatal(err)
	}
	indexBefore, err := os.ReadFile(filepath.Join(s.Dir(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	blocked := filepath.Join(s.Dir(), "objects", digestOf([]byte("third"))+".denv")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}

	err = s.Add([]Definition{
		def("first", "first"),
		def("keep", "replacement for keep"),
		def("third", "third"),
	}, []RemoteFile{{"o", "r", "HEAD", "new", []byte("new remote")}})
	if err == nil {
		t.Fatal("Add succeeded although an object could not be written")
	}
	if !strings.HasPrefix(err.Error(), "cannot write to the definition store: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error = %q, want one line saying the store could not be written", err)
	}

	indexAfter, _ := os.ReadFile(filepath.Join(s.Dir(), "index.json"))
	if string(indexAfter) != string(indexBefore) {
		t.Errorf("index.json changed by a failed batch:\n%s", indexAfter)
	}
	if _, err := s.Get("first"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(first) after the failed batch: %v, want not found", err)
	}
	if d, err := s.Get("keep"); err != nil || string(d.Content) != "kept content" {
		t.Errorf("Get(keep) after the failed batch = %q, %v; want the old content", d.Content, err)
	}
	if _, ok, _ := s.CachedRemote("o", "r", "HEAD", "new"); ok {
		t.Error("the failed batch's remote file is visible")
	}
	if tmp := tempFiles(t, s); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	want := []string{digestOf([]byte("kept content")) + ".denv", digestOf([]byte("old remote")) + ".denv", filepath.Base(blocked)}
	slices.Sort(want)
	if got := objectFiles(t, s); !slices.Equal(got, want) {
		t.Errorf("objects after the failed batch = %v, want %v (the batch's objects removed)", got, want)
	}

	// Once the obstacle is gone the same batch goes through.
	os.RemoveAll(blocked)
	if err := s.Add([]Definition{def("first", "first"), def("third", "third")}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestList(t *testing.T) {
	s := openTemp(t)
	names := []string{"zeta", "ex/web-env", "alpha", "ex/expert-system-env", "ex.b", "ex-a"}
	for _, n := range names {
		if err := s.Add([]Definition{def(n, "content of "+n)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	defs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range defs {
		got = append(got, d.Name)
		if d.Content != nil {
			t.Errorf("List returned content for %s", d.Name)
		}
		if d.Digest != digestOf([]byte("content of "+d.Name)) || d.Origin != "/src/"+d.Name+".denv" || d.Images != 1 || d.Added.IsZero() {
			t.Errorf("List entry %+v", d)
		}
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("List names = %v, want %v", got, want)
	}
}

func TestRemove(t *testing.T) {
	s := openTemp(t)
	err := s.Add([]Definition{
		def("ex/web-env", "web"),
		def("ex/expert-system-env", "expert", "ex/web-env"),
		def("ex/other", "other", "ex/web-env"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}

	err = s.Remove("ex/web-env", false)
	want := `"ex/web-env" is included by "ex/expert-system-env", "ex/other"; use --force`
	if err == nil || err.Error() != want {
		t.Fatalf("Remove of an included definition = %v, want %q", err, want)
	}
	if _, err := s.Get("ex/web-env"); err != nil {
		t.Fatalf("refused Remove removed it anyway: %v", err)
	}

	if err := s.Remove("ex/other", false); err != nil {
		t.Fatal(err)
	}
	err = s.Remove("ex/web-env", false)
	want = `"ex/web-env" is included by "ex/expert-system-env"; use --force`
	if err == nil || err.Error() != want {
		t.Fatalf("Remove = %v, want %q", err, want)
	}

	if err := s.Remove("ex/web-env", true); err != nil {
		t.Fatalf("forced Remove: %v", err)
	}
	if _, err := s.Get("ex/web-env"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get after forced Remove: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "objects", digestOf([]byte("web"))+".denv")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("object of the removed definition still on disk (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "objects", digestOf([]byte("expert"))+".denv")); err != nil {
		t.Errorf("object of a kept definition gone: %v", err)
	}

	err = s.Remove("ex/web-env", false)
	if !errors.Is(err, fs.ErrNotExist) || err.Error() != `definition "ex/web-env" is not in the store` {
		t.Errorf("Remove of an absent name = %v", err)
	}
	if err := s.Remove("../x", true); err == nil || !strings.Contains(err.Error(), "invalid definition name") {
		t.Errorf("Remove of an invalid name = %v", err)
	}
}

func TestCachedRemote(t *testing.T) {
	s := openTemp(t)
	err := s.Add(nil, []RemoteFile{
		{"alebellu", "ex", "HEAD", "ex/expert-system-env", []byte("expert")},
		{"alebellu", "ex", "v1", "ex/expert-system-env", []byte("expert v1")},
		{"alebellu", "ex", "feature/x", "ex/web-env", []byte("web")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		owner, repo, ref, path string
		want                   string
		ok                     bool
	}{
		{"alebellu", "ex", "HEAD", "ex/expert-system-env", "expert", true},
		{"alebellu", "ex", "v1", "ex/expert-system-env", "expert v1", true},
		{"alebellu", "ex", "feature/x", "ex/web-env", "web", true},
		{"alebellu", "ex", "HEAD", "ex/web-env", "", false},
		{"alebellu", "other", "HEAD", "ex/expert-system-env", "", false},
		{"someone", "ex", "HEAD", "ex/expert-system-env", "", false},
	}
	for _, tt := range tests {
		data, ok, err := s.CachedRemote(tt.owner, tt.repo, tt.ref, tt.path)
		if err != nil || ok != tt.ok || string(data) != tt.want {
			t.Errorf("CachedRemote(%s, %s, %s, %s) = %q, %v, %v; want %q, %v", tt.owner, tt.repo, tt.ref, tt.path, data, ok, err, tt.want, tt.ok)
		}
	}
	// Re-adding a remote file replaces the cached content.
	if err := s.Add(nil, []RemoteFile{{"alebellu", "ex", "HEAD", "ex/expert-system-env", []byte("expert 2")}}); err != nil {
		t.Fatal(err)
	}
	if data, _, _ := s.CachedRemote("alebellu", "ex", "HEAD", "ex/expert-system-env"); string(data) != "expert 2" {
		t.Errorf("CachedRemote after re-add = %q", data)
	}
	if remotes := readIndexFile(t, s)["remotes"].([]any); len(remotes) != 3 {
		t.Errorf("index has %d remote entries, want 3", len(remotes))
	}
}

func TestDamageIsReported(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("web", "original")}, []RemoteFile{{"o", "r", "HEAD", "p", []byte("remote")}}); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(s.Dir(), "objects", digestOf([]byte("original"))+".denv")
	if err := os.WriteFile(obj, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("web"); err == nil || !strings.Contains(err.Error(), "does not match its digest") {
		t.Errorf("Get of a tampered object = %v", err)
	}
	if _, _, found, err := s.Lookup("web"); found || err == nil {
		t.Errorf("Lookup of a tampered object: found=%v err=%v, want an error", found, err)
	}
	// Re-adding repairs it.
	if err := s.Add([]Definition{def("web", "original")}, nil); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Get("web"); err != nil || string(d.Content) != "original" {
		t.Errorf("Get after re-adding = %q, %v", d.Content, err)
	}

	os.Remove(filepath.Join(s.Dir(), "objects", digestOf([]byte("remote"))+".denv"))
	if _, _, err := s.CachedRemote("o", "r", "HEAD", "p"); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("CachedRemote of a missing object = %v", err)
	}

	os.WriteFile(filepath.Join(s.Dir(), "index.json"), []byte("{not json"), 0o644)
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "is damaged") {
		t.Errorf("List with a broken index = %v", err)
	}
	if err := s.Add([]Definition{def("x", "x")}, nil); err == nil {
		t.Error("Add over a broken index succeeded (it would have discarded the index)")
	}
	os.WriteFile(filepath.Join(s.Dir(), "index.json"), []byte(`{"version": 2}`), 0o644)
	if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("List with a newer index = %v", err)
	}
}

// TestCollectsCrashLeftovers plants what a process killed mid-transaction
// leaves (temporary files, an object the index never got to name) and
// checks the next write transaction removes it.
func TestCollectsCrashLeftovers(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("a", "a")}, nil); err != nil {
		t.Fatal(err)
	}
	orphan := digestOf([]byte("orphan")) + ".denv"
	for _, p := range []string{".tmp-123", "objects/.tmp-456", "objects/" + orphan} {
		if err := os.WriteFile(filepath.Join(s.Dir(), p), []byte("orphan"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	unrelated := filepath.Join(s.Dir(), "objects", "README")
	os.WriteFile(unrelated, []byte("not ours"), 0o644)
	if err := s.Add([]Definition{def("b", "b")}, nil); err != nil {
		t.Fatal(err)
	}
	if tmp := tempFiles(t, s); len(tmp) != 0 {
		t.Errorf("temporary files survived: %v", tmp)
	}
	want := []string{digestOf([]byte("a")) + ".denv", digestOf([]byte("b")) + ".denv", "README"}
	slices.Sort(want)
	if got := objectFiles(t, s); !slices.Equal(got, want) {
		t.Errorf("objects = %v, want %v", got, want)
	}
}

// TestWriterWaitsForLock holds the exclusive lock and checks that Add does
// not complete until it is released.
func TestWriterWaitsForLock(t *testing.T) {
	s := openTemp(t)
	unlock, err := s.lock(true)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Add([]Definition{def("a", "a")}, nil) }()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Add finished while another transaction held the lock (err %v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Add still blocked after the lock was released")
	}
}

// TestIndexCacheSeesOtherWriters: a Store keeps its decoded index between
// reads, and must still see what another Store (another process) wrote.
func TestIndexCacheSeesOtherWriters(t *testing.T) {
	a := openTemp(t)
	b, err := Open(a.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add([]Definition{def("one", "IMAGE ex/one\n")}, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second read is served from the cache
		if _, _, found, err := a.Lookup("one"); !found || err != nil {
			t.Fatalf("one: found %v, %v", found, err)
		}
	}
	if err := b.Add([]Definition{def("two", "IMAGE ex/two\n")}, nil); err != nil {
		t.Fatal(err)
	}
	if data, _, found, err := a.Lookup("two"); !found || err != nil || string(data) != "IMAGE ex/two\n" {
		t.Fatalf("two through the first store: %q, found %v, %v", data, found, err)
	}
	if err := b.Remove("one", false); err != nil {
		t.Fatal(err)
	}
	if _, _, found, _ := a.Lookup("one"); found {
		t.Fatal("the first store still finds a definition the second removed")
	}
}

// TestIndexWithoutVersionRefused: `{}`, `null` and an index missing its
// version decode into an empty index; read as an empty store, the next Add
// deleted every object. They must be refused like a damaged index and leave
// every object in place.
func TestIndexWithoutVersionRefused(t *testing.T) {
	for _, content := range []string{`{}`, `null`, `{"definitions": [], "remotes": []}`, `{"version": 0}`} {
		s := openTemp(t)
		if err := s.Add([]Definition{def("web", "original")}, nil); err != nil {
			t.Fatal(err)
		}
		obj := filepath.Join(s.Dir(), "objects", digestOf([]byte("original"))+".denv")
		if err := os.WriteFile(filepath.Join(s.Dir(), "index.json"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := s.List(); err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Errorf("index %s: List = %v, want a damaged-index error", content, err)
		}
		if err := s.Add([]Definition{def("x", "x")}, nil); err == nil || !strings.Contains(err.Error(), "is damaged") {
			t.Errorf("index %s: Add = %v, want a damaged-index error", content, err)
		}
		if _, err := os.Stat(obj); err != nil {
			t.Errorf("index %s: object of web is gone: %v", content, err)
		}
	}
}

// TestMissingIndexKeepsObjects: a store whose index.json was deleted still
// has objects an index named; the next Add must not delete them.
func TestMissingIndexKeepsObjects(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("web", "original")}, nil); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(s.Dir(), "objects", digestOf([]byte("original"))+".denv")
	if err := os.Remove(filepath.Join(s.Dir(), "index.json")); err != nil {
		t.Fatal(err)
	}
	if err := s.Add([]Definition{def("x", "x")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(obj); err != nil {
		t.Errorf("object of web deleted by an Add without index: %v", err)
	}
}

// TestStoreFilesPrivate: definitions may hold secrets (SET values), so the
// store's directories are 0700 and its files 0600 whatever the umask.
func TestStoreFilesPrivate(t *testing.T) {
	s := openTemp(t)
	if err := s.Add([]Definition{def("web", "SET TOKEN=s3cr3t")}, nil); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(s.Dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, st.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package resolve_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/resolve"
)

// fileSet serves a small set of definition files from memory under dir:
// root.denv, a.denv, b.denv and lib/c.denv. Only root.denv exists on disk
// (Resolve stats the file it is given); every read goes through ReadFile.
type fileSet struct {
	dir   string
	files map[string][]byte
}

func newFileSet(tb testing.TB) *fileSet {
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "root.denv"), nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	return &fileSet{dir: dir, files: map[string][]byte{}}
}

func (fs_ *fileSet) set(root, a, b, c []byte) {
	clear(fs_.files)
	fs_.files[filepath.Join(fs_.dir, "root.denv")] = root
	fs_.files[filepath.Join(fs_.dir, "a.denv")] = a
	fs_.files[filepath.Join(fs_.dir, "b.denv")] = b
	fs_.files[filepath.Join(fs_.dir, "lib", "c.denv")] = c
}

func (fs_ *fileSet) readFile(name string) ([]byte, error) {
	if b, ok := fs_.files[name]; ok {
		return b, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// resolveAndCompile runs the whole compiler on the file set and checks the
// error contract: every failure is one or more one-line messages, and each
// diagnostic names the file it is about.
func resolveAndCompile(t *testing.T, set *fileSet) error {
	t.Helper()
	g, err := resolve.New(resolve.Options{WorkDir: set.dir, ReadFile: set.readFile}).
		Resolve(context.Background(), filepath.Join(set.dir, "root.denv"))
	if err == nil {
		p, cerr := compile.Compile(g, compile.Options{Name: "fuzz"})
		if cerr == nil {
			if _, yerr := compile.YAML(p); yerr != nil {
				t.Fatalf("YAML of a compiled project failed: %v", yerr)
			}
			return nil
		}
		err = cerr
	}
	checkErrorContract(t, err)
	return err
}

func checkErrorContract(t *testing.T, err error) {
	t.Helper()
	var list diag.List
	if errors.As(err, &list) {
		for _, d := range list {
			if d.Pos.File == "" {
				t.Errorf("diagnostic without a file: %q", d.Error())
			}
			if strings.Contains(d.Error(), "\n") {
				t.Errorf("diagnostic over several lines: %q", d.Error())
			}
		}
		return
	}
	if strings.Contains(err.Error(), "\n") || err.Error() == "" {
		t.Errorf("error is not one line: %q", err.Error())
	}
}

// FuzzResolveCompile lets the fuzzer write four definition files that may
// include each other (ENV a, ENV b, ENV lib/c, ENV root, cycles included)
// and runs resolve, compile and the YAML writer on them: nothing may panic
// or hang, and every error keeps the one-line contract.
func FuzzResolveCompile(f *testing.F) {
	seeds := [][4]string{
		{"ENV a\nENV b\nIMAGE ex/web LINK a PORT 8080\nEXPOSE web", "ENV lib/c\nIMAGE ex/db VOLUME data:/d\nEXPOSE db", "ENV lib/c AS c2\nIMAGES ex/x ex/y", "IMAGE ex/q SET A=b CMD [\"q\", \"-v\"]\nEXPOSE q"},
		{"ENV a", "ENV b", "ENV root", ""},
		{"ENV a AS x\nENV a AS y\nIMAGE i LINK x, y", "IMAGE s\nEXPOSE s", "", ""},
		{"ENV lib/c\nIMAGE ex/w AS c", "", "", "ENV ../a"},
		{"IMAGE a LINK b\nIMAGE b LINK a", "", "", ""},
		{"ENV github:o:r:p\nENV /etc/passwd", "ENV A\n", "IMAGE x VOLUME /host:/c", "\xff"},
		{"IMAGE ex/a PORT 70000, 80:80/udp, 1-2 VOLUME :/x", "", "", ""},
		{"ENV a\nIMAGE ex/w LINK a, d READY \"p -q\" WITHIN 2m\nIMAGE ex/d READY [\"x\"] WITHIN 0s", "IMAGE ex/s READY [\"/app\", \"health\"]\nEXPOSE s", "", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3])
	}
	// the golden definitions, each as the root
	golden, _ := filepath.Glob("../testdata/golden/*.denv")
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "IMAGE ex/a\nEXPOSE ex/a", "", "")
	}
	// one directory for every run: the files live in memory, and a fuzz
	// worker calls the function sequentially
	set := newFileSet(f)
	f.Fuzz(func(t *testing.T, root, a, b, c string) {
		set.set([]byte(root), []byte(a), []byte(b), []byte(c))
		resolveAndCompile(t, set)
	})
}

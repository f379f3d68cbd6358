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
	return resolveAndCompileWith(t, set, nil)
}

// resolveAndCompileWith is resolveAndCompile with the root's parameter
// values.
func resolveAndCompileWith(t *testing.T, set *fileSet, params map[string]string) error {
	t.Helper()
	g, err := resolve.New(resolve.Options{WorkDir: set.dir, ReadFile: set.readFile, Params: params}).
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
// and the root's --set words (one a line), and runs resolve, compile and
// the YAML writer on them: nothing may panic or hang, and every error keeps
// the one-line contract.
func FuzzResolveCompile(f *testing.F) {
	seeds := [][5]string{
		{"ENV a\nENV b\nIMAGE ex/web LINK a PORT 8080\nEXPOSE web", "ENV lib/c\nIMAGE ex/db VOLUME data:/d\nEXPOSE db", "ENV lib/c AS c2\nIMAGES ex/x ex/y", "IMAGE ex/q SET A=b CMD [\"q\", \"-v\"]\nEXPOSE q"},
		{"ENV a", "ENV b", "ENV root", ""},
		{"ENV a AS x\nENV a AS y\nIMAGE i LINK x, y", "IMAGE s\nEXPOSE s", "", ""},
		{"ENV lib/c\nIMAGE ex/w AS c", "", "", "ENV ../a"},
		{"IMAGE a LINK b\nIMAGE b LINK a", "", "", ""},
		{"ENV github:o:r:p\nENV /etc/passwd", "ENV A\n", "IMAGE x VOLUME /host:/c", "\xff"},
		{"IMAGE ex/a PORT 70000, 80:80/udp, 1-2 VOLUME :/x", "", "", ""},
		// parameters: passed, defaulted, diamonds with equal and different
		// values, undeclared and unknown names, literals
		{"PARAM v = \"1\"\nPARAM pw\nENV a WITH v=${v}, pw=${pw}\nENV b\nIMAGE ex/r:${v} LINK a SET P=${pw} CMD \"r ${v} $${x}\" PORT ${v}0:80\nEXPOSE r",
			"PARAM v\nPARAM pw = \"x\"\nENV lib/c WITH t=${v}\nIMAGE ex/db:${v} SET K=\"$v $${v}\"\nEXPOSE db",
			"ENV a WITH v=2, pw=3\nENV lib/c WITH t=1\nIMAGE ex/b", "PARAM t\nIMAGE ex/c:${t}\nEXPOSE c", "v=7\npw=secret"},
		{"ENV a WITH x=1, x=2\nIMAGE ex/r:${", "PARAM", "PARAM x = ${y}", "", "nope=1\n=\nbad"},
		{"ENV a\nIMAGE ex/w LINK a, d READY \"p -q\" WITHIN 2m\nIMAGE ex/d READY [\"x\"] WITHIN 0s", "IMAGE ex/s READY [\"/app\", \"health\"]\nEXPOSE s", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	// the golden definitions, each as the root
	golden, _ := filepath.Glob("../testdata/golden/*.denv")
	for _, g := range golden {
		b, err := os.ReadFile(g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "IMAGE ex/a\nEXPOSE ex/a", "", "", "")
	}
	// one directory for every run: the files live in memory, and a fuzz
	// worker calls the function sequentially
	set := newFileSet(f)
	f.Fuzz(func(t *testing.T, root, a, b, c, sets string) {
		set.set([]byte(root), []byte(a), []byte(b), []byte(c))
		var params map[string]string
		if sets != "" {
			var err error
			if params, err = resolve.ParseSets(strings.Split(sets, "\n")); err != nil {
				checkErrorContract(t, err)
				return
			}
		}
		resolveAndCompileWith(t, set, params)
	})
}

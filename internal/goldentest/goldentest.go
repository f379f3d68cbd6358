// Package goldentest is what the golden tests of compile's output stages
// (compose, swarm, kubernetes) share: building a project from a definition
// and comparing output with a golden file.
package goldentest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/resolve"
)

// Cases are the golden cases of the output stages: the seed's
// expert-system environment, the diamond, parameters and readiness, each resolved from its own
// working directory (relative to a package directory).
var Cases = []struct{ Name, Dir, Def string }{
	{"expert-system-env", "..", "examples/expert-system-env.denv"},
	{"diamond", "../testdata/golden", "diamond.denv"},
	{"params", "../testdata/golden", "params.denv"},
	{"ready", "../testdata/golden", "ready.denv"},
}

// Project resolves def with dir as working directory (so that paths in the
// output are relative to it) and compiles it.
func Project(t testing.TB, dir, def string) *types.Project {
	t.Helper()
	return ProjectWith(t, dir, def, compile.Options{})
}

// ProjectWith is [Project] with compile options.
func ProjectWith(t testing.TB, dir, def string, opts compile.Options) *types.Project {
	t.Helper()
	wd, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := resolve.New(resolve.Options{WorkDir: wd}).Resolve(context.Background(), filepath.Join(wd, def))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compile.Compile(g, opts)
	if err != nil {
		t.Fatalf("%s: %v", def, err)
	}
	return p
}

// Dir writes files (name -> content) into a new temporary directory and
// returns it.
func Dir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Stable renders three more times and fails unless each rendering equals
// out.
func Stable(t testing.TB, out []byte, render func() ([]byte, error)) {
	t.Helper()
	for range 3 {
		again, err := render()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("two renderings differ (%v)", err)
		}
	}
}

// Compare compares got with the golden file, or rewrites the file when
// update is set (go test PKG -update).
func Compare(t testing.TB, golden string, got []byte, update bool, pkg string) {
	t.Helper()
	if update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test %s -update)", err, pkg)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (run go test %s -update to accept):\n--- got\n%s", golden, pkg, got)
	}
}

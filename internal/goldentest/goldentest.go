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

// Project resolves def with dir as working directory (so that paths in the
// output are relative to it) and compiles it.
func Project(t testing.TB, dir, def string) *types.Project {
	t.Helper()
	wd, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := resolve.New(resolve.Options{WorkDir: wd}).Resolve(context.Background(), filepath.Join(wd, def))
	if err != nil {
		t.Fatal(err)
	}
	p, err := compile.Compile(g, compile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
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

package compile_test

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/goldentest"
	"github.com/alebellu/denv/resolve"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const goldenDir = "../testdata/golden"

// build resolves and compiles the definition at path with the golden
// directory as working directory, so that output holds no host path.
func build(t testing.TB, dir, def string) ([]byte, error) {
	t.Helper()
	wd, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := resolve.New(resolve.Options{WorkDir: wd}).Resolve(context.Background(), filepath.Join(wd, def))
	if err != nil {
		return nil, err
	}
	p, err := compile.Compile(g, compile.Options{BaseDir: wd})
	if err != nil {
		return nil, err
	}
	return compile.YAML(p)
}

// TestGolden compiles every testdata/golden/<case>.denv and compares the
// result with <case>.compose.yaml, or, for a definition that must fail,
// its diagnostics with <case>.err.
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(goldenDir, "*.denv"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no golden cases in " + goldenDir)
	}
	for _, c := range cases {
		base := strings.TrimSuffix(filepath.Base(c), ".denv")
		t.Run(base, func(t *testing.T) {
			out, err := build(t, goldenDir, base+".denv")
			wantErr := strings.HasPrefix(base, "err-")
			var got []byte
			var golden string
			switch {
			case wantErr && err == nil:
				t.Fatalf("compiled without error; a case named err-* must fail:\n%s", out)
			case !wantErr && err != nil:
				t.Fatalf("unexpected error:\n%v", err)
			case wantErr:
				got, golden = []byte(err.Error()+"\n"), filepath.Join(goldenDir, base+".err")
			default:
				got, golden = out, filepath.Join(goldenDir, base+".compose.yaml")
				checkLoads(t, out)
			}
			if strings.Contains(string(got), "/work/") || strings.Contains(string(got), os.Getenv("HOME")+"/") {
				t.Errorf("output holds a host path:\n%s", got)
			}
			goldentest.Compare(t, golden, got, *update, "./compile")
		})
	}
}

// checkLoads runs compose-go's loader, what `docker compose config` runs,
// on the output.
func checkLoads(t *testing.T, out []byte) {
	t.Helper()
	wd, _ := filepath.Abs(goldenDir)
	_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: out}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SkipConsistencyCheck = false })
	if err != nil {
		t.Errorf("compose loader rejects the output: %v", err)
	}
}

// TestDeterministic compiles each case twice and wants identical bytes.
func TestDeterministic(t *testing.T) {
	cases, _ := filepath.Glob(filepath.Join(goldenDir, "[^e]*.denv"))
	for _, c := range cases {
		a, err := build(t, goldenDir, filepath.Base(c))
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			b, _ := build(t, goldenDir, filepath.Base(c))
			if string(a) != string(b) {
				t.Fatalf("%s: two compiles differ", c)
			}
		}
	}
}

package compile_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/graphgen"
	"github.com/alebellu/denv/resolve"
)

// GenerateGraph writes the benchmark graph of n environments (see
// graphgen.Write) into dir and returns its root file.
func GenerateGraph(tb testing.TB, dir string, n int) string {
	tb.Helper()
	root, err := graphgen.Write(dir, n)
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func compileFile(tb testing.TB, root string) []byte {
	g, err := resolve.New(resolve.Options{WorkDir: filepath.Dir(root)}).Resolve(context.Background(), root)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := compile.Compile(g, compile.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	out, err := compile.YAML(p)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

var sizes = []int{100, 400, 1600}

// BenchmarkCompile is the whole of `denv compile`: read, parse, resolve,
// compile and print the generated graph.
func BenchmarkCompile(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("envs=%d", n), func(b *testing.B) {
			root := GenerateGraph(b, b.TempDir(), n)
			// one untimed compile first: the steady state is timed, not
			// the growth of a fresh process's heap
			compileFile(b, root)
			b.ResetTimer()
			for b.Loop() {
				compileFile(b, root)
			}
		})
	}
}

// BenchmarkCompileParams is BenchmarkCompile on the graph of
// graphgen.WriteParams: a parameter declared by every definition and passed
// on every include. `make bench` compares it with BenchmarkCompile (target:
// within 1.10x).
func BenchmarkCompileParams(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("envs=%d", n), func(b *testing.B) {
			root, err := graphgen.WriteParams(b.TempDir(), n)
			if err != nil {
				b.Fatal(err)
			}
			compileFile(b, root)
			b.ResetTimer()
			for b.Loop() {
				compileFile(b, root)
			}
		})
	}
}

// BenchmarkLoader is Docker Compose's own loader on denv's output: what
// `docker compose -f big.yaml config -q` runs.
func BenchmarkLoader(b *testing.B) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("envs=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			out := compileFile(b, GenerateGraph(b, dir, n))
			load := func() {
				_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
					WorkingDir:  dir,
					ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: out}},
					Environment: types.Mapping{},
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			load() // untimed, like compile's
			b.ResetTimer()
			for b.Loop() {
				load()
			}
		})
	}
}

// TestGeneratedGraphLoads keeps the benchmark input honest: the generated
// graph compiles to the expected number of services and compose loads it.
func TestGeneratedGraphLoads(t *testing.T) {
	dir := t.TempDir()
	out := compileFile(t, GenerateGraph(t, dir, 20))
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: out}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(p.Services); n != 20*5+1 {
		t.Errorf("%d services, want %d", n, 20*5+1)
	}
}

// TestParamsGraphSameServices: the parameterised graph compiles to the same
// project as the plain one, but for the parameter's labels.
func TestParamsGraphSameServices(t *testing.T) {
	plain := compileFile(t, GenerateGraph(t, t.TempDir(), 20))
	root, err := graphgen.WriteParams(t.TempDir(), 20)
	if err != nil {
		t.Fatal(err)
	}
	params := compileFile(t, root)
	withoutLabels := strings.ReplaceAll(string(params), "      denv.param.mode: bench\n", "")
	if withoutLabels != string(plain) {
		t.Errorf("the parameterised graph compiles to another project:\n%.2000s", withoutLabels)
	}
	if n := strings.Count(string(params), "denv.param.mode: bench"); n != 20*5+1 {
		t.Errorf("%d services carry the parameter's label, want %d", n, 20*5+1)
	}
}

package compile_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/resolve"
)

// GenerateGraph writes n environment definitions of five services each into
// dir: env i includes envs 2i+1..2i+3 (so neighbours share includes:
// diamonds) and the shared definition, links its services to each other,
// to the shared one and to its first include, and exposes one service. It
// returns the root file. (A LINK to every include would make the start
// order graph's paths grow exponentially, and compose's loader walks them.)
func GenerateGraph(tb testing.TB, dir string, n int) string {
	tb.Helper()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name+".denv"), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	write("shared", "IMAGE ex/shared PORT 5000 VOLUME /data\nEXPOSE shared\n")
	for i := range n {
		var b strings.Builder
		b.WriteString("ENV shared\n")
		var incs []string
		for j := 2*i + 1; j <= 2*i+3 && j < n; j++ {
			fmt.Fprintf(&b, "ENV e%d\n", j)
			incs = append(incs, fmt.Sprintf("e%d", j))
		}
		fmt.Fprintf(&b, "IMAGE ex/api AS api%d PORT 8080 LINK db, shared", i)
		if len(incs) > 0 {
			b.WriteString(", " + incs[0])
		}
		b.WriteString("\n  SET MODE=bench CMD [\"api\", \"--port\", \"8080\"]\n")
		b.WriteString("IMAGE ex/db VOLUME data:/var/lib/db\n")
		b.WriteString("IMAGE ex/cache LINK db\n")
		b.WriteString("IMAGE ex/queue PORT 5672\n")
		fmt.Fprintf(&b, "IMAGE ex/worker LINK queue, api%d\n", i)
		fmt.Fprintf(&b, "EXPOSE api%d\n", i)
		write(fmt.Sprintf("e%d", i), b.String())
	}
	return filepath.Join(dir, "e0.denv")
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
			b.ResetTimer()
			for b.Loop() {
				_, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
					WorkingDir:  dir,
					ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: out}},
					Environment: types.Mapping{},
				})
				if err != nil {
					b.Fatal(err)
				}
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

package plan_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/graphgen"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/resolve"
)

// graphEnvs is the size of the graph the issue sets the target on: the
// plan of 400 environments against itself in under 0.5 s.
const graphEnvs = 400

// graphRecord writes the generated graph into a new directory and returns
// its root file and the compiled YAML, as `denv run` records it.
func graphRecord(tb testing.TB) (root string, yaml []byte) {
	tb.Helper()
	root, err := graphgen.Write(tb.TempDir(), graphEnvs)
	if err != nil {
		tb.Fatal(err)
	}
	p := compileDef(tb, root)
	if yaml, err = compile.YAML(p); err != nil {
		tb.Fatal(err)
	}
	return root, yaml
}

// compileDef resolves and compiles root as `denv update` would.
func compileDef(tb testing.TB, root string) *types.Project {
	tb.Helper()
	dir := filepath.Dir(root)
	g, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), root)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := compile.Compile(g, compile.Options{Name: projectName, BaseDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// planGraph is the whole of planning an update with no change: load the
// recorded YAML, compile the definition again, load its YAML the same way,
// and compute the plan.
func planGraph(tb testing.TB, root string, recorded []byte) *plan.Plan {
	tb.Helper()
	ctx := context.Background()
	dir := filepath.Dir(root)
	old, err := backend.Load(ctx, recorded, projectName, dir)
	if err != nil {
		tb.Fatal(err)
	}
	yaml, err := compile.YAML(compileDef(tb, root))
	if err != nil {
		tb.Fatal(err)
	}
	new, err := backend.Load(ctx, yaml, projectName, dir)
	if err != nil {
		tb.Fatal(err)
	}
	p, err := plan.Compute(old, new, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// BenchmarkPlanGraph is the target: the plan of the
// 400-environment graph against itself, loading both projects.
func BenchmarkPlanGraph(b *testing.B) {
	root, recorded := graphRecord(b)
	planGraph(b, root, recorded) // untimed, like compile's benchmarks
	b.ResetTimer()
	for b.Loop() {
		planGraph(b, root, recorded)
	}
}

// BenchmarkCompute is Compute alone on the two loaded projects.
func BenchmarkCompute(b *testing.B) {
	root, recorded := graphRecord(b)
	ctx := context.Background()
	old, err := backend.Load(ctx, recorded, projectName, filepath.Dir(root))
	if err != nil {
		b.Fatal(err)
	}
	new, err := backend.Load(ctx, recorded, projectName, filepath.Dir(root))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := plan.Compute(old, new, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlanGraphUnchanged keeps the benchmark honest: the graph planned
// against itself has every service and nothing to do.
func TestPlanGraphUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the 400-environment graph")
	}
	root, recorded := graphRecord(t)
	p := planGraph(t, root, recorded)
	if !p.Empty() || p.Summary.Unchanged != graphEnvs*5+1 {
		t.Errorf("plan of the graph against itself: %+v", p.Summary)
	}
}

// BenchmarkLoadRecord is backend.Load of the recorded graph alone (compose's
// loader): BenchmarkPlanGraph runs it twice.
func BenchmarkLoadRecord(b *testing.B) {
	root, recorded := graphRecord(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := backend.Load(context.Background(), recorded, projectName, filepath.Dir(root)); err != nil {
			b.Fatal(err)
		}
	}
}

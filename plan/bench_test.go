package plan_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/graphgen"
	"github.com/alebellu/denv/plan"
)

// graphEnvs is the size of the graph the issue sets the target on: the
// plan of 400 environments against itself in under 0.5 s.
const graphEnvs = 400

// graphRecord writes the generated graph into a new directory and returns
// its root file, the compiled YAML as `denv run` records it, and the loaded
// form the record keeps beside it (backend.EncodeLoaded, computed at run
// time from the project run loaded).
func graphRecord(tb testing.TB) (root string, yaml, loaded []byte) {
	tb.Helper()
	root, err := graphgen.Write(tb.TempDir(), graphEnvs)
	if err != nil {
		tb.Fatal(err)
	}
	p := compileDef(tb, root)
	if yaml, err = compile.YAML(p); err != nil {
		tb.Fatal(err)
	}
	lp, err := backend.Load(context.Background(), yaml, projectName, filepath.Dir(root))
	if err != nil {
		tb.Fatal(err)
	}
	return root, yaml, backend.EncodeLoaded(lp, yaml)
}

// compileDef resolves and compiles root as `denv update` would.
func compileDef(tb testing.TB, root string) *types.Project {
	tb.Helper()
	p, err := compileProject(filepath.Dir(root), root)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// planGraph is the whole of planning an update as the local engine does
// it (backend/compose's Plan, without the engine's calls): the definition
// compiled again to YAML, the recorded project restored from its loaded
// form (else loaded), the new one the same project when its YAML is the
// recorded one (else loaded through compose-go's loader:
// backend.LoadPlanned), and the plan. With loaded nil, both projects go through the loader (the
// cost before the record kept the loaded form).
func planGraph(tb testing.TB, root string, recorded, loaded []byte) *plan.Plan {
	tb.Helper()
	ctx := context.Background()
	dir := filepath.Dir(root)
	yaml, err := compile.YAML(compileDef(tb, root))
	if err != nil {
		tb.Fatal(err)
	}
	old, new, _, err := backend.LoadPlanned(ctx,
		backend.Deployment{ID: projectName, Project: recorded, WorkDir: dir, Loaded: loaded},
		backend.Deployment{ID: projectName, Project: yaml, WorkDir: dir})
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
// 400-environment graph against itself (no change), as `denv update`
// makes it from a record that keeps the loaded form of its project.
func BenchmarkPlanGraph(b *testing.B) {
	root, recorded, loaded := graphRecord(b)
	planGraph(b, root, recorded, loaded) // untimed, like compile's benchmarks
	b.ResetTimer()
	for b.Loop() {
		planGraph(b, root, recorded, loaded)
	}
}

// BenchmarkPlanGraphLoader is the same plan with both projects loaded
// through compose-go's loader: a record without its loaded form (written
// by an older denv).
func BenchmarkPlanGraphLoader(b *testing.B) {
	root, recorded, _ := graphRecord(b)
	b.ResetTimer()
	for b.Loop() {
		planGraph(b, root, recorded, nil)
	}
}

// changeOne changes the SET of one service (api399) of the graph.
func changeOne(tb testing.TB, root string) {
	tb.Helper()
	f := filepath.Join(filepath.Dir(root), "e399.denv")
	data, err := os.ReadFile(f)
	if err != nil {
		tb.Fatal(err)
	}
	changed := strings.Replace(string(data), "SET MODE=bench", "SET MODE=changed", 1)
	if changed == string(data) {
		tb.Fatal("e399.denv has no SET MODE=bench")
	}
	if err := os.WriteFile(f, []byte(changed), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkPlanGraphOneChange is the plan of the graph with one service
// changed: the recorded project is restored, the new one goes through
// the loader.
func BenchmarkPlanGraphOneChange(b *testing.B) {
	root, recorded, loaded := graphRecord(b)
	changeOne(b, root)
	b.ResetTimer()
	for b.Loop() {
		planGraph(b, root, recorded, loaded)
	}
}

// BenchmarkCompute is Compute alone on the two loaded projects.
func BenchmarkCompute(b *testing.B) {
	root, recorded, _ := graphRecord(b)
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

// BenchmarkCompileGraph is the compile of the definition to YAML alone.
func BenchmarkCompileGraph(b *testing.B) {
	root, _, _ := graphRecord(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := compile.YAML(compileDef(b, root)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPlanGraphUnchanged keeps the benchmarks honest: the graph planned
// against itself has every service and nothing to do; with one SET
// changed, exactly that service is recreated.
func TestPlanGraphUnchanged(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the 400-environment graph")
	}
	root, recorded, loaded := graphRecord(t)
	// (the restored projects are the loaded ones: backend's
	// TestLoadedRoundTrip)
	p := planGraph(t, root, recorded, loaded)
	if !p.Empty() || p.Summary.Unchanged != graphEnvs*5+1 {
		t.Errorf("plan of the graph against itself: %+v", p.Summary)
	}
	changeOne(t, root)
	p = planGraph(t, root, recorded, loaded)
	var s plan.Service
	for _, x := range p.Services {
		if x.Action != plan.Unchanged {
			s = x
		}
	}
	if p.Summary.Recreate != 1 || p.Summary.Unchanged != graphEnvs*5 || s.Action != plan.Recreate || !strings.HasSuffix(s.Name, "api399") ||
		len(s.Changes) != 1 || s.Changes[0].Field != "environment.MODE" || s.Changes[0].New != "changed" {
		t.Errorf("plan with api399's SET changed: %+v, recreated %+v", p.Summary, s)
	}
}

// BenchmarkLoadRecord is backend.Load of the recorded graph alone (compose's
// loader): BenchmarkPlanGraphLoader runs it twice.
func BenchmarkLoadRecord(b *testing.B) {
	root, recorded, _ := graphRecord(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := backend.Load(context.Background(), recorded, projectName, filepath.Dir(root)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestoreRecord is the recorded graph restored from its loaded
// form (backend.LoadDeployment): what replaces BenchmarkLoadRecord in a
// plan.
func BenchmarkRestoreRecord(b *testing.B) {
	root, recorded, loaded := graphRecord(b)
	d := backend.Deployment{ID: projectName, Project: recorded, WorkDir: filepath.Dir(root), Loaded: loaded}
	b.ResetTimer()
	for b.Loop() {
		if _, cached, err := backend.LoadDeployment(context.Background(), d); err != nil || !cached {
			b.Fatal(cached, err)
		}
	}
}

// BenchmarkEncodeLoaded is what keeping the loaded form costs run and
// update (once per deployment).
func BenchmarkEncodeLoaded(b *testing.B) {
	root, recorded, _ := graphRecord(b)
	p, err := backend.Load(context.Background(), recorded, projectName, filepath.Dir(root))
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if backend.EncodeLoaded(p, recorded) == nil {
			b.Fatal("nothing encoded")
		}
	}
}

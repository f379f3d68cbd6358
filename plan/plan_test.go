package plan_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/compose"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/goldentest"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/resolve"
)

// updating reports whether -update was given (go test ./plan -update
// rewrites the golden files). The flag is registered by gotest.tools,
// which compose's packages import, so it is looked up, not declared.
func updating() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// projectName is the environment id every case is planned for.
const projectName = "env"

// load is what the runtime does with a definition: resolve and compile it
// (as `denv compile` does), write the compose YAML, and load that YAML back
// the way the record is loaded (backend.Load).
func load(tb testing.TB, dir, root string) *types.Project {
	tb.Helper()
	ctx := context.Background()
	g, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(ctx, filepath.Join(dir, root))
	if err != nil {
		tb.Fatal(err)
	}
	p, err := compile.Compile(g, compile.Options{Name: projectName, BaseDir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	yaml, err := compile.YAML(p)
	if err != nil {
		tb.Fatal(err)
	}
	lp, err := backend.Load(ctx, yaml, projectName, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return lp
}

// pair compiles the old/ and new/ files of a txtar case in the same
// directory (one after the other, so that paths in labels are the same)
// and returns both projects.
func pair(t *testing.T, file string) (old, new *types.Project) {
	t.Helper()
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := func(side string) *types.Project {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range ar.Files {
			rel, ok := strings.CutPrefix(f.Name, side+"/")
			if !ok {
				continue
			}
			n++
			path := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if n == 0 {
			t.Fatalf("%s: no %s/ files", file, side)
		}
		return load(t, dir, "web.denv")
	}
	return build("old"), build("new")
}

// TestGolden plans every case of testdata/cases and compares the text and
// JSON forms with the golden files beside it (go test ./plan -update).
func TestGolden(t *testing.T) {
	cases, err := filepath.Glob("testdata/cases/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/cases")
	}
	for _, file := range cases {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) {
			old, new := pair(t, file)
			p, err := plan.Compute(old, new, nil)
			if err != nil {
				t.Fatal(err)
			}
			text := p.Text()
			js, err := p.JSON()
			if err != nil {
				t.Fatal(err)
			}
			goldentest.Stable(t, text, func() ([]byte, error) {
				again, err := plan.Compute(old, new, nil)
				if err != nil {
					return nil, err
				}
				return again.Text(), nil
			})
			var back plan.Plan
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&back, p) {
				t.Errorf("the JSON form does not decode to the plan:\n%s", js)
			}
			base := strings.TrimSuffix(file, ".txtar")
			goldentest.Compare(t, base+".plan.txt", text, updating(), "./plan")
			goldentest.Compare(t, base+".plan.json", js, updating(), "./plan")
		})
	}
}

// TestCaseActions asserts the point of each case on the plan itself, so
// that a golden file accepted with -update cannot hide a wrong plan.
func TestCaseActions(t *testing.T) {
	want := map[string]map[string]plan.Action{
		"add":             {"web": plan.Unchanged, "cache": plan.Create},
		"remove":          {"web": plan.Unchanged, "db": plan.Remove},
		"image":           {"web": plan.Recreate, "db": plan.Unchanged},
		"env":             {"web": plan.Recreate, "db": plan.Unchanged},
		"command":         {"web": plan.Recreate},
		"port":            {"web": plan.Recreate},
		"volume_add":      {"web": plan.Recreate},
		"network_include": {"web": plan.Recreate, "mid-mid": plan.Unchanged, "base-base": plan.Recreate, "other-other": plan.Create},
		"dependent":       {"web": plan.Unchanged, "db": plan.Recreate},
		"nochange":        {"web": plan.Unchanged, "queue-queue": plan.Unchanged},
	}
	for name, services := range want {
		t.Run(name, func(t *testing.T) {
			old, new := pair(t, filepath.Join("testdata/cases", name+".txtar"))
			p, err := plan.Compute(old, new, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Services) != len(services) {
				t.Errorf("%d services planned, want %d:\n%s", len(p.Services), len(services), p.Text())
			}
			for svc, a := range services {
				s, ok := p.Service(svc)
				if !ok || s.Action != a {
					t.Errorf("%s: %q, want %q:\n%s", svc, s.Action, a, p.Text())
				}
			}
			if name == "nochange" && !p.Empty() {
				t.Errorf("plan of an unchanged definition is not empty:\n%s", p.Text())
			}
		})
	}
}

// liveOf is the live state of an environment running p as compose left it:
// one container per service, stamped with compose's hash.
func liveOf(t *testing.T, p *types.Project) *plan.Live {
	t.Helper()
	live := &plan.Live{Services: map[string]plan.LiveService{}}
	for name, s := range p.Services {
		h, err := compose.ServiceHash(s)
		if err != nil {
			t.Fatal(err)
		}
		live.Services[name] = plan.LiveService{ConfigHash: h, ImageDigest: "sha256:" + s.Image}
	}
	return live
}

// TestLive: the live containers decide what exists; a missing container
// is created, a stray one removed, a container whose hash is not the
// recorded project's recreated, a rebuilt image tag recreates.
func TestLive(t *testing.T) {
	old, new := pair(t, "testdata/cases/image.txtar")

	live := liveOf(t, old)
	p, err := plan.Compute(old, new, live)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := p.Service("web"); s.Action != plan.Recreate {
		t.Errorf("web with live state: %q, want recreate:\n%s", s.Action, p.Text())
	}
	if s, _ := p.Service("db"); s.Action != plan.Unchanged {
		t.Errorf("db with live state: %q, want unchanged:\n%s", s.Action, p.Text())
	}

	delete(live.Services, "db")
	live.Services["stray"] = plan.LiveService{ConfigHash: "x"}
	p, err = plan.Compute(old, new, live)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := p.Service("db"); s.Action != plan.Create || !reflect.DeepEqual(s.Reasons, []string{"no container"}) {
		t.Errorf("db without a container: %+v, want create (no container):\n%s", s, p.Text())
	}
	if s, _ := p.Service("stray"); s.Action != plan.Remove {
		t.Errorf("stray container: %q, want remove:\n%s", s.Action, p.Text())
	}

	// Planning the new project against itself: the live containers decide.
	live = liveOf(t, new)
	db := live.Services["db"]
	db.ConfigHash = "drifted"
	live.Services["db"] = db
	live.Images = map[string]string{"ex/web:2": "sha256:rebuilt"}
	p, err = plan.Compute(new, new, live)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := p.Service("db"); s.Action != plan.Recreate || len(s.Changes) != 0 ||
		!reflect.DeepEqual(s.Reasons, []string{"container configuration differs from the recorded project"}) {
		t.Errorf("drifted db: %+v:\n%s", s, p.Text())
	}
	if s, _ := p.Service("web"); s.Action != plan.Recreate ||
		!reflect.DeepEqual(s.Reasons, []string{"image ex/web:2 changed on the engine"}) {
		t.Errorf("rebuilt web: %+v:\n%s", s, p.Text())
	}
}

// TestDependents: denv does not compile restart: true nor shared
// namespaces, but a compose project can have them (and the runtime may
// add them); the plan follows compose v5.6.0 on them. worker declares
// depends_on db with restart: true (restarted, same container); sidecar
// shares db's network namespace and logger draws volumes from sidecar
// (both recreated, transitively).
func TestDependents(t *testing.T) {
	old, new := pair(t, "testdata/cases/dependent.txtar")
	for _, p := range []*types.Project{old, new} {
		web := p.Services["web"]
		dep := web.DependsOn["db"]
		dep.Restart = true
		web.DependsOn["db"] = dep
		p.Services["web"] = web
		sidecar := types.ServiceConfig{Name: "sidecar"}
		sidecar.Image, sidecar.NetworkMode = "ex/sidecar", "service:db"
		p.Services["sidecar"] = sidecar
		logger := types.ServiceConfig{Name: "logger"}
		logger.Image, logger.VolumesFrom = "ex/logger", []string{"sidecar:ro"}
		p.Services["logger"] = logger
	}
	p, err := plan.Compute(old, new, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]plan.Action{"db": plan.Recreate, "web": plan.Restart, "sidecar": plan.Recreate, "logger": plan.Recreate}
	for svc, a := range want {
		if s, _ := p.Service(svc); s.Action != a {
			t.Errorf("%s: %q, want %q:\n%s", svc, s.Action, a, p.Text())
		}
	}
	if s, _ := p.Service("logger"); !reflect.DeepEqual(s.Reasons, []string{"shares namespace or volumes with sidecar, recreated"}) {
		t.Errorf("logger's reasons: %q", s.Reasons)
	}
}

// TestNetworkRecreated: a network whose configuration changes is
// recreated and the services on it restarted (reconnected), not
// recreated.
func TestNetworkRecreated(t *testing.T) {
	old, new := pair(t, "testdata/cases/nochange.txtar")
	n := new.Networks["queue"]
	n.Labels = types.Labels{"denv.test": "changed"}
	new.Networks["queue"] = n
	p, err := plan.Compute(old, new, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Networks) != 1 || p.Networks[0].Action != plan.Recreate {
		t.Fatalf("networks: %+v, want queue recreated:\n%s", p.Networks, p.Text())
	}
	for _, svc := range p.Networks[0].Services {
		if s, _ := p.Service(svc); s.Action != plan.Restart {
			t.Errorf("%s on the recreated network: %q, want restart", svc, s.Action)
		}
	}
	if len(p.Networks[0].Services) == 0 {
		t.Errorf("no service on network queue:\n%s", p.Text())
	}
}

// Assemble sorts what an engine decided and counts it as Compute does; an
// unchanged network or volume is not listed.
func TestAssemble(t *testing.T) {
	p := plan.Assemble("env", []plan.Service{
		{Name: "web", Action: plan.Recreate, Reasons: []string{"b", "a"}},
		{Name: "db"},
		{Name: "old", Action: plan.Remove, Volumes: []string{"data"}},
		{Name: "cache", Action: plan.Create},
	}, []plan.Resource{{Name: "n2", Action: plan.Remove}, {Name: "n1", Action: plan.Create, Services: []string{"web", "cache"}}, {Name: "same", Action: plan.Unchanged}}, nil)
	text := string(p.Text())
	if !strings.HasPrefix(text, "+ cache (") || !strings.Contains(text, "= db (unchanged)\n") || !strings.Contains(text, "~ web (a; b)") {
		t.Errorf("text:\n%s", text)
	}
	s := p.Summary
	if s.Create != 1 || s.Recreate != 1 || s.Remove != 1 || s.Unchanged != 1 || s.Networks.Create != 1 || s.Networks.Remove != 1 || len(p.Networks) != 2 || p.Networks[0].Name != "n1" || p.Networks[0].Services[0] != "cache" || len(p.Volumes) != 0 {
		t.Errorf("plan: %+v", p)
	}
}

// Fields diffs any two JSON objects one level deep.
func TestFields(t *testing.T) {
	type cfg struct {
		Image string            `json:"image"`
		Env   map[string]string `json:"environment,omitempty"`
	}
	got := plan.Fields(cfg{Image: "a", Env: map[string]string{"X": "1", "Y": "2"}}, cfg{Image: "b", Env: map[string]string{"X": "1", "Z": "3"}})
	want := []plan.Change{{Field: "environment.Y", Old: "2"}, {Field: "environment.Z", New: "3"}, {Field: "image", Old: "a", New: "b"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Fields: %+v, want %+v", got, want)
	}
}

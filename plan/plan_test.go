package plan_test

import (
	"context"
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
	"github.com/alebellu/denv/plan"
)

// pair compiles the definition of the script testdata/script/NAME.txtar
// as it was first run (the archive's top-level files) and as edited (its
// new/ files written over them), in the same directory as the script does,
// and loads both compiled projects as the record is loaded (backend.Load).
func pair(t *testing.T, name string) (old, new *types.Project) {
	t.Helper()
	ar, err := txtar.ParseFile(filepath.Join("testdata/script", name+".txtar"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	build := func(edit bool) *types.Project {
		for _, f := range ar.Files {
			rel, isEdit := strings.CutPrefix(f.Name, "new/")
			if isEdit != edit {
				continue
			}
			path := filepath.Join(dir, rel)
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, err := compileProject(dir, filepath.Join(dir, "web.denv"))
		if err != nil {
			t.Fatal(err)
		}
		yaml, err := compile.YAML(p)
		if err != nil {
			t.Fatal(err)
		}
		lp, err := backend.Load(context.Background(), yaml, projectName, dir)
		if err != nil {
			t.Fatal(err)
		}
		return lp
	}
	return build(false), build(true)
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
	old, new := pair(t, "image")

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
	old, new := pair(t, "dependent")
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
	old, new := pair(t, "nochange")
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

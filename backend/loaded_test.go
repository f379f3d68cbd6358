package backend_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/compose"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/graphgen"
	"github.com/alebellu/denv/plan"
	"github.com/alebellu/denv/resolve"
)

// compileFile resolves and compiles a definition into its YAML, as run
// records it.
func compileFile(t *testing.T, root string) []byte {
	t.Helper()
	dir := filepath.Dir(root)
	g, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	p, err := compile.Compile(g, compile.Options{Name: "env", BaseDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	yaml, err := compile.YAML(p)
	if err != nil {
		t.Fatal(err)
	}
	return yaml
}

// assertRestored loads yaml through the loader and restores it from its
// EncodeLoaded form, and checks that the restored project is the loaded
// one for everything a plan reads: the same compose hashes (services,
// networks, volumes), the same encoding, the same labels, the same
// fields plan.Compute compares, and an empty plan between them.
func assertRestored(t *testing.T, yaml []byte, dir string) {
	t.Helper()
	ctx := context.Background()
	loaded, err := backend.Load(ctx, yaml, "env", dir)
	if err != nil {
		t.Fatal(err)
	}
	d := backend.Deployment{ID: "env", Project: yaml, WorkDir: dir, Loaded: backend.EncodeLoaded(loaded, yaml)}
	if d.Loaded == nil {
		t.Fatal("EncodeLoaded gave nothing")
	}
	restored, cached, err := backend.LoadDeployment(ctx, d)
	if err != nil || !cached {
		t.Fatalf("LoadDeployment: cached %v, %v", cached, err)
	}
	lj, _ := json.Marshal(loaded)
	rj, _ := json.Marshal(restored)
	if string(lj) != string(rj) {
		t.Errorf("the restored project's encoding differs from the loaded one's")
	}
	if restored.Name != loaded.Name || restored.WorkingDir != loaded.WorkingDir || !reflect.DeepEqual(restored.ComposeFiles, loaded.ComposeFiles) {
		t.Errorf("project: %q %q %v, want %q %q %v", restored.Name, restored.WorkingDir, restored.ComposeFiles, loaded.Name, loaded.WorkingDir, loaded.ComposeFiles)
	}
	if len(restored.Services) != len(loaded.Services) {
		t.Fatalf("%d services restored, %d loaded", len(restored.Services), len(loaded.Services))
	}
	for name, ls := range loaded.Services {
		rs, ok := restored.Services[name]
		if !ok {
			t.Fatalf("service %s not restored", name)
		}
		lh, err1 := compose.ServiceHash(ls)
		rh, err2 := compose.ServiceHash(rs)
		if err1 != nil || err2 != nil || lh != rh {
			t.Errorf("service %s: hash %s restored, %s loaded (%v, %v)", name, rh, lh, err2, err1)
		}
		if rs.Name != ls.Name || !reflect.DeepEqual(rs.CustomLabels, ls.CustomLabels) || !reflect.DeepEqual(rs.Labels, ls.Labels) ||
			!reflect.DeepEqual(rs.DependsOn, ls.DependsOn) || !reflect.DeepEqual(rs.Volumes, ls.Volumes) ||
			!reflect.DeepEqual(rs.Networks, ls.Networks) || !reflect.DeepEqual(rs.Ports, ls.Ports) || !reflect.DeepEqual(rs.Deploy, ls.Deploy) ||
			!reflect.DeepEqual(rs.Build, ls.Build) || rs.PullPolicy != ls.PullPolicy || !reflect.DeepEqual(rs.Scale, ls.Scale) ||
			!reflect.DeepEqual(rs.Profiles, ls.Profiles) || rs.Image != ls.Image || rs.NetworkMode != ls.NetworkMode ||
			rs.Ipc != ls.Ipc || rs.Pid != ls.Pid || !reflect.DeepEqual(rs.VolumesFrom, ls.VolumesFrom) {
			t.Errorf("service %s restored:\n%#v\nloaded:\n%#v", name, rs, ls)
		}
	}
	for name, ln := range loaded.Networks {
		lh, _ := compose.NetworkHash(&ln)
		rn := restored.Networks[name]
		if rh, _ := compose.NetworkHash(&rn); rh != lh || !reflect.DeepEqual(rn, ln) {
			t.Errorf("network %s restored %#v, loaded %#v", name, rn, ln)
		}
	}
	for name, lv := range loaded.Volumes {
		lh, _ := compose.VolumeHash(lv)
		rv := restored.Volumes[name]
		if rh, _ := compose.VolumeHash(rv); rh != lh || !reflect.DeepEqual(rv, lv) {
			t.Errorf("volume %s restored %#v, loaded %#v", name, rv, lv)
		}
	}
	for _, pair := range [][2]*types.Project{{loaded, restored}, {restored, loaded}} {
		p, err := plan.Compute(pair[0], pair[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Services {
			if s.Action != plan.Unchanged || len(s.Changes) > 0 {
				t.Errorf("plan between the loaded and restored projects: %+v", s)
			}
		}
		if !p.Empty() {
			t.Errorf("plan between the loaded and restored projects: %+v", p.Summary)
		}
	}
}

// TestLoadedRoundTrip checks the restored form on every golden compiled
// project, the seed and the 400-environment graph of the plan benchmark.
func TestLoadedRoundTrip(t *testing.T) {
	goldens, err := filepath.Glob("../testdata/golden/*.compose.yaml")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden projects: %v", err)
	}
	for _, f := range goldens {
		t.Run(filepath.Base(f), func(t *testing.T) {
			yaml, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			assertRestored(t, yaml, t.TempDir())
		})
	}
	t.Run("seed", func(t *testing.T) {
		seed, _ := filepath.Abs("../examples/expert-system-env.denv")
		assertRestored(t, compileFile(t, seed), filepath.Dir(seed))
	})
	t.Run("graph400", func(t *testing.T) {
		if testing.Short() {
			t.Skip("loads the 400-environment graph")
		}
		root, err := graphgen.Write(t.TempDir(), 400)
		if err != nil {
			t.Fatal(err)
		}
		assertRestored(t, compileFile(t, root), filepath.Dir(root))
	})
}

// TestLoadedMisses checks that the restored form is not used for another
// YAML, project name, working directory, or when a variable the project
// takes from the process environment changed.
func TestLoadedMisses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	yaml := []byte("name: env\nservices:\n  web:\n    image: ex/web\n    environment:\n      DENV_LOADED_TEST: null\n      MODE: \"a$$b\"\n")
	t.Setenv("DENV_LOADED_TEST", "one")
	loaded, err := backend.Load(ctx, yaml, "env", dir)
	if err != nil {
		t.Fatal(err)
	}
	if v := loaded.Services["web"].Environment["DENV_LOADED_TEST"]; v == nil || *v != "one" {
		t.Fatalf("the loader did not take DENV_LOADED_TEST from the environment: %v", v)
	}
	enc := backend.EncodeLoaded(loaded, yaml)
	good := backend.Deployment{ID: "env", Project: yaml, WorkDir: dir, Loaded: enc}
	if p, cached, err := backend.LoadDeployment(ctx, good); err != nil || !cached || *p.Services["web"].Environment["MODE"] != "a$b" {
		t.Fatalf("LoadDeployment of its own project: cached %v, %v", cached, err)
	}
	other := append([]byte(nil), yaml...)
	other = append(other, "    command: [\"x\"]\n"...)
	for name, d := range map[string]backend.Deployment{
		"other yaml":    {ID: "env", Project: other, WorkDir: dir, Loaded: enc},
		"other name":    {ID: "env2", Project: yaml, WorkDir: dir, Loaded: enc},
		"other workdir": {ID: "env", Project: yaml, WorkDir: t.TempDir(), Loaded: enc},
		"damaged":       {ID: "env", Project: yaml, WorkDir: dir, Loaded: enc[:len(enc)/2]},
	} {
		p, cached, err := backend.LoadDeployment(ctx, d)
		if err != nil || cached {
			t.Errorf("%s: cached %v, %v", name, cached, err)
		}
		if err == nil && p.Name != d.ID {
			t.Errorf("%s: loaded %q", name, p.Name)
		}
	}
	t.Setenv("DENV_LOADED_TEST", "two")
	p, cached, err := backend.LoadDeployment(ctx, good)
	if err != nil || cached || *p.Services["web"].Environment["DENV_LOADED_TEST"] != "two" {
		t.Errorf("environment changed: cached %v, %v", cached, err)
	}
}

// TestLoadPlanned checks which projects a plan gets: the recorded one
// restored, the new one the same when its YAML is, else loaded (and then
// deployable).
func TestLoadPlanned(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	yaml := []byte("name: env\nservices:\n  web:\n    image: ex/web\n")
	other := []byte("name: env\nservices:\n  web:\n    image: ex/web:2\n")
	loaded, err := backend.Load(ctx, yaml, "env", dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := backend.Deployment{ID: "env", Project: yaml, WorkDir: dir, Loaded: backend.EncodeLoaded(loaded, yaml)}
	bare := rec
	bare.Loaded = nil
	for _, c := range []struct {
		name          string
		old, new      backend.Deployment
		same, deploys bool
		image         string
	}{
		{"same YAML, restored", rec, bare, true, false, "ex/web"},
		{"same YAML, no loaded form", bare, bare, true, true, "ex/web"},
		{"other YAML", rec, backend.Deployment{ID: "env", Project: other, WorkDir: dir}, false, true, "ex/web:2"},
	} {
		op, np, deploys, err := backend.LoadPlanned(ctx, c.old, c.new)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if (op == np) != c.same || deploys != c.deploys || np.Services["web"].Image != c.image || op.Services["web"].Image != "ex/web" {
			t.Errorf("%s: same %v, deployable %v, images %s -> %s", c.name, op == np, deploys, op.Services["web"].Image, np.Services["web"].Image)
		}
	}
}

package compile_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// TestSeedExpertSystem compiles the seed's expert-system environment and
// checks, on the project compose itself loads, the services it names and
// that the expert system shares no network with web-env's database or the
// worker.
func TestSeedExpertSystem(t *testing.T) {
	out, err := build(t, "..", "examples/expert-system-env.denv")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := filepath.Abs("..")
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  wd,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: out}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("seed", true) })
	if err != nil {
		t.Fatal(err)
	}
	names := p.ServiceNames()
	slices.Sort(names)
	want := []string{"expert-system", "web-env-db", "web-env-web", "worker-env-worker"}
	if !slices.Equal(names, want) {
		t.Fatalf("services = %v, want %v", names, want)
	}
	nets := func(name string) []string {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for n := range s.Networks {
			ns = append(ns, n)
		}
		return ns
	}
	es := nets("expert-system")
	for _, other := range []string{"web-env-db", "worker-env-worker"} {
		for _, n := range nets(other) {
			if slices.Contains(es, n) {
				t.Errorf("expert-system shares network %q with %s", n, other)
			}
		}
	}
	// ...but it does reach web, under the environment's name.
	web, _ := p.GetService("web-env-web")
	if nc := web.Networks["default"]; nc == nil || !slices.Contains(nc.Aliases, "web-env") {
		t.Errorf("web-env-web is not on the root network as web-env: %+v", web.Networks)
	}
}

// TestParamsExample compiles the parameters example: db-env twice, at the
// two versions the root's defaults name, each on its own network.
func TestParamsExample(t *testing.T) {
	out, err := build(t, "..", "examples/params/two-dbs.denv")
	if err != nil {
		t.Fatal(err)
	}
	checkLoads(t, out)
	for _, want := range []string{`image: "ex/db:15"`, `image: "ex/db:16"`, "db-old: {}", "db-new: {}", "DB_PASSWORD: dev", `denv.param.password: "***"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

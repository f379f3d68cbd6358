package swarm_test

import (
	"flag"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/cli/cli/compose/loader"
	clitypes "github.com/docker/cli/cli/compose/types"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/internal/goldentest"
	"github.com/alebellu/denv/swarm"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// load reads a stack file the way `docker stack deploy -c` does: the
// Docker CLI's loader, with its schema validation.
func load(t *testing.T, out []byte) *clitypes.Config {
	t.Helper()
	dict, err := loader.ParseYAML(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loader.Load(clitypes.ConfigDetails{
		WorkingDir:  t.TempDir(),
		ConfigFiles: []clitypes.ConfigFile{{Filename: "stack.yaml", Config: dict}},
		Environment: map[string]string{},
	})
	if err != nil {
		t.Fatalf("docker stack's loader rejects the output: %v\n%s", err, out)
	}
	return cfg
}

// TestGolden compares each case's stack file with testdata/<case>.yaml and
// checks that the Docker CLI loads it.
func TestGolden(t *testing.T) {
	for _, c := range goldentest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			render := func() ([]byte, error) {
				return swarm.StackFile(goldentest.Project(t, c.Dir, c.Def), swarm.Options{})
			}
			out, err := render()
			if err != nil {
				t.Fatal(err)
			}
			cfg := load(t, out)
			for _, s := range cfg.Services {
				if len(s.DependsOn) > 0 || s.ContainerName != "" {
					t.Errorf("%s keeps depends_on or container_name", s.Name)
				}
				if s.Deploy.Replicas == nil || *s.Deploy.Replicas != 1 || s.Deploy.RestartPolicy == nil {
					t.Errorf("%s: deploy = %+v", s.Name, s.Deploy)
				}
			}
			for name, n := range cfg.Networks {
				if n.Driver != "overlay" || !n.Attachable {
					t.Errorf("network %s: driver %q attachable %v", name, n.Driver, n.Attachable)
				}
			}
			goldentest.Compare(t, filepath.Join("testdata", c.Name+".yaml"), out, *update, "./swarm")
			goldentest.Stable(t, out, render)
		})
	}
}

// TestEncapsulation: on the loaded stack, the expert system shares no
// network with web-env's db or the worker, and reaches web as web-env.
func TestEncapsulation(t *testing.T) {
	out, err := swarm.StackFile(goldentest.Project(t, "..", "examples/expert-system-env.denv"), swarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := load(t, out)
	svc := map[string]clitypes.ServiceConfig{}
	for _, s := range cfg.Services {
		svc[s.Name] = s
	}
	for _, other := range []string{"web-env-db", "worker-env-worker"} {
		for n := range svc[other].Networks {
			if _, ok := svc["expert-system"].Networks[n]; ok {
				t.Errorf("expert-system shares network %q with %s", n, other)
			}
		}
	}
	if nc := svc["web-env-web"].Networks["default"]; nc == nil || !slices.Contains(nc.Aliases, "web-env") {
		t.Errorf("web-env-web is not on the root network as web-env: %+v", svc["web-env-web"].Networks)
	}
}

// TestRelativeBind: a relative bind source is made absolute with the
// working directory, and refused in one line without one.
func TestRelativeBind(t *testing.T) {
	dir := goldentest.Dir(t, map[string]string{"e.denv": "IMAGE ex/web VOLUME ./data:/data\n"})
	p := goldentest.ProjectWith(t, dir, "e.denv", compile.Options{BaseDir: dir})
	_, err := swarm.StackFile(p, swarm.Options{})
	if err == nil || !strings.Contains(err.Error(), "relative host path") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %v, want one line about a relative host path", err)
	}
	cfg, err := swarm.Stack(p, swarm.Options{WorkDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Services[0].Volumes[0].Source, filepath.Join(dir, "data"); got != want {
		t.Errorf("bind source %q, want %q", got, want)
	}
}

// compileBody writes files into a directory and compiles its e.denv.
func compileBody(t *testing.T, files map[string]string) *types.Project {
	t.Helper()
	return goldentest.Project(t, goldentest.Dir(t, files), "e.denv")
}

// TestPublishModeAndEscaping: host mode makes every service dnsrr with
// host ports; ingress keeps a virtual IP only where ports are published;
// '$' survives the stack loader's interpolation.
func TestPublishModeAndEscaping(t *testing.T) {
	p := compileBody(t, map[string]string{"e.denv": "IMAGE ex/web PORT 8080:80 SET PRICE=5$ LINK db\nIMAGE ex/db\nEXPOSE web\n"})
	for _, mode := range []string{"ingress", "host"} {
		out, err := swarm.StackFile(p, swarm.Options{PublishMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		cfg := load(t, out)
		svc := map[string]clitypes.ServiceConfig{}
		for _, s := range cfg.Services {
			svc[s.Name] = s
		}
		web, db := svc["web"], svc["db"]
		if len(web.Ports) != 1 || web.Ports[0].Mode != mode || web.Ports[0].Published != 8080 || web.Ports[0].Target != 80 {
			t.Errorf("%s: web ports %+v", mode, web.Ports)
		}
		wantWeb := map[string]string{"ingress": "", "host": "dnsrr"}[mode]
		if web.Deploy.EndpointMode != wantWeb || db.Deploy.EndpointMode != "dnsrr" {
			t.Errorf("%s: endpoint modes web %q db %q", mode, web.Deploy.EndpointMode, db.Deploy.EndpointMode)
		}
		if v := web.Environment["PRICE"]; v == nil || *v != "5$" {
			t.Errorf("%s: PRICE = %v after loading", mode, v)
		}
	}
	if _, err := swarm.StackFile(p, swarm.Options{PublishMode: "mesh"}); err == nil {
		t.Error("unknown publish mode accepted")
	}
}

// TestReady: READY's healthcheck reaches the stack as compiled, as the
// Docker CLI loads it, and the compose-only depends_on label is dropped.
func TestReady(t *testing.T) {
	p := goldentest.Project(t, "../testdata/golden", "ready.denv")
	out, err := swarm.StackFile(p, swarm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range load(t, out).Services {
		want := p.Services[s.Name].HealthCheck
		if _, ok := s.Labels[compile.LabelWaitImageHealth]; ok {
			t.Errorf("%s keeps %s", s.Name, compile.LabelWaitImageHealth)
		}
		if want == nil {
			if s.HealthCheck != nil {
				t.Errorf("%s: healthcheck without READY", s.Name)
			}
			continue
		}
		h := s.HealthCheck
		if h == nil || !slices.Equal([]string(h.Test), []string(want.Test)) || *h.Interval != clitypes.Duration(compile.ReadyInterval) ||
			*h.StartPeriod != clitypes.Duration(*want.StartPeriod) || *h.Retries != compile.ReadyRetries || *h.Timeout != clitypes.Duration(compile.ReadyTimeout) {
			t.Errorf("%s: healthcheck %+v, want %+v", s.Name, h, want)
		}
	}
}

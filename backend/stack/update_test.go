package stack

import (
	"os"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	clitypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/types/swarm"

	"github.com/alebellu/denv/compile"
	"github.com/alebellu/denv/plan"
	stackfile "github.com/alebellu/denv/swarm"
)

// The spec hash an update compares leaves out the replicas (stop and
// start scale them), its own label and denv's descriptive labels, and
// covers the rest.
func TestSpecHash(t *testing.T) {
	one, zero := uint64(1), uint64(0)
	spec := func(replicas *uint64, env, source string) swarm.ServiceSpec {
		s := swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "s_web", Labels: map[string]string{compile.LabelSource: source, "x": "1"}},
			TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
				Image: "ex/web", Env: []string{env}, Labels: map[string]string{compile.LabelSource: source}}},
			Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: replicas}},
		}
		return s
	}
	hash := func(s swarm.ServiceSpec) string {
		t.Helper()
		h, err := specHash(s)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hash(spec(&one, "A=1", "a.denv:1"))
	stamped := spec(&one, "A=1", "a.denv:1")
	stamped.Labels[LabelSpecHash] = base
	for name, s := range map[string]swarm.ServiceSpec{
		"scaled to 0": spec(&zero, "A=1", "a.denv:1"),
		"line moved":  spec(&one, "A=1", "a.denv:2"),
		"stamped":     stamped,
	} {
		if h := hash(s); h != base {
			t.Errorf("%s: hash %s, want %s", name, h, base)
		}
	}
	if hash(spec(&one, "A=2", "a.denv:1")) == base {
		t.Errorf("a changed environment keeps the hash")
	}
}

// PublishMode reads back the mode a stack file was rendered with.
func TestPublishMode(t *testing.T) {
	p := &types.Project{Name: "p", Services: types.Services{
		"web": {Name: "web", ContainerSpec: types.ContainerSpec{Image: "ex/web", Labels: types.Labels{compile.LabelPublishImagePorts: "true"}}},
		"db":  {Name: "db", ContainerSpec: types.ContainerSpec{Image: "ex/db"}},
	}}
	for _, mode := range []string{"ingress", "host"} {
		data, err := stackfile.StackFile(p, stackfile.Options{PublishMode: mode})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := PublishMode(data, os.TempDir()); err != nil || got != mode {
			t.Errorf("PublishMode of a %s stack file: %q, %v", mode, got, err)
		}
	}
}

// computePlan: a service whose live hash matches is unchanged (whatever
// its descriptive labels), one whose hash differs is recreated with the
// stack files' field changes, one the swarm lacks is created, one no
// longer in the file removed with its volumes; a network only the new
// file uses is created.
func TestComputePlan(t *testing.T) {
	load := func(yaml string) *clitypes.Config {
		t.Helper()
		cfg, err := LoadStack([]byte(yaml), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	old := load(`version: "3.9"
services:
  db:
    image: ex/db
    environment: {A: "1"}
    volumes: [data:/data]
  web:
    image: ex/web
    labels: {denv.source: "a.denv:2"}
  gone:
    image: ex/worker
    volumes: [cache:/cache]
volumes:
  data: {}
  cache: {}
`)
	new := load(`version: "3.9"
services:
  db:
    image: ex/db
    environment: {A: "2"}
    volumes: [data:/data]
  web:
    image: ex/web
    labels: {denv.source: "a.denv:3"}
  added:
    image: ex/worker
    networks: [side]
networks:
  side: {}
volumes:
  data: {}
`)
	np := &prepared{name: "s", cfg: new, specs: map[string]swarm.ServiceSpec{}}
	live := map[string]swarm.Service{}
	for _, n := range []string{"db", "web", "added"} {
		np.specs[n] = swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: map[string]string{LabelSpecHash: "new-" + n}}}
	}
	live["db"] = swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: map[string]string{LabelSpecHash: "old-db"}}}}
	live["web"] = swarm.Service{Spec: swarm.ServiceSpec{Annotations: swarm.Annotations{Labels: map[string]string{LabelSpecHash: "new-web"}}}}
	live["gone"] = swarm.Service{}
	p := computePlan("s", old, np, live)
	want := map[string]plan.Action{"db": plan.Recreate, "web": plan.Unchanged, "added": plan.Create, "gone": plan.Remove}
	for n, a := range want {
		s, ok := p.Service(n)
		if !ok || s.Action != a {
			t.Errorf("%s: %+v, want %s", n, s, a)
		}
	}
	if s, _ := p.Service("db"); len(s.Changes) != 1 || s.Changes[0].Field != "environment.A" {
		t.Errorf("db's changes: %+v", s.Changes)
	}
	if s, _ := p.Service("web"); len(s.Changes) != 0 {
		t.Errorf("web's changes (descriptive labels only): %+v", s.Changes)
	}
	if s, _ := p.Service("gone"); len(s.Volumes) != 1 || s.Volumes[0] != "cache" {
		t.Errorf("gone's volumes: %+v", s.Volumes)
	}
	if len(p.Networks) != 1 || p.Networks[0].Name != "side" || p.Networks[0].Action != plan.Create ||
		len(p.Volumes) != 1 || p.Volumes[0].Name != "cache" || p.Volumes[0].Action != plan.Remove {
		t.Errorf("networks %+v, volumes %+v", p.Networks, p.Volumes)
	}
}

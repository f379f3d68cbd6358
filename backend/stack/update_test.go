package stack

import (
	"os"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/swarm"

	"github.com/alebellu/denv/compile"
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

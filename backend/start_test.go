package backend_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
)

// a <- b <- c: b depends on a, c on b; VERSION changes a's hash.
const chainYAML = `
services:
  a:
    image: %[1]s
    environment:
      VERSION: "%[2]s"
  b:
    image: %[1]s
    depends_on:
      a:
        condition: service_started
  c:
    image: %[1]s
    depends_on:
      b:
        condition: service_started
`

// TestStartProject checks the project an Up's start phase is given after
// its create phase, from the containers' real states: a running service
// that nothing to start depends on loses its depends_on (compose's start
// phase would poll its dependencies while starting nothing for it); one
// that a stopped service depends on, directly or not, keeps it.
func TestStartProject(t *testing.T) {
	e := newEngineTest(t)
	b, image, ctx, name, docker := e.b, e.image, e.ctx, e.name, e.docker
	load := func(version string) *types.Project {
		t.Helper()
		p, err := backend.Load(ctx, fmt.Appendf(nil, chainYAML, image, version), name, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	deps := func(p *types.Project) []string {
		var out []string
		for _, s := range p.ServiceNames() {
			if len(p.Services[s].DependsOn) > 0 {
				out = append(out, s)
			}
		}
		return out
	}
	if err := b.Up(ctx, load("1"), backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	before := containerIDs(t, docker, name)

	// a's configuration changed: the create phase recreates it (created,
	// not started); b and c run untouched.
	next := load("2")
	if err := b.Create(ctx, next); err != nil {
		t.Fatal(err)
	}
	after := containerIDs(t, docker, name)
	if after["a"] == before["a"] || after["b"] != before["b"] || after["c"] != before["c"] {
		t.Fatalf("create recreated %v -> %v, want only a", before, after)
	}
	sp, err := backend.StartProject(ctx, b, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := deps(sp); len(got) != 0 {
		t.Errorf("start project: %v keep their depends_on, want none (b and c run, a depends on nothing)", got)
	}
	if got := deps(next); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("startProject changed the project it was given: depends_on left on %v", got)
	}

	// c stopped as well: c is started, after b, which is after a.
	if _, err := docker.ContainerStop(ctx, after["c"], client.ContainerStopOptions{}); err != nil {
		t.Fatal(err)
	}
	sp, err = backend.StartProject(ctx, b, next)
	if err != nil {
		t.Fatal(err)
	}
	if got := deps(sp); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("with c stopped, depends_on kept on %v, want b and c", got)
	}

	// the Up with that project starts a and c and keeps b's container
	if err := b.Up(ctx, next, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	final := containerIDs(t, docker, name)
	if final["a"] != after["a"] || final["b"] != before["b"] || final["c"] != after["c"] {
		t.Errorf("containers after Up = %v, want a=%s b=%s c=%s", final, after["a"], before["b"], after["c"])
	}
	if n := countContainers(t, docker, name, true); n != 3 {
		t.Errorf("%d containers run after Up, want 3", n)
	}
}

// containerIDs are the project's containers, by service.
func containerIDs(t *testing.T, docker client.APIClient, name string) map[string]string {
	t.Helper()
	res, err := docker.ContainerList(t.Context(), client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range res.Items {
		out[c.Labels["com.docker.compose.service"]] = c.ID
	}
	return out
}

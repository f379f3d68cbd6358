package backend_test

import (
	"slices"
	"testing"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// What a run killed midway leaves: a project's network, named volume, a
// running container and one only created, with no compose file to go by.
func TestRemoveLeftovers(t *testing.T) {
	e := newEngineTest(t)
	b, image, ctx, name, docker := e.b, e.image, e.ctx, e.name, e.docker
	labels := map[string]string{api.ProjectLabel: name}

	if _, err := docker.NetworkCreate(ctx, name+"_default", client.NetworkCreateOptions{Labels: labels}); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name + "_data", Labels: labels}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"run", "created"} {
		res, err := docker.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:       name + "-" + c + "-1",
			Config:     &container.Config{Image: image, Labels: labels},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(name + "_default"), Binds: []string{name + "_data:/data"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if c == "run" {
			if _, err := docker.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	l, err := b.Leftovers(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Containers) != 2 || !slices.Equal(l.Running(), []string{name + "-run-1"}) || len(l.Networks) != 1 || l.Networks[0].Name != name+"_default" || !slices.Equal(l.Volumes, []string{name + "_data"}) {
		t.Fatalf("Leftovers = %+v (running %v)", l, l.Running())
	}

	// Without volumes: the data stays, everything else goes.
	if err := b.RemoveLeftovers(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	if n, c := countNetworks(t, docker, name), countContainers(t, docker, name, false); n != 0 || c != 0 || !volumeExists(t, docker, name+"_data") {
		t.Fatalf("after RemoveLeftovers without volumes: %d networks, %d containers, volume kept %v", n, c, volumeExists(t, docker, name+"_data"))
	}
	if err := b.RemoveLeftovers(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if volumeExists(t, docker, name+"_data") {
		t.Fatal("volume left after RemoveLeftovers with volumes")
	}
	if l, err := b.Leftovers(ctx, name); err != nil || !l.Empty() {
		t.Fatalf("Leftovers after removal = %+v, %v", l, err)
	}
	// nothing left: nothing to do
	if err := b.RemoveLeftovers(ctx, name, true); err != nil {
		t.Fatal(err)
	}
}

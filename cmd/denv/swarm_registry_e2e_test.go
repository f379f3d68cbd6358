package main

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// testSwarmRegistry is TestE2ERegistryPull on the swarm engine: with the
// seed's images only in the test registry (basic auth), a run without
// credentials fails in one line and leaves no stack; with them, the
// manager pulls the images and the stack answers. Then, the images
// removed from the engine again, a stop and start by a denv without
// credentials brings it back: the swarm node pulled the images itself,
// with the credentials denv gave each service at deploy (docker stack
// deploy --with-registry-auth).
func testSwarmRegistry(t *testing.T, b *backend.Backend, bin, mode string) {
	requireRegistry(t)
	c := dockerClient(t)
	ctx := context.Background()
	tag, refs := registryImages(t, c)
	root := registryDefs(t, tag)

	anon := backendtest.ProjectName(t) + "-anon"
	removeStackOnCleanup(t, b, anon)
	noCreds := t.TempDir()
	_, errOut, code := denvExe(t, bin, noCreds, "run", "--engine", "swarm", "--publish-mode", mode, root, "-n", anon)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if last := lines[len(lines)-1]; code == 0 || strings.Count(errOut, "denv:") != 1 || !strings.HasPrefix(last, "denv: cannot pull the images of "+anon) || !strings.Contains(last, "no basic auth credentials") {
		t.Errorf("run without credentials: exit %d, stderr %q", code, errOut)
	}
	if s, _, n, v := stackCounts(t, c, anon); s+n+v != 0 {
		t.Errorf("run without credentials left %d services, %d networks, %d volumes", s, n, v)
	}
	if _, ok := listed(t, anon, true); ok {
		t.Errorf("run without credentials left a record")
	}

	cfg := dockerConfig(t)
	id := backendtest.ProjectName(t)
	removeStackOnCleanup(t, b, id)
	out, errOut, code := denvExe(t, bin, cfg, "run", "--engine", "swarm", "--publish-mode", mode, root, "-n", id)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	url := endpoint(t, out, "expert-system")
	swarmPoll(t, "expert-system answers web/db/worker ok on the swarm", func() error { return seedOK(url) })

	// The node pulls on its own, with the credentials stored with each
	// service: this denv has none.
	if _, _, code := denvExe(t, bin, noCreds, "stop", id); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	for _, ref := range refs {
		if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	out, errOut, code = denvExe(t, bin, noCreds, "start", id)
	if code != 0 {
		t.Fatalf("start without credentials: exit %d\n%s", code, errOut)
	}
	url = endpoint(t, out, "expert-system")
	swarmPoll(t, "expert-system answers again, its images pulled by the node", func() error { return seedOK(url) })
	for _, ref := range refs {
		if _, err := c.ImageInspect(ctx, ref); err != nil {
			t.Errorf("%s not pulled again by the node: %v", ref, err)
		}
	}
	if _, _, code := denvExe(t, bin, noCreds, "rm", "--force", id); code != 0 {
		t.Errorf("rm: exit %d", code)
	}
}

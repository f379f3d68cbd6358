package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
	"github.com/alebellu/denv/backend/stack"
)

// requireSwarm makes the engine a one-node swarm manager for the test: it
// runs swarm init (advertising 127.0.0.1) when the engine is in no swarm,
// and leaves the swarm afterwards only in that case.
func requireSwarm(t *testing.T, b *backend.Backend) {
	t.Helper()
	ctx := context.Background()
	active, manager, err := stack.New(b).SwarmActive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if active && !manager {
		msg := "the engine is a swarm worker; stacks need a manager"
		if os.Getenv(backendtest.EnvVar) == "require" {
			t.Fatal(msg) // a skip would hide the swarm tests from CI
		}
		t.Skip(msg)
	}
	if active {
		return
	}
	if err := stack.New(b).SwarmInit(ctx, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stack.New(b).SwarmLeave(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// TestE2ESwarm makes the engine a one-node swarm once (and leaves it as
// it found it, even on failure) for the swarm engine's tests, run one
// after the other.
func TestE2ESwarm(t *testing.T) {
	b := e2e(t)
	ctx := context.Background()
	def, err := filepath.Abs("../../examples/expert-system-env.denv")
	if err != nil {
		t.Fatal(err)
	}
	if active, _, err := stack.New(b).SwarmActive(ctx); err == nil && !active {
		// outside a swarm: one line, nothing recorded
		id := backendtest.ProjectName(t)
		_, errOut, code := denv(t, "run", "--engine", "swarm", def, "-n", id)
		if code == 0 || !strings.Contains(errOut, "not a swarm manager") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("run --engine swarm outside a swarm: exit %d, %q", code, errOut)
		}
		if _, ok := listed(t, id, true); ok {
			t.Errorf("%s recorded after a failed run", id)
		}
	}
	requireSwarm(t, b)
	// The routing mesh (ingress ports, virtual IPs) needs the kernel's IPVS,
	// which Docker loads at swarm init; without it (some CI kernels) the
	// ports are published in host mode. Ingress output is golden-tested.
	mode := "ingress"
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		mode = "host"
		t.Logf("no /proc/net/ip_vs: publishing in host mode")
	}
	t.Run("ExpertSystem", func(t *testing.T) { testSwarmExpertSystem(t, b, def, mode) })
	t.Run("Update", func(t *testing.T) { testSwarmUpdate(t, b) })
	t.Run("Ready", func(t *testing.T) { testSwarmReady(t, b, mode) })
	// the denv executable, built once for the subtests that need one
	binDir := t.TempDir()
	bin := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(binDir, "denv")
		if _, err := os.Stat(path); err != nil {
			if out, err := exec.Command("go", "build", "-o", path, ".").CombinedOutput(); err != nil {
				t.Fatalf("building denv: %v\n%s", err, out)
			}
		}
		return path
	}
	t.Run("KilledRun", func(t *testing.T) { testSwarmKilledRun(t, b, bin(t)) })
	t.Run("Registry", func(t *testing.T) { testSwarmRegistry(t, b, bin(t), mode) })
}

// removeStackOnCleanup removes stack id (volumes too) when the test ends,
// before the swarm is left.
func removeStackOnCleanup(t *testing.T, b *backend.Backend, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := stack.New(b).RemoveStack(ctx, id, true); err != nil {
			t.Error(err)
		}
	})
}

// testSwarmExpertSystem deploys the seed's expert-system environment as
// a stack with denv run --engine swarm, gets web/db/worker ok from the
// expert system on its published port, checks encapsulation on the stack's
// networks, stops (scale to 0), starts and removes it.
func testSwarmExpertSystem(t *testing.T, b *backend.Backend, def, mode string) {
	ctx := context.Background()
	id := backendtest.ProjectName(t)
	removeStackOnCleanup(t, b, id)
	out := mustDenv(t, "run", "--engine", "swarm", "--publish-mode", mode, def, "-n", id)
	url := endpoint(t, out, "expert-system")
	answers := func() error { return seedOK(url) }
	swarmPoll(t, "expert-system answers web/db/worker ok on the swarm", answers)

	// Encapsulation on the running stack's networks.
	nets, err := stack.New(b).StackNetworks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 4 || len(nets["expert-system"]) == 0 {
		t.Fatalf("stack networks: %v", nets)
	}
	for _, other := range []string{"web-env-db", "worker-env-worker"} {
		for _, n := range nets[other] {
			if slices.Contains(nets["expert-system"], n) {
				t.Errorf("expert-system shares network %s with %s (%v)", n, other, nets)
			}
		}
	}
	if !slices.Contains(nets["web-env-web"], "default") {
		t.Errorf("web-env-web is not on the root network: %v", nets)
	}

	if logs := mustDenv(t, "logs", id, "web-env-web"); !strings.Contains(logs, "web-env-web  | ") || !strings.Contains(logs, "listening on :8080") {
		t.Errorf("denv logs of a stack service: %q", logs)
	}

	e, ok := listed(t, id, false)
	if !ok || e.Status != "running" || len(e.Services) != 4 || len(e.Ports) != 1 {
		t.Fatalf("denv envs: %+v (listed %v)", e, ok)
	}

	// stop scales to 0 and keeps the stack; start brings it back.
	mustDenv(t, "stop", id)
	swarmPoll(t, "the stack stops", func() error {
		if e, _ := listed(t, id, false); e.Status != "stopped" {
			return fmt.Errorf("status %q", e.Status)
		}
		return nil
	})
	// a new task: in host mode an open host port may change
	url = endpoint(t, mustDenv(t, "start", id), "expert-system")
	swarmPoll(t, "expert-system answers again after start", answers)

	if _, errOut, code := denv(t, "rm", id); code == 0 || !strings.Contains(errOut, "is running") {
		t.Errorf("rm of a running stack: exit %d, %q", code, errOut)
	}
	mustDenv(t, "rm", "--force", id)
	if svcs, err := stack.New(b).Stack(ctx, id); err != nil || len(svcs) != 0 {
		t.Errorf("services left after rm: %v %v", svcs, err)
	}
	// swarm removes networks asynchronously
	swarmPoll(t, "the stack's networks are removed", func() error {
		left, err := dockerClient(t).NetworkList(ctx, client.NetworkListOptions{
			Filters: client.Filters{}.Add("label", "com.docker.stack.namespace="+id),
		})
		if err == nil && len(left.Items) != 0 {
			err = fmt.Errorf("left: %v", left.Items)
		}
		return err
	})
	if _, ok := listed(t, id, true); ok {
		t.Errorf("%s still listed after rm", id)
	}
}

// swarmPoll is poll with a longer deadline: on a loaded machine a swarm
// may replace a task whose healthcheck timed out, and its name does not
// resolve until the new task runs.
func swarmPoll(t *testing.T, what string, f func() error) {
	t.Helper()
	pollFor(t, what, 2*time.Minute, 200*time.Millisecond, f)
}

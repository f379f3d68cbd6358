package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// stackCounts counts the services, running tasks, networks and volumes
// labelled with stack namespace id.
func stackCounts(t *testing.T, c *client.Client, id string) (services, running, networks, volumes int) {
	t.Helper()
	ctx := context.Background()
	f := client.Filters{}.Add("label", "com.docker.stack.namespace="+id)
	svcs, err := c.ServiceList(ctx, client.ServiceListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: f.Clone().Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks.Items {
		if tk.Status.State == swarm.TaskStateRunning {
			running++
		}
	}
	ns, err := c.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(svcs.Items), running, len(ns.Items), len(vs.Items)
}

// testSwarmKilledRun is TestE2EKilledRunIsRemovable on the swarm engine:
// `denv run --engine swarm` SIGKILLed once its stack has networks, and
// once its task runs (with a named volume), leaves an incomplete
// environment that envs --all shows, that rm refuses without --force
// while a task runs, and that rm --force --volumes removes entirely
// (services, networks, volumes of its namespace, directory). (That the
// name then runs again is TestE2EKilledRunIsRemovable's: the records are
// the same.)
func testSwarmKilledRun(t *testing.T, b *backend.Backend, bin string) {
	docker := dockerClient(t)
	def := filepath.Join(t.TempDir(), "kv.denv")
	// slow is never ready while the test runs: the run waits for it, so
	// it is still running when db's task runs (without it the run could
	// return between the test seeing the task run and its kill)
	src := "IMAGE ex/db VOLUME data:/data\nIMAGE ex/db AS slow SET READY_DELAY=10m\n  READY [\"/app\", \"health\"] WITHIN 15m\nEXPOSE db\n"
	if err := os.WriteFile(def, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	home := os.Getenv("DENV_HOME")
	for _, point := range []struct {
		name    string
		reached func(id string) bool
	}{
		{"networks", func(id string) bool { _, _, n, _ := stackCounts(t, docker, id); return n > 0 }},
		{"started", func(id string) bool { _, r, _, v := stackCounts(t, docker, id); return r > 0 && v > 0 }},
	} {
		t.Run(point.name, func(t *testing.T) {
			id := backendtest.ProjectName(t)
			removeStackOnCleanup(t, b, id)
			cmd := exec.Command(bin, "run", "--engine", "swarm", "--publish-mode", "host", def, "-n", id)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if cmd.ProcessState == nil {
					cmd.Process.Kill()
					cmd.Wait()
				}
			})
			pollFast(t, "the run to reach the point", func() bool { return point.reached(id) })
			killRun(t, cmd, &out)
			s, r, n, v := stackCounts(t, docker, id)
			t.Logf("killed with %d services (%d running tasks), %d networks, %d volumes", s, r, n, v)

			e, ok := listed(t, id, true)
			if !ok || e.Status != statusIncomplete || e.RunAlive {
				t.Fatalf("envs --all after the kill: %+v (listed %v)", e, ok)
			}
			if r > 0 {
				if len(e.Services) != 2 {
					t.Errorf("envs --all shows services %v of the stack", e.Services)
				}
				_, errOut, code := denv(t, "rm", id)
				if code == 0 || !strings.Contains(errOut, fmt.Sprintf("environment %q (an interrupted run) has running containers (", id)) ||
					!strings.Contains(errOut, fmt.Sprintf("service %s_db", id)) {
					t.Errorf("rm without --force of a running stack: exit %d, %q", code, errOut)
				}
			}
			mustDenv(t, "rm", "--force", "--volumes", id)
			if s, _, n, v := stackCounts(t, docker, id); s+n+v != 0 {
				t.Errorf("after rm: %d services, %d networks, %d volumes", s, n, v)
			}
			if _, err := os.Stat(filepath.Join(home, "envs", id)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("directory after rm: %v", err)
			}
			if _, ok := listed(t, id, true); ok {
				t.Errorf("%s still listed after rm", id)
			}
		})
	}
}

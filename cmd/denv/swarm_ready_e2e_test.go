package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// testSwarmReady runs on the swarm a db that listens only 3s after it
// starts, with READY: swarm runs READY as the service's healthcheck and
// reports the task running only once it passed, and denv run returns
// only then. The db container is healthy when run returns, its task
// became "running" at least 3s after the container started, and its
// health log holds failed checks before that (the wait was real).
func testSwarmReady(t *testing.T, b *backend.Backend, mode string) {
	ctx := context.Background()
	id := backendtest.ProjectName(t)
	removeStackOnCleanup(t, b, id)
	def := writeDef(t, `IMAGE ex/db SET READY_DELAY=3s
  READY ["/app", "health"] WITHIN 30s
IMAGE ex/web LINK db
EXPOSE web
`)
	mustDenv(t, "run", "--engine", "swarm", "--publish-mode", mode, def, "-n", id)
	c := dockerClient(t)
	tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: client.Filters{}.
		Add("label", "com.docker.stack.namespace="+id).Add("service", id+"_db").Add("desired-state", "running")})
	if err != nil || len(tasks.Items) != 1 {
		t.Fatalf("db's tasks: %+v %v", tasks.Items, err)
	}
	task := tasks.Items[0]
	if task.Status.State != swarm.TaskStateRunning || task.Status.ContainerStatus == nil {
		t.Fatalf("db's task after run: %+v", task.Status)
	}
	in, err := c.ContainerInspect(ctx, task.Status.ContainerStatus.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := in.Container.State.Health
	if h == nil || h.Status != "healthy" {
		t.Fatalf("db health when run returned: %+v", h)
	}
	if test := in.Container.Config.Healthcheck; test == nil || strings.Join(test.Test, " ") != "CMD /app health" {
		t.Errorf("db's healthcheck: %+v", test)
	}
	started, err := time.Parse(time.RFC3339Nano, in.Container.State.StartedAt)
	if err != nil {
		t.Fatal(err)
	}
	if d := task.Status.Timestamp.Sub(started); d < 3*time.Second {
		t.Errorf("db's task was reported running %s after its container started, before its 3s delay", d)
	}
	failed := 0
	for _, r := range h.Log {
		if r.ExitCode != 0 {
			failed++
		}
	}
	// the engine keeps the last 5 checks (see TestE2EReadyAfterDelay)
	if failed == 0 && len(h.Log) < 5 {
		t.Errorf("db's health log has no failed check before it was ready: %+v", h.Log)
	}
	mustDenv(t, "rm", "--force", id)
}

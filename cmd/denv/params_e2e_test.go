package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/records"
)

// TestE2EParamsSideBySide runs the parameters example (one database
// definition included twice under two names with different values, each
// with a web front end) and checks that the two instances are apart (a
// key stored through one is not in the other), that their containers carry
// the values they were compiled with, and that the record and denv envs
// show the --set values with the secret masked. Both versions are the
// local demo image (latest), told apart by a second parameter.
func TestE2EParamsSideBySide(t *testing.T) {
	b := e2e(t)
	random := make([]byte, 4)
	rand.Read(random)
	id := "params-e2e-" + hex.EncodeToString(random)
	downOnCleanup(t, b, id)
	def := filepath.Join("..", "..", "examples", "params", "two-dbs.denv")
	out := mustDenv(t, "run", def, "-n", id, "--set", "old=latest", "--set", "new=latest", "--set", "db_password=s3cret")
	oldURL, newURL := endpoint(t, out, "web-old"), endpoint(t, out, "web-new")

	poll(t, "PUT through web-old", func() error {
		code, body, err := httpDo("PUT", oldURL+"/data/greeting", "hello")
		if err == nil && code/100 != 2 {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})
	if code, body, err := httpDo("GET", oldURL+"/data/greeting", ""); err != nil || code != 200 || body != "hello" {
		t.Errorf("GET through web-old: %d %q %v", code, body, err)
	}
	if code, body, err := httpDo("GET", newURL+"/data/greeting", ""); err != nil || code != 404 {
		t.Errorf("GET through web-new: %d %q %v, want 404: the instances share data", code, body, err)
	}

	c := dockerClient(t)
	cs, err := c.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+id).Add("label", "com.docker.compose.service=db-old-db")})
	if err != nil || len(cs.Items) != 1 {
		t.Fatalf("db-old-db containers: %v %v", cs.Items, err)
	}
	labels := cs.Items[0].Labels
	if labels["denv.param.version"] != "latest" || labels["denv.param.password"] != "***" {
		t.Errorf("db-old-db labels: %v", labels)
	}
	ins, err := c.ContainerInspect(context.Background(), cs.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if env := strings.Join(ins.Container.Config.Env, " "); !strings.Contains(env, "DB_PASSWORD=s3cret") {
		t.Errorf("db-old-db environment %q lacks the real password", env)
	}

	e, ok := listed(t, id, false)
	if !ok || e.Params["db_password"] != "***" || e.Params["old"] != "latest" || e.Params["new"] != "latest" {
		t.Errorf("denv envs shows params %v (listed %v)", e.Params, ok)
	}
	raw, err := os.ReadFile(filepath.Join(os.Getenv("DENV_HOME"), "envs", id, records.RecordFile))
	if err != nil || strings.Contains(string(raw), "s3cret") || !strings.Contains(string(raw), `"db_password": "***"`) {
		t.Errorf("record.json = %s, %v: want the values, the secret masked", raw, err)
	}
}

package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// engineTest is what a test of a project on the engine starts with.
type engineTest struct {
	b      *backend.Backend
	image  string // the test image
	ctx    context.Context
	name   string // the project's, taken down when the test ends
	docker client.APIClient
}

// newEngineTest needs the engine (backendtest.Require).
func newEngineTest(t *testing.T) engineTest {
	t.Helper()
	b := backendtest.Require(t)
	e := engineTest{b: b, image: backendtest.EchoImage(t, b), ctx: testContext(t), name: backendtest.ProjectName(t), docker: backend.APIClient(b)}
	backendtest.DownOnCleanup(t, b, e.name)
	return e
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestNewUnreachableDaemon(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	t.Setenv("DOCKER_CONTEXT", "")
	b, err := backend.New(context.Background(), backend.WithProgress(io.Discard))
	if err == nil {
		_ = b.Close()
		t.Fatal("New succeeded against a nonexistent socket")
	}
	const want = "cannot reach the Docker daemon at unix:///nonexistent.sock: is it running?"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err.Error(), want)
	}
	if !errors.Is(err, backend.ErrDaemonUnreachable) {
		t.Errorf("errors.Is(err, ErrDaemonUnreachable) = false for %v", err)
	}
	var de *backend.DaemonUnreachableError
	if !errors.As(err, &de) || de.Host != "unix:///nonexistent.sock" {
		t.Errorf("errors.As(err, *DaemonUnreachableError) failed or wrong host: %#v", de)
	}
}

func TestLoadSetsComposeLabels(t *testing.T) {
	dir := t.TempDir()
	yaml := []byte(`
services:
  a:
    image: denv-test/echo:latest
    ports: ["8080"]
networks:
  unused: {}
`)
	p, err := backend.Load(context.Background(), yaml, "myenv", dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "myenv" {
		t.Errorf("project name = %q", p.Name)
	}
	a := p.Services["a"]
	for k, want := range map[string]string{
		api.ProjectLabel:    "myenv",
		api.ServiceLabel:    "a",
		api.OneoffLabel:     "False",
		api.WorkingDirLabel: dir,
	} {
		if got := a.CustomLabels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if a.CustomLabels[api.VersionLabel] == "" || a.CustomLabels[api.ConfigFilesLabel] == "" {
		t.Errorf("version/config_files labels missing: %v", a.CustomLabels)
	}
	// Normalised like `docker compose`: the default network is added,
	// short port syntax parsed, unused resources dropped.
	if _, ok := p.Networks["default"]; !ok {
		t.Errorf("no default network: %v", p.Networks)
	}
	if _, ok := p.Networks["unused"]; ok {
		t.Errorf("unused network kept")
	}
	if len(a.Ports) != 1 || a.Ports[0].Target != 8080 {
		t.Errorf("ports = %+v", a.Ports)
	}

	_, err = backend.Load(context.Background(), []byte("services:\n  a:\n    image: x\n    bogus: 1\n"), "myenv", dir)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Errorf("invalid YAML: err = %v, want a one-line error", err)
	}
	if _, err := backend.Load(context.Background(), yaml, "My Env", dir); err == nil {
		t.Error("invalid project name accepted")
	}
}

// twoServiceYAML: a publishes 8080 on an ephemeral port, is on network
// "front" and keeps /data on the named volume "data"; b is only on "back";
// c is on both networks (with API < 1.44 compose connects the second one
// after create) with no port (PublishImagePorts gives it one).
const twoServiceYAML = `
services:
  a:
    image: %[1]s
    pull_policy: never
    ports: ["8080"]
    networks: [front]
    volumes: ["data:/data"]
  b:
    image: %[1]s
    pull_policy: never
    networks: [back]
  c:
    image: %[1]s
    pull_policy: never
    networks: [front, back]
networks:
  front: {}
  back: {}
volumes:
  data: {}
`

func TestLifecycle(t *testing.T) {
	e := newEngineTest(t)
	b, image, ctx, name, docker := e.b, e.image, e.ctx, e.name, e.docker

	project, err := backend.Load(ctx, fmt.Appendf(nil, twoServiceYAML, image), name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PublishImagePorts(ctx, project, []string{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	if got := project.Services["c"].Ports; len(got) != 1 || got[0].Target != 8080 || got[0].Published != "" || got[0].Protocol != "tcp" {
		t.Fatalf("c ports after PublishImagePorts = %+v, want 8080/tcp on an ephemeral port", got)
	}
	if got := project.Services["a"].Ports; len(got) != 1 {
		t.Fatalf("a already had a port, PublishImagePorts changed it: %+v", got)
	}
	if err := b.PublishImagePorts(ctx, project, []string{"nope"}); err == nil {
		t.Error("PublishImagePorts accepted an unknown service")
	}

	start := time.Now()
	if err := b.Up(ctx, project, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Up (3 services) took %v", time.Since(start))

	env := findEnv(t, b, name)
	if env.Status != backend.StatusRunning {
		t.Errorf("status = %s, want running", env.Status)
	}
	if !slices.Equal(env.Services, []string{"a", "b", "c"}) {
		t.Errorf("services = %v", env.Services)
	}
	portA := hostPort(t, env, "a", 8080)
	portC := hostPort(t, env, "c", 8080)
	for _, p := range env.Ports {
		if p.Service == "b" {
			t.Errorf("b publishes a port: %+v", p)
		}
	}
	if env.Labels[api.ProjectLabel] != name || env.Created.IsZero() {
		t.Errorf("labels/created: %v %v", env.Labels, env.Created)
	}
	for _, l := range []string{api.ServiceLabel, api.ContainerNumberLabel, api.ConfigHashLabel} {
		if _, ok := env.Labels[l]; ok {
			t.Errorf("per-container label %s reported as a project label", l)
		}
	}
	if env.Labels[api.WorkingDirLabel] == "" {
		t.Errorf("project label %s missing: %v", api.WorkingDirLabel, env.Labels)
	}

	if body := httpDo(t, http.MethodGet, portA, "/", ""); strings.TrimSpace(body) == "" {
		t.Error("GET / on a: empty hostname")
	}
	httpDo(t, http.MethodGet, portC, "/", "")

	nets, err := b.Networks(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	front, back := name+"_front", name+"_back"
	if !slices.Equal(nets["a"], []string{front}) || !slices.Equal(nets["b"], []string{back}) || !slices.Equal(nets["c"], []string{back, front}) {
		t.Errorf("networks = %v", nets)
	}
	for _, n := range nets["b"] {
		if slices.Contains(nets["a"], n) {
			t.Errorf("b shares network %s with a", n)
		}
	}

	ps, err := b.Ps(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 || ps[0].Service != "a" || ps[0].State != "running" || len(ps[0].Ports) != 1 || ps[0].Ports[0].HostPort != portA {
		t.Errorf("ps = %+v", ps)
	}

	var logs bytes.Buffer
	if err := b.Logs(ctx, name, []string{"a"}, false, &logs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "listening on :8080") || strings.Contains(logs.String(), name+"-b-") {
		t.Errorf("logs of a = %q", logs.String())
	}

	// Up again with the same definition, freshly loaded: nothing changes.
	again, err := backend.Load(ctx, fmt.Appendf(nil, twoServiceYAML, image), name, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PublishImagePorts(ctx, again, []string{"a", "c"}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := b.Up(ctx, again, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Logf("Up of an unchanged environment took %v", time.Since(start))
	ps2, err := b.Ps(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ps2 {
		if i >= len(ps) || ps2[i].ID != ps[i].ID {
			t.Errorf("Up of an unchanged project recreated %s", ps2[i].Name)
		}
	}

	httpDo(t, http.MethodPut, portA, "/file/greeting", "hello from before stop")

	start = time.Now()
	if err := b.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop took %v", time.Since(start))
	if n := countContainers(t, docker, name, true); n != 0 {
		t.Errorf("%d containers still running after Stop", n)
	}
	if n := countContainers(t, docker, name, false); n != 3 {
		t.Errorf("%d containers after Stop, want 3 (stopped, not removed)", n)
	}
	if env := findEnv(t, b, name); env.Status != backend.StatusStopped || len(env.Ports) != 0 {
		t.Errorf("after Stop: status %s ports %v", env.Status, env.Ports)
	}

	start = time.Now()
	if err := b.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(start))
	env = findEnv(t, b, name)
	if env.Status != backend.StatusRunning {
		t.Errorf("after Start: status %s", env.Status)
	}
	portA = hostPort(t, env, "a", 8080) // may have changed
	if got := httpDo(t, http.MethodGet, portA, "/file/greeting", ""); got != "hello from before stop" {
		t.Errorf("file after Stop/Start = %q", got)
	}

	// Down keeps volumes unless asked.
	start = time.Now()
	if err := b.Down(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("Down took %v", time.Since(start))
	if n := countContainers(t, docker, name, false); n != 0 {
		t.Errorf("%d containers after Down", n)
	}
	if n := countNetworks(t, docker, name); n != 0 {
		t.Errorf("%d networks after Down", n)
	}
	if !volumeExists(t, docker, name+"_data") {
		t.Error("Down without volumes removed the named volume")
	}
	if err := b.Down(ctx, name, true); err != nil {
		t.Fatal(err)
	}
	if volumeExists(t, docker, name+"_data") {
		t.Error("Down with volumes kept the named volume")
	}
	for _, e := range list(t, b) {
		if e.Name == name {
			t.Errorf("environment still listed after Down: %+v", e)
		}
	}
	if err := b.Start(ctx, name); !errors.Is(err, backend.ErrNotFound) {
		t.Errorf("Start of a removed environment: err = %v, want ErrNotFound", err)
	}
	if err := b.Stop(ctx, name); err != nil {
		t.Errorf("Stop of a removed environment: %v", err)
	}
	if ps, err := b.Ps(ctx, name); err != nil || len(ps) != 0 {
		t.Errorf("Ps of a removed environment: %v, %v", ps, err)
	}
	if nets, err := b.Networks(ctx, name); err != nil || len(nets) != 0 {
		t.Errorf("Networks of a removed environment: %v, %v", nets, err)
	}
	logs.Reset()
	if err := b.Logs(ctx, name, nil, false, &logs); err != nil || logs.Len() != 0 {
		t.Errorf("Logs of a removed environment: %q, %v", logs.String(), err)
	}
}

func TestUpFailureRemovesWhatItCreated(t *testing.T) {
	e := newEngineTest(t)
	b, image, ctx, name, docker := e.b, e.image, e.ctx, e.name, e.docker
	dir := t.TempDir()

	good := fmt.Sprintf(`
services:
  a:
    image: %s
    pull_policy: never
    ports: ["8080"]
    volumes: ["data:/data"]
volumes:
  data: {}
`, image)
	// The data volume exists before the failing Up, with a file in it.
	project, err := backend.Load(ctx, []byte(good), name, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Up(ctx, project, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	httpDo(t, http.MethodPut, hostPort(t, findEnv(t, b, name), "a", 8080), "/file/keep", "precious")
	if err := b.Down(ctx, name, false); err != nil {
		t.Fatal(err)
	}

	bad := fmt.Sprintf(`
services:
  a:
    image: %s
    pull_policy: never
    ports: ["8080"]
    volumes: ["data:/data", "scratch:/tmp"]
    networks: [default, extra]
  b:
    image: denv-test/missing:none
    pull_policy: never
    depends_on: [a]
volumes:
  data: {}
  scratch: {}
networks:
  extra: {}
`, image)
	project, err = backend.Load(ctx, []byte(bad), name, dir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = b.Up(ctx, project, backend.UpOptions{})
	t.Logf("failing Up took %v: %v", time.Since(start), err)
	if err == nil {
		t.Fatal("Up with a missing image succeeded")
	}
	if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "service b: No such image: denv-test/missing:none") {
		t.Errorf("error is not one line naming the service and its missing image: %q", err)
	}
	if n := countContainers(t, docker, name, false); n != 0 {
		t.Errorf("%d containers left by the failed Up", n)
	}
	if n := countNetworks(t, docker, name); n != 0 {
		t.Errorf("%d networks left by the failed Up", n)
	}
	if volumeExists(t, docker, name+"_scratch") {
		t.Error("the volume created by the failed Up was kept")
	}
	if !volumeExists(t, docker, name+"_data") {
		t.Fatal("the failed Up removed the pre-existing volume")
	}

	// The pre-existing volume still holds its data.
	project, err = backend.Load(ctx, []byte(good), name, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Up(ctx, project, backend.UpOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := httpDo(t, http.MethodGet, hostPort(t, findEnv(t, b, name), "a", 8080), "/file/keep", ""); got != "precious" {
		t.Errorf("file in the pre-existing volume = %q", got)
	}
}

func projectFilter(name string) client.Filters {
	return make(client.Filters).Add("label", api.ProjectLabel+"="+name)
}

func countNetworks(t *testing.T, docker client.APIClient, name string) int {
	t.Helper()
	nl, err := docker.NetworkList(context.Background(), client.NetworkListOptions{Filters: projectFilter(name)})
	if err != nil {
		t.Fatal(err)
	}
	return len(nl.Items)
}

func countContainers(t *testing.T, docker client.APIClient, name string, runningOnly bool) int {
	t.Helper()
	f := projectFilter(name)
	if runningOnly {
		f.Add("status", "running")
	}
	res, err := docker.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Items)
}

func volumeExists(t *testing.T, docker client.APIClient, name string) bool {
	t.Helper()
	res, err := docker.VolumeList(context.Background(), client.VolumeListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Items {
		if v.Name == name {
			return true
		}
	}
	return false
}

func list(t *testing.T, b *backend.Backend) []backend.EnvState {
	t.Helper()
	envs, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func findEnv(t *testing.T, b *backend.Backend, name string) backend.EnvState {
	t.Helper()
	for _, e := range list(t, b) {
		if e.Name == name {
			return e
		}
	}
	t.Fatalf("environment %s not listed", name)
	return backend.EnvState{}
}

func hostPort(t *testing.T, env backend.EnvState, service string, containerPort uint16) uint16 {
	t.Helper()
	for _, p := range env.Ports {
		if p.Service == service && p.ContainerPort == containerPort && p.Protocol == "tcp" {
			if p.HostPort == 0 {
				t.Fatalf("%s:%d published on port 0", service, containerPort)
			}
			return p.HostPort
		}
	}
	t.Fatalf("%s:%d is not published: %+v", service, containerPort, env.Ports)
	return 0
}

// httpDo sends a request to 127.0.0.1:port, retrying for a few seconds while
// the server comes up, and returns the body of a 2xx answer.
func httpDo(t *testing.T, method string, port uint16, path, body string) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, path)
	deadline := time.Now().Add(15 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			data, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr == nil && resp.StatusCode/100 == 2 {
				return string(data)
			}
			lastErr = fmt.Errorf("status %s: %s %v", resp.Status, data, rerr)
		} else {
			lastErr = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s %s: %v", method, url, lastErr)
	return ""
}

// BenchmarkList measures List, which must cost a single container list call
// whatever the number of environments (compare with `docker compose ls`).
func BenchmarkList(b *testing.B) {
	be := backendtest.Require(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := be.List(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend/backendtest"
)

// Registry fixture of scripts/registry-up.sh (`make registry`).
const (
	testRegistry     = "127.0.0.1:5000"
	testRegistryUser = "denv"
	testRegistryPass = "denv-test-only"
)

// requireRegistry starts (or finds) the test registry, skipping the test
// when it cannot, or failing it under DENV_E2E=require.
func requireRegistry(t *testing.T) {
	t.Helper()
	out, err := exec.Command("../../scripts/registry-up.sh").CombinedOutput()
	if err != nil {
		msg := "no test registry on " + testRegistry + " (make registry): " + strings.TrimSpace(string(out))
		if os.Getenv(backendtest.EnvVar) == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// registryImages pushes the demo images to the test registry as
// 127.0.0.1:5000/ex/NAME:TAG (a tag of this test run) and removes those
// local tags, so that the images are only in the registry. It returns the
// refs by demo image; they are untagged again when the test ends.
func registryImages(t *testing.T, c *client.Client) (tag string, refs map[string]string) {
	t.Helper()
	ctx := context.Background()
	tag = "t" + randomHex(t, 6)
	auth, err := authconfig.Encode(registry.AuthConfig{Username: testRegistryUser, Password: testRegistryPass, ServerAddress: testRegistry})
	if err != nil {
		t.Fatal(err)
	}
	refs = map[string]string{}
	for _, img := range demoImages {
		ref := testRegistry + "/" + img + ":" + tag
		refs[img] = ref
		// Forced: the engine refuses to untag an image a container uses
		// (another test's, by ID) once the tag has a registry digest; ex/*
		// keeps the image.
		t.Cleanup(func() {
			_, _ = c.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true})
		})
		if _, err := c.ImageTag(ctx, client.ImageTagOptions{Source: img, Target: ref}); err != nil {
			t.Fatal(err)
		}
		push, err := c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
		if err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
		for m, err := range push.JSONMessages(ctx) {
			if err == nil && m.Error != nil {
				err = errors.New(m.Error.Message)
			}
			if err != nil {
				t.Fatalf("push %s: %v", ref, err)
			}
		}
		if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	return tag, refs
}

// registryDefs writes the seed definitions with every image taken from the
// test registry at tag into a temporary directory and returns the root's
// path; the root exposes the expert system without PORT (its image's
// EXPOSE is what gets published).
func registryDefs(t *testing.T, tag string) string {
	t.Helper()
	dir := t.TempDir()
	image := regexp.MustCompile(`\b(IMAGE|EXPOSE) ex/(web|db|worker|expert-system)\b`)
	for _, rel := range []string{"expert-system-env.denv", "ex/web-env.denv", "ex/worker-env.denv"} {
		src, err := os.ReadFile(filepath.Join("../../examples", rel))
		if err != nil {
			t.Fatal(err)
		}
		out := image.ReplaceAllString(string(src), "$1 "+testRegistry+"/ex/$2:"+tag)
		if !strings.Contains(out, testRegistry) {
			t.Fatalf("%s: no image rewritten", rel)
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(dir, "expert-system-env.denv")
	if data, _ := os.ReadFile(root); strings.Contains(string(data), "PORT") {
		t.Fatalf("the root must expose the expert system without PORT:\n%s", data)
	}
	return root
}

// dockerConfig writes a DOCKER_CONFIG directory logged in to the test
// registry (auths, as `docker login` writes them) and returns it.
func dockerConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cfg := map[string]any{"auths": map[string]any{
		testRegistry: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(testRegistryUser + ":" + testRegistryPass))},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// denvExe runs the denv binary bin with DOCKER_CONFIG set to dockerCfg
// (the docker CLI reads it once per process, so each case gets its own).
func denvExe(t *testing.T, bin, dockerCfg string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerCfg)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// The seed's shape with every image only in a registry behind basic
// auth: denv run pulls them with the docker CLI's credentials before
// reading the root's EXPOSE ports, clone works on it, and without
// credentials the run fails in one line and leaves nothing.
func TestE2ERegistryPull(t *testing.T) {
	b := e2e(t)
	requireRegistry(t)
	c := dockerClient(t)
	ctx := context.Background()
	bin := buildDenv(t)
	tag, refs := registryImages(t, c)
	root := registryDefs(t, tag)
	for _, ref := range refs {
		if _, err := c.ImageInspect(ctx, ref); err == nil {
			t.Fatalf("%s is still local after its removal", ref)
		}
	}

	// Without credentials: one line, non-zero, nothing left.
	anon := backendtest.ProjectName(t) + "-anon"
	downOnCleanup(t, b, anon)
	_, errOut, code := denvExe(t, bin, t.TempDir(), "run", root, "-n", anon)
	// stderr is compose's pull progress, then the error: one line, last
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	last := lines[len(lines)-1]
	if code == 0 || strings.Count(errOut, "denv:") != 1 || !strings.HasPrefix(last, "denv: cannot pull the images of "+anon) ||
		!strings.Contains(last, "no basic auth credentials") || !strings.Contains(errOut, "Pulling") {
		t.Errorf("run without credentials: exit %d, stderr %q", code, errOut)
	}
	if n, _, nets, vols := engineCounts(t, c, anon); n+nets+vols != 0 {
		t.Errorf("run without credentials left %d containers, %d networks, %d volumes", n, nets, vols)
	}
	if _, ok := listed(t, anon, true); ok {
		t.Errorf("run without credentials left a record")
	}
	for _, ref := range refs {
		if _, err := c.ImageInspect(ctx, ref); err == nil {
			t.Errorf("%s became local without credentials", ref)
		}
	}

	// With them: pulled, then the expert system's EXPOSE port published.
	cfg := dockerConfig(t)
	id := backendtest.ProjectName(t)
	downOnCleanup(t, b, id)
	out, errOut, code := denvExe(t, bin, cfg, "run", root, "-n", id)
	if code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errOut)
	}
	for _, ref := range refs {
		if _, err := c.ImageInspect(ctx, ref); err != nil {
			t.Errorf("%s not pulled: %v", ref, err)
		}
	}
	url := endpoint(t, out, "expert-system")
	poll(t, "expert-system answers web/db/worker ok", func() error { return seedOK(url) })

	clone := id + "-c"
	downOnCleanup(t, b, clone)
	out, errOut, code = denvExe(t, bin, cfg, "clone", id, "-n", clone)
	if code != 0 {
		t.Fatalf("clone: exit %d\n%s", code, errOut)
	}
	cloneURL := endpoint(t, out, "expert-system")
	if cloneURL == url {
		t.Fatalf("clone took the source's endpoint %s", url)
	}
	poll(t, "the clone's expert-system answers web/db/worker ok", func() error { return seedOK(cloneURL) })
}

package backend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
	"github.com/alebellu/denv/backend/backendtest"
)

// The pull policies on the real engine, with images no registry has: what
// is present is not pulled unless the policy says always; what is missing
// is pulled (and fails here) unless the policy says never, which fails
// first, naming the service.
func TestPullPolicies(t *testing.T) {
	b := backendtest.Require(t)
	ctx := testContext(t)
	// 127.0.0.1:1 refuses at once: an attempted pull fails fast (and no
	// public registry is asked)
	tag := backendtest.ProjectName(t)
	present := "127.0.0.1:1/denv-test/echo:" + tag
	missing := "127.0.0.1:1/denv-test/absent:" + tag
	api := backend.APIClient(b)
	if _, err := api.ImageTag(ctx, client.ImageTagOptions{Source: backendtest.EchoImage(t, b), Target: present}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = api.ImageRemove(context.Background(), present, client.ImageRemoveOptions{}) })

	for _, policy := range []string{"", "missing", "if_not_present", "never", "build", "daily"} {
		pulled, err := b.Pull(ctx, "p", []backend.ImageToPull{{Service: "s", Image: present, Policy: policy}})
		if err != nil || len(pulled) != 0 {
			t.Errorf("present image, policy %q: pulled %v, %v", policy, pulled, err)
		}
	}
	for _, policy := range []string{"", "missing", "always"} {
		img := present
		if policy != "always" {
			img = missing
		}
		_, err := b.Pull(ctx, "p", []backend.ImageToPull{{Service: "s", Image: img, Policy: policy}})
		if err == nil || !strings.Contains(err.Error(), "cannot pull the images of p ("+img+")") || strings.Contains(err.Error(), "\n") {
			t.Errorf("policy %q of %s: want a one-line pull error, got %v", policy, img, err)
		}
	}
	_, err := b.Pull(ctx, "p", []backend.ImageToPull{{Service: "s", Image: missing, Policy: "never"}})
	if want := `service "s": image ` + missing + ` is not available locally and its pull_policy is never`; err == nil || err.Error() != want {
		t.Errorf("never, missing: got %v, want %s", err, want)
	}
	if _, err := b.Pull(ctx, "p", []backend.ImageToPull{{Service: "s", Image: present, Policy: "sometimes"}}); err == nil || !strings.Contains(err.Error(), `invalid pull_policy "sometimes"`) {
		t.Errorf("invalid policy: %v", err)
	}
}

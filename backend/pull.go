package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/cli/cli/command"
	"github.com/docker/compose/v5/pkg/api"
)

// ImageToPull is a service's image and its compose pull_policy ("" is
// compose's default, pull when missing), what [Backend.Pull] decides on.
type ImageToPull struct {
	Service string
	Image   string
	Policy  string
}

// Pull makes the images of images present on the engine, following each
// one's pull_policy as `docker compose up` does (compose's mustPull):
// "", missing, if_not_present: pulled when not present locally; always:
// pulled; daily, weekly, every_<duration>: pulled when missing or older;
// never: must be present, else an error naming the service; build:
// left to the build. project names the pull (compose's progress shows it).
//
// The pull is compose's (api.Compose.Pull of a project of the services that
// need one), so it uses the docker CLI's credentials (DOCKER_CONFIG,
// config.json auths and credential helpers) and shows compose's pull
// progress on the Backend's progress writer. It returns the services it
// pulled.
func (b *Backend) Pull(ctx context.Context, project string, images []ImageToPull) ([]string, error) {
	sub := &types.Project{Name: project, Services: types.Services{}}
	// What each image needs is asked of the engine for all at once (one
	// inspect each, on the critical path of every run).
	needs := make([]bool, len(images))
	errs := make([]error, len(images))
	var wg sync.WaitGroup
	for i, img := range images {
		if img.Image == "" {
			continue
		}
		wg.Go(func() { needs[i], errs[i] = b.mustPull(ctx, img) })
	}
	wg.Wait()
	var pulled []string
	for i, img := range images {
		if errs[i] != nil {
			return nil, errs[i]
		}
		if needs[i] {
			// An explicit compose pull of a service without pull_policy
			// always pulls; the ones chosen here are due.
			sub.Services[img.Service] = types.ServiceConfig{Name: img.Service, ContainerSpec: types.ContainerSpec{Image: img.Image}}
			pulled = append(pulled, img.Service)
		}
	}
	if len(pulled) == 0 {
		return nil, nil
	}
	slices.Sort(pulled)
	svc, err := b.newCompose(nil)
	if err != nil {
		return nil, err
	}
	if err := svc.Pull(ctx, sub, api.PullOptions{}); err != nil {
		var refs []string
		for _, s := range pulled {
			refs = append(refs, sub.Services[s].Image)
		}
		return nil, fmt.Errorf("cannot pull the images of %s (%s): %s%s", project, strings.Join(refs, ", "), pullMsg(err), loginHint(err))
	}
	return pulled, nil
}

// mustPull applies img's pull policy to what the engine has.
func (b *Backend) mustPull(ctx context.Context, img ImageToPull) (bool, error) {
	policy, every, err := (types.ServiceConfig{ContainerSpec: types.ContainerSpec{PullPolicy: img.Policy}}).GetPullPolicy()
	if err != nil {
		return false, fmt.Errorf("service %q: %w", img.Service, err)
	}
	if policy == types.PullPolicyAlways {
		return true, nil
	}
	if policy == types.PullPolicyBuild {
		return false, nil
	}
	res, err := b.api.ImageInspect(ctx, img.Image)
	switch {
	case err == nil:
	case isNotFound(err) && policy == types.PullPolicyNever:
		return false, fmt.Errorf("service %q: image %s is not available locally and its pull_policy is never", img.Service, img.Image)
	case isNotFound(err):
		return true, nil
	default:
		return false, fmt.Errorf("cannot inspect image %s: %s", img.Image, oneLine(err))
	}
	if policy == types.PullPolicyRefresh {
		return res.Metadata.LastTagTime.IsZero() || time.Now().After(res.Metadata.LastTagTime.Add(every)), nil
	}
	return false, nil
}

// PullProject pulls the images of project's services that their
// pull_policy asks for (see [Backend.Pull]) and then marks the pulled
// services pull_policy missing in project, so that the Up that follows does
// not pull them a second time (compose leaves pull_policy out of a
// service's configuration hash). Services with a build section are left to
// compose.
func (b *Backend) PullProject(ctx context.Context, project *types.Project) error {
	var images []ImageToPull
	for _, name := range project.ServiceNames() {
		s := project.Services[name]
		if s.Build != nil {
			continue
		}
		images = append(images, ImageToPull{Service: name, Image: s.Image, Policy: s.PullPolicy})
	}
	pulled, err := b.Pull(ctx, project.Name, images)
	if err != nil {
		return err
	}
	for _, name := range pulled {
		s := project.Services[name]
		s.PullPolicy = types.PullPolicyMissing
		project.Services[name] = s
	}
	return nil
}

// RegistryAuth returns the docker CLI's credentials for image's registry,
// encoded for the engine's API (what `docker stack deploy
// --with-registry-auth` sends with a service, so that every node can pull
// its image); "" when there are none.
func (b *Backend) RegistryAuth(image string) (string, error) {
	auth, err := command.RetrieveAuthTokenFromImage(b.dockerCli.ConfigFile(), image)
	if err != nil {
		return "", fmt.Errorf("cannot read the registry credentials for %s: %s", image, oneLine(err))
	}
	return auth, nil
}

// PrepareImages readies project for a create or up on this engine: it pulls
// what the services' pull policies ask for ([Backend.PullProject]), then
// publishes the image ports of the services that ask for them
// ([Backend.PublishImagePorts]), which needs the images present. run,
// clone and the start of a recreated environment all go through it.
func (b *Backend) PrepareImages(ctx context.Context, project *types.Project) error {
	if err := b.PullProject(ctx, project); err != nil {
		return err
	}
	return b.PublishImagePorts(ctx, project, ImagePortServices(project))
}

// pullMsg is a failed pull's error on one line, each distinct message once
// (compose joins the failure of one pull with the same error as the
// reason the others stopped), without the daemon's prefix.
func pullMsg(err error) string {
	var parts []string
	for _, l := range strings.Split(oneLine(err), "; ") {
		l = strings.TrimPrefix(l, "Error response from daemon: ")
		if !slices.Contains(parts, l) {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// loginHint says where credentials come from when the registry asked for
// some.
func loginHint(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "no basic auth credentials") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "denied") {
		return " (credentials come from the docker CLI's configuration: docker login, or DOCKER_CONFIG)"
	}
	return ""
}

package backend

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// DefaultWaitTimeout bounds how long [Backend.Up] and [Backend.Start] wait
// for the containers to be running (healthy when they have a healthcheck)
// when the options do not say otherwise.
const DefaultWaitTimeout = 2 * time.Minute

// CleanupTimeout bounds the removal of what a failed operation created
// (also for volume copying, in backend/volumecopy).
const CleanupTimeout = time.Minute

// ErrNotFound is matched (with errors.Is) by errors about an environment
// that has no container.
const ErrNotFound = sentinelError("environment not found")

// UpOptions tunes [Backend.Up].
type UpOptions struct {
	// WaitTimeout bounds the wait for every container to be running
	// (healthy when it has a healthcheck); 0 means DefaultWaitTimeout.
	WaitTimeout time.Duration
	// RemoveOrphans removes the containers of services that are no longer
	// in the project.
	RemoveOrphans bool
	// NoWait returns once the containers are started, as `up --detach`
	// does, instead of waiting until they run (`up --detach --wait`).
	// The wait follows the engine's events (waitReady). The services with a
	// healthcheck (READY, or their image's HEALTHCHECK) are waited for
	// all the same, until they are healthy (LANGUAGE.md section 8).
	NoWait bool
	// KeepOnFailure leaves what a failed Up created in place (to inspect
	// it) instead of removing it; the error says so.
	KeepOnFailure bool
}

// Up creates and starts, detached, every service of project (compose's
// `up --detach --wait`, or `up --detach` with NoWait): networks and
// volumes, then containers, and waits until they run. Containers whose
// configuration did not change are kept; when some existed before (an
// update), compose's start phase is given [Backend.startProject]'s
// project, without the waits that start nothing.
// Nothing is pulled for images present locally (compose's pull policy
// "missing", or whatever pull_policy the project sets).
//
// If Up fails, it removes what this call created - containers, networks and
// volumes that did not exist before it - and reports what failed. It never
// removes a container, network or volume that existed before the call.
func (b *Backend) Up(ctx context.Context, project *types.Project, opts UpOptions) error {
	wait := opts.WaitTimeout
	if wait <= 0 {
		wait = DefaultWaitTimeout
	}
	if project == nil || project.Name == "" {
		return fmt.Errorf("cannot start an environment: no project")
	}
	waitFor, err := b.prepareReadiness(ctx, project)
	if err != nil {
		return fmt.Errorf("cannot start environment %s: %w", project.Name, err)
	}
	if !opts.NoWait {
		wait = max(wait, readyTimeout(project, waitFor, 0))
	}
	return b.converge(ctx, "start", project, opts.KeepOnFailure, func(svc api.Compose, before snapshot) error {
		// Compose starts the services in order (a service LINKed to one
		// with a healthcheck waits for it there); the wait at the end is
		// denv's own, on the engine's events (waitReady).
		// WaitTimeout bounds those start-order waits.
		start := api.StartOptions{Project: project, WaitTimeout: wait}
		var err error
		if len(before.containers) == 0 {
			err = svc.Up(ctx, project, api.UpOptions{Create: createOptions(opts.RemoveOrphans), Start: start})
		} else {
			// Some containers ran before (an update): the start phase
			// is given the project without the waits that start nothing.
			err = svc.Create(ctx, project, createOptions(opts.RemoveOrphans))
			if err == nil {
				start.Project, err = b.startProject(ctx, project)
			}
			if err == nil {
				err = svc.Start(ctx, project.Name, start)
			}
		}
		if err != nil {
			return err
		}
		if opts.NoWait {
			return b.waitReady(ctx, project.Name, waitFor, false, readyTimeout(project, waitFor, 0))
		}
		return b.waitReady(ctx, project.Name, nil, true, wait)
	})
}

// startProject is project as the start phase of an up is given it, after
// its create phase: the services whose containers all run (left untouched
// by the create phase) and on which no service with a container to start
// depends, directly or not, lose their depends_on. Compose's start phase
// waits for each service's dependencies even when it starts nothing for
// it, polling every 500 ms and not before the first 500 ms: in an update
// that recreates one service, every running service that depends on it
// waits, one after the other along the chain of dependencies, without
// starting anything. What is started still waits for what it depends on,
// as compose orders it; readiness is waited for afterwards by waitReady,
// on the engine's events. The create phase keeps every depends_on (the
// order of its recreations, restart: true).
func (b *Backend) startProject(ctx context.Context, project *types.Project) (*types.Project, error) {
	cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(project.Name)})
	if err != nil {
		return nil, fmt.Errorf("cannot list containers: %s", oneLine(err))
	}
	running := map[string]bool{} // service -> every container of it runs
	for _, c := range cs.Items {
		if c.Labels[api.OneoffLabel] == "True" {
			continue
		}
		s := serviceOf(c)
		r, seen := running[s]
		running[s] = (r || !seen) && c.State == container.StateRunning
	}
	// keep: the services to start and what they depend on, transitively
	keep := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if keep[name] {
			return
		}
		keep[name] = true
		for dep := range project.Services[name].DependsOn {
			visit(dep)
		}
	}
	for name := range project.Services {
		if !running[name] {
			visit(name)
		}
	}
	if len(keep) == len(project.Services) {
		return project, nil
	}
	p := *project
	p.Services = maps.Clone(project.Services)
	for name, s := range p.Services {
		if !keep[name] && len(s.DependsOn) > 0 {
			s.DependsOn = nil
			p.Services[name] = s
		}
	}
	return &p, nil
}

// Create creates every network, volume and container of project without
// starting anything (compose's `create`), for `denv clone`; a later
// [Backend.Start] or [Backend.Up] starts it. Like [Backend.Up], when it
// fails it removes what this call created and nothing else.
func (b *Backend) Create(ctx context.Context, project *types.Project) error {
	return b.converge(ctx, "create", project, false, func(svc api.Compose, _ snapshot) error {
		return svc.Create(ctx, project, createOptions(false))
	})
}

// createOptions are the options of every create: containers whose
// configuration changed are recreated, anonymous volumes inherited, and
// nothing present locally is pulled.
func createOptions(removeOrphans bool) api.CreateOptions {
	return api.CreateOptions{
		RemoveOrphans:        removeOrphans,
		Recreate:             api.RecreateDiverged,
		RecreateDependencies: api.RecreateDiverged,
		Inherit:              true,
		QuietPull:            true,
	}
}

// converge runs op (compose's up or create of project); if it fails, it
// removes what the call created - containers, networks and volumes that
// did not exist before it - and returns one error saying what failed
// ("cannot VERB environment NAME: ..."), which images are missing, which
// services were not ready (with their last logs and checks) and what was
// removed. With keep, it removes nothing and says so.
func (b *Backend) converge(ctx context.Context, verb string, project *types.Project, keep bool, op func(svc api.Compose, before snapshot) error) error {
	if project == nil || project.Name == "" {
		return fmt.Errorf("cannot %s an environment: no project", verb)
	}
	before, err := b.snapshot(ctx, project.Name)
	if err != nil {
		return fmt.Errorf("cannot %s environment %s: %w", verb, project.Name, err)
	}
	rec := &eventRecorder{}
	svc, err := b.newCompose(rec)
	if err != nil {
		return err
	}
	opErr := op(svc, before)
	if opErr == nil {
		return nil
	}

	// Clean up with a context of our own: ctx may be what was cancelled.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
	defer cancel()
	// What was not ready is read before the cleanup removes it.
	report := b.notReadyReport(cctx, project.Name)
	var removed string
	var cleanErr error
	if !keep {
		removed, cleanErr = b.removeCreatedSince(cctx, project.Name, before)
	}
	msg := fmt.Sprintf("cannot %s environment %s: %s%s", verb, project.Name, failedAt(project.Name, rec), composeMsg(opErr))
	if missing := b.missingImages(cctx, project, msg); len(missing) > 0 {
		msg += " (not available locally: " + strings.Join(missing, ", ") + ")"
	}
	if ctx.Err() != nil && !strings.Contains(msg, "context canceled") {
		msg += " (interrupted)"
	}
	if removed != "" {
		msg += "; removed what it had created: " + removed
	}
	if keep {
		msg += "; " + keptLine(project.Name)
	}
	if cleanErr != nil {
		msg += "; cleanup failed: " + oneLine(cleanErr)
	}
	if report != "" {
		msg += "\n" + report
	}
	if keep {
		return keptError{errors.New(msg)}
	}
	return errors.New(msg)
}

// ErrKeptOnFailure is matched (with errors.Is) by the error of an
// operation that failed with --keep-on-failure: what it created is still
// on the engine, unrecorded, for 'denv rm --force ID' to remove.
const ErrKeptOnFailure = sentinelError("kept on failure")

// keptError is an error marked as [ErrKeptOnFailure].
type keptError struct{ error }

func (e keptError) Is(target error) bool { return target == ErrKeptOnFailure }
func (e keptError) Unwrap() error        { return e.error }

// Kept marks err, the failure of an operation on id that kept what it had
// created, as [ErrKeptOnFailure], adding the line that says so.
func Kept(err error, id string) error {
	if errors.Is(err, ErrKeptOnFailure) {
		return err
	}
	return keptError{fmt.Errorf("%w; %s", err, keptLine(id))}
}

func keptLine(id string) string {
	return "kept what it had created (--keep-on-failure): 'denv rm --force " + id + "' removes it"
}

// Start starts the existing containers of the environment name and waits
// until they run. It needs no project file: compose rebuilds the project
// from the containers' labels. It fails with [ErrNotFound] when the
// environment has no container.
func (b *Backend) Start(ctx context.Context, name string) error {
	rec := &eventRecorder{}
	svc, err := b.newCompose(rec)
	if err != nil {
		return err
	}
	err = svc.Start(ctx, name, api.StartOptions{WaitTimeout: DefaultWaitTimeout})
	if err == nil {
		err = b.waitReady(ctx, name, nil, true, DefaultWaitTimeout)
	}
	if err != nil {
		err = lifecycleErr("start", name, rec, err)
		if report := b.notReadyReport(context.WithoutCancel(ctx), name); report != "" && !errors.Is(err, ErrNotFound) {
			err = fmt.Errorf("%w\n%s", err, report)
		}
		return err
	}
	return nil
}

// Stop stops the running containers of the environment name, keeping them
// (and their volumes) so that [Backend.Start] brings it back. Stopping an
// environment that has no container is not an error.
func (b *Backend) Stop(ctx context.Context, name string) error {
	rec := &eventRecorder{}
	svc, err := b.newCompose(rec)
	if err != nil {
		return err
	}
	if err := svc.Stop(ctx, name, api.StopOptions{}); err != nil {
		return lifecycleErr("stop", name, rec, err)
	}
	return nil
}

// Down stops and removes the containers and networks of the environment
// name, and its named volumes too when removeVolumes is set. External
// volumes and networks are never removed. Downing an environment that does
// not exist is not an error.
func (b *Backend) Down(ctx context.Context, name string, removeVolumes bool) error {
	rec := &eventRecorder{}
	svc, err := b.newCompose(rec)
	if err != nil {
		return err
	}
	if removeVolumes {
		if err := b.waitCopiers(ctx, name); err != nil {
			return fmt.Errorf("cannot remove environment %s: %w", name, err)
		}
	}
	err = svc.Down(ctx, name, api.DownOptions{
		RemoveOrphans: true,
		Volumes:       removeVolumes,
	})
	if err != nil {
		return lifecycleErr("remove", name, rec, err)
	}
	return nil
}

// missingImages lists the images of project's services that are not
// present locally and not named in the message already, to explain a
// failed Up (e.g. a pull that could not reach its registry).
func (b *Backend) missingImages(ctx context.Context, project *types.Project, already string) []string {
	seen := map[string]bool{}
	var missing []string
	for _, name := range project.ServiceNames() {
		image := project.Services[name].Image
		if image == "" || seen[image] {
			continue
		}
		seen[image] = true
		if strings.Contains(already, image) {
			continue // the error already names it
		}
		if _, err := b.api.ImageInspect(ctx, image); err != nil && isNotFound(err) {
			missing = append(missing, image)
		}
	}
	return missing
}

func lifecycleErr(verb, name string, rec *eventRecorder, err error) error {
	if api.IsNotFoundError(err) && strings.Contains(err.Error(), "no container found") {
		return fmt.Errorf("cannot %s environment %s: %w", verb, name, ErrNotFound)
	}
	return fmt.Errorf("cannot %s environment %s: %s%s", verb, name, failedAt(name, rec), composeMsg(err))
}

// failedAt names what failed according to compose's progress events, as a
// message prefix ("service b: "), or returns "" when that is not a single
// resource.
func failedAt(project string, rec *eventRecorder) string {
	var names []string
	for _, id := range rec.culprits() {
		if n := resourceName(project, id); n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	if len(names) != 1 {
		return ""
	}
	return names[0] + ": "
}

// resourceName turns a compose progress event ID into words: "service:b:1"
// and "Container P-b-1" give "service b", "Image x" gives "image x",
// "Network P_n" gives "network n", "Volume P_v" gives "volume v".
func resourceName(project, id string) string {
	kind, rest, _ := strings.Cut(id, " ")
	switch kind {
	case "Container":
		s := strings.TrimPrefix(rest, project+api.Separator)
		if i := strings.LastIndex(s, api.Separator); i > 0 {
			s = s[:i]
		}
		return "service " + s
	case "Image":
		return "image " + rest
	case "Network":
		return "network " + strings.TrimPrefix(rest, project+"_")
	case "Volume":
		return "volume " + strings.TrimPrefix(rest, project+"_")
	}
	if parts := strings.Split(id, ":"); len(parts) == 3 && parts[0] == "service" {
		return "service " + parts[1]
	}
	return ""
}

// snapshot records the project's resources that exist before an Up, so that
// a failed Up only removes what it created. Compose labels every container,
// network and volume it creates with the project label, and labels cannot
// change, so a labelled resource absent from the snapshot was created by
// this Up.
type snapshot struct {
	containers map[string]bool
	networks   map[string]bool
	volumes    map[string]bool
}

func projectFilter(name string) client.Filters {
	return make(client.Filters).Add("label", api.ProjectLabel+"="+name)
}

func (b *Backend) snapshot(ctx context.Context, name string) (snapshot, error) {
	s := snapshot{containers: map[string]bool{}, networks: map[string]bool{}, volumes: map[string]bool{}}
	cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return s, fmt.Errorf("cannot list containers: %s", oneLine(err))
	}
	for _, c := range cs.Items {
		s.containers[c.ID] = true
	}
	ns, err := b.api.NetworkList(ctx, client.NetworkListOptions{Filters: projectFilter(name)})
	if err != nil {
		return s, fmt.Errorf("cannot list networks: %s", oneLine(err))
	}
	for _, n := range ns.Items {
		s.networks[n.ID] = true
	}
	vs, err := b.api.VolumeList(ctx, client.VolumeListOptions{Filters: projectFilter(name)})
	if err != nil {
		return s, fmt.Errorf("cannot list volumes: %s", oneLine(err))
	}
	for _, v := range vs.Items {
		s.volumes[v.Name] = true
	}
	return s, nil
}

// removeCreatedSince removes the project's containers, networks and volumes
// that are not in before, and says what it removed.
func (b *Backend) removeCreatedSince(ctx context.Context, name string, before snapshot) (string, error) {
	after, err := b.snapshot(ctx, name)
	if err != nil {
		return "", err
	}
	var errs []error
	var nc, nn, nv int
	for id := range after.containers {
		if before.containers[id] {
			continue
		}
		// RemoveVolumes removes the container's anonymous volumes, which
		// were created with it; named volumes are handled below.
		_, err := b.api.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("container %.12s: %s", id, oneLine(err)))
			continue
		}
		nc++
	}
	for id := range after.networks {
		if before.networks[id] {
			continue
		}
		if _, err := b.api.NetworkRemove(ctx, id, client.NetworkRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("network %.12s: %s", id, oneLine(err)))
			continue
		}
		nn++
	}
	for vol := range after.volumes {
		if before.volumes[vol] {
			continue
		}
		if _, err := b.api.VolumeRemove(ctx, vol, client.VolumeRemoveOptions{}); err != nil && !isNotFound(err) {
			errs = append(errs, fmt.Errorf("volume %s: %s", vol, oneLine(err)))
			continue
		}
		nv++
	}
	var parts []string
	if nc > 0 {
		parts = append(parts, plural(nc, "container"))
	}
	if nn > 0 {
		parts = append(parts, plural(nn, "network"))
	}
	if nv > 0 {
		parts = append(parts, plural(nv, "volume"))
	}
	return strings.Join(parts, ", "), errors.Join(errs...)
}

// composeMsg is the one-line message of an error from compose, without the
// engine's "Error response from daemon: " noise.
func composeMsg(err error) string {
	return strings.ReplaceAll(oneLine(err), "Error response from daemon: ", "")
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// waitCopiers waits until no copier container mounts a volume of the
// project name: after a copy the engine removes the copier by itself
// (AutoRemove), which can take a moment, and a volume still mounted by a
// container cannot be removed.
func (b *Backend) waitCopiers(ctx context.Context, name string) error {
	// one call when no copier exists, which is nearly always
	cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true,
		Filters: make(client.Filters).Add("label", CopierLabel+"=true")})
	if err != nil {
		return fmt.Errorf("cannot list containers: %s", oneLine(err))
	}
	if len(cs.Items) == 0 {
		return nil
	}
	vs, err := b.api.VolumeList(ctx, client.VolumeListOptions{Filters: projectFilter(name)})
	if err != nil {
		return fmt.Errorf("cannot list volumes: %s", oneLine(err))
	}
	for _, v := range vs.Items {
		cs, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true,
			Filters: make(client.Filters).Add("label", CopierLabel+"=true").Add("volume", v.Name)})
		if err != nil {
			return fmt.Errorf("cannot list containers: %s", oneLine(err))
		}
		for _, c := range cs.Items {
			wctx, cancel := context.WithTimeout(ctx, CleanupTimeout)
			w := b.api.ContainerWait(wctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
			select {
			case <-w.Result:
			case <-w.Error: // gone already, or still there: the removal says
			}
			cancel()
		}
	}
	return nil
}

// CopierLabel marks the helper images and containers of volume copying
// (backend/volumecopy): Down waits for such containers to be gone before
// removing the volumes they mount.
const CopierLabel = "denv.copier"

package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/cli/cli/compose/convert"
	"github.com/docker/cli/cli/compose/loader"
	clitypes "github.com/docker/cli/cli/compose/types"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/alebellu/denv/backend"
)

// A stack is how denv runs an environment on Docker Swarm: the stack file
// that package swarm builds, deployed the way `docker stack deploy` does
// it (the Docker CLI's cli/compose/convert turns it into network and
// service specs; the engine's service API creates them), so that `docker
// stack ls|ps|rm NAME` work on it.
//
// Images: before reading ports, the manager pulls the images it lacks
// (through [backend.Backend.Pull], with the docker CLI's credentials and
// compose's progress), and each service is created with those credentials
// (like `docker stack deploy --with-registry-auth`), so that every node
// that runs one of its tasks pulls the image itself if it lacks it. No
// registry is asked for a digest (the tag is used as it is on each node:
// local-only images such as the demo's ex/* have none). A node that lacks
// an image and cannot pull it (an image that is in no registry, or a
// registry it cannot reach) rejects the task ("No such image"); swarm
// retries it, possibly on another node, and the service stays below its
// replicas until then, which `denv ps` shows.

// SwarmActive reports whether the engine is a node of an active swarm and,
// if so, whether it is a manager (only managers can deploy).
func (e *Engine) SwarmActive(ctx context.Context) (active, manager bool, err error) {
	info, err := e.api.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, false, fmt.Errorf("cannot ask the Docker daemon about swarm mode: %s", backend.OneLine(err))
	}
	s := info.Info.Swarm
	return s.LocalNodeState == swarm.LocalNodeStateActive, s.ControlAvailable, nil
}

// SwarmInit makes the engine the single manager of a new swarm,
// advertising addr (e.g. 127.0.0.1 for a one-node swarm).
func (e *Engine) SwarmInit(ctx context.Context, addr string) error {
	if _, err := e.api.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "0.0.0.0:2377", AdvertiseAddr: addr}); err != nil {
		return fmt.Errorf("swarm init: %s", backend.OneLine(err))
	}
	return nil
}

// SwarmLeave makes the engine leave its swarm (forced: a lone manager
// cannot leave otherwise).
func (e *Engine) SwarmLeave(ctx context.Context) error {
	if _, err := e.api.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
		return fmt.Errorf("swarm leave: %s", backend.OneLine(err))
	}
	return nil
}

// ErrNotSwarmManager is returned by stack operations on an engine that is
// not a swarm manager.
var ErrNotSwarmManager = errors.New("this Docker engine is not a swarm manager: run 'docker swarm init' (or use a manager's context) to use --engine swarm")

func (e *Engine) requireManager(ctx context.Context) error {
	_, manager, err := e.SwarmActive(ctx)
	if err != nil {
		return err
	}
	if !manager {
		return ErrNotSwarmManager
	}
	return nil
}

func stackFilter(name string) client.Filters {
	return make(client.Filters).Add("label", convert.LabelNamespace+"="+name)
}

// DeployStack deploys cfg as the stack name: it pulls the images the
// manager lacks, creates its overlay networks, then its services
// (with the registry credentials), publishing the image's EXPOSE ports (in ingress mode, on ports
// swarm chooses) of the services labelled denv.publish-image-ports. Each
// service is labelled with the hash of its spec ([LabelSpecHash]), which
// update compares. If it fails halfway, what it created is removed.
func (e *Engine) DeployStack(ctx context.Context, name string, cfg *clitypes.Config) (err error) {
	if err := e.requireManager(ctx); err != nil {
		return err
	}
	if existing, err := e.stackServices(ctx, name); err != nil {
		return err
	} else if len(existing) > 0 {
		return fmt.Errorf("stack %q already exists", name)
	}
	p, err := e.prepare(ctx, name, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), backend.DefaultPingTimeout*6)
			defer cancel()
			if rerr := e.RemoveStack(cctx, name, false); rerr != nil {
				err = fmt.Errorf("%w (and removing what was created failed: %v)", err, rerr)
			}
		}
	}()
	if err := e.createNetworks(ctx, p, nil); err != nil {
		return err
	}
	for _, n := range slices.Sorted(maps.Keys(p.specs)) {
		if err := e.createService(ctx, p, n); err != nil {
			return err
		}
	}
	return nil
}

// prepared is a stack file made ready to deploy on this engine: its
// images present on the manager, its image ports published, its networks
// and service specs converted as `docker stack deploy` converts them.
type prepared struct {
	name string
	// cfg is the stack file as loaded (without the image ports).
	cfg *clitypes.Config
	// nets are the networks to create, by engine name.
	nets map[string]client.NetworkCreateOptions
	// specs are the service specs by stack service name (unscoped),
	// labelled with their hash.
	specs map[string]swarm.ServiceSpec
}

// prepare pulls the images of cfg the manager lacks (with the docker
// CLI's credentials, showing compose's progress), publishes the image
// ports of the services labelled denv.publish-image-ports, and converts
// cfg into the networks and service specs of stack name.
func (e *Engine) prepare(ctx context.Context, name string, cfg *clitypes.Config) (*prepared, error) {
	var images []backend.ImageToPull
	for _, s := range cfg.Services {
		// the stack file has no pull_policy: compose's default, missing
		images = append(images, backend.ImageToPull{Service: s.Name, Image: s.Image})
	}
	if _, err := e.conn.Pull(ctx, name, images); err != nil {
		return nil, err
	}
	file := cfg
	// convert.Services and convert.Networks add the stack's labels to the
	// maps they are given: they get a copy
	cfg = cloneConfig(cfg)
	for i, s := range cfg.Services {
		if !backend.PublishesImagePorts(s.Labels) || len(s.Ports) > 0 {
			continue
		}
		ports, err := e.conn.ImageExposedPorts(ctx, s.Image)
		if err != nil {
			return nil, err
		}
		// a dnsrr service has no virtual IP, which ingress ports need
		mode := "ingress"
		if s.Deploy.EndpointMode == "dnsrr" {
			mode = "host"
		}
		for _, p := range ports {
			cfg.Services[i].Ports = append(cfg.Services[i].Ports, clitypes.ServicePortConfig{Mode: mode, Target: uint32(p.Port), Protocol: p.Proto})
		}
	}
	ns := convert.NewNamespace(name)
	nets, external := convert.Networks(ns, cfg.Networks, usedNetworks(cfg))
	if len(external) > 0 {
		return nil, fmt.Errorf("stack %s: external networks are not supported: %v", name, external)
	}
	for n, opts := range nets {
		if opts.Driver == "" {
			opts.Driver = "overlay"
			nets[n] = opts
		}
	}
	specs, err := convert.Services(ctx, ns, cfg, e.api)
	if err != nil {
		return nil, fmt.Errorf("stack %s: %s", name, backend.OneLine(err))
	}
	for n, spec := range specs {
		h, err := specHash(spec)
		if err != nil {
			return nil, fmt.Errorf("stack %s: service %s: %w", name, ns.Scope(n), err)
		}
		spec.Labels = maps.Clone(spec.Labels)
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[LabelSpecHash] = h
		specs[n] = spec
	}
	return &prepared{name: name, cfg: file, nets: nets, specs: specs}, nil
}

// usedNetworks are the networks cfg's services are on.
func usedNetworks(cfg *clitypes.Config) map[string]struct{} {
	used := map[string]struct{}{}
	for _, s := range cfg.Services {
		for n := range s.Networks {
			used[n] = struct{}{}
		}
	}
	return used
}

// createNetworks creates the networks of p that are not in existing
// (engine names).
func (e *Engine) createNetworks(ctx context.Context, p *prepared, existing map[string]string) error {
	for _, n := range slices.Sorted(maps.Keys(p.nets)) {
		if _, ok := existing[n]; ok {
			continue
		}
		if _, err := e.api.NetworkCreate(ctx, n, p.nets[n]); err != nil {
			return fmt.Errorf("stack %s: cannot create network %s: %s", p.name, n, backend.OneLine(err))
		}
	}
	return nil
}

// createService creates the service n of p with the registry credentials
// of its image. QueryRegistry false: the image is taken as it is on the
// node; the credentials let a node that lacks it pull it.
func (e *Engine) createService(ctx context.Context, p *prepared, n string) error {
	spec := p.specs[n]
	auth, err := e.imageAuth(spec)
	if err != nil {
		return fmt.Errorf("stack %s: service %s: %w", p.name, spec.Name, err)
	}
	if _, err := e.api.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: spec, EncodedRegistryAuth: auth}); err != nil {
		return fmt.Errorf("stack %s: cannot create service %s: %s", p.name, spec.Name, backend.OneLine(err))
	}
	return nil
}

// imageAuth is the encoded registry credentials for the image of spec.
func (e *Engine) imageAuth(spec swarm.ServiceSpec) (string, error) {
	if c := spec.TaskTemplate.ContainerSpec; c != nil {
		return e.conn.RegistryAuth(c.Image)
	}
	return "", nil
}

// cloneConfig returns a copy of cfg whose services can be given ports
// and whose label maps can be written without touching the caller's.
func cloneConfig(cfg *clitypes.Config) *clitypes.Config {
	c := *cfg
	c.Services = slices.Clone(cfg.Services)
	for i := range c.Services {
		s := &c.Services[i]
		s.Ports = slices.Clone(s.Ports)
		s.Labels = maps.Clone(s.Labels)
		s.Deploy.Labels = maps.Clone(s.Deploy.Labels)
	}
	c.Networks = maps.Clone(cfg.Networks)
	for k, n := range c.Networks {
		n.Labels = maps.Clone(n.Labels)
		c.Networks[k] = n
	}
	c.Volumes = maps.Clone(cfg.Volumes)
	for k, v := range c.Volumes {
		v.Labels = maps.Clone(v.Labels)
		c.Volumes[k] = v
	}
	return &c
}

func (e *Engine) stackServices(ctx context.Context, name string) ([]swarm.Service, error) {
	res, err := e.api.ServiceList(ctx, client.ServiceListOptions{Filters: stackFilter(name), Status: true})
	if err != nil {
		if _, manager, serr := e.SwarmActive(ctx); serr == nil && !manager {
			return nil, fmt.Errorf("stack %s: %w", name, ErrNotSwarmManager)
		}
		return nil, fmt.Errorf("stack %s: cannot list services: %s", name, backend.OneLine(err))
	}
	return res.Items, nil
}

// RemoveStack removes the services, configs, secrets and networks of
// stack name, as `docker stack rm` does, and its volumes too when
// removeVolumes is set (`docker stack rm` keeps them).
func (e *Engine) RemoveStack(ctx context.Context, name string, removeVolumes bool) error {
	if err := e.requireManager(ctx); err != nil {
		return fmt.Errorf("stack %s: %w", name, err)
	}
	l, err := e.Leftovers(ctx, name)
	if err != nil {
		return err
	}
	if !removeVolumes {
		l.Volumes = nil
	}
	return e.removeLeftovers(ctx, name, l)
}

// ScaleStack sets every service of stack name to replicas tasks: 0 stops
// the stack, keeping its services, networks and volumes; 1 starts it again.
func (e *Engine) ScaleStack(ctx context.Context, name string, replicas uint64) error {
	svcs, err := e.stackServices(ctx, name)
	if err != nil {
		return err
	}
	if len(svcs) == 0 {
		return fmt.Errorf("stack %s: %w", name, backend.ErrNotFound)
	}
	for _, s := range svcs {
		spec := s.Spec
		if spec.Mode.Replicated == nil {
			continue
		}
		r := replicas
		spec.Mode.Replicated.Replicas = &r
		if _, err := e.api.ServiceUpdate(ctx, s.ID, client.ServiceUpdateOptions{Version: s.Version, Spec: spec}); err != nil {
			return fmt.Errorf("stack %s: cannot scale service %s: %s", name, spec.Name, backend.OneLine(err))
		}
	}
	return nil
}

// StackService is one service of a stack.
type StackService struct {
	// Name is the service's name in the stack (without the stack prefix).
	Name string
	// Desired and Running count its tasks.
	Desired, Running uint64
	// Ports are its published ports (HostPort is the ingress port).
	Ports []backend.Port
}

// Stack describes the services of stack name, sorted by name.
func (e *Engine) Stack(ctx context.Context, name string) ([]StackService, error) {
	svcs, err := e.stackServices(ctx, name)
	if err != nil {
		return nil, err
	}
	ns := convert.NewNamespace(name)
	var out []StackService
	for _, s := range svcs {
		short := s.Spec.Name
		if len(short) > len(ns.Name())+1 {
			short = short[len(ns.Name())+1:]
		}
		ss := StackService{Name: short}
		if s.ServiceStatus != nil {
			ss.Desired, ss.Running = s.ServiceStatus.DesiredTasks, s.ServiceStatus.RunningTasks
		}
		for _, p := range s.Endpoint.Ports {
			if p.PublishedPort == 0 {
				continue
			}
			ss.Ports = append(ss.Ports, backend.Port{Service: short, ContainerPort: uint16(p.TargetPort), HostPort: uint16(p.PublishedPort), Protocol: string(p.Protocol)})
		}
		out = append(out, ss)
	}
	// Host-mode ports are not on the service's endpoint but on its running
	// tasks.
	tasks, err := e.api.TaskList(ctx, client.TaskListOptions{Filters: stackFilter(name).Add("desired-state", "running")})
	if err != nil {
		return nil, fmt.Errorf("stack %s: cannot list tasks: %s", name, backend.OneLine(err))
	}
	byID := map[string]int{}
	for _, s := range svcs {
		for j := range out {
			if s.Spec.Name == ns.Scope(out[j].Name) {
				byID[s.ID] = j
			}
		}
	}
	type portKey struct {
		port  uint16
		proto string
	}
	taskHas := map[string]map[portKey]bool{}
	for _, t := range tasks.Items {
		j, ok := byID[t.ServiceID]
		if !ok || t.Status.State != swarm.TaskStateRunning {
			continue
		}
		for _, p := range t.Status.PortStatus.Ports {
			port := backend.Port{Service: out[j].Name, ContainerPort: uint16(p.TargetPort), HostPort: uint16(p.PublishedPort), Protocol: string(p.Protocol)}
			// The engine lists a host port once per address family, the
			// IPv4 binding first, and may give the IPv6 one another
			// random host port: keep the first per (container port,
			// protocol) of each task.
			if p.PublishMode == swarm.PortConfigPublishModeHost && p.PublishedPort != 0 && !taskHas[t.ID][portKey{port.ContainerPort, port.Protocol}] {
				if taskHas[t.ID] == nil {
					taskHas[t.ID] = map[portKey]bool{}
				}
				taskHas[t.ID][portKey{port.ContainerPort, port.Protocol}] = true
				if !slices.Contains(out[j].Ports, port) {
					out[j].Ports = append(out[j].Ports, port)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WaitStack waits until every service of stack name runs all the tasks it
// should with its current spec (a service being updated is waited for
// until its new task runs; a task with a healthcheck runs once healthy),
// or timeout passes (then the error names a service that does not, with
// its last task error).
func (e *Engine) WaitStack(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		waiting, err := e.notConverged(ctx, name)
		if err != nil {
			return err
		}
		if waiting == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack %s: service %s is not running after %s%s", name, waiting, timeout, e.taskError(ctx, name, waiting))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// notConverged names a service of stack name (without the stack prefix)
// that runs fewer tasks of its current spec than it should, or is "" when
// none does.
func (e *Engine) notConverged(ctx context.Context, name string) (string, error) {
	svcs, err := e.stackServices(ctx, name)
	if err != nil {
		return "", err
	}
	// "_up-to-date" (the docker CLI's progress uses it) keeps only the
	// tasks of each service's current spec
	tasks, err := e.api.TaskList(ctx, client.TaskListOptions{Filters: stackFilter(name).Add("desired-state", "running").Add("_up-to-date", "true")})
	if err != nil {
		return "", fmt.Errorf("stack %s: cannot list tasks: %s", name, backend.OneLine(err))
	}
	running := map[string]uint64{}
	for _, t := range tasks.Items {
		if t.Status.State == swarm.TaskStateRunning {
			running[t.ServiceID]++
		}
	}
	slices.SortFunc(svcs, func(a, b swarm.Service) int { return strings.Compare(a.Spec.Name, b.Spec.Name) })
	for _, s := range svcs {
		if s.ServiceStatus != nil && running[s.ID] < s.ServiceStatus.DesiredTasks {
			return strings.TrimPrefix(s.Spec.Name, name+"_"), nil
		}
	}
	return "", nil
}

// taskError is ": ERR" for the latest task error of a stack service.
func (e *Engine) taskError(ctx context.Context, name, service string) string {
	tasks, err := e.api.TaskList(ctx, client.TaskListOptions{Filters: make(client.Filters).Add("service", convert.NewNamespace(name).Scope(service))})
	if err != nil {
		return ""
	}
	var latest *swarm.Task
	for i, t := range tasks.Items {
		if t.Status.Err != "" && (latest == nil || t.Status.Timestamp.After(latest.Status.Timestamp)) {
			latest = &tasks.Items[i]
		}
	}
	if latest == nil {
		return ""
	}
	return ": " + latest.Status.Err
}

// StackNetworks maps each service of stack name to the stack networks it
// is attached to (names without the stack prefix), sorted.
func (e *Engine) StackNetworks(ctx context.Context, name string) (map[string][]string, error) {
	svcs, err := e.stackServices(ctx, name)
	if err != nil {
		return nil, err
	}
	nets, err := e.api.NetworkList(ctx, client.NetworkListOptions{Filters: stackFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("stack %s: cannot list networks: %s", name, backend.OneLine(err))
	}
	prefix := len(name) + 1
	byID := map[string]string{}
	for _, n := range nets.Items {
		byID[n.ID] = n.Name[min(prefix, len(n.Name)):]
	}
	out := map[string][]string{}
	for _, s := range svcs {
		short := s.Spec.Name[min(prefix, len(s.Spec.Name)):]
		var ns []string
		for _, a := range s.Spec.TaskTemplate.Networks {
			if n, ok := byID[a.Target]; ok {
				ns = append(ns, n)
			}
		}
		slices.Sort(ns)
		out[short] = ns
	}
	return out, nil
}

// retry calls f until it succeeds, ctx ends, or a minute passes, polling
// every half second: removing a stack's network fails while the tasks'
// containers that use it are still being removed.
func retry(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// StackEnv describes stack name as an EnvState (Status from its tasks: running
// when every service runs all it should and something should, stopped when
// nothing should or does run, partial otherwise); found is false when the
// stack has no service.
func (e *Engine) StackEnv(ctx context.Context, name string) (env backend.EnvState, found bool, err error) {
	svcs, err := e.Stack(ctx, name)
	if err != nil {
		// an engine that left its swarm has no stacks: listing the local
		// environments must not fail because of it
		if errors.Is(err, ErrNotSwarmManager) {
			return backend.EnvState{}, false, nil
		}
		return backend.EnvState{}, false, err
	}
	if len(svcs) == 0 {
		return backend.EnvState{}, false, nil
	}
	env = backend.EnvState{Name: name}
	var desired, running uint64
	complete := true
	for _, s := range svcs {
		env.Services = append(env.Services, s.Name)
		env.Ports = append(env.Ports, s.Ports...)
		desired += s.Desired
		running += s.Running
		if s.Running < s.Desired {
			complete = false
		}
	}
	switch {
	case desired > 0 && complete:
		env.Status = backend.StatusRunning
	case running == 0:
		env.Status = backend.StatusStopped
	default:
		env.Status = backend.StatusPartial
	}
	return env, true, nil
}

// LoadStack reads a stack file as `docker stack deploy -c` does (the
// Docker CLI's loader, with its schema validation); relative paths are
// relative to workDir.
func LoadStack(yaml []byte, workDir string) (*clitypes.Config, error) {
	dict, err := loader.ParseYAML(yaml)
	if err != nil {
		return nil, fmt.Errorf("stack file: %s", backend.OneLine(err))
	}
	cfg, err := loader.Load(clitypes.ConfigDetails{
		WorkingDir:  workDir,
		ConfigFiles: []clitypes.ConfigFile{{Filename: "compose.yaml", Config: dict}},
		Environment: map[string]string{},
	})
	if err != nil {
		return nil, fmt.Errorf("stack file: %s", backend.OneLine(err))
	}
	return cfg, nil
}

// StackLogs writes the logs of the services of stack name (all when
// services is empty; names without the stack prefix) to w, each line
// prefixed with the service name; follow keeps streaming until ctx ends.
func (e *Engine) StackLogs(ctx context.Context, name string, services []string, follow bool, w io.Writer) error {
	svcs, err := e.Stack(ctx, name)
	if err != nil {
		return err
	}
	if len(svcs) == 0 {
		return fmt.Errorf("stack %s: %w", name, backend.ErrNotFound)
	}
	var names []string
	for _, s := range svcs {
		if len(services) == 0 || slices.Contains(services, s.Name) {
			names = append(names, s.Name)
		}
	}
	for _, want := range services {
		if !slices.Contains(names, want) {
			return fmt.Errorf("stack %s has no service %q", name, want)
		}
	}
	var mu sync.Mutex
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, svc := range names {
		wg.Go(func() {
			rc, err := e.api.ServiceLogs(ctx, convert.NewNamespace(name).Scope(svc), client.ServiceLogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow})
			if err != nil {
				errs[i] = fmt.Errorf("logs of %s: %s", svc, backend.OneLine(err))
				return
			}
			defer rc.Close()
			pw := &prefixWriter{mu: &mu, w: w, prefix: svc + "  | "}
			if _, err := stdcopy.StdCopy(pw, pw, rc); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("logs of %s: %s", svc, backend.OneLine(err))
			}
			pw.flush()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// prefixWriter writes whole lines, each with a prefix, under a lock shared
// by the writers of one output.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.mu.Unlock()
		p.buf = p.buf[i+1:]
		if err != nil {
			return len(b), err
		}
	}
}

func (p *prefixWriter) flush() {
	if len(p.buf) > 0 {
		p.mu.Lock()
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.mu.Unlock()
		p.buf = nil
	}
}

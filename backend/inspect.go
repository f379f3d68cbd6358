package backend

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/docker/compose/v5/pkg/api"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Status is the overall state of an environment.
type Status string

// The states of an environment.
const (
	// StatusRunning means every container of the environment is running.
	StatusRunning Status = "running"
	// StatusStopped means no container of the environment is running.
	StatusStopped Status = "stopped"
	// StatusPartial means some containers run and others do not.
	StatusPartial Status = "partial"
)

// EnvState describes an environment, i.e. a compose project, as found on the
// engine.
type EnvState struct {
	// Name is the compose project name.
	Name string
	// Status says whether its containers are running.
	Status Status
	// Services are the names of its services, sorted.
	Services []string
	// Ports are its published ports, sorted by service then container port.
	Ports []Port
	// Created is when its oldest container was created.
	Created time.Time
	// Waiting is the number of its running containers whose healthcheck
	// has not passed yet (health "starting"); Unhealthy, of those whose
	// healthcheck failed. Containers without a healthcheck count in
	// neither.
	Waiting, Unhealthy int
	// Labels are the labels every container of the project carries with
	// the same value: the compose project labels (project, working_dir,
	// config_files, version) and whatever project-wide labels the
	// environment definition (or the images) set. Per-container compose
	// labels (service, container-number, config-hash, ...) are left out.
	Labels map[string]string
}

// Port is a container port published on the host.
type Port struct {
	// Service is the service whose container publishes the port.
	Service string
	// ContainerPort is the port inside the container.
	ContainerPort uint16
	// HostPort is the port on the host (on the daemon's machine).
	HostPort uint16
	// Protocol is "tcp", "udp" or "sctp".
	Protocol string
}

// Container describes one container of an environment.
type Container struct {
	// ID is the container ID.
	ID string
	// Name is the container name, e.g. "myenv-web-1".
	Name string
	// Service is the compose service the container belongs to.
	Service string
	// Image is the image the container was created from.
	Image string
	// State is the engine state: created, running, exited, ...
	State string
	// Status is the engine's human readable status, e.g. "Up 5 minutes".
	Status string
	// Health is the healthcheck status, empty when there is none.
	Health string
	// ExitCode is the exit code of a container that exited.
	ExitCode int
	// Ports are the container's published ports.
	Ports []Port
	// Networks are the networks the container is on, sorted.
	Networks []string
	// Created is when the container was created.
	Created time.Time
}

// List returns every environment (compose project) on the engine, running
// or not, sorted by name. It costs one container list call whatever the
// number of projects.
func (b *Backend) List(ctx context.Context) ([]EnvState, error) {
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", api.ProjectLabel),
	})
	if err != nil {
		return nil, fmt.Errorf("cannot list environments: %s", oneLine(err))
	}
	byProject := map[string][]container.Summary{}
	for _, c := range res.Items {
		if c.Labels[api.OneoffLabel] == "True" {
			continue
		}
		name := c.Labels[api.ProjectLabel]
		byProject[name] = append(byProject[name], c)
	}
	envs := make([]EnvState, 0, len(byProject))
	for name, cs := range byProject {
		envs = append(envs, summarize(name, cs))
	}
	sort.Slice(envs, func(i, j int) bool { return envs[i].Name < envs[j].Name })
	return envs, nil
}

// perContainerLabel reports whether k is a compose label that describes one
// container, not the project, even when all containers share its value.
func perContainerLabel(k string) bool {
	switch k {
	case api.ServiceLabel, api.ContainerNumberLabel, api.ConfigHashLabel, api.ImageDigestLabel,
		api.DependenciesLabel, api.ContainerReplaceLabel, api.OneoffLabel, api.SlugLabel:
		return true
	}
	return false
}

func summarize(name string, cs []container.Summary) EnvState {
	env := EnvState{Name: name}
	services := map[string]bool{}
	running := 0
	for i, c := range cs {
		if c.State == container.StateRunning {
			running++
			switch healthOf(c) {
			case container.Starting:
				env.Waiting++
			case container.Unhealthy:
				env.Unhealthy++
			}
		}
		service := serviceOf(c)
		services[service] = true
		env.Ports = append(env.Ports, publishedPorts(service, c.Ports)...)
		created := time.Unix(c.Created, 0)
		if i == 0 || created.Before(env.Created) {
			env.Created = created
		}
		if i == 0 {
			env.Labels = make(map[string]string, len(c.Labels))
			for k, v := range c.Labels {
				if !perContainerLabel(k) {
					env.Labels[k] = v
				}
			}
			continue
		}
		for k, v := range env.Labels {
			if w, ok := c.Labels[k]; !ok || w != v {
				delete(env.Labels, k)
			}
		}
	}
	switch {
	case running == len(cs):
		env.Status = StatusRunning
	case running == 0:
		env.Status = StatusStopped
	default:
		env.Status = StatusPartial
	}
	for s := range services {
		env.Services = append(env.Services, s)
	}
	sort.Strings(env.Services)
	env.Ports = sortPorts(env.Ports)
	return env
}

// healthOf returns the health of container c as listed: the summary's
// Health from engine API 1.52, else read from its status text ("Up 3
// seconds (health: starting)"), as engine 20.10 only gives that.
func healthOf(c container.Summary) container.HealthStatus {
	if c.Health != nil && c.Health.Status != "" {
		return c.Health.Status
	}
	switch {
	case strings.HasSuffix(c.Status, "(health: starting)"):
		return container.Starting
	case strings.HasSuffix(c.Status, "(unhealthy)"):
		return container.Unhealthy
	case strings.HasSuffix(c.Status, "(healthy)"):
		return container.Healthy
	}
	return container.NoHealthcheck
}

func serviceOf(c container.Summary) string {
	if s := c.Labels[api.ServiceLabel]; s != "" {
		return s
	}
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID
}

// publishedPorts converts one container's port list (see [onePerPort]).
func publishedPorts(service string, ps []container.PortSummary) []Port {
	bs := make([]binding, 0, len(ps))
	for _, p := range ps {
		proto := string(p.Type)
		if proto == "" {
			proto = "tcp"
		}
		bs = append(bs, binding{Port{Service: service, ContainerPort: p.PrivatePort, HostPort: p.PublicPort, Protocol: proto}, p.IP})
	}
	return onePerPort(bs)
}

// binding is a port as the engine lists it, with its host address (the
// zero Addr when unknown).
type binding struct {
	Port
	ip netip.Addr
}

// onePerPort keeps one of one container's bindings per (container port,
// protocol), dropping unpublished ones. The engine lists a published port
// once per address family, and may give the IPv6 binding another random
// host port than the IPv4 one; the IPv6 one may refuse on 127.0.0.1, so
// the IPv4 binding (0.0.0.0, 127.0.0.1, ...) wins, whatever the order of
// the list. An IPv6-only binding is kept.
func onePerPort(bs []binding) []Port {
	type key struct {
		port  uint16
		proto string
	}
	var out []Port
	at := map[key]int{}
	v4 := map[key]bool{}
	for _, b := range bs {
		if b.HostPort == 0 {
			continue
		}
		k := key{b.ContainerPort, b.Protocol}
		isV4 := !b.ip.IsValid() || b.ip.Unmap().Is4()
		i, seen := at[k]
		switch {
		case !seen:
			at[k] = len(out)
			v4[k] = isV4
			out = append(out, b.Port)
		case isV4 && !v4[k]:
			out[i] = b.Port
			v4[k] = true
		}
	}
	return out
}

// sortPorts sorts and deduplicates ports.
func sortPorts(ps []Port) []Port {
	sort.Slice(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Service != b.Service {
			return a.Service < b.Service
		}
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.HostPort < b.HostPort
	})
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Endpoints returns the published ports of the containers of the
// environment name, sorted, from one container list ([Backend.Ps] inspects
// every container as well, which the ports do not need).
func (b *Backend) Endpoints(ctx context.Context, name string) ([]Port, error) {
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of environment %s: %s", name, oneLine(err))
	}
	var ports []Port
	for _, c := range res.Items {
		ports = append(ports, publishedPorts(serviceOf(c), c.Ports)...)
	}
	return sortPorts(ports), nil
}

// Ps returns the containers of the environment name, running or not, sorted
// by service then name. An environment with no container gives an empty
// list.
func (b *Backend) Ps(ctx context.Context, name string) ([]Container, error) {
	svc, err := b.newCompose(nil)
	if err != nil {
		return nil, err
	}
	summaries, err := svc.Ps(ctx, name, api.PsOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of environment %s: %s", name, oneLine(err))
	}
	out := make([]Container, 0, len(summaries))
	for _, s := range summaries {
		c := Container{
			ID:       s.ID,
			Name:     s.Name,
			Service:  s.Service,
			Image:    s.Image,
			State:    string(s.State),
			Status:   s.Status,
			Health:   string(s.Health),
			ExitCode: s.ExitCode,
			Networks: append([]string(nil), s.Networks...),
			Created:  time.Unix(s.Created, 0),
		}
		bs := make([]binding, 0, len(s.Publishers))
		for _, p := range s.Publishers {
			ip, _ := netip.ParseAddr(p.URL) // the host address; unknown: zero
			bs = append(bs, binding{Port{Service: s.Service, ContainerPort: uint16(p.TargetPort), HostPort: uint16(p.PublishedPort), Protocol: p.Protocol}, ip})
		}
		c.Ports = sortPorts(onePerPort(bs))
		sort.Strings(c.Networks)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Service != out[j].Service {
			return out[i].Service < out[j].Service
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Networks returns, for each service of the environment name, the sorted
// names of the networks its containers are on (one container list call).
func (b *Backend) Networks(ctx context.Context, name string) (map[string][]string, error) {
	res, err := b.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: projectFilter(name)})
	if err != nil {
		return nil, fmt.Errorf("cannot list the containers of environment %s: %s", name, oneLine(err))
	}
	sets := map[string]map[string]bool{}
	for _, c := range res.Items {
		if c.Labels[api.OneoffLabel] == "True" {
			continue
		}
		service := serviceOf(c)
		if sets[service] == nil {
			sets[service] = map[string]bool{}
		}
		if c.NetworkSettings == nil {
			continue
		}
		for n := range c.NetworkSettings.Networks {
			sets[service][n] = true
		}
	}
	out := make(map[string][]string, len(sets))
	for service, set := range sets {
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		out[service] = names
	}
	return out, nil
}

// Logs writes the logs of the environment name to w, each line prefixed
// with its container name ("myenv-web-1 | ..."). services restricts the
// output to those services (all when empty). With follow, Logs keeps
// streaming, including containers started later, until ctx is cancelled.
func (b *Backend) Logs(ctx context.Context, name string, services []string, follow bool, w io.Writer) error {
	svc, err := b.newCompose(nil)
	if err != nil {
		return err
	}
	consumer := &logWriter{w: w}
	err = svc.Logs(ctx, name, consumer, api.LogOptions{
		Services: services,
		Follow:   follow,
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("cannot read the logs of environment %s: %s", name, oneLine(err))
	}
	return nil
}

// logWriter is the api.LogConsumer of Logs: plain, prefixed lines.
type logWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// Log implements api.LogConsumer (a line the container wrote to stdout).
func (l *logWriter) Log(containerName, message string) { l.write(containerName, message) }

// Err implements api.LogConsumer (a line the container wrote to stderr).
func (l *logWriter) Err(containerName, message string) { l.write(containerName, message) }

// Status implements api.LogConsumer (e.g. "exited with code 0").
func (l *logWriter) Status(containerName, message string) { l.write(containerName, message) }

func (l *logWriter) write(containerName, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range strings.Split(strings.TrimRight(message, "\n"), "\n") {
		_, _ = fmt.Fprintf(l.w, "%s | %s\n", containerName, line)
	}
}

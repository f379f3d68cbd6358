package backend

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/alebellu/denv/compile"
)

// PublishImagePorts publishes, on an ephemeral host port, every port the
// image of each named service declares (its EXPOSE metadata), for those of
// the services that have no ports yet. Compose has no "publish all" (`docker
// run -P`); this is how denv gives a reachable port to services defined
// without PORT clauses.
//
// The images must be present locally (nothing is pulled here:
// [Backend.PrepareImages] pulls first): a missing image is an error naming
// the service. Services that already have ports are left
// untouched, and an unknown service name is an error.
func (b *Backend) PublishImagePorts(ctx context.Context, project *types.Project, services []string) error {
	for _, name := range services {
		service, ok := project.Services[name]
		if !ok {
			return fmt.Errorf("cannot publish the ports of service %q: no such service in project %s", name, project.Name)
		}
		if len(service.Ports) > 0 {
			continue
		}
		if service.Image == "" {
			return fmt.Errorf("cannot publish the ports of service %q: it has no image", name)
		}
		exposed, err := b.ImageExposedPorts(ctx, service.Image)
		if err != nil {
			return fmt.Errorf("cannot publish the ports of service %q: %w", name, err)
		}
		for _, p := range exposed {
			service.Ports = append(service.Ports, types.ServicePortConfig{
				Mode:     "ingress",
				Target:   uint32(p.Port),
				Protocol: p.Proto,
			})
		}
		project.Services[name] = service
	}
	return nil
}

// ExposedPort is a port an image declares (EXPOSE): its number and its
// protocol, lowercase ("tcp", "udp").
type ExposedPort struct {
	Port  uint16
	Proto string
}

// ImageExposedPorts returns the ports declared by a local image, sorted:
// what a runtime publishes for a service labelled
// compile.LabelPublishImagePorts.
func (b *Backend) ImageExposedPorts(ctx context.Context, image string) ([]ExposedPort, error) {
	res, err := b.api.ImageInspect(ctx, image)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("image %s is not available locally", image)
		}
		return nil, fmt.Errorf("cannot inspect image %s: %s", image, oneLine(err))
	}
	if res.Config == nil {
		return nil, nil
	}
	var ports []ExposedPort
	for spec := range res.Config.ExposedPorts {
		p, err := parseExposedPort(spec)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", image, err)
		}
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool {
		if ports[i].Port != ports[j].Port {
			return ports[i].Port < ports[j].Port
		}
		return ports[i].Proto < ports[j].Proto
	})
	return ports, nil
}

// parseExposedPort parses an image's EXPOSE entry: "8080/tcp" or "8080".
func parseExposedPort(spec string) (ExposedPort, error) {
	num, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return ExposedPort{}, fmt.Errorf("invalid exposed port %q", spec)
	}
	return ExposedPort{Port: uint16(n), Proto: strings.ToLower(proto)}, nil
}

// PublishesImagePorts reports whether a service with these labels asks its
// runtime to publish its image's EXPOSE ports (compile sets the label on
// root-exposed services without PORT clauses). It is the one place of the
// rule; both runtimes ask it.
func PublishesImagePorts(labels map[string]string) bool {
	return labels[compile.LabelPublishImagePorts] == "true"
}

// ImagePortServices lists the services of p that [PublishesImagePorts].
func ImagePortServices(p *types.Project) []string {
	var names []string
	for _, name := range p.ServiceNames() {
		if PublishesImagePorts(p.Services[name].Labels) {
			names = append(names, name)
		}
	}
	return names
}

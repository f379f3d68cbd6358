// Package clone is the plan of `denv clone`, apart from any engine: the
// rewrite of the source's recorded project for the clone (its name, fixed
// host ports made ephemeral), the check that the clone shares nothing
// with the source, the pairing of the source's volumes with the clone's,
// and the rollback that removes everything made for a clone that failed
// (also for `denv run --from SNAPSHOT`, which makes the same things).
// cmd/denv carries it out with backend and backend/volumecopy; this
// package needs no Docker and is unit-tested without one.
package clone

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

// MovedPort is a fixed host port of the source that the clone does not
// take (it gets an ephemeral one instead).
type MovedPort struct {
	Service, Published, Protocol string
	Target                       int
}

// Rewrite returns the recorded compose YAML doc named id, with every
// fixed host port removed (the engine then picks an ephemeral one), and
// the ports it removed. It edits the YAML tree rather than regenerating
// it, so that the clone runs exactly the source's project otherwise.
func Rewrite(doc []byte, id string) ([]byte, []MovedPort, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, nil, fmt.Errorf("invalid recorded project: %s", oneLine(err))
	}
	if len(root.Content) != 1 || root.Content[0].Kind != yaml.MappingNode {
		return nil, nil, errors.New("invalid recorded project: not a mapping")
	}
	if name := mapValue(root.Content[0], "name"); name != nil {
		name.Value = id
	}
	var moved []MovedPort
	services := mapValue(root.Content[0], "services")
	if services != nil && services.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(services.Content); i += 2 {
			name, svc := services.Content[i].Value, services.Content[i+1]
			ports := mapValue(svc, "ports")
			if ports == nil || ports.Kind != yaml.SequenceNode {
				continue
			}
			for _, pt := range ports.Content {
				if pt.Kind != yaml.MappingNode {
					return nil, nil, fmt.Errorf("service %s: short port syntax %q is not supported by clone", name, pt.Value)
				}
				published := mapValue(pt, "published")
				if published == nil || published.Value == "" {
					continue
				}
				mp := MovedPort{Service: name, Published: published.Value, Protocol: "tcp"}
				if t := mapValue(pt, "target"); t != nil {
					fmt.Sscan(t.Value, &mp.Target)
				}
				if pr := mapValue(pt, "protocol"); pr != nil {
					mp.Protocol = pr.Value
				}
				moved = append(moved, mp)
				deleteKey(pt, "published")
			}
		}
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return nil, nil, err
	}
	return out, moved, nil
}

// CheckIndependent refuses a project whose clone would share a resource
// with the source: a fixed volume, network or container name is the same
// in every project.
func CheckIndependent(p *types.Project) error {
	for k, v := range p.Volumes {
		if v.External || v.Name != p.Name+"_"+k {
			return fmt.Errorf("volume %s has a fixed name (%s): a clone would share it", k, v.Name)
		}
	}
	for k, n := range p.Networks {
		if n.External || n.Name != p.Name+"_"+k {
			return fmt.Errorf("network %s has a fixed name (%s): a clone would share it", k, n.Name)
		}
	}
	for name, s := range p.Services {
		if s.ContainerName != "" {
			return fmt.Errorf("service %s has a fixed container name: a clone cannot have its own", name)
		}
	}
	return nil
}

// VolumePair is a named volume of the source and the clone's volume of
// the same key, which receives its copy.
type VolumePair struct {
	Key, Src, Dst string
}

// Pairs pairs every named volume of the clone's project p with the
// source's, sorted by key. The source's volume of key k is srcID_k: p is
// the source's project renamed, and [CheckIndependent] has checked that
// its volume names are PROJECT_KEY (compose's naming).
func Pairs(p *types.Project, srcID string) []VolumePair {
	var keys []string
	for k, v := range p.Volumes {
		if !v.External {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	pairs := make([]VolumePair, 0, len(keys))
	for _, k := range keys {
		pairs = append(pairs, VolumePair{Key: k, Src: srcID + "_" + k, Dst: p.Volumes[k].Name})
	}
	return pairs
}

// Remover removes what a failed clone made: the narrow part of the
// engine the rollback needs.
type Remover interface {
	// Down removes the project id with its volumes; a missing project is
	// an error matching notFound.
	Down(ctx context.Context, id string, volumes bool) error
	// RemoveVolumes removes the volumes named.
	RemoveVolumes(ctx context.Context, names []string) error
}

// Rollback is what a clone has made so far, to remove it all when a step
// fails.
type Rollback struct {
	// SrcID and ID are the source and the clone.
	SrcID, ID string
	// Volumes are the clone's volumes created so far.
	Volumes []string
	// Started is set once the clone's containers may exist.
	Started bool
	// What is the failed operation, as in "cannot WHAT: ..."; empty
	// means "clone SrcID to ID" (`denv run --from` seeds a new
	// environment from a snapshot with the same steps).
	What string
}

// Run removes what r records through rm (then abort, releasing the
// clone's id) and returns the one error the user sees for cause: that
// nothing of the clone was kept, or what could not be removed. notFound
// is the engine's error for a project that does not exist, which is no
// failure here.
func (r *Rollback) Run(ctx context.Context, rm Remover, notFound error, abort func() error, cause error) error {
	var errs []error
	if r.Started {
		if derr := rm.Down(ctx, r.ID, true); derr != nil && !errors.Is(derr, notFound) {
			errs = append(errs, derr)
		}
	}
	errs = append(errs, rm.RemoveVolumes(ctx, r.Volumes), abort())
	what := r.What
	if what == "" {
		what = fmt.Sprintf("clone %s to %s", r.SrcID, r.ID)
	}
	msg := fmt.Sprintf("cannot %s: %s; nothing of %s was kept", what, oneLine(cause), r.ID)
	if cerr := errors.Join(errs...); cerr != nil {
		msg = fmt.Sprintf("cannot %s: %s; removing %s failed: %s", what, oneLine(cause), r.ID, oneLine(cerr))
	}
	return errors.New(msg)
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func deleteKey(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

package plan

import (
	"slices"
	"strings"
)

// Assemble builds the plan of an engine that decides the actions itself
// rather than by compose's rules (the swarm engine compares service
// specs): services, networks and volumes are sorted by name, their
// reasons sorted, and the summary counted, so that the text and JSON
// forms are those of [Compute]'s plans. Networks and volumes left
// unchanged are not listed. The slices are taken over.
func Assemble(project string, services []Service, networks, volumes []Resource) *Plan {
	pl := &Plan{Project: project, Services: services, Networks: []Resource{}, Volumes: []Resource{}}
	if pl.Services == nil {
		pl.Services = []Service{}
	}
	slices.SortFunc(pl.Services, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	for i := range pl.Services {
		s := &pl.Services[i]
		slices.Sort(s.Reasons)
		switch s.Action {
		case Create, Recreate, Restart, Remove:
		default:
			s.Action = Unchanged
		}
		pl.Summary.count(s.Action)
	}
	pl.Networks = assembleResources(networks, &pl.Summary.Networks)
	pl.Volumes = assembleResources(volumes, &pl.Summary.Volumes)
	return pl
}

// assembleResources sorts rs, drops the unchanged ones and counts the rest.
func assembleResources(rs []Resource, sum *ResourceSummary) []Resource {
	out := []Resource{}
	for _, r := range rs {
		switch r.Action {
		case Create:
			sum.Create++
		case Recreate:
			sum.Recreate++
		case Remove:
			sum.Remove++
		default:
			continue
		}
		slices.Sort(r.Services)
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Resource) int { return strings.Compare(a.Name, b.Name) })
	return out
}

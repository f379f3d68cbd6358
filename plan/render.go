package plan

import (
	"encoding/json"
	"fmt"
	"strings"
)

// symbol is the first column of the text form, like terraform plan's.
func symbol(a Action) string {
	switch a {
	case Create:
		return "+"
	case Recreate:
		return "~"
	case Restart:
		return "^"
	case Remove:
		return "-"
	}
	return "="
}

// Text renders the plan for people: one line per service, sorted by name,
//
//   - cache (new service)
//     ~ web (image: ex/web:1 -> ex/web:2; environment.MODE: a -> b)
//     ^ worker (restart: dependency db recreated (depends_on restart: true))
//   - db (not in the new project; volumes kept unless --volumes: data)
//     = queue (unchanged)
//
// then one line per network and volume created, recreated or removed,
// then the summary line. The output is stable: the same plan gives the
// same bytes.
func (p *Plan) Text() []byte {
	var b strings.Builder
	for _, s := range p.Services {
		fmt.Fprintf(&b, "%s %s (%s)\n", symbol(s.Action), s.Name, serviceDetail(s))
	}
	for _, r := range p.Networks {
		fmt.Fprintf(&b, "%s network %s (%s)\n", symbol(r.Action), r.Name, resourceDetail(r, false))
	}
	for _, r := range p.Volumes {
		fmt.Fprintf(&b, "%s volume %s (%s)\n", symbol(r.Action), r.Name, resourceDetail(r, true))
	}
	s := p.Summary
	fmt.Fprintf(&b, "Plan: %d to create, %d to recreate, %d to restart, %d to remove, %d unchanged; networks: %s; volumes: %s.\n",
		s.Create, s.Recreate, s.Restart, s.Remove, s.Unchanged, resourceCounts(s.Networks), resourceCounts(s.Volumes))
	return []byte(b.String())
}

// serviceDetail is what the text form says in parentheses after a service.
func serviceDetail(s Service) string {
	var parts []string
	switch s.Action {
	case Unchanged:
		parts = append(parts, "unchanged")
		if len(s.Changes) > 0 {
			parts = append(parts, "not recreated for "+changeFields(s.Changes))
		}
	case Recreate:
		// The field changes say it best; the reasons only when they
		// say something else (a live drift, a cascade).
		for _, r := range s.Reasons {
			if r != "configuration changed" || len(s.Changes) == 0 {
				parts = append(parts, r)
			}
		}
		for _, c := range s.Changes {
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", c.Field, orNone(c.Old), orNone(c.New)))
		}
	case Restart:
		parts = append(parts, "restart: "+strings.Join(s.Reasons, ", "))
	default:
		parts = append(parts, s.Reasons...)
	}
	if s.Action == Remove && len(s.Volumes) > 0 {
		parts = append(parts, "volumes kept unless --volumes: "+strings.Join(s.Volumes, ", "))
	}
	return strings.Join(parts, "; ")
}

// changeFields lists the fields of changes, comma-separated.
func changeFields(cs []Change) string {
	fs := make([]string, len(cs))
	for i, c := range cs {
		fs[i] = c.Field
	}
	return "changes to " + strings.Join(fs, ", ")
}

// resourceDetail is what the text form says after a network or volume.
func resourceDetail(r Resource, volume bool) string {
	var parts []string
	switch {
	case r.Action == Remove && volume:
		parts = append(parts, "no longer used; kept unless --volumes")
	case r.Action == Remove:
		parts = append(parts, "no longer used")
	case r.Action == Recreate && volume:
		parts = append(parts, "configuration changed; recreating it loses its data")
	case r.Action == Recreate:
		parts = append(parts, "configuration changed; its containers are reconnected")
	default:
		parts = append(parts, "new")
	}
	if len(r.Services) > 0 {
		parts = append(parts, "used by "+strings.Join(r.Services, ", "))
	}
	return strings.Join(parts, "; ")
}

// resourceCounts is the summary of networks or volumes.
func resourceCounts(s ResourceSummary) string {
	return fmt.Sprintf("%d to create, %d to recreate, %d to remove", s.Create, s.Recreate, s.Remove)
}

// orNone renders an absent value.
func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// JSON renders the plan for tools, indented, ending in a newline; the
// schema is in the package documentation.
func (p *Plan) JSON() ([]byte, error) {
	out, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

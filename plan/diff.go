package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// diffService lists the field-level differences between two services, for
// people: the attributes of the compose encoding, one level into objects
// (environment.MODE, labels.denv.source, networks.left, healthcheck.test),
// ports and volumes in their short forms. Compose's own labels
// (CustomLabels) are not part of the configuration and not compared.
func diffService(o, n types.ServiceConfig) []Change {
	return diffFields(o, n, func(k string) (Change, bool) {
		switch k {
		case "ports":
			return Change{Field: k, Old: ports(o.Ports), New: ports(n.Ports)}, true
		case "volumes":
			return Change{Field: k, Old: volumes(o.Volumes), New: volumes(n.Volumes)}, true
		}
		return Change{}, false
	})
}

// Fields lists the field-level differences between two configurations
// that encode as JSON objects, for engines whose configuration is not
// compose-go's (the swarm engine's stack-file services): the top-level
// attributes, one level into objects, sorted.
func Fields(o, n any) []Change {
	return diffFields(o, n, func(string) (Change, bool) { return Change{}, false })
}

// diffFields is the field diff of o and n; special renders a differing
// top-level attribute itself when it returns true.
func diffFields(o, n any, special func(k string) (Change, bool)) []Change {
	om, err1 := fields(o)
	nm, err2 := fields(n)
	if err1 != nil || err2 != nil {
		return []Change{{Field: "(configuration)", Old: "?", New: "?"}}
	}
	var out []Change
	for _, k := range sortedKeys(union(om, nm)) {
		ov, nv := om[k], nm[k]
		if bytes.Equal(ov, nv) {
			continue
		}
		if c, ok := special(k); ok {
			out = append(out, c)
			continue
		}
		osub, oerr := object(ov)
		nsub, nerr := object(nv)
		if oerr == nil && nerr == nil && (osub != nil || nsub != nil) {
			for _, sk := range sortedKeys(union(osub, nsub)) {
				if !bytes.Equal(osub[sk], nsub[sk]) {
					out = append(out, Change{Field: k + "." + sk, Old: value(osub[sk]), New: value(nsub[sk])})
				}
			}
			continue
		}
		out = append(out, Change{Field: k, Old: value(ov), New: value(nv)})
	}
	return out
}

// fields is the JSON encoding of s, by top-level attribute.
func fields(s any) (map[string]json.RawMessage, error) {
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	err = json.Unmarshal(raw, &m)
	return m, err
}

// object decodes raw as a JSON object; absent (nil) gives nil, no error;
// anything but an object gives an error.
func object(raw json.RawMessage) (map[string]json.RawMessage, error) {
	if raw == nil {
		return nil, nil
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("not an object")
	}
	var m map[string]json.RawMessage
	err := json.Unmarshal(raw, &m)
	return m, err
}

// value renders a JSON value for people: strings unquoted, null as "null",
// anything else as compact JSON; absent as "".
func value(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// ports renders ports in compose's short form, comma-separated.
func ports(ps []types.ServicePortConfig) string {
	var parts []string
	for _, p := range ps {
		s := fmt.Sprint(p.Target)
		if p.Published != "" {
			s = p.Published + ":" + s
		}
		if p.HostIP != "" {
			s = p.HostIP + ":" + s
		}
		if p.Protocol != "" && p.Protocol != "tcp" {
			s += "/" + p.Protocol
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// volumes renders mounts in compose's short form, comma-separated.
func volumes(vs []types.ServiceVolumeConfig) string {
	var parts []string
	for _, v := range vs {
		s := v.Target
		if v.Source != "" {
			s = v.Source + ":" + s
		}
		if v.ReadOnly {
			s += ":ro"
		}
		if v.Type != types.VolumeTypeVolume && v.Type != types.VolumeTypeBind {
			s = v.Type + " " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// union is the set of keys of a and b.
func union(a, b map[string]json.RawMessage) map[string]bool {
	u := make(map[string]bool, len(a)+len(b))
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

package compile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// YAML renders p as a compose file. It writes the subset of the compose
// specification that Compile produces, directly: compose-go's generic
// marshaller took 90% of a large compile (yaml.v4's emitter grows its
// buffer quadratically). The output is deterministic: maps are written in
// key order. A '$' in a value is written as "$$", so that compose does not
// interpolate it: denv has no variables.
//
// TestYAMLMatchesCompose checks, on every golden case, that compose loads
// this output to the same project as compose-go's own marshalling.
func YAML(p *types.Project) ([]byte, error) {
	w := &writer{b: make([]byte, 0, 1024+700*len(p.Services))}
	w.line(0, "name: "+scalar(p.Name))
	w.line(0, "services:")
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		if err := w.service(p.Services[name]); err != nil {
			return nil, err
		}
	}
	labelled(w, "networks", p.Networks, func(n types.NetworkConfig) types.Labels { return n.Labels })
	labelled(w, "volumes", p.Volumes, func(v types.VolumeConfig) types.Labels { return v.Labels })
	return w.b, nil
}

// labelled writes a top-level section of named entries that carry only
// labels (denv's networks and volumes): "NAME: {}" when there are none.
func labelled[T any](w *writer, section string, entries map[string]T, labels func(T) types.Labels) {
	if len(entries) == 0 {
		return
	}
	w.line(0, section+":")
	for _, name := range slices.Sorted(maps.Keys(entries)) {
		l := labels(entries[name])
		if len(l) == 0 {
			w.line(1, key(name)+": {}")
			continue
		}
		w.line(1, key(name)+":")
		w.mapping(2, "labels", l)
	}
}

type writer struct{ b []byte }

func (w *writer) line(indent int, s string) {
	for range indent {
		w.b = append(w.b, "  "...)
	}
	w.b = append(w.b, s...)
	w.b = append(w.b, '\n')
}

func (w *writer) mapping(indent int, name string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	w.line(indent, name+":")
	for _, k := range slices.Sorted(maps.Keys(m)) {
		w.line(indent+1, key(k)+": "+scalar(m[k]))
	}
}

func (w *writer) list(indent int, name string, items []string) {
	if len(items) == 0 {
		return
	}
	w.line(indent, name+":")
	for _, it := range items {
		w.line(indent+1, "- "+scalar(it))
	}
}

// service writes one service; it refuses fields Compile never sets, so that
// a change to Compile cannot be silently dropped here.
func (w *writer) service(s types.ServiceConfig) error {
	if s.Entrypoint != nil || s.Build != nil || s.Deploy != nil || len(s.EnvFiles) > 0 || s.ContainerName != "" ||
		s.HealthCheck != nil && (s.HealthCheck.StartInterval != nil || s.HealthCheck.Disable) {
		return fmt.Errorf("internal: service %q has fields the YAML writer does not know", s.Name)
	}
	w.line(1, key(s.Name)+":")
	w.line(2, "image: "+scalar(s.Image))
	if s.Command != nil {
		w.list(2, "command", s.Command)
	}
	if len(s.Environment) > 0 {
		w.line(2, "environment:")
		for _, k := range slices.Sorted(maps.Keys(s.Environment)) {
			v := s.Environment[k]
			if v == nil {
				w.line(3, key(k)+": null")
				continue
			}
			w.line(3, key(k)+": "+scalar(*v))
		}
	}
	if len(s.Ports) > 0 {
		w.line(2, "ports:")
		for _, p := range s.Ports {
			w.line(3, "- target: "+strconv.FormatUint(uint64(p.Target), 10))
			if p.Published != "" {
				w.line(4, "published: "+scalar(p.Published))
			}
			if p.HostIP != "" {
				w.line(4, "host_ip: "+scalar(p.HostIP))
			}
			w.line(4, "protocol: "+scalar(p.Protocol))
			if p.Mode != "" {
				w.line(4, "mode: "+scalar(p.Mode))
			}
		}
	}
	w.list(2, "expose", s.Expose)
	if len(s.Volumes) > 0 {
		w.line(2, "volumes:")
		for _, v := range s.Volumes {
			w.line(3, "- type: "+scalar(v.Type))
			w.line(4, "source: "+scalar(v.Source))
			w.line(4, "target: "+scalar(v.Target))
			if v.ReadOnly {
				w.line(4, "read_only: true")
			}
			if v.Bind != nil {
				w.line(4, "bind:")
				w.line(5, "create_host_path: "+strconv.FormatBool(bool(v.Bind.CreateHostPath)))
			}
		}
	}
	if len(s.Networks) > 0 {
		w.line(2, "networks:")
		for _, name := range slices.Sorted(maps.Keys(s.Networks)) {
			n := s.Networks[name]
			if n == nil || len(n.Aliases) == 0 {
				w.line(3, key(name)+": {}")
				continue
			}
			w.line(3, key(name)+":")
			w.list(4, "aliases", n.Aliases)
		}
	}
	if len(s.DependsOn) > 0 {
		w.line(2, "depends_on:")
		for _, name := range slices.Sorted(maps.Keys(s.DependsOn)) {
			d := s.DependsOn[name]
			w.line(3, key(name)+":")
			w.line(4, "condition: "+scalar(d.Condition))
			w.line(4, "required: "+strconv.FormatBool(d.Required))
		}
	}
	if h := s.HealthCheck; h != nil {
		w.line(2, "healthcheck:")
		w.list(3, "test", h.Test)
		for _, d := range []struct {
			name string
			d    *types.Duration
		}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
			if d.d != nil {
				w.line(3, d.name+": "+duration(*d.d))
			}
		}
		if h.Retries != nil {
			w.line(3, "retries: "+strconv.FormatUint(*h.Retries, 10))
		}
	}
	w.mapping(2, "labels", s.Labels)
	return nil
}

// duration writes d as compose reads it, in seconds from 1s ("88.5s",
// "60s", not Go's "1m28.5s"), else in milliseconds ("500ms").
func duration(d types.Duration) string {
	if t := time.Duration(d); t < time.Second {
		return strconv.FormatInt(t.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatFloat(time.Duration(d).Seconds(), 'f', -1, 64) + "s"
}

// plain reports scalars that YAML reads back as the same string unquoted:
// those matching ^[A-Za-z_./][A-Za-z0-9_./@+-]*$ (the regexp took a third
// of the YAML writer's time).
func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '_', c == '.', c == '/':
		case i > 0 && ('0' <= c && c <= '9' || c == '@' || c == '+' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// scalar writes s as a YAML string: plain when that is unambiguous, else
// double-quoted. '$' is doubled for compose's interpolation.
func scalar(s string) string {
	s = strings.ReplaceAll(s, "$", "$$")
	if plain(s) && !reserved(s) {
		return s
	}
	return strconv.Quote(s)
}

// key writes a mapping key; keys are names, quoted when needed.
func key(s string) string {
	if plain(s) && !reserved(s) {
		return s
	}
	return strconv.Quote(s)
}

// reservedWords are the words YAML would read as something other than a
// string, in any case.
var reservedWords = []string{"true", "false", "yes", "no", "on", "off", "y", "n", "null", "~", ".inf", ".nan", "-.inf", "+.inf"}

// reserved reports words YAML would read as something other than a string.
func reserved(s string) bool {
	if len(s) > 5 {
		return false // longer than any reserved word
	}
	for _, w := range reservedWords {
		if strings.EqualFold(s, w) {
			return true
		}
	}
	return false
}

package resolve

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/grammar"
)

// envName is the rule for environment and service names.
var envName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// instantiate makes the instance name of definition f, resolving its
// includes first (depth first) and then its services.
func (r *run) instantiate(f *file, name string, pos diag.Pos, vals []passed) *Env {
	return r.instantiateWith(f, name, pos, r.bind(f, pos, vals))
}

// instantiateWith is instantiate with the instance's parameters bound.
func (r *run) instantiateWith(f *file, name string, pos diag.Pos, params []Param) *Env {
	env := &Env{
		Name:   name,
		Def:    f.loc.defName(),
		File:   r.display(f.loc.displayPath()),
		Remote: f.loc.kind == kindRemote,
		Pos:    pos,
		Params: params,
	}
	r.byName[name] = env
	r.defOf[env] = f.loc.key()
	r.graph.Envs = append(r.graph.Envs, env)
	r.stack = append(r.stack, frame{file: f})
	r.onStack[f.loc.key()] = true
	defer func() {
		r.stack = r.stack[:len(r.stack)-1]
		delete(r.onStack, f.loc.key())
	}()

	sc := &scope{env: env, decls: r.declared(f), services: map[string]*Service{}, includes: map[string]*Include{}, failed: map[string]bool{}}
	for _, st := range f.ast.Statements {
		if st.Env != nil {
			r.include(f, sc, st.Env)
		}
	}
	for _, st := range f.ast.Statements {
		switch {
		case st.Images != nil:
			for _, ref := range st.Images.Refs {
				r.addService(f, sc, ref, nil)
			}
		case st.Image != nil:
			r.addService(f, sc, st.Image.Ref, st.Image.Clauses)
		}
	}
	r.links(sc)
	for _, st := range f.ast.Statements {
		if st.Expose != nil {
			r.expose(sc, st.Expose)
		}
	}
	return env
}

// scope is what names mean inside one definition.
type scope struct {
	env      *Env
	decls    []ParamDecl
	services map[string]*Service
	includes map[string]*Include
	// failed holds names whose statement had an error, so that targets
	// naming them are not reported a second time
	failed map[string]bool
	// pending LINK words, checked once every service is known
	pending []pendingLink
}

type pendingLink struct {
	svc  *Service
	word *grammar.Word
}

// include resolves one ENV statement.
func (r *run) include(from *file, sc *scope, st *grammar.Env) {
	pos := grammar.Position(st.Ref.Pos)
	ref := st.Ref.Value
	name := lastElem(ref)
	namePos := pos
	if st.As != nil {
		name, namePos = st.As.Value, grammar.Position(st.As.Pos)
	}
	if !envName.MatchString(name) {
		r.errorf(namePos, "invalid environment name %q: use lowercase letters, digits, '.', '_' and '-' (add AS NAME)", name)
		return
	}
	prev, dup := sc.includes[name]
	if dup && st.Ref.Value == prev.Ref {
		r.errorf(pos, "environment %q is already included at %s", name, prev.Pos)
		return
	}
	if !dup {
		sc.failed[name] = true // until it succeeds
	}
	vals := r.with(from, sc, st)
	f, err := r.lookup(from, ref, pos)
	if err != nil {
		// an error inside the included file already names its position
		var d *diag.Diagnostic
		if errors.As(err, &d) && d.Pos.File != "" {
			r.diags = append(r.diags, d)
		} else {
			r.diags = append(r.diags, diag.Wrap(pos, err))
		}
		return
	}
	if dup {
		// the same name for what may be another definition: say which
		// two, as for two definitions meeting across the graph
		if r.defOf[prev.Env] != f.loc.key() {
			r.errorf(pos, "environment name %q is used by two definitions: %s (included at %s) and %s; rename one with AS", name, prev.Env.Def, prev.Pos.Short(), f.loc.defName())
		} else {
			r.errorf(pos, "environment %q is already included at %s", name, prev.Pos)
		}
		return
	}
	r.stack[len(r.stack)-1].pos, r.stack[len(r.stack)-1].ref = pos, ref
	if r.onStack[f.loc.key()] {
		i := slices.IndexFunc(r.stack, func(fr frame) bool { return fr.file.loc.key() == f.loc.key() })
		// not r.errorf: the cycle is already shortened
		r.diags = append(r.diags, diag.Errorf(pos, "include cycle: %s", r.cycle(i, f)))
		return
	}
	if f.loc.kind == kindRemote && len(r.stack) >= MaxRemoteDepth {
		r.errorf(pos, "remote includes nest deeper than %d: %s is not included", MaxRemoteDepth, f.loc.defName())
		return
	}
	env, ok := r.byName[name]
	switch {
	case !ok:
		env = r.instantiate(f, name, pos, vals)
	case r.defOf[env] != f.loc.key():
		other := env.Pos.Short()
		if env.Pos.File == "" {
			// the root: it has no include position (and graph.Root is
			// only set once the whole graph is resolved)
			other = env.File
		}
		r.errorf(pos, "environment name %q is used by two definitions: %s (included at %s) and %s; rename one with AS", name, env.Def, other, f.loc.defName())
		return
	default:
		if params := r.bind(f, pos, vals); !sameValues(params, env.Params) {
			r.errorf(pos, "environment %q is included with different parameter values: %s here, %s at %s; give one a name with AS", name, showValues(params), showValues(env.Params), env.Pos)
			return
		}
	}
	inc := &Include{Env: env, Pos: pos, Ref: ref}
	delete(sc.failed, name)
	sc.includes[name] = inc
	sc.env.Includes = append(sc.env.Includes, inc)
	// sc.includes holds each name once, so sc.env is not in IncludedBy yet
	env.IncludedBy = append(env.IncludedBy, sc.env)
}

// cycle prints the includes from stack frame i back to f, file:line each.
// A long cycle shows its first and last maxCycleShown/2 steps only, so that
// a cycle through 10,000 files is still a readable line.
func (r *run) cycle(i int, f *file) string {
	const maxCycleShown = 8
	var b strings.Builder
	frames := r.stack[i:]
	for j, fr := range frames {
		if len(frames) > maxCycleShown && j >= maxCycleShown/2 && j < len(frames)-maxCycleShown/2 {
			if j == maxCycleShown/2 {
				fmt.Fprintf(&b, "... %d more includes ... -> ", len(frames)-maxCycleShown)
			}
			continue
		}
		fmt.Fprintf(&b, "%s ENV %s -> ", fr.pos.Short(), fr.ref)
	}
	b.WriteString(r.display(f.loc.displayPath()))
	return b.String()
}

// target finds what a LINK or EXPOSE word names in sc.
func (r *run) target(sc *scope, w *grammar.Word) (Target, bool) {
	pos := grammar.Position(w.Pos)
	svc, isSvc := sc.services[w.Value]
	if !isSvc {
		// the image reference of a service of this file
		var byImage []*Service
		for _, cand := range sc.env.Services {
			if cand.Image == w.Value {
				byImage = append(byImage, cand)
			}
		}
		switch len(byImage) {
		case 1:
			svc, isSvc = byImage[0], true
		case 0:
		default:
			r.errorf(pos, "%q is the image of several services (%s, %s): name one of them", w.Value, byImage[0].Name, byImage[1].Name)
			return Target{}, false
		}
	}
	inc, isEnv := sc.includes[w.Value]
	switch {
	case !isSvc && !isEnv && sc.failed[w.Value]:
		// already reported
	case isSvc && isEnv:
		r.errorf(pos, "%q names both a service and an included environment; rename one with AS", w.Value)
	case isSvc:
		return Target{Service: svc, Pos: pos}, true
	case isEnv:
		return Target{Env: inc.Env, Pos: pos}, true
	default:
		r.errorf(pos, "unknown target %q: not a service or included environment of %s%s", w.Value, sc.env.Name, r.known(sc))
	}
	return Target{}, false
}

// known lists what a target may name, for error messages.
func (r *run) known(sc *scope) string {
	var names []string
	for _, svc := range sc.env.Services {
		names = append(names, svc.Name)
	}
	for _, inc := range sc.env.Includes {
		names = append(names, inc.Env.Name)
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return " (known: " + strings.Join(slices.Compact(names), ", ") + ")"
}

// links resolves every LINK of sc once all its services are known, and
// rejects start-order cycles among them.
func (r *run) links(sc *scope) {
	for _, p := range sc.pending {
		t, ok := r.target(sc, p.word)
		if !ok {
			continue
		}
		if t.Service == p.svc {
			r.errorf(t.Pos, "service %q links to itself", p.svc.Name)
			continue
		}
		if t.Env != nil && len(t.Env.Exposed) == 0 {
			r.errorf(t.Pos, "LINK %s: environment %q exposes no service", p.word.Value, t.Env.Name)
			continue
		}
		p.svc.Links = append(p.svc.Links, t)
	}
	// start-order cycles among sibling services
	state := map[*Service]int{} // 0 new, 1 on path, 2 done
	var path []*Service
	var visit func(svc *Service) bool
	visit = func(svc *Service) bool {
		state[svc] = 1
		path = append(path, svc)
		for _, l := range svc.Links {
			if l.Service == nil {
				continue
			}
			switch state[l.Service] {
			case 1:
				i := slices.Index(path, l.Service)
				names := []string{}
				for _, p := range path[i:] {
					names = append(names, fmt.Sprintf("%s (%s)", p.Name, p.Pos.Short()))
				}
				r.errorf(l.Pos, "LINK cycle: %s -> %s", strings.Join(names, " -> "), l.Service.Name)
				return false
			case 0:
				if !visit(l.Service) {
					return false
				}
			}
		}
		path = path[:len(path)-1]
		state[svc] = 2
		return true
	}
	for _, svc := range sc.env.Services {
		if state[svc] == 0 && !visit(svc) {
			return
		}
	}
}

// expose adds an EXPOSE statement's targets to the environment's interface.
func (r *run) expose(sc *scope, st *grammar.Expose) {
	add := func(x Exposed, pos diag.Pos) {
		for _, prev := range sc.env.Exposed {
			if prev.Name == x.Name {
				if prev.Service != x.Service {
					r.errorf(pos, "EXPOSE: two services would be exposed as %q (%s and %s)", x.Name, prev.Service.Pos.Short(), x.Service.Pos.Short())
				}
				return
			}
		}
		sc.env.Exposed = append(sc.env.Exposed, x)
	}
	for _, w := range st.Targets {
		t, ok := r.target(sc, w)
		switch {
		case !ok:
		case t.Service != nil:
			add(Exposed{Name: t.Service.Name, Service: t.Service}, t.Pos)
		case len(t.Env.Exposed) == 0:
			r.errorf(t.Pos, "EXPOSE %s: environment %q exposes no service", w.Value, t.Env.Name)
		default:
			for _, x := range t.Env.Exposed {
				add(x, t.Pos)
			}
		}
	}
}

package resolve

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/grammar"
)

// Parameters (LANGUAGE.md section 7). A definition declares them with
// PARAM, uses them as ${name} in image references, SET values, CMD words,
// PORT words and WITH values, and its includer passes values with
// ENV ... WITH (the root's come from Options.Params). Values are plain
// strings: ${name} is replaced by the value as written, never split.

// paramName is the rule for parameter names.
var paramName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Param is one parameter of an environment instance: what its definition
// declares and the value the instance was resolved with.
type Param struct {
	// Name is the parameter's name.
	Name string
	// Default is the declared default; nil for a required parameter.
	Default *string
	// Value is the value the instance was resolved with (passed, else the
	// default). Meaningless when Unset.
	Value string
	// Unset is true when no value is known: only with
	// Options.ParamsOptional, for a required parameter of the root (or a
	// value computed from one).
	Unset bool
	// Pos is the PARAM statement.
	Pos diag.Pos
}

// Shown is the value as denv prints it: "***" for a secret parameter
// (Secret), "" when unset.
func (p Param) Shown() string {
	if p.Unset {
		return ""
	}
	return Mask(p.Name, p.Value)
}

// Secret reports whether a parameter's values are secret: its name holds
// password, secret, token or key (any case). Their values are shown as
// "***" in everything denv prints.
func Secret(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "password") || strings.Contains(n, "secret") ||
		strings.Contains(n, "token") || strings.Contains(n, "key")
}

// Mask is value as printed for parameter name: "***" when Secret(name).
func Mask(name, value string) string {
	if Secret(name) {
		return "***"
	}
	return value
}

// ParamDecl is a parameter as a definition declares it.
type ParamDecl struct {
	Name    string
	Default *string // nil: required
	Pos     diag.Pos
}

// Declared lists the parameters f declares, in statement order. A name
// declared twice is listed once (resolving reports it).
func Declared(f *grammar.File) []ParamDecl {
	var out []ParamDecl
	for _, st := range f.Statements {
		p := st.Param
		if p == nil || slices.ContainsFunc(out, func(d ParamDecl) bool { return d.Name == p.Name }) {
			continue
		}
		d := ParamDecl{Name: p.Name, Pos: grammar.Position(p.Pos)}
		if p.Default != nil {
			v := strings.ReplaceAll(*p.Default, "$${", "${")
			d.Default = &v
		}
		out = append(out, d)
	}
	return out
}

// pval is a parameter value; unknown when no value is known (see Param.Unset).
type pval struct {
	v       string
	unknown bool
}

// passed is one value handed to a definition: by WITH or --set. A
// handful per include: a slice, searched, costs less than a map.
type passed struct {
	name string
	val  pval
	// where: assignment i of env's WITH, in src; env is nil for --set
	env *grammar.Env
	src []byte
	i   int
}

// at is where the value was passed: the WITH name (zero for --set).
func (p passed) at() diag.Pos {
	if p.env == nil {
		return diag.Pos{}
	}
	n, _ := p.env.WithPos(p.src, p.i)
	return grammar.Position(n.Pos)
}

// find returns the value passed for name.
func find(vals []passed, name string) (passed, bool) {
	for _, v := range vals {
		if v.name == name {
			return v, true
		}
	}
	return passed{}, false
}

// bind checks the values passed to definition f (declared decls) and
// returns the instance's parameters. at is where f is included (the ENV
// statement), zero for the root.
func (r *run) bind(f *file, at diag.Pos, vals []passed) []Param {
	decls := r.declared(f)
	def := f.loc.defName()
	where := r.display(f.loc.displayPath())
	var unknown []string
	for _, v := range vals {
		if !slices.ContainsFunc(decls, func(d ParamDecl) bool { return d.Name == v.name }) {
			unknown = append(unknown, v.name)
		}
	}
	slices.Sort(unknown) // reported in a stable order
	for _, name := range unknown {
		v, _ := find(vals, name)
		pos := v.at()
		how := "WITH " + name
		if pos.File == "" {
			pos, how = diag.Pos{File: where}, "--set "+name
		}
		r.errorf(pos, "%s: definition %s (%s) has no parameter %q%s", how, def, where, name, paramList(decls))
	}
	params := make([]Param, 0, len(decls))
	for _, d := range decls {
		p := Param{Name: d.Name, Default: d.Default, Pos: d.Pos}
		switch v, ok := find(vals, d.Name); {
		case ok:
			p.Value, p.Unset = v.val.v, v.val.unknown
		case d.Default != nil:
			p.Value = *d.Default
		case r.resolver.opts.ParamsOptional && len(r.stack) <= 1:
			// the root, or included by the root (denv add checks a
			// definition through a root that includes it)
			p.Unset = true
		case at.File == "":
			r.errorf(d.Pos, "parameter %q of %s has no value: pass --set %s=VALUE", d.Name, def, d.Name)
			p.Unset = true
		default:
			r.errorf(at, "definition %s requires parameter %q (declared at %s): pass it with WITH %s=VALUE", def, d.Name, d.Pos, d.Name)
			p.Unset = true
		}
		params = append(params, p)
	}
	return params
}

// declared is Declared with the checks of the PARAM statements, once per
// file.
func (r *run) declared(f *file) []ParamDecl {
	if f.params != nil {
		return *f.params
	}
	decls := Declared(f.ast)
	seen := map[string]diag.Pos{}
	for _, st := range f.ast.Statements {
		p := st.Param
		if p == nil {
			continue
		}
		pos := grammar.Position(p.Pos)
		if !paramName.MatchString(p.Name) {
			r.errorf(f.textPos(p.Pos, 1), "invalid parameter name %q: use letters, digits and '_', not starting with a digit", p.Name)
		}
		if prev, ok := seen[p.Name]; ok {
			r.errorf(pos, "parameter %q is declared twice (first at %s)", p.Name, prev)
		}
		seen[p.Name] = pos
		if p.Default != nil {
			if i, ok := scanRefs(*p.Default); ok {
				at := f.textPos(p.Pos, 3) // PARAM name = default
				at.Col += i
				at.Offset += i
				r.errorf(at, "the default of %q is a plain value: it cannot use ${...} (write $${ for a literal ${)", p.Name)
			}
		}
	}
	f.params = &decls
	return decls
}

// scanRefs reports whether text holds a ${ that is a parameter use, and
// whether it holds any.
func scanRefs(text string) (int, bool) {
	for i := 0; i+1 < len(text); i++ {
		if text[i] != '$' {
			continue
		}
		if strings.HasPrefix(text[i:], "$${") {
			i += 2
			continue
		}
		if text[i+1] == '{' {
			return i, true
		}
	}
	return 0, false
}

func paramList(decls []ParamDecl) string {
	if len(decls) == 0 {
		return " (it declares none)"
	}
	names := make([]string, len(decls))
	for i, d := range decls {
		names[i] = d.Name
	}
	return " (its parameters: " + strings.Join(names, ", ") + ")"
}

// textPos is where the text of token k (from 0) of the node at pos in f
// starts: one column in for a quoted string. Only diagnostics need it.
func (f *file) textPos(pos grammar.Pos, k int) diag.Pos {
	toks := grammar.TokensAt(f.src, pos, k+1)
	if len(toks) <= k {
		return grammar.Position(pos)
	}
	return grammar.TextPos(toks[k])
}

// expand replaces each ${name} in text with the value of parameter name of
// the instance sc; at says where text starts (asked only for an error). An
// undeclared name is reported at its position. ok is false when text cannot
// be used: an error was reported, or a value is unknown (then text is
// returned as written).
func (r *run) expand(sc *scope, text string, at func() diag.Pos, report bool) (out string, ok bool) {
	if strings.IndexByte(text, '$') < 0 {
		return text, true
	}
	// the whole text one use, the common case: no copy
	if len(text) > 3 && text[0] == '$' && text[1] == '{' && text[len(text)-1] == '}' && strings.IndexAny(text[2:len(text)-1], "${}") < 0 {
		if p, found := sc.param(text[2 : len(text)-1]); found {
			if p.Unset {
				return text, false
			}
			return p.Value, true
		}
	}
	var b strings.Builder
	ok = true
	unknown := false
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c != '$':
			b.WriteByte(c)
			i++
			continue
		case strings.HasPrefix(text[i:], "$${"):
			b.WriteString("${")
			i += 3
			continue
		case !strings.HasPrefix(text[i:], "${"):
			b.WriteByte(c)
			i++
			continue
		}
		posAt := func(i int) diag.Pos {
			p := at()
			p.Col += i
			p.Offset += i
			return p
		}
		end := strings.IndexByte(text[i+2:], '}')
		if end < 0 {
			if report {
				r.errorf(posAt(i), "unterminated ${: write ${name}, or $${ for a literal ${")
			}
			return text, false
		}
		name := text[i+2 : i+2+end]
		start := i
		i += 3 + end
		p, found := sc.param(name)
		switch {
		case !found:
			if report {
				r.errorf(posAt(start), "${%s}: %s declares no parameter %q%s; declare it with PARAM %s", name, sc.env.Def, name, paramList(sc.decls), name)
			}
			ok = false
		case p.Unset:
			unknown = true
		default:
			b.WriteString(p.Value)
		}
	}
	if !ok || unknown {
		return text, false
	}
	return b.String(), true
}

// param finds the instance's parameter name.
func (sc *scope) param(name string) (Param, bool) {
	for _, p := range sc.env.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// with evaluates the WITH values of an ENV statement in the includer's
// scope sc.
func (r *run) with(f *file, sc *scope, st *grammar.Env) []passed {
	if len(st.With) == 0 {
		return nil
	}
	vals := make([]passed, 0, len(st.With)/2)
	for i := 0; i+1 < len(st.With); i += 2 {
		name, value := st.With[i], st.With[i+1]
		if prev, ok := find(vals, name); ok {
			n, _ := st.WithPos(f.src, i/2)
			r.errorf(grammar.Position(n.Pos), "WITH %s is given twice (first at %s)", name, prev.at())
			continue
		}
		v, ok := r.expand(sc, value, func() diag.Pos { _, t := st.WithPos(f.src, i/2); return grammar.TextPos(t) }, true)
		vals = append(vals, passed{name: name, val: pval{v: v, unknown: !ok}, env: st, src: f.src, i: i / 2})
	}
	return vals
}

// sameValues reports whether two instances' parameters are equal.
func sameValues(a, b []Param) bool {
	return slices.EqualFunc(a, b, func(x, y Param) bool {
		return x.Name == y.Name && x.Unset == y.Unset && x.Value == y.Value
	})
}

// showValues prints parameters as name=value, secrets masked.
func showValues(ps []Param) string {
	if len(ps) == 0 {
		return "no parameters"
	}
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s=%q", p.Name, p.Shown())
	}
	return strings.Join(parts, ", ")
}

// ShownParams are the instance's parameter values as denv prints them
// (Param.Shown), by name; nil when it has none.
func (e *Env) ShownParams() map[string]string {
	if len(e.Params) == 0 {
		return nil
	}
	m := make(map[string]string, len(e.Params))
	for _, p := range e.Params {
		m[p.Name] = p.Shown()
	}
	return m
}

// ParamInfo describes one parameter of an environment instance for
// listings (denv def): defaults and values as printed, secrets masked.
type ParamInfo struct {
	Environment string  `json:"environment"`
	Definition  string  `json:"definition"`
	Name        string  `json:"name"`
	Default     *string `json:"default"` // null: required
	Value       string  `json:"value"`   // "" when unset
	Source      string  `json:"source"`  // the PARAM statement, file:line
}

// ParamList lists the parameters of every instance of g, in graph order.
func ParamList(g *Graph) []ParamInfo {
	var out []ParamInfo
	for _, e := range g.Envs {
		for _, p := range e.Params {
			pi := ParamInfo{Environment: e.Name, Definition: e.Def, Name: p.Name, Value: p.Shown(), Source: p.Pos.Short()}
			if p.Default != nil {
				d := Mask(p.Name, *p.Default)
				pi.Default = &d
			}
			out = append(out, pi)
		}
	}
	return out
}

// ParseSets reads command-line values "name=value" (denv compile|run
// --set) into Options.Params. The value is taken as written: everything
// after the first '=', ${ included.
func ParseSets(sets []string) (map[string]string, error) {
	if len(sets) == 0 {
		return nil, nil
	}
	vals := make(map[string]string, len(sets))
	for _, s := range sets {
		name, value, ok := strings.Cut(s, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--set %q: want NAME=VALUE", s)
		case !paramName.MatchString(name):
			return nil, fmt.Errorf("--set %q: %q is not a parameter name (letters, digits and '_', not starting with a digit)", s, name)
		}
		if _, dup := vals[name]; dup {
			return nil, fmt.Errorf("--set %s is given twice", name)
		}
		vals[name] = value
	}
	return vals, nil
}

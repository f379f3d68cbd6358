package resolve

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/mattn/go-shellwords"

	"github.com/alebellu/denv/diag"
	"github.com/alebellu/denv/grammar"
)

var (
	portRule   = regexp.MustCompile(`^(?:(\d+):)?(\d+)(?:/(tcp|udp))?$`)
	envKeyRule = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	volumeRule = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
)

// addService resolves one IMAGE (clauses may be nil for IMAGES).
func (r *run) addService(f *file, sc *scope, ref *grammar.Word, clauses []*grammar.Clause) {
	pos := grammar.Position(ref.Pos)
	image, ok := r.expand(sc, ref.Value, func() diag.Pos { return pos }, true)
	var svcName string
	if ok {
		named, err := reference.ParseNormalizedNamed(image)
		if err != nil {
			r.errorf(pos, "invalid image reference %q: %v", image, err)
			sc.failed[ref.Value] = true
			return
		}
		svcName = path.Base(reference.Path(named))
	} else {
		// not checked: an error was reported, or a value is unknown
		svcName = unexpandedName(ref.Value)
	}
	svc := &Service{Env: sc.env, Name: svcName, Image: image, Pos: pos}
	namePos := pos
	var asPos, cmdPos, readyPos *diag.Pos
	for _, c := range clauses {
		cpos := grammar.Position(c.Pos)
		switch {
		case c.As != nil:
			if asPos != nil {
				r.errorf(cpos, "second AS for this image (the first is at %s)", asPos)
				continue
			}
			asPos = &cpos
			svc.Name, namePos = c.As.Value, grammar.Position(c.As.Pos)
		case c.Link != nil:
			for _, w := range c.Link {
				sc.pending = append(sc.pending, pendingLink{svc: svc, word: w})
			}
		case c.Port != nil:
			for _, w := range c.Port {
				r.port(sc, svc, w)
			}
		case c.Volume != nil:
			r.volume(f, svc, c.Volume)
		case c.Set != nil:
			r.set(f, sc, svc, c.Set)
		case c.Cmd != nil:
			if cmdPos != nil {
				r.errorf(cpos, "second CMD for this image (the first is at %s)", cmdPos)
				continue
			}
			cmdPos = &cpos
			svc.Command = r.words(f, sc, "CMD", c.Cmd)
		case c.Ready != nil:
			if readyPos != nil {
				r.errorf(cpos, "second READY for this image (the first is at %s)", readyPos)
				continue
			}
			readyPos = &cpos
			r.ready(f, sc, svc, cpos, c.Ready)
		}
	}
	if !envName.MatchString(svc.Name) {
		r.errorf(namePos, "invalid service name %q: use lowercase letters, digits, '.', '_' and '-'", svc.Name)
		sc.failed[svc.Name] = true
		return
	}
	if prev, ok := sc.services[svc.Name]; ok {
		r.errorf(pos, "two services named %q: %s and here; give one a name with AS", svc.Name, prev.Pos)
		return
	}
	sc.services[svc.Name] = svc
	sc.env.Services = append(sc.env.Services, svc)
}

func (r *run) port(sc *scope, svc *Service, w *grammar.Word) {
	pos := grammar.Position(w.Pos)
	word, ok := r.expand(sc, w.Value, func() diag.Pos { return pos }, true)
	if !ok {
		return
	}
	m := portRule.FindStringSubmatch(word)
	if m == nil {
		r.errorf(pos, "invalid port %q: want PORT, HOST:PORT or either with /tcp or /udp", word)
		return
	}
	p := Port{Protocol: "tcp", Pos: pos}
	if m[3] != "" {
		p.Protocol = m[3]
	}
	c, err := portNumber(m[2])
	if err != nil {
		r.errorf(pos, "invalid port %q: %v", word, err)
		return
	}
	p.Container = c
	if m[1] != "" {
		h, err := portNumber(m[1])
		if err != nil {
			r.errorf(pos, "invalid port %q: %v", word, err)
			return
		}
		p.Host = h
	}
	for _, prev := range svc.Ports {
		if prev.Container == p.Container && prev.Protocol == p.Protocol {
			r.errorf(pos, "port %d/%s is declared twice (first at %s)", p.Container, p.Protocol, prev.Pos)
			return
		}
	}
	svc.Ports = append(svc.Ports, p)
}

func portNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// volume interprets name:/path, /path and ./dir:/path, each with an optional
// :ro or :rw.
func (r *run) volume(f *file, svc *Service, w *grammar.Word) {
	pos := grammar.Position(w.Pos)
	parts := strings.Split(w.Value, ":")
	v := Volume{Pos: pos}
	if n := len(parts); n > 1 && (parts[n-1] == "ro" || parts[n-1] == "rw") {
		v.ReadOnly = parts[n-1] == "ro"
		parts = parts[:n-1]
	}
	var src string
	switch len(parts) {
	case 1:
		v.Target = parts[0]
	case 2:
		src, v.Target = parts[0], parts[1]
	default:
		r.errorf(pos, "invalid volume %q: want NAME:/PATH, /PATH or ./DIR:/PATH, optionally with :ro", w.Value)
		return
	}
	if !strings.HasPrefix(v.Target, "/") {
		r.errorf(pos, "invalid volume %q: the container path %q must be absolute", w.Value, v.Target)
		return
	}
	v.Target = path.Clean(v.Target)
	switch {
	case src == "":
		v.Kind = NamedVolume
		v.Name = svc.Name + "-" + strings.Trim(nonName.ReplaceAllString(strings.ToLower(v.Target), "-"), "-")
	case strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") || strings.HasPrefix(src, "~"):
		v.Kind = BindMount
		if svc.Env.Remote && !r.resolver.opts.AllowRemoteBinds && !r.hostBinds {
			r.errorf(pos, "remote definition may not bind the host path %q (allow it explicitly to trust this source)", src)
			return
		}
		if strings.HasPrefix(src, "~") {
			r.errorf(pos, "invalid volume %q: '~' is not expanded; use a path relative to the definition or an absolute one", w.Value)
			return
		}
		if !filepath.IsAbs(src) {
			base := f.loc.bindBase()
			if base == "" {
				base = r.resolver.opts.WorkDir
			}
			src = filepath.Join(base, filepath.FromSlash(src))
		}
		v.Source = filepath.Clean(src)
	default:
		if !volumeRule.MatchString(src) {
			r.errorf(pos, "invalid volume name %q: use lowercase letters, digits, '.', '_' and '-'", src)
			return
		}
		v.Kind, v.Name = NamedVolume, src
	}
	if v.Target == "/" {
		// whatever the source (`VOLUME /`, `VOLUME data:/`, a bind): it
		// would hide the image's whole file system
		r.errorf(pos, "invalid volume %q: cannot mount a volume on /", w.Value)
		return
	}
	for _, prev := range svc.Volumes {
		if prev.Target == v.Target {
			r.errorf(pos, "two volumes mounted on %s (first at %s)", v.Target, prev.Pos)
			return
		}
	}
	svc.Volumes = append(svc.Volumes, v)
}

var nonName = regexp.MustCompile(`[^a-z0-9_.-]+`)

func (r *run) set(f *file, sc *scope, svc *Service, st *grammar.Set) {
	pos := grammar.Position(st.Pos)
	if !envKeyRule.MatchString(st.Key) {
		r.errorf(pos, "invalid variable name %q: use letters, digits and '_', not starting with a digit", st.Key)
		return
	}
	for _, prev := range svc.Environ {
		if prev.Key == st.Key {
			r.errorf(pos, "%s is set twice (first at %s)", st.Key, prev.Pos)
			return
		}
	}
	// the value is the third token: KEY = VALUE
	value, _ := r.expand(sc, st.Value, func() diag.Pos { return f.textPos(st.Pos, 2) }, true)
	svc.Environ = append(svc.Environ, EnvVar{Key: st.Key, Value: value, Pos: pos})
}

// words is the command of a CMD or READY (what names the clause), with
// parameters expanded: the list form word by word, the string form split
// like a shell would (without one), then each word expanded, so that a
// value stays one word. The AST stays as parsed.
func (r *run) words(f *file, sc *scope, what string, c *grammar.Cmd) []string {
	if c.Shell == nil {
		words := c.Exec
		cloned := false
		for i, w := range c.Exec {
			if !strings.Contains(w, "$") {
				continue
			}
			if !cloned {
				words, cloned = slices.Clone(c.Exec), true
			}
			// the words are tokens 1, 3, 5...: [ "a" , "b" ]
			words[i], _ = r.expand(sc, w, func() diag.Pos { return f.textPos(c.Pos, 1+2*i) }, true)
		}
		return words
	}
	if strings.Contains(*c.Shell, "$") {
		// report undeclared names where they are written; the words
		// are expanded one by one below
		if _, ok := r.expand(sc, *c.Shell, func() diag.Pos { return f.textPos(c.Pos, 0) }, true); !ok {
			return []string{*c.Shell}
		}
	}
	words, err := shellwords.Parse(*c.Shell)
	if err != nil {
		r.errorf(grammar.Position(c.Pos), "invalid %s %q: %v", what, *c.Shell, err)
		return nil
	}
	if len(words) == 0 {
		r.errorf(grammar.Position(c.Pos), "empty %s", what)
		return nil
	}
	for i, w := range words {
		words[i], _ = r.expand(sc, w, nil, false)
	}
	return words
}

// durationRule is WITHIN's syntax: whole seconds or minutes.
var durationRule = regexp.MustCompile(`^([0-9]+)([sm])$`)

func (r *run) ready(f *file, sc *scope, svc *Service, pos diag.Pos, rd *grammar.Ready) {
	cmd := r.words(f, sc, "READY", rd.Command)
	if cmd == nil {
		return
	}
	within := DefaultReadyWithin
	if rd.Within != nil {
		wpos := grammar.Position(rd.Within.Pos)
		m := durationRule.FindStringSubmatch(rd.Within.Value)
		if m == nil {
			r.errorf(wpos, "invalid duration %q after WITHIN: want whole seconds or minutes (30s, 2m)", rd.Within.Value)
			return
		}
		unit := time.Second
		if m[2] == "m" {
			unit = time.Minute
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		switch {
		case err == nil && n == 0:
			r.errorf(wpos, "READY WITHIN %s: the limit must be at least 1s", rd.Within.Value)
			return
		case err != nil || n > uint64(MaxReadyWithin/unit):
			r.errorf(wpos, "READY WITHIN %s: the limit must be at most %s", rd.Within.Value, "24h (1440m)")
			return
		}
		within = time.Duration(n) * unit
	}
	svc.Ready = &Ready{Command: cmd, Within: within, Pos: pos}
}

// unexpandedName is the service name of an image reference that could not
// be expanded: its last path element without tag or digest.
func unexpandedName(ref string) string {
	ref = path.Base(ref)
	if i := strings.IndexAny(ref, ":@"); i > 0 {
		ref = ref[:i]
	}
	return ref
}

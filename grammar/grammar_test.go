package grammar_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alebellu/denv/grammar"
)

func TestParseStatements(t *testing.T) {
	src := `# comment
ENV ex/web-env AS web
IMAGES a/b, c d:1
IMAGE ex/db AS store
    LINK web, d
    PORT 8080, 9000:80/udp
    VOLUME data:/data
    SET PORT=80 SET NAME="a \"b\""
    CMD ["x", "y z"]
IMAGE ex/w CMD "run --fast"
EXPOSE store, web
`
	f, err := grammar.NewParser().Parse("t.denv", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Statements); n != 5 {
		t.Fatalf("%d statements, want 5", n)
	}
	env := f.Statements[0].Env
	if env.Ref.Value != "ex/web-env" || env.As.Value != "web" || env.Ref.Pos.Line != 2 || env.Ref.Pos.Column != 5 {
		t.Errorf("ENV = %+v %+v", env.Ref, env.As)
	}
	var refs []string
	for _, r := range f.Statements[1].Images.Refs {
		refs = append(refs, r.Value)
	}
	if got := strings.Join(refs, " "); got != "a/b c d:1" {
		t.Errorf("IMAGES = %q", got)
	}
	img := f.Statements[2].Image
	if img.Ref.Value != "ex/db" || len(img.Clauses) != 7 {
		t.Fatalf("IMAGE = %q with %d clauses", img.Ref.Value, len(img.Clauses))
	}
	set := img.Clauses[4].Set
	if set.Key != "PORT" || set.Value != "80" {
		t.Errorf("SET = %+v (a keyword key must parse)", set)
	}
	if v := img.Clauses[5].Set.Value; v != `a "b"` {
		t.Errorf("quoted SET value = %q", v)
	}
	if c := img.Clauses[6].Cmd.Exec; len(c) != 2 || c[1] != "y z" {
		t.Errorf("CMD exec = %q", c)
	}
	if c := f.Statements[3].Image.Clauses[0].Cmd.Shell; c == nil || *c != "run --fast" {
		t.Errorf("CMD shell = %v", c)
	}
	if ts := f.Statements[4].Expose.Targets; len(ts) != 2 || ts[1].Pos.Line != 11 {
		t.Errorf("EXPOSE = %+v", ts)
	}
}

// TestParseReady: both command forms, with and without WITHIN, and the
// messages of the syntax errors READY can make.
func TestParseReady(t *testing.T) {
	p := grammar.NewParser()
	f, err := p.Parse("r.denv", []byte("IMAGE ex/db READY [\"/app\", \"health\"] WITHIN 2m PORT 1\nIMAGE ex/w\n  READY \"probe -q\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := f.Statements[0].Image.Clauses[0].Ready
	if r == nil || len(r.Command.Exec) != 2 || r.Command.Exec[1] != "health" || r.Within == nil || r.Within.Value != "2m" || r.Within.Pos.Column != 45 {
		t.Fatalf("READY exec = %+v", r)
	}
	if n := len(f.Statements[0].Image.Clauses); n != 2 {
		t.Errorf("%d clauses after READY ... WITHIN, want 2 (PORT follows)", n)
	}
	c := f.Statements[1].Image.Clauses[0]
	if r = c.Ready; r == nil || r.Command.Shell == nil || *r.Command.Shell != "probe -q" || r.Within != nil || c.Pos.Line != 3 || c.Pos.Column != 3 {
		t.Fatalf("READY string = %+v", r)
	}
	for src, want := range map[string]string{
		"IMAGE a READY":                  "e.denv:1:14: unexpected end of file, expected a quoted string or [list of strings]",
		"IMAGE a READY WITHIN 3s":        "e.denv:1:15: unexpected keyword WITHIN, expected a quoted string or [list of strings]",
		"IMAGE a READY \"x\" WITHIN":     "e.denv:1:25: unexpected end of file, expected a duration after WITHIN (30s, 2m)",
		"IMAGE a READY [\"x\" WITHIN 3s": "e.denv:1:20: unexpected keyword WITHIN, expected ',' or ']'",
		"IMAGE READY \"x\"":              "e.denv:1:7: unexpected keyword READY, expected a name",
	} {
		if _, err := p.Parse("e.denv", []byte(src)); err == nil || err.Error() != want {
			t.Errorf("%q: error %v, want %q", src, err, want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	p := grammar.NewParser()
	big := make([]byte, grammar.MaxFileSize+1)
	for i := range big {
		big[i] = ' '
	}
	if _, err := p.Parse("big.denv", big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversize file: %v", err)
	}
	if _, err := p.Parse("bin.denv", []byte("IMAGE a\n\xff")); err == nil || err.Error() != "bin.denv:2:1: invalid UTF-8" {
		t.Errorf("non-UTF-8: %v", err)
	}
	// a 1 MiB single line parses without trouble
	line := "IMAGES " + strings.Repeat("a ", (grammar.MaxFileSize-8)/2)
	f, err := p.Parse("long.denv", []byte(line))
	if err != nil || len(f.Statements[0].Images.Refs) < 1000 {
		t.Errorf("long line: %v", err)
	}
}

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, and
// every error must carry the file name and a position.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../testdata/golden/*.denv")
	more, _ := filepath.Glob("../testdata/golden/lib/*.denv")
	for _, s := range append(seeds, more...) {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("IMAGE a SET X=\"\\\"\" CMD [\"a\",\"b\"]"))
	f.Add([]byte("PARAM v = \"1\" PARAM p\nENV e AS x WITH v=${v}, p=\"$${p} ${v\"\nIMAGE i:${v} PORT ${p}:1 CMD \"a ${v}\""))
	f.Add([]byte("ENV e WITH a=WITH, PARAM=1 PARAM = WITH"))
	f.Add([]byte("IMAGE a READY [\"a\", \"-q\"] WITHIN 90s IMAGE b READY \"c d\" LINK a"))
	f.Add([]byte("IMAGE a READY \"x\" WITHIN 0s READY [] WITHIN"))
	p := grammar.NewParser()
	f.Fuzz(func(t *testing.T, src []byte) {
		_, err := p.Parse("fuzz.denv", src)
		if err != nil && !strings.HasPrefix(err.Error(), "fuzz.denv") {
			t.Errorf("error without position: %v", err)
		}
	})
}

func TestParseParams(t *testing.T) {
	src := "PARAM version = \"15\"\nPARAM password\nENV pg-env AS db WITH version=${v}, password=\"a b\"\nIMAGE x SET A=\"${p}\"\n"
	f, err := grammar.NewParser().Parse("t.denv", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := f.Statements[0].Param
	if p.Name != "version" || p.Default == nil || *p.Default != "15" {
		t.Errorf("PARAM = %+v", p)
	}
	if p := f.Statements[1].Param; p.Name != "password" || p.Default != nil {
		t.Errorf("required PARAM = %+v", p)
	}
	env := f.Statements[2].Env
	if env.As.Value != "db" || strings.Join(env.With, "|") != "version|${v}|password|a b" {
		t.Errorf("WITH = %q", env.With)
	}
	if n, v := env.WithPos([]byte(src), 1); n.Pos.Column != 37 || n.Value != "password" || v.Pos.Column != 46 || !grammar.IsString(v) {
		t.Errorf("WithPos(1) = %v %v", n, v)
	}
	set := f.Statements[3].Image.Clauses[0].Set
	toks := grammar.TokensAt([]byte(src), set.Pos, 3)
	if len(toks) != 3 {
		t.Fatalf("TokensAt = %v", toks)
	}
	if pos := grammar.TextPos(toks[2]); pos.Line != 4 || pos.Col != 16 || !grammar.IsString(toks[2]) {
		t.Errorf("SET value text at %v, want 4:16", pos)
	}
	for bad, want := range map[string]string{
		"PARAM":              "t.denv:1:6: unexpected end of file, expected a name",
		"PARAM x =":          "t.denv:1:10: unexpected end of file, expected a value (a word or a quoted string)",
		"ENV a WITH":         "t.denv:1:11: unexpected end of file, expected a name",
		"ENV a WITH x":       "t.denv:1:13: unexpected end of file, expected a statement",
		"ENV a WITH x=1,":    "t.denv:1:16: unexpected end of file, expected a name",
		"ENV a WITH x=1 y=2": `t.denv:1:16: unexpected "y", expected a statement`,
		"PARAM x = y = z":    `t.denv:1:13: unexpected "="`,
	} {
		_, err := grammar.NewParser().Parse("t.denv", []byte(bad))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %s", bad, err, want)
		}
	}
}

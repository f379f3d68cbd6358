// Package grammar parses .denv definition files into an AST whose nodes keep
// their source positions. It does no I/O beyond the bytes it is given.
//
// The language (see LANGUAGE.md in the project docs):
//
//	File       = { Statement } .
//	Statement  = Env | Images | Image | Expose | Param .
//	Env        = "ENV" DefRef [ "AS" Name ] [ "WITH" Assign { "," Assign } ] .
//	Param      = "PARAM" Name [ "=" ( Word | String ) ] .
//	Assign     = Name "=" ( Word | String ) .
//	Images     = "IMAGES" ImageRef { [","] ImageRef } .
//	Image      = "IMAGE" ImageRef { Clause } .
//	Clause     = "AS" Name | "LINK" Target { "," Target } | "PORT" Port { "," Port }
//	           | "VOLUME" Volume | "SET" Key "=" ( Word | String )
//	           | "CMD" ( String | "[" String { "," String } "]" )
//	           | "READY" ( String | "[" String { "," String } "]" ) [ "WITHIN" Duration ] .
//	Expose     = "EXPOSE" Target { "," Target } .
//
// Keywords are exactly the uppercase words ENV IMAGE IMAGES EXPOSE AS LINK
// PORT VOLUME SET CMD PARAM WITH READY WITHIN; newlines are white space; '#' starts a comment.
package grammar

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"

	"github.com/alebellu/denv/diag"
)

// MaxFileSize is the largest definition file accepted, in bytes.
const MaxFileSize = 1 << 20

// Pos is the position of a node: participle fills it in.
type Pos = lexer.Position

// File is one parsed definition file.
type File struct {
	Pos        Pos
	Statements []*Statement `parser:"@@*"`
}

// Statement is one top-level statement; exactly one field is set.
type Statement struct {
	Pos    Pos
	Env    *Env    `parser:"@@"`
	Images *Images `parser:"| @@"`
	Image  *Image  `parser:"| @@"`
	Expose *Expose `parser:"| @@"`
	Param  *Param  `parser:"| @@"`
}

// Word is a bare word (a name, reference, port or volume) with its position.
type Word struct {
	Pos   Pos
	Value string `parser:"@Word"`
}

// Env includes another environment definition.
type Env struct {
	Pos Pos
	Ref *Word `parser:"'ENV' @@"`
	As  *Word `parser:"( 'AS' @@ )?"`
	// With holds the parameter values the includer passes (section 7),
	// flat: name, value, name, value... (strings unquoted). Flat because a
	// node per assignment cost participle a reflective allocation on
	// every include; WithPos finds where each is written.
	With []string `parser:"( 'WITH' @Word '=' @( Word | String | Keyword ) ( ',' @Word '=' @( Word | String | Keyword ) )* )?"`
}

// Images declares several services with no clauses.
type Images struct {
	Pos  Pos
	Refs []*Word `parser:"'IMAGES' @@ ( ','? @@ )*"`
}

// Image declares one service.
type Image struct {
	Pos     Pos
	Ref     *Word     `parser:"'IMAGE' @@"`
	Clauses []*Clause `parser:"@@*"`
}

// Clause qualifies an Image; exactly one field is set.
type Clause struct {
	Pos    Pos
	As     *Word   `parser:"'AS' @@"`
	Link   []*Word `parser:"| 'LINK' @@ ( ',' @@ )*"`
	Port   []*Word `parser:"| 'PORT' @@ ( ',' @@ )*"`
	Volume *Word   `parser:"| 'VOLUME' @@"`
	Set    *Set    `parser:"| 'SET' @@"`
	Cmd    *Cmd    `parser:"| 'CMD' @@"`
	Ready  *Ready  `parser:"| 'READY' @@"`
}

// Param declares a parameter of the definition; Default is nil for a
// required one. Pos is the PARAM keyword's; the name is token 1 and the
// default token 3 (TokensAt). The nodes of parameters are flat, without a
// node per word: every node costs participle a reflective allocation, and
// a parameter passed on every include must stay cheap.
type Param struct {
	Pos     Pos
	Name    string  `parser:"'PARAM' @Word"`
	Default *string `parser:"( '=' @( Word | String | Keyword ) )?"`
}

// WithPos returns where assignment i (from 0) of e's WITH is written in
// src, the file e was parsed from: its name's token and its value's. Only
// diagnostics need it.
func (e *Env) WithPos(src []byte, i int) (name, value lexer.Token) {
	// ENV ref [AS n] WITH: at most 5 tokens before the first name
	toks := TokensAt(src, e.Pos, 5+4*(i+1))
	for j, t := range toks {
		if t.Type == tokKeyword && t.Value == "WITH" {
			k := j + 1 + 4*i
			if k+2 < len(toks) {
				return toks[k], toks[k+2]
			}
			break
		}
	}
	return lexer.Token{Pos: e.Pos}, lexer.Token{Pos: e.Pos}
}

// Set is an environment variable of a service. Keys may be keywords
// (SET PORT=80), so they are matched as any word.
type Set struct {
	Pos   Pos
	Key   string `parser:"@( Word | Keyword ) '='"`
	Value string `parser:"@( Word | String | Keyword )"`
}

// Cmd is a service's command: Shell for the string form (split into words
// like a shell would, without running one), Exec for the list form.
type Cmd struct {
	Pos   Pos
	Shell *string  `parser:"@String"`
	Exec  []string `parser:"| '[' @String ( ',' @String )* ']'"`
}

// Ready is a service's readiness check: a command in CMD's two forms and
// an optional WITHIN limit, a bare word such as 30s or 2m that resolve
// validates (so that a bad duration is reported at its position).
type Ready struct {
	Pos     Pos
	Command *Cmd      `parser:"@@"`
	Within  *Duration `parser:"( 'WITHIN' @@ )?"`
}

// Duration is the word after WITHIN; its own type so that a missing one is
// reported as a duration, not a name.
type Duration struct {
	Pos   Pos
	Value string `parser:"@Word"`
}

// Expose names the environment's interface.
type Expose struct {
	Pos     Pos
	Targets []*Word `parser:"'EXPOSE' @@ ( ',' @@ )*"`
}

// IsKeyword reports whether w is a reserved word. A Word token with such a
// value is re-typed as Keyword so that it cannot be taken for a name.
func IsKeyword(w string) bool {
	switch w {
	case "ENV", "IMAGE", "IMAGES", "EXPOSE", "AS", "LINK", "PORT", "VOLUME", "SET", "CMD", "PARAM", "WITH",
		"READY", "WITHIN":
		return true
	}
	return false
}

// Parser parses definition files. It is safe for concurrent use.
type Parser struct {
	p *participle.Parser[File]
}

// NewParser builds the parser.
func NewParser() *Parser {
	return &Parser{p: participle.MustBuild[File](
		participle.Lexer(lexDef{}),
		participle.Unquote("String"),
	)}
}

// Parse parses one file. name is the path shown in diagnostics. A syntax
// error is returned as a *diag.Diagnostic; Parse never panics on any input.
func (p *Parser) Parse(name string, src []byte) (*File, error) {
	if len(src) > MaxFileSize {
		return nil, diag.Errorf(diag.Pos{File: name}, "file is %d bytes, larger than the %d byte limit", len(src), MaxFileSize)
	}
	if !utf8.Valid(src) {
		return nil, diag.Errorf(invalidUTF8(name, src), "invalid UTF-8")
	}
	f, err := p.p.ParseBytes(name, src)
	if err != nil {
		if pe, ok := err.(participle.Error); ok {
			pos := Position(pe.Position())
			return nil, &diag.Diagnostic{Pos: pos, Msg: message(pe, src, pos.Offset), Err: err}
		}
		return nil, diag.Wrap(diag.Pos{File: name}, fmt.Errorf("parse: %w", err))
	}
	return f, nil
}

// message rewrites participle's messages, which speak of grammar rules,
// in the language's own words.
func message(pe participle.Error, src []byte, off int) string {
	if ut, ok := pe.(*participle.UnexpectedTokenError); ok {
		found := fmt.Sprintf("%q", ut.Unexpected.Value)
		switch {
		case ut.Unexpected.EOF():
			found = "end of file"
		case IsKeyword(ut.Unexpected.Value):
			found = "keyword " + ut.Unexpected.Value
		}
		expect := ut.Message()
		if i := strings.Index(expect, "(expected "); i >= 0 {
			expect = expect[i+len("(expected "):]
		}
		want := "a statement (ENV, IMAGE, IMAGES, EXPOSE or PARAM)"
		switch {
		case strings.HasPrefix(expect, "Word"):
			want = "a name"
		case strings.HasPrefix(expect, "Set"):
			want = "KEY=VALUE after SET"
		case strings.HasPrefix(expect, "(<word> | <string>"):
			want = "a value (a word or a quoted string)"
		case strings.HasPrefix(expect, "Duration"):
			want = "a duration after WITHIN (30s, 2m)"
		case strings.HasPrefix(expect, "Cmd"), strings.HasPrefix(expect, "Ready"), strings.HasPrefix(expect, "String"),
			strings.HasPrefix(expect, `parser:"'['"`), strings.HasPrefix(expect, "<string>"):
			want = "a quoted string or [list of strings]"
		case strings.HasPrefix(expect, `parser:"'='"`):
			want = "'=' (KEY=VALUE)"
		case strings.HasPrefix(expect, `parser:"']'"`), strings.HasPrefix(expect, `parser:"','"`), strings.HasPrefix(expect, `"]"`):
			want = "',' or ']'"
		}
		if strings.HasPrefix(want, "a statement") {
			// an optional clause (WITH ...) that failed part-way is
			// backtracked by participle: say what its last word wants
			switch prevWord(src, off) {
			case "PARAM", "WITH", ",":
				want = "a name"
			}
		}
		return "unexpected " + found + ", expected " + want
	}
	msg := pe.Message()
	if strings.Contains(msg, "invalid input text") && off >= 0 && off < len(src) {
		if src[off] == '"' {
			return "unterminated string (strings end on the same line)"
		}
		r, _ := utf8.DecodeRune(src[off:])
		return fmt.Sprintf("unexpected character %q", r)
	}
	return msg
}

// TextPos is where the text of token t starts: one column after the
// opening quote of a string, so that an offset into the unquoted text
// points into the file (exactly, when no escape comes before it).
func TextPos(t lexer.Token) diag.Pos {
	pos := Position(t.Pos)
	if t.Type == tokString {
		pos.Col++
		pos.Offset++
	}
	return pos
}

// IsString reports whether t is a quoted string token.
func IsString(t lexer.Token) bool { return t.Type == tokString }

// TokensAt lexes up to n tokens of src, the file a node was parsed from,
// starting at the node's position pos. It finds where a token inside a
// node is (the value of a SET, the k-th string of a CMD) for the rare
// diagnostic that needs it, so that the AST need not carry every token.
func TokensAt(src []byte, pos Pos, n int) []lexer.Token {
	if pos.Offset < 0 || pos.Offset > len(src) {
		return nil
	}
	l := &lex{src: src, pos: pos}
	var out []lexer.Token
	for len(out) < n {
		t, err := l.Next()
		if err != nil || t.EOF() {
			break
		}
		out = append(out, t)
	}
	return out
}

// prevWord is the word (or the ',') just before offset off of src.
func prevWord(src []byte, off int) string {
	if off > len(src) {
		off = len(src)
	}
	end := off
	for end > 0 && isSpace(src[end-1]) {
		end--
	}
	if end > 0 && src[end-1] == ',' {
		return ","
	}
	start := end
	for start > 0 && isWordByte(src[start-1]) {
		start--
	}
	return string(src[start:end])
}

// Position converts a participle position to a diagnostic position.
func Position(p Pos) diag.Pos {
	return diag.Pos{File: p.Filename, Line: p.Line, Col: p.Column, Offset: p.Offset}
}

// invalidUTF8 finds the position of the first byte that is not UTF-8.
func invalidUTF8(name string, src []byte) diag.Pos {
	pos := diag.Pos{File: name, Line: 1, Col: 1}
	for i := 0; i < len(src); {
		r, size := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && size <= 1 {
			pos.Offset = i
			return pos
		}
		if r == '\n' {
			pos.Line++
			pos.Col = 1
		} else {
			pos.Col += size
		}
		i += size
	}
	return pos
}

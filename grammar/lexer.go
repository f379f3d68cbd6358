package grammar

import (
	"io"

	"github.com/alecthomas/participle/v2/lexer"
)

// Token types. The lexer is hand-written: participle's regexp lexer took a
// third of the time of resolving a large graph. Comments and white space
// are dropped here, so the parser never sees them.
const (
	tokEOF     = lexer.EOF
	tokWord    = lexer.TokenType(-2 - iota)
	tokKeyword // a Word whose value is a keyword
	tokString  // a double-quoted string, quotes included
	tokPunct   // one of , = [ ]
)

// lexDef is the lexer's definition for participle.
type lexDef struct{}

// Symbols names the token types for the grammar's tags.
func (lexDef) Symbols() map[string]lexer.TokenType {
	return map[string]lexer.TokenType{
		"EOF": tokEOF, "Word": tokWord, "Keyword": tokKeyword, "String": tokString, "Punct": tokPunct,
	}
}

// Lex reads all of r and lexes it.
func (d lexDef) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return d.LexBytes(filename, b)
}

// LexBytes lexes src.
func (lexDef) LexBytes(filename string, src []byte) (lexer.Lexer, error) {
	return &lex{src: src, pos: lexer.Position{Filename: filename, Line: 1, Column: 1}}, nil
}

type lex struct {
	src []byte
	pos lexer.Position
}

// advance moves past n bytes, counting lines and columns.
func (l *lex) advance(n int) {
	for _, c := range l.src[l.pos.Offset : l.pos.Offset+n] {
		if c == '\n' {
			l.pos.Line++
			l.pos.Column = 1
		} else {
			l.pos.Column++
		}
	}
	l.pos.Offset += n
}

// isSpace matches the regexp class \s.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordByte(c byte) bool {
	return !isSpace(c) && c != ',' && c != '=' && c != '[' && c != ']' && c != '"' && c != '#'
}

// Next returns the next token.
func (l *lex) Next() (lexer.Token, error) {
	src := l.src
	for l.pos.Offset < len(src) {
		c := src[l.pos.Offset]
		switch {
		case isSpace(c):
			l.advance(1)
			continue
		case c == '#':
			n := 0
			for l.pos.Offset+n < len(src) && src[l.pos.Offset+n] != '\n' {
				n++
			}
			l.advance(n)
			continue
		}
		start := l.pos
		var typ lexer.TokenType
		n := 1
		switch {
		case c == ',' || c == '=' || c == '[' || c == ']':
			typ = tokPunct
		case c == '"':
			typ = tokString
			for ; ; n++ {
				if l.pos.Offset+n >= len(src) || src[l.pos.Offset+n] == '\n' {
					return lexer.Token{}, &lexer.Error{Msg: "invalid input text", Pos: start}
				}
				if src[l.pos.Offset+n] == '\\' {
					n++
					continue
				}
				if src[l.pos.Offset+n] == '"' {
					n++
					break
				}
			}
		default:
			typ = tokWord
			for l.pos.Offset+n < len(src) && isWordByte(src[l.pos.Offset+n]) {
				n++
			}
		}
		value := string(src[l.pos.Offset : l.pos.Offset+n])
		if typ == tokWord && IsKeyword(value) {
			typ = tokKeyword
		}
		l.advance(n)
		return lexer.Token{Type: typ, Value: value, Pos: start}, nil
	}
	return lexer.Token{Type: tokEOF, Pos: l.pos}, nil
}

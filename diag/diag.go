// Package diag is denv's one diagnostic type: a message tied to a position
// in a definition file, printed as "file:line:col: message".
//
// Positions follow one convention everywhere: lines and columns count from
// 1 (columns in bytes), byte offsets from 0. A zero Line means "the whole
// file" and prints as "file: message".
package diag

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Pos is a position in a definition file.
type Pos struct {
	File   string // path as shown to the user (relative to the working directory where possible)
	Line   int    // 1-based; 0 when unknown
	Col    int    // 1-based byte column; 0 when unknown
	Offset int    // 0-based byte offset
}

// String formats p as "file:line:col", "file:line" or "file".
func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	default:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	}
}

// Short formats p as "file:line", the form used in cycles and labels.
func (p Pos) Short() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Diagnostic is one error found in a definition.
type Diagnostic struct {
	Pos Pos
	Msg string
	Err error // the underlying cause, if any
}

// Error implements error in the one-line "file:line:col: message" form.
func (d *Diagnostic) Error() string {
	if d.Pos.File == "" {
		return d.Msg
	}
	return d.Pos.String() + ": " + d.Msg
}

// Unwrap returns the underlying cause.
func (d *Diagnostic) Unwrap() error { return d.Err }

// Errorf makes a diagnostic at pos.
func Errorf(pos Pos, format string, args ...any) *Diagnostic {
	return &Diagnostic{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// Wrap makes a diagnostic at pos whose message is err's, keeping err for
// errors.Is and errors.As.
func Wrap(pos Pos, err error) *Diagnostic {
	return &Diagnostic{Pos: pos, Msg: err.Error(), Err: err}
}

// List is every diagnostic of a run. A non-empty List is an error whose
// text is one diagnostic per line, sorted by position.
type List []*Diagnostic

// Error prints one diagnostic per line.
func (l List) Error() string {
	var b strings.Builder
	for i, d := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
	}
	return b.String()
}

// Unwrap gives errors.Is and errors.As access to every diagnostic.
func (l List) Unwrap() []error {
	errs := make([]error, len(l))
	for i, d := range l {
		errs[i] = d
	}
	return errs
}

// Err returns the sorted, de-duplicated list as an error, or nil when empty.
func (l List) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l.Sorted()
}

// Sorted returns the diagnostics ordered by file, line, column and message,
// with exact duplicates removed.
func (l List) Sorted() List {
	out := slices.Clone(l)
	slices.SortStableFunc(out, func(a, b *Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
	return slices.CompactFunc(out, func(a, b *Diagnostic) bool {
		return a.Pos == b.Pos && a.Msg == b.Msg
	})
}

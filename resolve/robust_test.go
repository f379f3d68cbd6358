package resolve_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alebellu/denv/grammar"
)

// bigSet is a file set of any number of files, served from memory.
func bigSet(t *testing.T, files map[string]string) *fileSet {
	set := newFileSet(t)
	for name, body := range files {
		set.files[filepath.Join(set.dir, filepath.FromSlash(name))] = []byte(body)
	}
	return set
}

// TestIncludeCycleThrough10000Files: a definition that includes itself
// through 10,000 files is one include-cycle error of bounded length (the
// cycle's middle is elided), not a stack overflow or a 400 KB line.
func TestIncludeCycleThrough10000Files(t *testing.T) {
	const n = 10000
	files := map[string]string{"root.denv": "ENV e1\nIMAGE ex/root\n"}
	for i := 1; i < n; i++ {
		next := fmt.Sprintf("e%d", i+1)
		if i == n-1 {
			next = "root"
		}
		files[fmt.Sprintf("e%d.denv", i)] = fmt.Sprintf("ENV %s\nIMAGE ex/a%d\n", next, i)
	}
	err := resolveAndCompile(t, bigSet(t, files))
	if err == nil {
		t.Fatal("a 10,000-file include cycle resolved")
	}
	msg := err.Error()
	if !strings.Contains(msg, "include cycle: root.denv:1 ENV e1 -> e1.denv:1 ENV e2") ||
		!strings.Contains(msg, "... 9992 more includes ...") ||
		!strings.HasSuffix(msg, "e9999.denv:1 ENV root -> root.denv") {
		t.Errorf("cycle error = %.300q", msg)
	}
	if len(msg) > 1000 || strings.Contains(msg, "\n") {
		t.Errorf("cycle error is %d bytes over %d lines", len(msg), strings.Count(msg, "\n")+1)
	}
}

// TestDeepIncludeChain: 10,000 nested includes resolve and compile (the
// resolver recurses once per level; Go's growable stacks bear it).
func TestDeepIncludeChain(t *testing.T) {
	const n = 10000
	files := map[string]string{"root.denv": "ENV e1\nIMAGE ex/root LINK e1\n"}
	for i := 1; i < n; i++ {
		inc := ""
		if i < n-1 {
			inc = fmt.Sprintf("ENV e%d\n", i+1)
		}
		files[fmt.Sprintf("e%d.denv", i)] = fmt.Sprintf("%sIMAGE ex/a%d\nEXPOSE ex/a%d\n", inc, i, i)
	}
	if err := resolveAndCompile(t, bigSet(t, files)); err != nil {
		t.Fatalf("10,000 nested includes: %.300v", err)
	}
}

// TestOneMiBLine: a definition that is one 1 MiB line (a single enormous
// word, and a line of many services) is parsed or refused with one line.
func TestOneMiBLine(t *testing.T) {
	word := "IMAGE ex/" + strings.Repeat("a", grammar.MaxFileSize-9)
	err := resolveAndCompile(t, bigSet(t, map[string]string{"root.denv": word}))
	if err == nil {
		t.Fatal("a 1 MiB image name compiled")
	}
	if len(err.Error()) > 4096 {
		t.Errorf("error for a 1 MiB line is %d bytes long", len(err.Error()))
	}
	over := word + "aa"
	err = resolveAndCompile(t, bigSet(t, map[string]string{"root.denv": over}))
	if err == nil || !strings.Contains(err.Error(), "larger than the 1048576 byte limit") {
		t.Errorf("file over the limit: %.200v", err)
	}
	var b strings.Builder
	for i := 0; b.Len() < grammar.MaxFileSize-40; i++ {
		fmt.Fprintf(&b, "IMAGE ex/s AS s%d ", i)
	}
	if err := resolveAndCompile(t, bigSet(t, map[string]string{"root.denv": b.String()})); err != nil {
		t.Errorf("1 MiB line of services: %.300v", err)
	}
}

// TestNamesAtLengthLimits: a definition name of exactly 255 characters is
// found, one of 256 is a one-line error; long service names compile.
func TestNamesAtLengthLimits(t *testing.T) {
	name255 := strings.Repeat("n", 250) + "/" + "abcd"
	name256 := name255 + "e"
	svc := strings.Repeat("s", 200)
	set := bigSet(t, map[string]string{
		"root.denv":       "ENV " + name255 + "\nIMAGE ex/r AS " + svc + " LINK abcd\n",
		name255 + ".denv": "IMAGE ex/x\nEXPOSE ex/x\n",
	})
	if err := resolveAndCompile(t, set); err != nil {
		t.Errorf("255-character name: %v", err)
	}
	set = bigSet(t, map[string]string{"root.denv": "ENV " + name256 + "\n"})
	err := resolveAndCompile(t, set)
	if err == nil || !strings.Contains(err.Error(), "longer than 255 characters") {
		t.Errorf("256-character name: %v", err)
	}
}

// TestNonUTF8: invalid UTF-8 anywhere in an included file is an error at
// its own position in that file, not a panic or garbled output.
func TestNonUTF8(t *testing.T) {
	for _, body := range []string{"\xff", "IMAGE ex/\xc3\x28", "ENV a\xfe", "IMAGE x SET K=\"\xed\xa0\x80\"", "\x00\x00"} {
		set := bigSet(t, map[string]string{"root.denv": "ENV a\nIMAGE ex/r LINK a\n", "a.denv": body})
		err := resolveAndCompile(t, set)
		if err == nil || !strings.HasPrefix(err.Error(), "a.denv:1:") || strings.Contains(err.Error(), "root.denv") {
			t.Errorf("%q: %v", body, err)
		}
	}
}

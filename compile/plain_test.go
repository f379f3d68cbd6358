package compile

import (
	"regexp"
	"strings"
	"testing"
)

// TestPlainMatchesItsRegexp checks the hand-written plain against the
// regexp it replaced, on every string of up to 3 bytes over an alphabet
// with each class of byte, and on longer samples.
func TestPlainMatchesItsRegexp(t *testing.T) {
	re := regexp.MustCompile(`^[A-Za-z_./][A-Za-z0-9_./@+-]*$`)
	alphabet := []string{"a", "Z", "0", "9", "_", ".", "/", "@", "+", "-", " ", ":", "$", "é", "\x00", "#"}
	var all []string
	var grow func(prefix string, n int)
	grow = func(prefix string, n int) {
		all = append(all, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			grow(prefix+c, n-1)
		}
	}
	grow("", 3)
	all = append(all, "ex/web-env", "api0", "e12-api12", "8080", "-x", "@x", "web.env", strings.Repeat("a", 300), "a b")
	for _, s := range all {
		if got, want := plain(s), re.MatchString(s); got != want {
			t.Errorf("plain(%q) = %v, the regexp says %v", s, got, want)
		}
	}
}

func TestReserved(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "No", "y", "N", "null", "NULL", "off", ".inf", ".NaN"} {
		if !reserved(s) {
			t.Errorf("reserved(%q) = false", s)
		}
	}
	for _, s := range []string{"truth", "yess", "web", "", "nul", "offf"} {
		if reserved(s) {
			t.Errorf("reserved(%q) = true", s)
		}
	}
}

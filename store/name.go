package store

import (
	"fmt"
	"strings"
)

// MaxNameLen is the longest definition name accepted, in bytes.
const MaxNameLen = 128

const nameRule = `names are "/"-separated segments [a-z0-9][a-z0-9._-]*, at most 128 characters in all, without ".."`

// ValidName reports whether name can name a stored definition: segments
// separated by "/", each matching [a-z0-9][a-z0-9._-]*, at most 128
// characters in all, with no ".." anywhere and no leading or trailing "/".
// Examples: worker-env, ex/web-env.
func ValidName(name string) error {
	fail := func(why string) error {
		return fmt.Errorf("invalid definition name %q: %s; %s", name, why, nameRule)
	}
	switch {
	case name == "":
		return fail("it is empty")
	case len(name) > MaxNameLen:
		return fail(fmt.Sprintf("it is %d characters long", len(name)))
	case strings.HasPrefix(name, "/"):
		return fail(`it starts with "/"`)
	case strings.HasSuffix(name, "/"):
		return fail(`it ends with "/"`)
	case strings.Contains(name, ".."):
		return fail(`it contains ".."`)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" {
			return fail("it has an empty segment")
		}
		for i, c := range seg {
			lowerOrDigit := ('a' <= c && c <= 'z') || ('0' <= c && c <= '9')
			if lowerOrDigit || (i > 0 && (c == '.' || c == '_' || c == '-')) {
				continue
			}
			if i == 0 {
				return fail(fmt.Sprintf("segment %q must start with a lowercase letter or digit", seg))
			}
			return fail(fmt.Sprintf("segment %q contains %q", seg, c))
		}
	}
	return nil
}

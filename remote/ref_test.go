package remote

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
		str  string
	}{
		{"github:alebellu:ex:ex/expert-system-env",
			Ref{"alebellu", "ex", "HEAD", "ex/expert-system-env"},
			"github:alebellu:ex@HEAD:ex/expert-system-env"},
		{"github:alebellu:ex@HEAD:ex/expert-system-env",
			Ref{"alebellu", "ex", "HEAD", "ex/expert-system-env"},
			"github:alebellu:ex@HEAD:ex/expert-system-env"},
		{"github:Some-Org:my.repo_x@v1.2.3:web",
			Ref{"Some-Org", "my.repo_x", "v1.2.3", "web"},
			"github:Some-Org:my.repo_x@v1.2.3:web"},
		{"github:o:r@feature/new-db:envs/a b",
			Ref{"o", "r", "feature/new-db", "envs/a b"},
			"github:o:r@feature/new-db:envs/a b"},
		{"github:o:r@0123456789abcdef0123456789abcdef01234567:x",
			Ref{"o", "r", "0123456789abcdef0123456789abcdef01234567", "x"},
			"github:o:r@0123456789abcdef0123456789abcdef01234567:x"},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseRef(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
		again, err := ParseRef(got.String())
		if err != nil || again != got {
			t.Errorf("ParseRef(String()) of %q = %+v, %v; want a round trip", tt.in, again, err)
		}
	}
}

func TestParseRefErrors(t *testing.T) {
	tests := []struct{ in, wantErr string }{
		{"gitlab:o:r:p", `must start with "github:"`},
		{"github:o:r", "want github:OWNER:REPO[@REF]:PATH"},
		{"github:o:r:../secrets", "escapes the repository"},
		{"github:o:r:a/../../b", "escapes the repository"},
		{"github:o:r:..", "escapes the repository"},
		{"github:o:r:/etc/passwd", "is absolute"},
		{"github:o:r:", "empty PATH"},
		{`github:o:r:a\b`, "backslash"},
		{`github:o:r:a//b`, `empty or "." component`},
		{`github:o:r:a/./b`, `empty or "." component`},
		{`github:o:r:a/`, `empty or "." component`},
		{"github:o:r:web.denv", "leave out the .denv extension"},
		{"github:o:r:a\nb", "control character"},
		{"github::r:p", "empty OWNER"},
		{"github:o/x:r:p", "owner \"o/x\""},
		{"github:-o:r:p", "owner \"-o\""},
		{"github:" + strings.Repeat("a", 40) + ":r:p", "longer than 39"},
		{"github:o::p", "empty REPO"},
		{"github:o:..:p", "not a repository name"},
		{"github:o:r/x:p", "repository \"r/x\""},
		{"github:o:r@:p", "empty REF"},
		{"github:o:r@a..b:p", `contains ".."`},
		{"github:o:r@-x:p", `starts with "-"`},
		{"github:o:r@a b:p", "does not allow"},
		{"github:o:r@/a:p", "empty"},
		{"github:o:r@a.lock:p", ".lock"},
		{"github:o:r@x/.hidden:p", `starting with "."`},
	}
	for _, tt := range tests {
		_, err := ParseRef(tt.in)
		if err == nil {
			t.Errorf("ParseRef(%q) succeeded, want an error containing %q", tt.in, tt.wantErr)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseRef(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseRef(%q) error spans lines: %q", tt.in, err)
		}
	}
}

func TestJoin(t *testing.T) {
	base := Ref{"alebellu", "ex", "v2", "ex/expert-system-env"}
	got, err := base.Join("ex/web-env")
	if err != nil {
		t.Fatal(err)
	}
	want := Ref{"alebellu", "ex", "v2", "ex/web-env"}
	if got != want {
		t.Errorf("Join = %+v, want %+v", got, want)
	}
	for _, rel := range []string{"../other", "ex/../../x", "/abs", "", `ex\web`} {
		if j, err := base.Join(rel); err == nil {
			t.Errorf("Join(%q) = %+v, want an error", rel, j)
		}
	}
}

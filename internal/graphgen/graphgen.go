// Package graphgen writes the generated environment graphs that compile's
// benchmarks and `make bench` measure, so that both measure the same input.
package graphgen

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Write writes n environment definitions of five services each into dir:
// env i includes envs 2i+1..2i+3 (so neighbours share includes: diamonds)
// and the shared definition, links its services to each other, to the
// shared one and to its first include, and exposes one service. It returns
// the root file. (A LINK to every include would make the start order
// graph's paths grow exponentially, and compose's loader walks them.)
func Write(dir string, n int) (string, error) { return write(dir, n, false) }

// WriteParams writes the graph of Write with a parameter passed on every
// include: each definition declares PARAM mode = "bench", passes
// WITH mode=${mode} to each ENV and uses ${mode} where Write writes
// "bench", on the lines Write uses (newlines are white space). It compiles to the same services as Write's graph (plus one
// label each), so the two measure what parameters cost.
func WriteParams(dir string, n int) (string, error) { return write(dir, n, true) }

func write(dir string, n int, params bool) (string, error) {
	decl, with, mode := "", "", "bench"
	if params {
		decl, with, mode = "PARAM mode = \"bench\" ", " WITH mode=${mode}", "${mode}"
	}
	write := func(name, body string) error {
		return os.WriteFile(filepath.Join(dir, name+".denv"), []byte(body), 0o644)
	}
	if err := write("shared", decl+"IMAGE ex/shared PORT 5000 VOLUME /data\nEXPOSE shared\n"); err != nil {
		return "", err
	}
	for i := range n {
		var b strings.Builder
		b.WriteString(decl)
		b.WriteString("ENV shared" + with + "\n")
		var incs []string
		for j := 2*i + 1; j <= 2*i+3 && j < n; j++ {
			fmt.Fprintf(&b, "ENV e%d%s\n", j, with)
			incs = append(incs, fmt.Sprintf("e%d", j))
		}
		fmt.Fprintf(&b, "IMAGE ex/api AS api%d PORT 8080 LINK db, shared", i)
		if len(incs) > 0 {
			b.WriteString(", " + incs[0])
		}
		b.WriteString("\n  SET MODE=" + mode + " CMD [\"api\", \"--port\", \"8080\"]\n")
		b.WriteString("IMAGE ex/db VOLUME data:/var/lib/db\n")
		b.WriteString("IMAGE ex/cache LINK db\n")
		b.WriteString("IMAGE ex/queue PORT 5672\n")
		fmt.Fprintf(&b, "IMAGE ex/worker LINK queue, api%d\n", i)
		fmt.Fprintf(&b, "EXPOSE api%d\n", i)
		if err := write(fmt.Sprintf("e%d", i), b.String()); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "e0.denv"), nil
}

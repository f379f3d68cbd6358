package store

import (
	"fmt"
	"testing"
)

// fill adds n definitions, in one batch, shaped like real ones: a
// namespace, an absolute origin, a few includes.
func fill(b *testing.B, s *Store, n int) {
	b.Helper()
	defs := make([]Definition, n)
	for i := range defs {
		name := fmt.Sprintf("team-%02d/service-%04d-env", i%50, i)
		d := Definition{
			Name:    name,
			Content: fmt.Appendf(nil, "env service-%04d-env {\n  service web { image nginx:1.%d }\n}\n", i, i),
			Origin:  "/home/someone/projects/" + name + ".denv",
			Images:  i % 7,
		}
		if i > 0 {
			d.Includes = []string{defs[i-1].Name}
		}
		defs[i] = d
	}
	if err := s.Add(defs, nil); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkList1000(b *testing.B) {
	s := openTemp(b)
	fill(b, s, 1000)
	for b.Loop() {
		defs, err := s.List()
		if err != nil {
			b.Fatal(err)
		}
		if len(defs) != 1000 {
			b.Fatalf("List returned %d definitions", len(defs))
		}
	}
}

func BenchmarkGet1000(b *testing.B) {
	s := openTemp(b)
	fill(b, s, 1000)
	for b.Loop() {
		if _, err := s.Get("team-17/service-0517-env"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAddInto1000(b *testing.B) {
	s := openTemp(b)
	fill(b, s, 1000)
	d := []Definition{{Name: "extra", Content: []byte("env extra {}\n"), Origin: "stdin"}}
	for b.Loop() {
		if err := s.Add(d, nil); err != nil {
			b.Fatal(err)
		}
	}
}

package copier

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandWaitsForGo: with --wait, an end of input before "go" (the
// caller went away) fails without touching the destination.
func TestCommandWaitsForGo(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "new"), []byte("new"), 0o644))
	must(t, os.WriteFile(filepath.Join(dst, "old"), []byte("old"), 0o644))
	var out bytes.Buffer
	err := Command([]string{WaitFlag, src, dst}, strings.NewReader("stop\n"), &out)
	if err == nil || !strings.Contains(err.Error(), "copy not started") {
		t.Fatalf("Command without go-ahead: err = %v, want copy not started", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "old")); err != nil {
		t.Errorf("destination changed before the go-ahead: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "new")); err == nil {
		t.Errorf("copied before the go-ahead")
	}
	if out.Len() > 0 {
		t.Errorf("progress before the go-ahead: %q", out.String())
	}
}

// TestCommandCopiesPairs copies two trees into destinations that already
// hold files (one in a read-only directory), which must be gone, and checks
// the progress events of each tree.
func TestCommandCopiesPairs(t *testing.T) {
	src1, dst1, src2, dst2 := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(src1, "a"), []byte("12345"), 0o600))
	must(t, os.MkdirAll(filepath.Join(src2, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(src2, "d/b"), []byte("xyz"), 0o644))
	// what the engine may have put in a new volume from the image
	must(t, os.MkdirAll(filepath.Join(dst1, "image/ro"), 0o755))
	must(t, os.WriteFile(filepath.Join(dst1, "image/ro/stale"), []byte("stale"), 0o644))
	if os.Geteuid() == 0 { // as the copier runs: root empties read-only directories too
		must(t, os.Chmod(filepath.Join(dst1, "image/ro"), 0o500))
	}
	must(t, os.WriteFile(filepath.Join(dst2, "a"), []byte("not from src2"), 0o644))

	var out bytes.Buffer
	must(t, Command([]string{WaitFlag, src1, dst1, src2, dst2}, strings.NewReader("go\n"), &out))
	for _, pair := range [][2]string{{src1, dst1}, {src2, dst2}} {
		var want, got bytes.Buffer
		must(t, Checksum(pair[0], &want))
		must(t, Checksum(pair[1], &got))
		// the roots' times differ: the listing of "." is compared too
		if want.String() != got.String() {
			t.Errorf("%s: listings differ:\nsource:\n%s\ncopy:\n%s", pair[1], want.String(), got.String())
		}
	}

	var events []Event
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		ev, ok := ParseEvent(line)
		if !ok {
			t.Fatalf("unparsable progress line %q in:\n%s", line, out.String())
		}
		if ev.Kind != KindCopied { // "copied" lines depend on timing
			events = append(events, ev)
		}
	}
	want := []Event{{KindTotal, 0, 5}, {KindDone, 0, 5}, {KindTotal, 1, 3}, {KindDone, 1, 3}, {Kind: KindFinished}}
	if len(events) != len(want) {
		t.Fatalf("events %+v, want %+v", events, want)
	}
	for i := range want {
		if events[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, events[i], want[i])
		}
	}
}

func TestCommandUsage(t *testing.T) {
	for _, args := range [][]string{nil, {WaitFlag}, {"a"}, {"a", "b", "c"}} {
		if err := Command(args, strings.NewReader("go\n"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "usage") {
			t.Errorf("Command(%q): err = %v, want usage", args, err)
		}
	}
}

func TestParseEventRejects(t *testing.T) {
	for _, line := range []string{"", "total", "total 1", "total x 1", "total 1 -2", "copied -1 3", "bogus 1 2", "finished 1", "total 1 2 3"} {
		if ev, ok := ParseEvent(line); ok {
			t.Errorf("ParseEvent(%q) = %+v, want rejected", line, ev)
		}
	}
}

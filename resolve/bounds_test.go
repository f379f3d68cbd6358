package resolve_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alebellu/denv/resolve"
)

// TestNonRegularIncludes: an include that is a symlink to /dev/zero ended
// in an out-of-memory crash, a FIFO hung for ever, and a 600 MB file was
// read whole before the 1 MiB check. Each is now one line, at once.
func TestNonRegularIncludes(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"zero-app.denv": "ENV zero\n",
		"fifo-app.denv": "ENV fifo\n",
		"big-app.denv":  "ENV big\n",
	})
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.denv")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.denv"), 0o600); err != nil {
		t.Fatal(err)
	}
	big, err := os.Create(filepath.Join(dir, "big.denv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := big.Truncate(600 << 20); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	big.Close()
	for _, c := range []struct{ file, want string }{
		{"zero-app.denv", "is not a regular file (a character device)"},
		{"fifo-app.denv", "is not a regular file (a FIFO)"},
		{"big-app.denv", "is larger than the 1048576 byte limit"},
	} {
		start := time.Now()
		_, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), filepath.Join(dir, c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line with %q", c.file, err, c.want)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s took %v", c.file, d)
		}
	}
}

// genRepos serves an endless generated chain: gen/N includes gen/N+1.
type genRepos struct{ fetches int }

func (g *genRepos) Fetch(_ context.Context, owner, repo, ref, path string) ([]byte, error) {
	g.fetches++
	n, err := strconv.Atoi(strings.TrimPrefix(path, "gen/"))
	if err != nil || !strings.HasPrefix(path, "gen/") {
		return nil, fmt.Errorf("not found: %s: %w", path, fs.ErrNotExist)
	}
	return []byte(fmt.Sprintf("ENV github:o:r:gen/%d AS e%d\nIMAGE ex/s%d\n", n+1, n+1, n)), nil
}

// TestRemoteChainBounded: a chain served for ever stops at
// MaxRemoteDepth with one error.
func TestRemoteChainBounded(t *testing.T) {
	g := &genRepos{}
	_, err := resolve.New(resolve.Options{Fetcher: g}).Resolve(context.Background(), "github:o:r:gen/0")
	if err == nil || !strings.Contains(err.Error(), "remote includes nest deeper than 64") {
		t.Fatalf("err = %v, want the depth bound", err)
	}
	if g.fetches > resolve.MaxRemoteDepth+2 {
		t.Errorf("%d fetches for a depth bound of %d", g.fetches, resolve.MaxRemoteDepth)
	}
}

// TestRemoteFanOutBounded: a remote definition including more than
// MaxRemoteFiles files stops with one error per file beyond the bound.
func TestRemoteFanOutBounded(t *testing.T) {
	repos := &memRepos{files: map[string]string{}}
	var root strings.Builder
	for i := range resolve.MaxRemoteFiles + 1 {
		fmt.Fprintf(&root, "ENV github:o:r:f/%d AS f%d\n", i, i)
		repos.files[fmt.Sprintf("o/r/HEAD/f/%d", i)] = fmt.Sprintf("IMAGE ex/s%d\n", i)
	}
	repos.files["o/r/HEAD/root"] = root.String()
	_, err := resolve.New(resolve.Options{Fetcher: repos}).Resolve(context.Background(), "github:o:r:root")
	if err == nil || !strings.Contains(err.Error(), "more than 1000 remote files") {
		t.Fatalf("err = %v, want the file bound", err)
	}
	if len(repos.fetched) > resolve.MaxRemoteFiles {
		t.Errorf("%d fetches for a bound of %d files", len(repos.fetched), resolve.MaxRemoteFiles)
	}
}

// TestNameClashWithRootNamesRootFile: an include whose name is the root's
// said "(included at )" with an empty position; it names the root's file.
func TestNameClashWithRootNamesRootFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"app.denv":     "ENV sub/app\nIMAGES ex/x\n",
		"sub/app.denv": "IMAGES ex/y\n",
	})
	_, err := resolve.New(resolve.Options{WorkDir: dir}).Resolve(context.Background(), filepath.Join(dir, "app.denv"))
	if err == nil || strings.Contains(err.Error(), "(included at )") || !strings.Contains(err.Error(), "(included at app.denv)") {
		t.Fatalf("err = %v, want the root's file named", err)
	}
}

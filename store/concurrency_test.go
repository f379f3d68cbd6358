package store

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

const (
	writers         = 8
	addsPerWriter   = 15
	helperEnv       = "DENV_STORE_TEST_HELPER"
	helperStartsEnv = "DENV_STORE_TEST_START"
)

// TestMain turns the test binary into a store writer when re-executed by
// TestConcurrentProcesses: `<test binary>` with DENV_STORE_TEST_HELPER=1 and
// arguments DIR WRITER.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		if err := helperMain(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "store test helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helperMain(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("want DIR WRITER, got %q", args)
	}
	w, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	// Start together with the other helpers, to overlap as much as possible.
	if ns, err := strconv.ParseInt(os.Getenv(helperStartsEnv), 10, 64); err == nil {
		time.Sleep(time.Until(time.Unix(0, ns)))
	}
	return addMany(args[0], w)
}

// addMany adds addsPerWriter definitions named for writer w, one
// transaction each, each including the previous one, with a cached remote
// file every time.
func addMany(dir string, w int) error {
	s, err := Open(dir)
	if err != nil {
		return err
	}
	for i := range addsPerWriter {
		d := Definition{Name: writerDefName(w, i), Content: writerContent(w, i), Origin: "stdin", Images: i}
		if i > 0 {
			d.Includes = []string{writerDefName(w, i-1)}
		}
		r := RemoteFile{Owner: "o", Repo: "r", Ref: "HEAD", Path: writerDefName(w, i), Content: writerContent(w, i)}
		if err := s.Add([]Definition{d}, []RemoteFile{r}); err != nil {
			return err
		}
	}
	return nil
}

func writerDefName(w, i int) string { return fmt.Sprintf("w%d/def-%02d", w, i) }
func writerContent(w, i int) []byte {
	return fmt.Appendf(nil, "env def-%02d { # written by writer %d\n}\n", i, w)
}

// checkAllLanded verifies every definition and remote file of every writer
// is stored intact and nothing else is.
func checkAllLanded(t *testing.T, dir string) {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defs, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(defs) != writers*addsPerWriter {
		t.Errorf("List has %d definitions, want %d", len(defs), writers*addsPerWriter)
	}
	for w := range writers {
		for i := range addsPerWriter {
			name := writerDefName(w, i)
			d, err := s.Get(name)
			if err != nil {
				t.Errorf("Get(%s): %v", name, err)
				continue
			}
			if string(d.Content) != string(writerContent(w, i)) || d.Images != i {
				t.Errorf("Get(%s) = %q images %d", name, d.Content, d.Images)
			}
			data, ok, err := s.CachedRemote("o", "r", "HEAD", name)
			if !ok || err != nil || string(data) != string(writerContent(w, i)) {
				t.Errorf("CachedRemote(%s) = %q, %v, %v", name, data, ok, err)
			}
		}
	}
	if objs := objectFiles(t, s); len(objs) != writers*addsPerWriter {
		t.Errorf("%d object files, want %d", len(objs), writers*addsPerWriter)
	}
	if tmp := tempFiles(t, s); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

// TestConcurrentGoroutines runs the writers in goroutines while a reader
// keeps listing and reading: a reader must never see a half-written index
// or a missing object.
func TestConcurrentGoroutines(t *testing.T) {
	dir := t.TempDir()
	reader, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for w := range writers {
		wg.Go(func() { errs[w] = addMany(dir, w) })
	}
	done := make(chan struct{})
	readErr := make(chan error, 1)
	reads := 0
	go func() {
		defer close(readErr)
		for {
			select {
			case <-done:
				return
			default:
			}
			defs, err := reader.List()
			if err == nil && len(defs) > 0 {
				_, err = reader.Get(defs[len(defs)/2].Name)
			}
			if err != nil {
				readErr <- err
				return
			}
			reads++
		}
	}()
	wg.Wait()
	close(done)
	if err := <-readErr; err != nil {
		t.Errorf("reader during writes: %v", err)
	}
	for w, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}
	t.Logf("%d reads during the writes", reads)
	checkAllLanded(t, dir)
}

func TestConcurrentProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now().Add(300 * time.Millisecond).UnixNano()
	cmds := make([]*exec.Cmd, writers)
	stderr := make([]bytes.Buffer, writers)
	for w := range writers {
		cmd := exec.Command(exe, dir, strconv.Itoa(w))
		cmd.Env = append(os.Environ(), helperEnv+"=1", helperStartsEnv+"="+strconv.FormatInt(start, 10))
		cmd.Stderr = &stderr[w]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[w] = cmd
	}
	for w, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer process %d: %v: %s", w, err, stderr[w].Bytes())
		}
	}
	checkAllLanded(t, dir)
}

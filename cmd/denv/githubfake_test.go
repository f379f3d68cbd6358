package main

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/rogpeppe/go-internal/testscript"
)

// storeCmds are the script commands the store tests use:
//
//	github-serve DIR   serve DIR as a fake raw.githubusercontent.com on
//	                   127.0.0.1 and point DENV_GITHUB_URL at it; a request
//	                   for /OWNER/REPO/REF/PATH.denv answers
//	                   DIR/OWNER/REPO/REF/PATH.denv, or 404. Beside that file,
//	                   PATH.denv.status holds a status code to answer instead,
//	                   PATH.denv.size a body size to serve (a comment that
//	                   long), PATH.denv.hang makes the server never answer.
//	github-stop        shut the server down (what "offline" means in tests)
//	dirhash DIR FILE   write a digest of every file name and content under
//	                   DIR to FILE, to compare a store before and after
func storeCmds() map[string]func(ts *testscript.TestScript, neg bool, args []string) {
	var mu sync.Mutex
	servers := map[*testscript.TestScript]func(){}
	stop := func(ts *testscript.TestScript) {
		mu.Lock()
		closeFn := servers[ts]
		delete(servers, ts)
		mu.Unlock()
		if closeFn != nil {
			closeFn()
		}
	}
	return map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"github-serve": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 1 {
				ts.Fatalf("usage: github-serve DIR")
			}
			dir := ts.MkAbs(args[0])
			done := make(chan struct{})
			srv := httptest.NewServer(fakeGitHub(dir, done))
			mu.Lock()
			servers[ts] = func() {
				close(done)
				srv.CloseClientConnections()
				srv.Close()
			}
			mu.Unlock()
			ts.Defer(func() { stop(ts) })
			ts.Setenv("DENV_GITHUB_URL", srv.URL)
		},
		"github-stop": func(ts *testscript.TestScript, neg bool, args []string) {
			stop(ts)
		},
		"dirhash": func(ts *testscript.TestScript, neg bool, args []string) {
			if neg || len(args) != 2 {
				ts.Fatalf("usage: dirhash DIR FILE")
			}
			h := sha256.New()
			root := ts.MkAbs(args[0])
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(root, p)
				fmt.Fprintf(h, "%s %v\n", rel, d.Type())
				if d.Type().IsRegular() {
					data, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					fmt.Fprintf(h, "%d %x\n", len(data), sha256.Sum256(data))
				}
				return nil
			})
			ts.Check(err)
			ts.Check(os.WriteFile(ts.MkAbs(args[1]), fmt.Appendf(nil, "%x\n", h.Sum(nil)), 0o644))
		},
	}
}

// fakeGitHub serves dir as raw.githubusercontent.com does; see storeCmds.
// Hanging requests end when done is closed.
func fakeGitHub(dir string, done <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := filepath.Join(dir, filepath.FromSlash(filepath.Clean("/"+r.URL.Path)))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			http.NotFound(w, r)
			return
		}
		if _, err := os.Stat(p + ".hang"); err == nil {
			select {
			case <-r.Context().Done():
			case <-done:
			}
			return
		}
		if data, err := os.ReadFile(p + ".status"); err == nil {
			code, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			http.Error(w, http.StatusText(code), code)
			return
		}
		if data, err := os.ReadFile(p + ".size"); err == nil {
			n, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			body := []byte("#" + strings.Repeat("x", max(n-2, 0)) + "\n")
			w.Write(body)
			return
		}
		http.ServeFile(w, r, p)
	})
}

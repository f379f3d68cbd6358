// Command db is a tiny key-value store over HTTP, one file per key.
//
// Endpoints (listening on :8080, or LISTEN_ADDR):
//
//	PUT /kv/{key}  store the request body under key (204)
//	GET /kv/{key}  return the stored value (404 when absent)
//	GET /health    answer "ok"
//
// Values live in DATA_DIR (default /data). A value is streamed to a
// temporary file that is then renamed into place, so a reader (or a copy of
// the directory) never sees half a value. Keys containing "/", "\" or "..",
// or starting with "." (reserved for temporary files), are refused with 400.
//
// "db health" probes the local server and exits 0 when it answers, for use
// as a container health check in an image without a shell.
package main

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/alebellu/denv/examples/images/internal/svc"
)

func main() {
	addr := svc.EnvOr("LISTEN_ADDR", ":8080")
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(svc.Probe(addr, "/health"))
	}
	dir := svc.EnvOr("DATA_DIR", "/data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	if err := svc.Serve(addr, NewHandler(dir)); err != nil {
		log.Fatal(err)
	}
}

// NewHandler returns the HTTP handler of a store keeping its values in dir.
func NewHandler(dir string) http.Handler {
	s := &store{dir: dir}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	// {key...} also captures keys with slashes so that they get a clear 400.
	mux.HandleFunc("PUT /kv/{key...}", s.put)
	mux.HandleFunc("GET /kv/{key...}", s.get)
	return mux
}

// store keeps one file per key in dir.
type store struct {
	dir string
}

// path returns the file holding key, or an error when key is not acceptable.
func (s *store) path(key string) (string, error) {
	if key == "" || strings.ContainsAny(key, "/\\\x00") || strings.Contains(key, "..") || strings.HasPrefix(key, ".") {
		return "", fmt.Errorf("invalid key %q", key)
	}
	return filepath.Join(s.dir, key), nil
}

func (s *store) put(w http.ResponseWriter, r *http.Request) {
	dst, err := s.path(r.PathValue("key"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := writeAtomically(dst, r.Body); err != nil {
		log.Printf("put %s: %v", dst, err)
		http.Error(w, "store failed: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeAtomically streams src into a temporary file next to dst and renames
// it to dst once complete and synced.
func writeAtomically(dst string, src io.Reader) (err error) {
	f, err := os.CreateTemp(filepath.Dir(dst), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, src); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}

func (s *store) get(w http.ResponseWriter, r *http.Request) {
	p, err := s.path(r.PathValue("key"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		http.Error(w, "no such key", http.StatusNotFound)
		return
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if _, err := io.Copy(w, f); err != nil {
		log.Printf("get %s: %v", p, err)
	}
}

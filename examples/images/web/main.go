// Command web is a small REST API for operational data: it stores data in
// the db service and delegates calculations to the worker service.
//
// Environment:
//
//	DB_URL      base URL of db     (default http://db:8080)
//	WORKER_URL  base URL of worker (default http://worker-env:8080)
//	LISTEN_ADDR listen address     (default :8080)
//
// Endpoints:
//
//	GET /health       JSON {"status":"ok"|"degraded","db":...,"worker":...};
//	                  "db" is "ok" only after a real PUT+GET round trip to db,
//	                  "worker" only after worker computed a known prime; else
//	                  the value is the error. 200 when both are ok, else 503.
//	PUT /data/{key}   store the body in db (streamed; db's status is passed on)
//	GET /data/{key}   read a value back from db (404 when absent)
//	GET /calc?n=N     the N-th prime, computed by worker (worker's JSON)
//	GET /livez        answer "ok" (liveness only, no upstream calls)
//
// "web health" probes the local server's liveness and exits 0 when it
// answers, for use as a container health check in an image without a shell.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alebellu/denv/examples/images/internal/svc"
)

// Timeouts of outbound calls.
const (
	probeTimeout = 3 * time.Second // each /health check
	calcTimeout  = 5 * time.Second // a /calc request
)

func main() {
	addr := svc.EnvOr("LISTEN_ADDR", ":8080")
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(svc.Probe(addr, "/livez"))
	}
	if err := svc.Serve(addr, NewHandler(svc.EnvOr("DB_URL", "http://db:8080"), svc.EnvOr("WORKER_URL", "http://worker-env:8080"))); err != nil {
		log.Fatal(err)
	}
}

// Health is the JSON answer of /health.
type Health struct {
	Status string `json:"status"` // "ok" or "degraded"
	DB     string `json:"db"`     // "ok" or an error
	Worker string `json:"worker"` // "ok" or an error
}

// api serves the endpoints; db and worker are base URLs without a trailing slash.
type api struct {
	db, worker string
	client     *http.Client // no overall timeout: data values may be large
	probeMu    sync.Mutex   // one db probe at a time, they share a key
}

// NewHandler returns the HTTP handler of the API, talking to db and worker
// at the given base URLs.
func NewHandler(dbURL, workerURL string) http.Handler {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 3 * time.Second}).DialContext
	tr.ResponseHeaderTimeout = 30 * time.Second // db syncs a large value before answering
	a := &api{
		db:     strings.TrimSuffix(dbURL, "/"),
		worker: strings.TrimSuffix(workerURL, "/"),
		client: &http.Client{Transport: tr},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.health)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("PUT /data/{key...}", func(w http.ResponseWriter, r *http.Request) {
		body := io.Reader(r.Body)
		if r.ContentLength == 0 {
			body = http.NoBody
		}
		a.forward(r.Context(), w, "PUT", a.db+"/kv/"+url.PathEscape(r.PathValue("key")), body, r.ContentLength)
	})
	mux.HandleFunc("GET /data/{key...}", func(w http.ResponseWriter, r *http.Request) {
		a.forward(r.Context(), w, "GET", a.db+"/kv/"+url.PathEscape(r.PathValue("key")), nil, 0)
	})
	mux.HandleFunc("GET /calc", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), calcTimeout)
		defer cancel()
		a.forward(ctx, w, "GET", a.worker+"/work?n="+url.QueryEscape(r.URL.Query().Get("n")), nil, 0)
	})
	return mux
}

// forward sends a request upstream and streams the answer back to w;
// an unreachable upstream gives 502.
func (a *api) forward(ctx context.Context, w http.ResponseWriter, method, u string, body io.Reader, size int64) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req.ContentLength = size
	resp, err := a.client.Do(req)
	if err != nil {
		http.Error(w, "upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range []string{"Content-Type", "Content-Length"} {
		if v := resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (a *api) health(w http.ResponseWriter, r *http.Request) {
	h := Health{Status: "ok", DB: "ok", Worker: "ok"}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); h.DB = errString(a.checkDB(r.Context())) }()
	go func() { defer wg.Done(); h.Worker = errString(a.checkWorker(r.Context())) }()
	wg.Wait()
	code := http.StatusOK
	if h.DB != "ok" || h.Worker != "ok" {
		h.Status, code = "degraded", http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(h)
}

// checkDB stores a fresh random value in db and reads it back.
func (a *api) checkDB(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	a.probeMu.Lock()
	defer a.probeMu.Unlock()
	nonce := make([]byte, 8)
	rand.Read(nonce)
	want := "web health probe " + hex.EncodeToString(nonce)
	u := a.db + "/kv/web-health-probe"
	if _, err := a.call(ctx, "PUT", u, want); err != nil {
		return fmt.Errorf("db write: %w", err)
	}
	got, err := a.call(ctx, "GET", u, "")
	if err != nil {
		return fmt.Errorf("db read: %w", err)
	}
	if got != want {
		return fmt.Errorf("db read back %q, wrote %q", got, want)
	}
	return nil
}

// checkWorker asks worker for the 100th prime, which is 541.
func (a *api) checkWorker(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	body, err := a.call(ctx, "GET", a.worker+"/work?n=100", "")
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	var res struct{ Prime int }
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		return fmt.Errorf("worker: bad answer: %w", err)
	}
	if res.Prime != 541 {
		return fmt.Errorf("worker: 100th prime is 541, worker says %d", res.Prime)
	}
	return nil
}

// call performs a small request and returns the body of a 2xx answer.
func (a *api) call(ctx context.Context, method, u, body string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s %s: %s", method, u, resp.Status)
	}
	return string(b), nil
}

// errString is "ok" for a nil error, else the error's text.
func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

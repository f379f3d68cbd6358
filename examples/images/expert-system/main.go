// Command expert-system draws conclusions from operational data that it
// reaches only through the web service (which uses db and worker).
//
// Environment:
//
//	WEB_URL     base URL of web (default http://web-env:8080)
//	LISTEN_ADDR listen address  (default :8080)
//
// Endpoints:
//
//	GET /        JSON Report: "web", "db" and "worker" are "ok" only when
//	             the chain really reached that service through web, else an
//	             error; "inference" is a conclusion drawn from a sample it
//	             stored in db through web, read back, and had worker
//	             process through web. 200 when all is ok, else 503.
//	GET /health  answer "ok" (liveness only, no upstream calls)
//
// "expert-system health" probes the local server and exits 0 when it
// answers, for use as a container health check in an image without a shell.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/alebellu/denv/examples/images/internal/svc"
)

// Timeout bounds every call to web.
const Timeout = 5 * time.Second

func main() {
	addr := svc.EnvOr("LISTEN_ADDR", ":8080")
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(svc.Probe(addr, "/health"))
	}
	if err := svc.Serve(addr, NewHandler(svc.EnvOr("WEB_URL", "http://web-env:8080"))); err != nil {
		log.Fatal(err)
	}
}

// Report is the JSON answer of GET /.
type Report struct {
	Web       string `json:"web"`    // "ok" or an error
	DB        string `json:"db"`     // "ok" or an error
	Worker    string `json:"worker"` // "ok" or an error
	Inference string `json:"inference"`
}

// Sample is the operational data the expert system stores and reasons about.
type Sample struct {
	TakenAt  string `json:"taken_at"` // makes each sample unique, so a stale one is detected
	LoadPcts []int  `json:"load_pcts"`
}

// NewHandler returns the HTTP handler of the expert system, which talks to
// web at the base URL webURL.
func NewHandler(webURL string) http.Handler {
	e := &expert{web: strings.TrimSuffix(webURL, "/"), client: &http.Client{Timeout: Timeout}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		rep := e.consult(r.Context())
		code := http.StatusOK
		if rep.Web != "ok" || rep.DB != "ok" || rep.Worker != "ok" {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	})
	return mux
}

// expert talks to web at the base URL web.
type expert struct {
	web    string
	client *http.Client
	mu     sync.Mutex // one consultation at a time: they share the sample's key
}

// consult checks the chain through web's /health, then stores a sample,
// reads it back and has worker compute on it, and concludes.
func (e *expert) consult(ctx context.Context) Report {
	e.mu.Lock()
	defer e.mu.Unlock()
	var h struct{ DB, Worker string }
	body, err := e.call(ctx, "GET", "/health", nil)
	if err == nil {
		err = json.Unmarshal(body, &h)
	}
	if err != nil {
		msg := "unknown: web not reachable"
		return Report{Web: "error: " + err.Error(), DB: msg, Worker: msg, Inference: "none: web not reachable"}
	}
	rep := Report{Web: "ok", DB: viaWeb(h.DB), Worker: viaWeb(h.Worker)}
	if rep.DB != "ok" || rep.Worker != "ok" {
		rep.Inference = "none: the chain behind web is broken"
		return rep
	}

	// Store a sample through web, read it back intact.
	s := Sample{TakenAt: time.Now().UTC().Format(time.RFC3339Nano), LoadPcts: []int{42, 57, 63, 91, 38, 74}}
	stored, _ := json.Marshal(s)
	if _, err := e.call(ctx, "PUT", "/data/expert-sample", stored); err != nil {
		rep.DB, rep.Inference = "error: storing the sample through web: "+err.Error(), "none: no data"
		return rep
	}
	got, err := e.call(ctx, "GET", "/data/expert-sample", nil)
	if err == nil && !bytes.Equal(got, stored) {
		err = fmt.Errorf("read back %q, stored %q", got, stored)
	}
	if err != nil {
		rep.DB, rep.Inference = "error: reading the sample back through web: "+err.Error(), "none: no data"
		return rep
	}
	var back Sample
	if err := json.Unmarshal(got, &back); err != nil {
		rep.DB, rep.Inference = "error: bad sample from web: "+err.Error(), "none: no data"
		return rep
	}

	// Reason on the data read back, and ask worker (through web) for a calculation on it.
	sum, peak := 0, 0
	for _, p := range back.LoadPcts {
		sum += p
		peak = max(peak, p)
	}
	var calc struct{ N, Prime int }
	body, err = e.call(ctx, "GET", fmt.Sprintf("/calc?n=%d", sum), nil)
	if err == nil {
		err = json.Unmarshal(body, &calc)
	}
	if err == nil && calc.N != sum {
		err = fmt.Errorf("asked for n=%d, worker answered n=%d", sum, calc.N)
	}
	if err != nil {
		rep.Worker, rep.Inference = "error: calculation through web: "+err.Error(), "none: no calculation"
		return rep
	}
	verdict := "load is nominal, no action needed"
	if peak > 80 {
		verdict = "peak load above 80%: scale out"
	}
	rep.Inference = fmt.Sprintf("%d load readings stored in db and read back intact through web; mean %.1f%%, peak %d%%: %s (worker via web: prime #%d = %d as the sample's checksum)",
		len(back.LoadPcts), float64(sum)/float64(len(back.LoadPcts)), peak, verdict, sum, calc.Prime)
	return rep
}

// viaWeb turns a status reported by web into the report's value.
func viaWeb(status string) string {
	switch status {
	case "ok":
		return "ok"
	case "":
		return "error: web did not report it"
	}
	return "error (reported by web): " + status
}

// call sends a request to web and returns the body of a 2xx answer; on a
// non-2xx answer the body (trimmed) is in the error.
func (e *expert) call(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, e.web+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	// web's /health answers 503 with a useful JSON body when degraded.
	if resp.StatusCode/100 != 2 && !(path == "/health" && resp.StatusCode == http.StatusServiceUnavailable) {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

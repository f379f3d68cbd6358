package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/alebellu/denv/examples/images/internal/svctest"
)

// bin holds the sibling programs (db, worker) built by TestMain: a main package
// cannot be imported, so the real ones run as processes.
var bin svctest.Bin

func TestMain(m *testing.M) {
	os.Exit(svctest.Run(m, &bin, "db", "worker"))
}

// stack starts real db and worker processes and an in-process web handler.
func stack(t *testing.T) (web string, killDB, killWorker func()) {
	db, killDB := bin.Start(t, "db", "DATA_DIR="+t.TempDir())
	worker, killWorker := bin.Start(t, "worker")
	srv := httptest.NewServer(NewHandler(db, worker))
	t.Cleanup(srv.Close)
	return srv.URL, killDB, killWorker
}

func do(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	code, b := svctest.Do(t, method, url, strings.NewReader(body))
	return code, string(b)
}

func health(t *testing.T, web string) (int, Health) {
	t.Helper()
	code, body := do(t, "GET", web+"/health", "")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("health body %q: %v", body, err)
	}
	return code, h
}

func TestHealthOK(t *testing.T) {
	web, _, _ := stack(t)
	if code, h := health(t, web); code != 200 || h != (Health{"ok", "ok", "ok"}) {
		t.Fatalf("health = %d %+v", code, h)
	}
}

func TestHealthDBDown(t *testing.T) {
	web, killDB, _ := stack(t)
	killDB()
	code, h := health(t, web)
	if code != 503 || h.Status != "degraded" || h.DB == "ok" || h.Worker != "ok" {
		t.Fatalf("health with db down = %d %+v", code, h)
	}
}

func TestHealthWorkerDown(t *testing.T) {
	web, _, killWorker := stack(t)
	killWorker()
	code, h := health(t, web)
	if code != 503 || h.DB != "ok" || h.Worker == "ok" {
		t.Fatalf("health with worker down = %d %+v", code, h)
	}
}

// Answering is not enough: db must give back what was stored, worker must
// compute correctly.
func TestHealthWrongAnswers(t *testing.T) {
	liar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"n":100,"prime":7}`) // also "stores" anything, returns this
	}))
	defer liar.Close()
	web := httptest.NewServer(NewHandler(liar.URL, liar.URL))
	defer web.Close()
	code, h := health(t, web.URL)
	if code != 503 || h.DB == "ok" || h.Worker == "ok" {
		t.Fatalf("health with lying upstreams = %d %+v", code, h)
	}
}

func TestDataAndCalc(t *testing.T) {
	web, _, _ := stack(t)
	if code, _ := do(t, "GET", web+"/data/m1", ""); code != 404 {
		t.Fatalf("GET absent = %d, want 404", code)
	}
	big := strings.Repeat("0123456789abcdef", 1<<18) // 4 MiB
	for _, v := range []string{"cpu=93", "", big} {
		if code, b := do(t, "PUT", web+"/data/m1", v); code != 204 {
			t.Fatalf("PUT = %d %s", code, b)
		}
		if code, b := do(t, "GET", web+"/data/m1", ""); code != 200 || b != v {
			t.Fatalf("GET = %d, %d bytes, want 200 and %d bytes", code, len(b), len(v))
		}
	}
	for _, k := range []string{"a%2Fb", "a..b", "x/y"} {
		if code, _ := do(t, "PUT", web+"/data/"+k, "x"); code != 400 {
			t.Errorf("PUT /data/%s = %d, want 400", k, code)
		}
	}

	code, b := do(t, "GET", web+"/calc?n=1000", "")
	var r struct{ N, Prime int }
	if err := json.Unmarshal([]byte(b), &r); err != nil || code != 200 || r.Prime != 7919 {
		t.Fatalf("calc = %d %s", code, b)
	}
	if code, _ := do(t, "GET", web+"/calc?n=zero", ""); code != 400 {
		t.Fatalf("calc with bad n = %d, want 400", code)
	}
}

func TestUpstreamDown(t *testing.T) {
	web, killDB, killWorker := stack(t)
	killDB()
	killWorker()
	if code, _ := do(t, "GET", web+"/data/k", ""); code != http.StatusBadGateway {
		t.Fatalf("GET /data with db down = %d, want 502", code)
	}
	if code, _ := do(t, "GET", web+"/calc?n=3", ""); code != http.StatusBadGateway {
		t.Fatalf("GET /calc with worker down = %d, want 502", code)
	}
}

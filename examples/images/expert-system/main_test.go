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

// bin holds the sibling programs (db, worker, web) built by TestMain: a main package
// cannot be imported, so the real ones run as processes.
var bin svctest.Bin

func TestMain(m *testing.M) {
	os.Exit(svctest.Run(m, &bin, "db", "worker", "web"))
}

// chain starts real db, worker and web processes, web wired to the other
// two, and an in-process expert-system handler talking to web.
func chain(t *testing.T) (expert string, killDB, killWorker, killWeb func()) {
	db, killDB := bin.Start(t, "db", "DATA_DIR="+t.TempDir())
	worker, killWorker := bin.Start(t, "worker")
	web, killWeb := bin.Start(t, "web", "DB_URL="+db, "WORKER_URL="+worker)
	srv := httptest.NewServer(NewHandler(web))
	t.Cleanup(srv.Close)
	return srv.URL, killDB, killWorker, killWeb
}

func consult(t *testing.T, expert string) (int, Report) {
	t.Helper()
	resp, err := http.Get(expert + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, r
}

func TestChainOK(t *testing.T) {
	expert, _, _, _ := chain(t)
	for i := 0; i < 2; i++ { // twice: the second sample overwrites the first
		code, r := consult(t, expert)
		if code != 200 || r.Web != "ok" || r.DB != "ok" || r.Worker != "ok" {
			t.Fatalf("report = %d %+v", code, r)
		}
		// 42+57+63+91+38+74 = 365, the 365th prime is 2467.
		for _, want := range []string{"6 load readings", "peak 91%", "scale out", "prime #365 = 2467"} {
			if !strings.Contains(r.Inference, want) {
				t.Errorf("inference %q lacks %q", r.Inference, want)
			}
		}
	}
}

func TestDBDown(t *testing.T) {
	expert, killDB, _, _ := chain(t)
	killDB()
	code, r := consult(t, expert)
	if code != 503 || r.Web != "ok" || r.DB == "ok" || r.Worker != "ok" || !strings.HasPrefix(r.Inference, "none") {
		t.Fatalf("report with db down = %d %+v", code, r)
	}
}

func TestWorkerDown(t *testing.T) {
	expert, _, killWorker, _ := chain(t)
	killWorker()
	code, r := consult(t, expert)
	if code != 503 || r.Web != "ok" || r.DB != "ok" || r.Worker == "ok" {
		t.Fatalf("report with worker down = %d %+v", code, r)
	}
}

func TestWebDown(t *testing.T) {
	expert, _, _, killWeb := chain(t)
	killWeb()
	code, r := consult(t, expert)
	if code != 503 || r.Web == "ok" || r.DB == "ok" || r.Worker == "ok" {
		t.Fatalf("report with web down = %d %+v", code, r)
	}
}

// A web that says all is well but does not really store data is caught.
func TestLyingWeb(t *testing.T) {
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			io.WriteString(w, `{"status":"ok","db":"ok","worker":"ok"}`)
			return
		}
		io.WriteString(w, `{"taken_at":"long ago","load_pcts":[1]}`)
	}))
	defer web.Close()
	expert := httptest.NewServer(NewHandler(web.URL))
	defer expert.Close()
	code, r := consult(t, expert.URL)
	if code != 503 || r.Web != "ok" || r.DB == "ok" {
		t.Fatalf("report with a lying web = %d %+v", code, r)
	}
}

// What web's /health reports counts, even if data seems to flow.
func TestWebReportsProblems(t *testing.T) {
	var stored []byte
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/health":
			w.WriteHeader(503)
			io.WriteString(w, `{"status":"degraded","db":"db read: connection refused","worker":"ok"}`)
		case r.Method == "PUT":
			stored, _ = io.ReadAll(r.Body)
		case r.URL.Path == "/calc":
			io.WriteString(w, `{"n":365,"prime":2467}`)
		default:
			w.Write(stored)
		}
	}))
	defer web.Close()
	expert := httptest.NewServer(NewHandler(web.URL))
	defer expert.Close()
	code, r := consult(t, expert.URL)
	if code != 503 || r.Web != "ok" || !strings.Contains(r.DB, "connection refused") || r.Worker != "ok" {
		t.Fatalf("report = %d %+v", code, r)
	}
}

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(NewHandler("http://127.0.0.1:1"))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health = %d", resp.StatusCode)
	}
}

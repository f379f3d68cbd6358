package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/alebellu/denv/examples/images/internal/svctest"
)

func TestHealth(t *testing.T) {
	srv := httptest.NewServer(NewHandler(t.TempDir()))
	defer srv.Close()
	code, body := svctest.Do(t, "GET", srv.URL+"/health", nil)
	if code != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Fatalf("health = %d %q", code, body)
	}
}

func TestPutGetOverwriteAndMissing(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()

	if code, _ := svctest.Do(t, "GET", srv.URL+"/kv/k1", nil); code != http.StatusNotFound {
		t.Fatalf("GET absent key = %d, want 404", code)
	}
	for _, v := range []string{"first value", "second"} {
		if code, b := svctest.Do(t, "PUT", srv.URL+"/kv/k1", strings.NewReader(v)); code != http.StatusNoContent {
			t.Fatalf("PUT = %d %s", code, b)
		}
		code, b := svctest.Do(t, "GET", srv.URL+"/kv/k1", nil)
		if code != 200 || string(b) != v {
			t.Fatalf("GET = %d %q, want 200 %q", code, b, v)
		}
	}
	// Only the value file remains: temporary files were renamed away.
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "k1" {
		t.Fatalf("data dir holds %v, want only k1", ents)
	}
}

func TestLargeValue(t *testing.T) {
	srv := httptest.NewServer(NewHandler(t.TempDir()))
	defer srv.Close()
	val := make([]byte, 24<<20+123)
	rand.Read(val)
	if code, b := svctest.Do(t, "PUT", srv.URL+"/kv/big", bytes.NewReader(val)); code != http.StatusNoContent {
		t.Fatalf("PUT = %d %s", code, b)
	}
	code, b := svctest.Do(t, "GET", srv.URL+"/kv/big", nil)
	if code != 200 || !bytes.Equal(b, val) {
		t.Fatalf("GET = %d, %d bytes, equal=%v", code, len(b), bytes.Equal(b, val))
	}
}

func TestBadKeys(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()
	// A literal "/kv/.." never reaches the handler: ServeMux redirects the
	// cleaned path, which is refused as well (checked below).
	if code, _ := svctest.Do(t, "PUT", srv.URL+"/kv/..", strings.NewReader("x")); code < 300 {
		t.Errorf("PUT /kv/.. = %d, want a refusal", code)
	}
	for _, k := range []string{"a/b", "a%2Fb", "a..b", "..x", "%2E%2E", ".hidden", "a%5Cb"} {
		for _, m := range []string{"PUT", "GET"} {
			code, _ := svctest.Do(t, m, srv.URL+"/kv/"+k, strings.NewReader("x"))
			if code != http.StatusBadRequest {
				t.Errorf("%s /kv/%s = %d, want 400", m, k, code)
			}
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("bad keys wrote files: %v", ents)
	}
}

// A client that disconnects mid-upload must not leave a partial value.
func TestAbortedPutLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	srv := httptest.NewServer(NewHandler(dir))
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("partial"))
		pw.CloseWithError(io.ErrUnexpectedEOF)
	}()
	req, _ := http.NewRequest("PUT", srv.URL+"/kv/k", pr)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	srv.Close() // waits for the handler to finish
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("aborted PUT left %v", ents)
	}
}

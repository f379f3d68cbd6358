package remote

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testToken = "s3cr3t-token"

// newServer starts an httptest server on 127.0.0.1 and a Fetcher pointed at
// it with a token and a short timeout.
func newServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, *Fetcher) {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f := NewFetcher(func(k string) string {
		return map[string]string{"DENV_GITHUB_URL": srv.URL + "/", "GITHUB_TOKEN": testToken}[k]
	})
	f.Timeout = 2 * time.Second
	return srv, f
}

func TestNewFetcherDefaults(t *testing.T) {
	f := NewFetcher(func(string) string { return "" })
	if f.BaseURL != "https://raw.githubusercontent.com" || f.Token != "" ||
		f.MaxBytes != 1<<20 || f.Timeout != 10*time.Second {
		t.Errorf("NewFetcher with empty env = %+v", f)
	}
	f = NewFetcher(func(k string) string {
		return map[string]string{"DENV_GITHUB_URL": "http://mirror.example/raw/", "GITHUB_TOKEN": "tok\n"}[k]
	})
	if f.BaseURL != "http://mirror.example/raw" || f.Token != "tok" {
		t.Errorf("NewFetcher with env = %+v", f)
	}
}

func TestFetchSuccessSendsToken(t *testing.T) {
	var gotPath, gotAuth, gotMethod string
	srv, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotMethod, gotPath, gotAuth = r.Method, r.URL.EscapedPath(), r.Header.Get("Authorization")
		w.Write([]byte("services: {}\n"))
	})
	data, err := f.Fetch(context.Background(), "alebellu", "ex", "feature/x", "ex/web env")
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "services: {}\n" {
		t.Errorf("data = %q", data)
	}
	if gotMethod != "GET" || gotPath != "/alebellu/ex/feature/x/ex/web%20env.denv" {
		t.Errorf("request = %s %s, want GET /alebellu/ex/feature/x/ex/web%%20env.denv (server %s)", gotMethod, gotPath, srv.URL)
	}
	if gotAuth != "Bearer "+testToken {
		t.Errorf("Authorization = %q, want Bearer token", gotAuth)
	}
}

func TestFetchWithoutTokenSendsNoAuthorization(t *testing.T) {
	var gotAuth []string
	_, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Values("Authorization")
		w.Write([]byte("x"))
	})
	f.Token = ""
	if _, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p"); err != nil {
		t.Fatal(err)
	}
	if len(gotAuth) != 0 {
		t.Errorf("Authorization sent without a token: %q", gotAuth)
	}
}

func TestFetchNotFound(t *testing.T) {
	srv, f := newServer(t, http.NotFound)
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "missing/env")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want one matching fs.ErrNotExist", err)
	}
	want := "not found: " + srv.URL + "/o/r/HEAD/missing/env.denv"
	if err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestFetchServerError(t *testing.T) {
	srv, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom "+testToken, http.StatusInternalServerError)
	})
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
	want := "fetch " + srv.URL + "/o/r/HEAD/p.denv: 500 Internal Server Error"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Error("a 500 must not look like a missing file")
	}
}

func TestFetchSizeLimit(t *testing.T) {
	const limit = 1 << 20
	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr bool
	}{
		{"exactly the limit", func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat([]byte("a"), limit))
		}, false},
		{"one byte over, chunked", func(w http.ResponseWriter, r *http.Request) {
			w.Write(bytes.Repeat([]byte("a"), limit))
			w.(http.Flusher).Flush()
			w.Write([]byte("b"))
		}, true},
		{"announced by Content-Length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(limit+1))
			w.Write(bytes.Repeat([]byte("a"), limit+1))
		}, true},
		{"endless stream", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte("a"), 32<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f := newServer(t, tt.handler)
			data, err := f.Fetch(context.Background(), "o", "r", "HEAD", "big")
			if !tt.wantErr {
				if err != nil || len(data) != limit {
					t.Fatalf("got %d bytes, %v; want %d bytes", len(data), err, limit)
				}
				return
			}
			want := "fetch " + srv.URL + "/o/r/HEAD/big.denv: response is larger than 1 MiB"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %q", err, want)
			}
		})
	}
}

func TestFetchSmallLimitLabel(t *testing.T) {
	_, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 3000))
	})
	f.MaxBytes = 2 << 10
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
	if err == nil || !strings.HasSuffix(err.Error(), "response is larger than 2 KiB") {
		t.Fatalf("err = %v, want one ending in 'larger than 2 KiB'", err)
	}
}

func TestFetchTimeout(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"no headers", func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}},
		{"stalled body", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, f := newServer(t, tt.handler)
			f.Timeout = 100 * time.Millisecond
			start := time.Now()
			_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "slow")
			elapsed := time.Since(start)
			want := "fetch " + srv.URL + "/o/r/HEAD/slow.denv: timed out after 100ms"
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %q", err, want)
			}
			if elapsed > 2*time.Second {
				t.Errorf("Fetch took %s with a 100ms timeout", elapsed)
			}
		})
	}
}

func TestFetchCanceled(t *testing.T) {
	_, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := f.Fetch(ctx, "o", "r", "HEAD", "p")
	if err == nil || !strings.HasSuffix(err.Error(), ": context canceled") {
		t.Fatalf("err = %v, want one ending in context canceled", err)
	}
}

func TestFetchRefusesEscapingRefsWithoutRequest(t *testing.T) {
	var requests atomic.Int32
	_, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Write([]byte("should not be fetched"))
	})
	bad := []Ref{
		{"o", "r", "HEAD", "../x"},
		{"o", "r", "HEAD", "a/../../x"},
		{"o", "r", "HEAD", "/etc/passwd"},
		{"o", "r", "HEAD", ""},
		{"o", "r", "HEAD", `a\..\x`},
		{"o/..", "r", "HEAD", "p"},
		{"o", "..", "HEAD", "p"},
		{"o", "r", "../..", "p"},
		{"o", "r", "", "p"},
	}
	for _, r := range bad {
		if _, err := f.Fetch(context.Background(), r.Owner, r.Repo, r.Ref, r.Path); err == nil {
			t.Errorf("Fetch(%+v) succeeded, want an error", r)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("%d requests reached the server, want 0", n)
	}
}

func TestFetchRedirectDropsTokenForOtherHost(t *testing.T) {
	var otherAuth []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherAuth = r.Header.Values("Authorization")
		w.Write([]byte("moved content"))
	}))
	defer other.Close()
	var sameAuth string
	_, f := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/o/r/HEAD/away.denv":
			http.Redirect(w, r, other.URL+"/elsewhere", http.StatusFound)
		case "/o/r/HEAD/renamed.denv":
			http.Redirect(w, r, "/o/r/HEAD/new.denv", http.StatusMovedPermanently)
		case "/o/r/HEAD/new.denv":
			sameAuth = r.Header.Get("Authorization")
			w.Write([]byte("new"))
		default:
			http.NotFound(w, r)
		}
	})

	data, err := f.Fetch(context.Background(), "o", "r", "HEAD", "away")
	if err != nil || string(data) != "moved content" {
		t.Fatalf("Fetch through a cross-host redirect = %q, %v", data, err)
	}
	if len(otherAuth) != 0 {
		t.Errorf("token leaked to the other host: %q", otherAuth)
	}

	data, err = f.Fetch(context.Background(), "o", "r", "HEAD", "renamed")
	if err != nil || string(data) != "new" {
		t.Fatalf("Fetch through a same-host redirect = %q, %v", data, err)
	}
	if sameAuth != "Bearer "+testToken {
		t.Errorf("same-host redirect Authorization = %q, want the token", sameAuth)
	}
}

func TestFetchErrorsNeverShowSecrets(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	})
	f := &Fetcher{BaseURL: strings.Replace(srv.URL, "http://", "http://user:pw-secret@", 1), Token: testToken}
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
	if err == nil || !strings.Contains(err.Error(), "403 Forbidden") {
		t.Fatalf("err = %v, want a 403", err)
	}
	if strings.Contains(err.Error(), "pw-secret") || strings.Contains(err.Error(), testToken) {
		t.Errorf("error shows a secret: %q", err)
	}
}

func TestFetchBadBaseURL(t *testing.T) {
	f := &Fetcher{BaseURL: "raw.githubusercontent.com"}
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
	if err == nil || !strings.Contains(err.Error(), "invalid base URL") {
		t.Fatalf("err = %v, want invalid base URL", err)
	}
}

// TestBaseURLQueryFragmentRefused: a DENV_GITHUB_URL with ? or # would
// turn every file into one URL; it is refused before anything is sent, and
// an unparsable one is shown (password hidden) rather than "(unparsable URL)".
func TestBaseURLQueryFragmentRefused(t *testing.T) {
	for _, base := range []string{"http://127.0.0.1:1/x?a=b", "http://127.0.0.1:1/x#frag"} {
		f := &Fetcher{BaseURL: base}
		_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
		if err == nil || !strings.Contains(err.Error(), "without ?query or #fragment") {
			t.Errorf("base %s: err = %v, want it refused", base, err)
		}
	}
	f := &Fetcher{BaseURL: "http://user:secret@exa mple.com/%zz"}
	_, err := f.Fetch(context.Background(), "o", "r", "HEAD", "p")
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "unparsable") || !strings.Contains(err.Error(), "exa mple.com") {
		t.Errorf("err = %v, want the URL shown without its password", err)
	}
}

package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults used by NewFetcher and by a Fetcher whose fields are zero.
const (
	DefaultBaseURL  = "https://raw.githubusercontent.com"
	DefaultMaxBytes = 1 << 20
	DefaultTimeout  = 10 * time.Second
)

// maxRedirects is how many redirects Fetch follows before giving up.
const maxRedirects = 10

// Fetcher downloads remote definitions. Zero fields take the defaults: base
// URL https://raw.githubusercontent.com, no token, http.DefaultClient's
// transport, 1 MiB and 10 s.
type Fetcher struct {
	// BaseURL is the URL files are fetched under, without a trailing slash.
	BaseURL string
	// Token, when set, is sent as "Authorization: Bearer TOKEN", and only to
	// the host (and scheme) of BaseURL, never to a host a redirect leads to.
	Token string
	// Client sends the requests; nil means http.DefaultClient. Its
	// CheckRedirect is replaced by Fetch's own policy.
	Client *http.Client
	// MaxBytes is the largest response body accepted.
	MaxBytes int64
	// Timeout bounds one Fetch, from sending the request to reading the
	// last byte of the body.
	Timeout time.Duration
}

// NewFetcher returns a Fetcher configured from the environment read through
// getenv (os.Getenv when nil): DENV_GITHUB_URL overrides the base URL and
// GITHUB_TOKEN is sent as a bearer token.
func NewFetcher(getenv func(string) string) *Fetcher {
	if getenv == nil {
		getenv = os.Getenv
	}
	base := strings.TrimSpace(getenv("DENV_GITHUB_URL"))
	if base == "" {
		base = DefaultBaseURL
	}
	return &Fetcher{
		BaseURL:  strings.TrimRight(base, "/"),
		Token:    strings.TrimSpace(getenv("GITHUB_TOKEN")),
		MaxBytes: DefaultMaxBytes,
		Timeout:  DefaultTimeout,
	}
}

// notFoundError is returned for a 404; it matches fs.ErrNotExist.
type notFoundError struct{ url string }

func (e *notFoundError) Error() string { return "not found: " + e.url }
func (e *notFoundError) Unwrap() error { return fs.ErrNotExist }

// Fetch downloads {base}/{owner}/{repo}/{ref}/{path}.denv and returns its
// bytes. The reference is validated first (see ParseRef); nothing is sent
// for one that is invalid. A 404 yields an error matching fs.ErrNotExist;
// every error is one line naming the URL, never the token.
func (f *Fetcher) Fetch(ctx context.Context, owner, repo, ref, path string) ([]byte, error) {
	r := Ref{Owner: owner, Repo: repo, Ref: ref, Path: path}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	base := f.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + "/" + escapePath(owner) + "/" + escapePath(repo) +
		"/" + escapePath(ref) + "/" + escapePath(path) + ".denv")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(base, "?#") {
		// a query or fragment in the base would swallow the path appended
		// to it: every file would be fetched from one URL
		return nil, fmt.Errorf("invalid base URL %q (DENV_GITHUB_URL): want http(s)://HOST[/PATH], without ?query or #fragment", redact(base))
	}
	shown := u.Redacted()

	maxBytes := f.MaxBytes
	if maxBytes <= 0 {
		maxBytes = DefaultMaxBytes
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errTimedOut)
	defer cancel()
	fail := func(err error) error {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			return fmt.Errorf("fetch %s: timed out after %s", shown, timeout)
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("fetch %s: %v", shown, err)
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fail(err)
	}
	req.Header.Set("User-Agent", "denv")
	if f.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.Token)
	}
	resp, err := f.client(u).Do(req)
	if err != nil {
		return nil, fail(err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, &notFoundError{url: shown}
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fmt.Errorf("fetch %s: %s", shown, resp.Status)
	case resp.ContentLength > maxBytes:
		return nil, fmt.Errorf("fetch %s: response is larger than %s", shown, sizeLabel(maxBytes))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, fail(err)
	}
	if int64(len(data)) > maxBytes {
		return nil, fmt.Errorf("fetch %s: response is larger than %s", shown, sizeLabel(maxBytes))
	}
	return data, nil
}

var errTimedOut = errors.New("timed out")

// client returns a shallow copy of the configured client whose redirect
// policy drops the token as soon as a redirect leaves the scheme and host of
// the original URL u.
func (f *Fetcher) client(u *url.URL) *http.Client {
	base := f.Client
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("stopped after %d redirects", maxRedirects)
		}
		if req.URL.Scheme != u.Scheme || req.URL.Host != u.Host {
			req.Header.Del("Authorization")
		}
		return nil
	}
	return &c
}

// escapePath escapes each "/"-separated segment of p for use in a URL path.
func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// redact hides any password in a URL that may be malformed.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	// Not a URL: still show it, with whatever sits between "://" and the
	// last "@" (where a password would be) hidden.
	if i := strings.Index(raw, "://"); i >= 0 {
		if j := strings.LastIndex(raw, "@"); j > i {
			return raw[:i+3] + "xxxxx" + raw[j:]
		}
	}
	return raw
}

// sizeLabel writes n bytes the way a limit is usually stated: 1 MiB, 64 KiB.
func sizeLabel(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

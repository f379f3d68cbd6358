// Package svc is what the four demo programs share: serving HTTP as PID 1
// of a scratch container, the health probe their images run, and
// configuration from the environment.
package svc

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Serve runs h on addr until SIGINT or SIGTERM (PID 1 in a container
// ignores SIGTERM unless it handles it, and `docker stop` then waits 10 s),
// then shuts down gracefully.
//
// Two settings from the environment serve readiness demos and tests:
// READY_DELAY (a duration, e.g. "4s") waits that long before listening,
// like a database that takes time to accept connections, so the health
// probe fails until then; STARTUP_PROBE (a URL) is fetched once before
// listening and the outcome logged ("startup probe URL: ok" or
// "startup probe URL: failed: ..."), like an app that connects to its
// database once at start and does not retry.
func Serve(addr string, h http.Handler) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d := os.Getenv("READY_DELAY"); d != "" {
		delay, err := time.ParseDuration(d)
		if err != nil {
			return fmt.Errorf("READY_DELAY: %w", err)
		}
		log.Printf("not listening for %s (READY_DELAY)", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil
		}
	}
	if u := os.Getenv("STARTUP_PROBE"); u != "" {
		startupProbe(u)
	}
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("listening on %s", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Probe checks that the server on addr answers path with 200; it returns
// an exit code (the images have no shell, so the program probes itself).
func Probe(addr, path string) int {
	if strings.HasPrefix(addr, ":") {
		addr = "127.0.0.1" + addr
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, strings.TrimPrefix(path, "/")+":", resp.Status)
		return 1
	}
	return 0
}

// EnvOr returns the value of the environment variable key, or def when
// unset or empty.
func EnvOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// startupProbe fetches u once and logs whether it answered 200.
func startupProbe(u string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
	if err != nil {
		log.Printf("startup probe %s: failed: %v", u, err)
		return
	}
	log.Printf("startup probe %s: ok", u)
}

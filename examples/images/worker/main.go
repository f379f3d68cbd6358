// Command worker performs a heavy, deterministic calculation on demand over
// HTTP: it finds the n-th prime number with a sieve of Eratosthenes.
//
// Endpoints (listening on :8080, or LISTEN_ADDR):
//
//	GET /work?n=N  answer {"n":N,"prime":P,"elapsed_ms":T}, P being the N-th
//	               prime (n=1 gives 2); 1 <= N <= 1,000,000, else 400
//	GET /health    answer "ok"
//
// "worker health" probes the local server and exits 0 when it answers, for
// use as a container health check in an image without a shell.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/alebellu/denv/examples/images/internal/svc"
)

// MaxN is the largest n accepted by /work: its prime is 15,485,863 and the
// sieve then takes about 17 MB.
const MaxN = 1_000_000

func main() {
	addr := svc.EnvOr("LISTEN_ADDR", ":8080")
	if len(os.Args) > 1 && os.Args[1] == "health" {
		os.Exit(svc.Probe(addr, "/health"))
	}
	if err := svc.Serve(addr, NewHandler()); err != nil {
		log.Fatal(err)
	}
}

// Result is the JSON answer of /work.
type Result struct {
	N         int   `json:"n"`
	Prime     int   `json:"prime"`
	ElapsedMS int64 `json:"elapsed_ms"`
}

// NewHandler returns the HTTP handler of the worker.
func NewHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /work", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil || n < 1 || n > MaxN {
			http.Error(w, fmt.Sprintf("n must be an integer in [1, %d]", MaxN), http.StatusBadRequest)
			return
		}
		start := time.Now()
		p := NthPrime(n)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Result{N: n, Prime: p, ElapsedMS: time.Since(start).Milliseconds()})
	})
	return mux
}

// NthPrime returns the n-th prime number (NthPrime(1) == 2), n >= 1.
func NthPrime(n int) int {
	// For n >= 6 the n-th prime is below n(ln n + ln ln n).
	limit := 15
	if n >= 6 {
		f := float64(n)
		limit = int(f*(math.Log(f)+math.Log(math.Log(f)))) + 1
	}
	composite := make([]bool, limit+1)
	count := 0
	for i := 2; i <= limit; i++ {
		if composite[i] {
			continue
		}
		count++
		if count == n {
			return i
		}
		for j := i * i; j <= limit; j += i {
			composite[j] = true
		}
	}
	panic("unreachable: sieve limit too small")
}

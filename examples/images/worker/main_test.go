package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestNthPrime(t *testing.T) {
	want := map[int]int{1: 2, 2: 3, 3: 5, 4: 7, 5: 11, 6: 13, 7: 17, 10: 29, 100: 541,
		1000: 7919, 10000: 104729, 100000: 1299709, MaxN: 15485863}
	for n, p := range want {
		if got := NthPrime(n); got != p {
			t.Errorf("NthPrime(%d) = %d, want %d", n, got, p)
		}
	}
	// Cross-check small n against trial division.
	n := 0
	for i := 2; n < 2000; i++ {
		prime := true
		for d := 2; d*d <= i; d++ {
			if i%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			n++
			if got := NthPrime(n); got != i {
				t.Fatalf("NthPrime(%d) = %d, want %d", n, got, i)
			}
		}
	}
}

func TestWorkEndpoint(t *testing.T) {
	srv := httptest.NewServer(NewHandler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/work?n=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Result
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || r.N != 10000 || r.Prime != 104729 {
		t.Fatalf("GET /work?n=10000 = %d %+v", resp.StatusCode, r)
	}

	for _, q := range []string{"", "?n=", "?n=0", "?n=-3", "?n=abc", "?n=1000001"} {
		resp, err := http.Get(srv.URL + "/work" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /work%s = %d, want 400", q, resp.StatusCode)
		}
	}

	resp, err = http.Get(srv.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health = %d", resp.StatusCode)
	}
}

package snaparchive

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// makeBenchTree writes about 1 GiB in files of mixed sizes (4 of 128 MiB,
// 64 of 4 MiB, 96 of 1 MiB, 2048 of 64 KiB, 8192 of 4 KiB) and mixed
// content: every other file random (incompressible, like compressed
// pages), the others text-like (compressible about 3x, like logs).
func makeBenchTree(b *testing.B, dir string) int64 {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"INSERT ", "INTO ", "orders ", "VALUES ", "(42, ", "'shop', ", "3.14); ", "\n", "user_", "id ", "2026-12-03 "}
	var total int64
	n := 0
	for _, group := range []struct{ count, size int }{{4, 128 << 20}, {64, 4 << 20}, {96, 1 << 20}, {2048, 64 << 10}, {8192, 4 << 10}} {
		for i := range group.count {
			data := make([]byte, 0, group.size)
			if n%2 == 0 {
				data = data[:group.size]
				for j := 0; j+8 <= len(data); j += 8 {
					v := rng.Uint64()
					for k := range 8 {
						data[j+k] = byte(v >> (8 * k))
					}
				}
			} else {
				for len(data) < group.size {
					w := words[rng.IntN(len(words))]
					if len(data)+len(w) > group.size {
						w = w[:group.size-len(data)]
					}
					data = append(data, w...)
					if rng.IntN(4) == 0 {
						data = append(data, fmt.Sprint(rng.IntN(1e6))...)
						if len(data) > group.size {
							data = data[:group.size]
						}
					}
				}
			}
			d := filepath.Join(dir, fmt.Sprintf("d%d", i%37))
			if err := os.MkdirAll(d, 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d-%d", group.size, i)), data, 0o644); err != nil {
				b.Fatal(err)
			}
			total += int64(len(data))
			n++
		}
	}
	return total
}

// countWriter counts what is written to it.
type countWriter struct{ n int64 }

func (c *countWriter) Write(b []byte) (int, error) { c.n += int64(len(b)); return len(b), nil }

// BenchmarkExport1GiB compares the export of a 1 GiB tree (page cache
// warm, output discarded) with `tar -c | zstd -1` of the same tree, run
// alternately, and reports the medians and their ratio (target <= 1.2).
func BenchmarkExport1GiB(b *testing.B) {
	if _, err := exec.LookPath("zstd"); err != nil {
		b.Skip("zstd not installed (apt-get install -y zstd)")
	}
	dir := b.TempDir()
	total := makeBenchTree(b, dir)
	runs := max(b.N, 5)
	var ours, theirs []time.Duration
	var oursSize, theirsSize int64
	m := testManifest("data")
	for range runs {
		cw := &countWriter{}
		start := time.Now()
		if _, err := Write(cw, m, []string{dir}, WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		ours = append(ours, time.Since(start))
		oursSize = cw.n

		cmd := exec.Command("sh", "-c", `tar -c -C "$1" . | zstd -1 -q -c | wc -c`, "sh", dir)
		start = time.Now()
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		theirs = append(theirs, time.Since(start))
		_, _ = fmt.Sscan(string(out), &theirsSize)
	}
	slices.Sort(ours)
	slices.Sort(theirs)
	mo, mt := ours[len(ours)/2], theirs[len(theirs)/2]
	b.ReportMetric(mo.Seconds(), "export-s")
	b.ReportMetric(mt.Seconds(), "tar-zstd-s")
	b.ReportMetric(mo.Seconds()/mt.Seconds(), "ratio")
	b.Logf("%d MiB tree, %d runs each: export median %v (file %d MiB), tar -c | zstd -1 median %v (file %d MiB); ratio %.2f; all export %v, all tar|zstd %v",
		total>>20, runs, mo, oursSize>>20, mt, theirsSize>>20, mo.Seconds()/mt.Seconds(), ours, theirs)
	_ = io.Discard
}

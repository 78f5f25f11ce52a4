// Package memlimit sets the Go runtime's soft memory limit from the
// machine's memory when the user has not set GOMEMLIMIT.
//
// CKKS keys and ciphertexts are large, pointer-free buffers: with the
// default GOGC the heap can grow to twice the live data before a
// collection, which at logN 16 means tens of GB (docs/design.md §2:
// bootstrapping peaks at 17 GB RSS by default, 12.6 GB with a 12 GiB limit,
// at the same speed). A soft limit makes the collector work harder as the
// heap nears it instead of letting the process be killed.
package memlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Fraction is the share of the available memory given to the Go heap.
const Fraction = 0.85

// Available returns the memory this process may use: the cgroup v2 limit
// (/sys/fs/cgroup/memory.max) when there is one, else MemTotal of
// /proc/meminfo.
func Available() (int64, string, error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if v := strings.TrimSpace(string(b)); v != "max" {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
				return n, "cgroup memory.max", nil
			}
		}
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	n, err := memTotal(f)
	return n, "/proc/meminfo MemTotal", err
}

// memTotal parses the MemTotal line of /proc/meminfo (in kB).
func memTotal(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || kb <= 0 || kb > math.MaxInt64/1024 {
				return 0, fmt.Errorf("memlimit: MemTotal %q", f[1])
			}
			return kb * 1024, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("memlimit: no MemTotal line")
}

// SetDefault sets the runtime's memory limit to Fraction of Available()
// unless GOMEMLIMIT is set (then the runtime already honours it). It
// returns the limit set (0 when none was) and where the figure came from.
func SetDefault() (int64, string) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return 0, "GOMEMLIMIT"
	}
	avail, src, err := Available()
	if err != nil || avail <= 0 {
		return 0, ""
	}
	limit := int64(float64(avail) * Fraction)
	debug.SetMemoryLimit(limit)
	return limit, src
}

// HEGCPercent is the GC target used while evaluating ciphertexts: the heap
// may grow 25% above the live data before a collection, instead of the
// runtime's default 100%. HE values are large pointer-free arrays (keys,
// ciphertexts, encoded diagonals) and every traced op allocates its output,
// so with the default the peak RSS is up to twice the live set; marking
// pointer-free memory is cheap, so collecting more often costs little time.
// Measured on the demo circuit (`infer --mnist 16`, n15, 2 threads, in one
// run; benchmarks/cost/README.md): peak RSS 3.01/3.07 GB at GOGC=100 against
// 1.99/2.01 GB at 25, evaluation 27.22 s against 27.18 s.
const HEGCPercent = 25

// SetHEGC sets the GC percent to HEGCPercent unless GOGC is set (then the
// runtime already honours it). It returns the previous setting, or -2 when
// GOGC decided.
func SetHEGC() int {
	if os.Getenv("GOGC") != "" {
		return -2
	}
	return debug.SetGCPercent(HEGCPercent)
}

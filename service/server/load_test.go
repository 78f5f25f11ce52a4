package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/polyformer/polyformer/he/circuit"
	"github.com/polyformer/polyformer/service/client"
	"github.com/polyformer/polyformer/service/server"
)

// Load: 16 concurrent clients, each with its own keys, 4 queries each,
// against MaxConcurrent 2 and a queue of 2: every query ends in a correct
// answer (503s are retried by the client), none is lost, and the heap
// stays under the stated bound. Results go to benchmarks/serve/.
func TestLoad(t *testing.T) {
	const (
		clients, queries = 16, 4
		heapBound        = 768 << 20 // server and all 16 clients in this process
	)
	data := toyCircuitFile(t, 1)
	full, err := circuit.DecodeCircuit(data, nil)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	ts := startServer(t, [][]byte{data}, false, server.Config{MaxConcurrent: 2, MaxQueue: 2, Workers: 1, Registry: reg, RetryAfter: time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var peak atomic.Uint64
	stopSample := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stopSample:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()

	var (
		mu        sync.Mutex
		latencies []time.Duration
		retries   atomic.Int64
	)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, clients*queries)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cl, err := client.New(ts.URL, client.Options{MaxRetries: 200, RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond,
				Logf: func(string, ...any) { retries.Add(1) }})
			if err != nil {
				errs <- err
				return
			}
			info, err := cl.Circuit(ctx, "")
			if err != nil {
				errs <- err
				return
			}
			v, err := client.VerifyCircuit(info, client.Policy{AllowInsecure: true})
			if err != nil {
				errs <- err
				return
			}
			keys, err := client.EnsureKeys(t.TempDir(), v, nil)
			if err != nil {
				errs <- err
				return
			}
			if _, err := cl.UploadKeys(ctx, keys.EvalPath, keys.ID, nil); err != nil {
				errs <- err
				return
			}
			r := rand.New(rand.NewPCG(uint64(i), 3))
			for q := 0; q < queries; q++ {
				px := make([]float64, 16)
				for j := range px {
					px[j] = r.Float64()
				}
				vecs, err := v.Skeleton.EncodeImages(px, 1, 4, 4)
				if err != nil {
					errs <- err
					return
				}
				t0 := time.Now()
				got, _, err := cl.Predict(ctx, v, keys, vecs, 1)
				if err != nil {
					errs <- fmt.Errorf("client %d query %d: %w", i, q, err)
					return
				}
				lat := time.Since(t0)
				sim, _, err := full.Simulate(vecs[0], circuit.SimOptions{})
				if err != nil {
					errs <- err
					return
				}
				want, _ := full.DecodeLogits([][]float64{sim}, 1)
				for j := range want[0] {
					if d := want[0][j] - got[0][j]; d > 1e-4 || d < -1e-4 {
						errs <- fmt.Errorf("client %d query %d output %d: encrypted %g, plaintext %g", i, q, j, got[0][j], want[0][j])
						return
					}
				}
				mu.Lock()
				latencies = append(latencies, lat)
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	close(stopSample)
	for err := range errs {
		require.NoError(t, err)
	}
	wall := time.Since(start)
	require.Len(t, latencies, clients*queries, "every query answered")
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	overloaded := testutil.ToFloat64(counterVec(t, reg, "polyformer_http_errors_total", map[string]string{"kind": "overloaded"}))
	t.Logf("load: %d clients x %d queries, max-concurrent 2, queue 2: wall %s (keygen and upload included), %.1f queries/s, latency p50 %s p99 %s max %s; 503 answers %v (client retries %d); peak heap in use %.1f MB (bound %d MB)",
		clients, queries, wall.Round(time.Millisecond), float64(clients*queries)/wall.Seconds(), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond),
		latencies[len(latencies)-1].Round(time.Millisecond), overloaded, retries.Load(), float64(peak.Load())/1e6, heapBound>>20)
	require.Less(t, peak.Load(), uint64(heapBound))
	require.Greater(t, overloaded, 0.0, "the queue overflowed at least once (503 then retry)")
}

// counterVec sums the samples of a counter family whose labels include match.
func counterVec(t *testing.T, reg *prometheus.Registry, name string, match map[string]string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue metric
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sum"})
	c.Add(sum)
	return c
}

package server

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

type metrics struct {
	requests    *prometheus.CounterVec
	errors      *prometheus.CounterVec
	bytesIn     *prometheus.CounterVec
	bytesOut    *prometheus.CounterVec
	evalSeconds *prometheus.HistogramVec
	cacheMisses prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polyformer_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polyformer_http_errors_total",
			Help: "HTTP error answers by route and error kind."}, []string{"route", "kind"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polyformer_http_request_bytes_total",
			Help: "Request body bytes read, by route."}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polyformer_http_response_bytes_total",
			Help: "Response body bytes written, by route."}, []string{"route"}),
		evalSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "polyformer_evaluation_seconds",
			Help:    "Encrypted evaluation latency per circuit (first 16 hex digits of its id).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 18)}, []string{"circuit"}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{Name: "polyformer_key_cache_misses_total",
			Help: "Infer requests that loaded their key set from the store."}),
	}
	reg.MustRegister(m.requests, m.errors, m.bytesIn, m.bytesOut, m.evalSeconds, m.cacheMisses,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polyformer_queue_depth",
			Help: "Admitted infer requests waiting for an evaluation slot."}, func() float64 { return float64(s.adm.waiting.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polyformer_evaluations_in_flight",
			Help: "Evaluations running."}, func() float64 { return float64(s.adm.running.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polyformer_requests_admitted",
			Help: "Infer requests admitted (reading, queued or evaluating)."}, func() float64 { return float64(s.adm.inSystem.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polyformer_keystore_bytes",
			Help: "Bytes of complete key sets in the key store."}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := s.cfg.Store.TotalBytes(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "polyformer_key_cache_hits_total",
			Help: "Key-set lookups served by the in-memory cache."}, func() float64 { return float64(s.cfg.Cache.Stats().Hits) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polyformer_key_cache_bytes",
			Help: "Bytes of loaded key sets in the cache."}, func() float64 { return float64(s.cfg.Cache.Stats().Bytes) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func (m *metrics) observe(route string, status int, kind string, in, out int64) {
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	if status >= 400 {
		if kind == "" {
			kind = "http_" + strconv.Itoa(status)
		}
		m.errors.WithLabelValues(route, kind).Inc()
	}
	m.bytesIn.WithLabelValues(route).Add(float64(in))
	m.bytesOut.WithLabelValues(route).Add(float64(out))
}

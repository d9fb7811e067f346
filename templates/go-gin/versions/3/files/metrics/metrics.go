// Package metrics holds the Prometheus metrics every service of the ecosystem exposes (the
// dashboards query them): http_requests_total{method,path,status} and
// http_request_duration_seconds{method,path}, where `path` is the route template
// (`/items/{item_id}`), never the raw URL, and "unmatched" for paths no route serves. Prometheus's
// own scrapes of /metrics are not counted.
package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Unmatched labels requests no route serves (so scanners cannot blow up the label set).
const Unmatched = "unmatched"

// MetricsPath is where Prometheus scrapes; its requests are not counted (not the service's traffic).
const MetricsPath = "/metrics"

// Buckets are the bounds of http_request_duration_seconds in every service of the ecosystem (the
// Python ones too, so one dashboard query spans them): 1 ms doubling to 8.192 s, so loopback
// latencies resolve, and none a whole number, so each `le` label reads the same from every client
// library (Go writes 1 as "1", Python as "1.0").
var Buckets = []float64{0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048,
	4.096, 8.192}

// Metrics is one registry per app, so tests can build several apps in one process.
type Metrics struct {
	Registry     *prometheus.Registry
	Requests     *prometheus.CounterVec
	Duration     *prometheus.HistogramVec
	ItemsCreated prometheus.Counter
}

// New registers the HTTP metrics, the example domain metric and the Go runtime's.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests handled.",
		}, []string{"method", "path", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Time to handle an HTTP request.", Buckets: Buckets,
		}, []string{"method", "path"}),
		ItemsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "items_created_total", Help: "Items created (an example business metric).",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.Duration, m.ItemsCreated,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Middleware counts and times every request, the refused and the unrouted ones too, but the
// scrapes of MetricsPath; install it first so it sees the final status.
func (m *Metrics) Middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.FullPath() == MetricsPath {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		path := RouteTemplate(c.FullPath())
		method := c.Request.Method
		m.Duration.WithLabelValues(method, path).Observe(time.Since(start).Seconds())
		m.Requests.WithLabelValues(method, path, strconv.Itoa(c.Writer.Status())).Inc()
	}
}

// RouteTemplate turns gin's `/items/:item_id` into `/items/{item_id}` (the Python template's
// spelling); "" (no route) is Unmatched.
func RouteTemplate(fullPath string) string {
	if fullPath == "" {
		return Unmatched
	}
	parts := strings.Split(fullPath, "/")
	for i, part := range parts {
		if len(part) > 1 && (part[0] == ':' || part[0] == '*') {
			parts[i] = "{" + part[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

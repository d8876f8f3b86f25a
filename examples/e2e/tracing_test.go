package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// collector is an OTLP/HTTP trace collector on loopback: it takes what Caddy's exporter sends
// to /v1/traces (protobuf, as the OTLP exporter's default http/protobuf protocol sends it).
type collector struct {
	mu       sync.Mutex
	requests int
	spans    []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		http.NotFound(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.requests++
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// exported returns the spans received so far and how many export requests brought them.
func (c *collector) exported() ([]*tracepb.Span, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...), c.requests
}

// waitSpan waits for a span that match accepts.
func (c *collector) waitSpan(t *testing.T, what string, match func(*tracepb.Span) bool) *tracepb.Span {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		spans, _ := c.exported()
		for _, s := range spans {
			if match(s) {
				return s
			}
		}
		if time.Now().After(deadline) {
			var names []string
			for _, s := range spans {
				names = append(names, s.Name)
			}
			t.Fatalf("no %s among the %d exported spans %q", what, len(spans), names)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// headerReceiver is the signature-verifying receiver, recording the traceparent header of
// every webhook ("" when absent).
type headerReceiver struct {
	*receiver.Receiver
	mu          sync.Mutex
	traceparent []string
}

func (h *headerReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.traceparent = append(h.traceparent, strings.Join(r.Header.Values("Traceparent"), ","))
	h.mu.Unlock()
	h.Receiver.ServeHTTP(w, r)
}

func (h *headerReceiver) headers() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.traceparent...)
}

// tracingEnv is Caddy in front of the simulated fax service, with an OTLP collector that
// Caddy's OTEL_* environment points at, and a receiver that records trace headers.
type tracingEnv struct {
	col    *collector
	rcv    *headerReceiver
	rcvURL string
	caddy  *harness.Caddy
	client *harness.Client
}

// sendDone sends a one-page fax through Caddy with callback_url rcvURL+path and waits until the
// fax service reports it done; it returns the fax's id.
func (te *tracingEnv) sendDone(ctx context.Context, t *testing.T, path string) int64 {
	t.Helper()
	id, err := te.client.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1),
		CallbackURL: te.rcvURL + path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := te.client.WaitDone(ctx, id, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	return id
}

// newTracingEnv starts it all; with traced, the site has Caddy's `tracing` directive. The
// receiver answers with respond (nil: verify and accept); faxhookOpts are more global options.
func newTracingEnv(t *testing.T, traced bool, respond func(receiver.Delivery) int, faxhookOpts string) *tracingEnv {
	t.Helper()
	bin, err := harness.CaddyBinary()
	if err != nil {
		t.Fatal(err)
	}
	te := &tracingEnv{col: &collector{}}
	colURL := serve(t, te.col)
	svc := faxapp.New(faxapp.Config{Tick: 50 * time.Millisecond, Seed: 3, APIKey: key, APISecret: secret})
	faxURL := serve(t, svc)
	te.rcv = &headerReceiver{Receiver: receiver.New(receiver.Config{Token: token, Respond: respond})}
	te.rcvURL = serve(t, te.rcv)
	admin, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	site, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	tracing := ""
	if traced {
		tracing = "tracing {\n\t\tspan \"{http.request.method} {http.request.uri.path}\"\n\t}"
	}
	dir := t.TempDir()
	caddyfile := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		allow_private 127.0.0.0/8
		%s
	}
}

http://%s {
	%s
	handle /v2.1/* {
		faxhook
		reverse_proxy %s
	}
}
`, admin, filepath.Join(dir, "storage"), faxhookOpts, site, tracing, faxURL)
	te.caddy, err = harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, caddyfile,
		"FAXHOOK_TOKEN="+token,
		// Caddy's tracing exports with the OpenTelemetry SDK's OTLP exporter, configured
		// from the environment: our collector, a short batch delay.
		"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTEL_EXPORTER_OTLP_ENDPOINT="+colURL, "OTEL_BSP_SCHEDULE_DELAY=100", "OTEL_SERVICE_NAME=faxhook-e2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := te.caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
		if t.Failed() {
			t.Logf("caddy log:\n%s", te.caddy.Tail(60))
		}
	})
	// The client traces its own requests: the send carries a traceparent of its own trace.
	te.client = &harness.Client{Base: "http://" + site + "/v2.1", Key: key, Secret: secret,
		HTTP: &http.Client{Transport: clientTrace{http.DefaultTransport}}}
	return te
}

// The client's trace: the send request carries it as the parent of Caddy's span.
const (
	clientTraceID     = "5b8efff798038103d269b633813fc60c"
	clientTraceParent = "00-" + clientTraceID + "-eee19b7ec3c1b174-01"
)

// clientTrace adds the client's traceparent to its send requests (POST).
type clientTrace struct{ rt http.RoundTripper }

func (c clientTrace) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		r = r.Clone(r.Context())
		r.Header.Set("Traceparent", clientTraceParent)
	}
	return c.rt.RoundTrip(r)
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// attr returns the value of a span attribute as text, "" when absent.
func attr(s *tracepb.Span, key string) string {
	for _, a := range s.Attributes {
		if a.Key != key {
			continue
		}
		if _, ok := a.Value.Value.(*commonpb.AnyValue_IntValue); ok {
			return strconv.FormatInt(a.Value.GetIntValue(), 10)
		}
		return a.Value.GetStringValue()
	}
	return ""
}

// With Caddy's `tracing` on the site, a trace shows the send request, and, in the same trace,
// the delivery of the fax's webhook (a child of the send's span, linked to the status request
// that revealed the completion); the receiver gets a traceparent in that trace, naming the
// delivery span.
func TestTracingLinksSendToDelivery(t *testing.T) {
	te := newTracingEnv(t, true, nil, "")
	ctx := ctxT(t, 60*time.Second)
	id := te.sendDone(ctx, t, "/traced")
	ds, err := te.rcv.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("no webhook: %v", err)
	}
	if !ds[0].Verified || ds[0].Fields["event_type"] != "fax_completed" {
		t.Fatalf("delivery %+v", ds[0])
	}

	send := te.col.waitSpan(t, "span of the send request", func(s *tracepb.Span) bool {
		return s.Name == "POST /v2.1/faxes" && s.Kind == tracepb.Span_SPAN_KIND_SERVER
	})
	delivery := te.col.waitSpan(t, "delivery span", func(s *tracepb.Span) bool { return s.Name == "webhook fax_completed" })

	traceID := hexID(send.TraceId)
	if traceID != clientTraceID {
		t.Errorf("send span in trace %s, want the client's %s", traceID, clientTraceID)
	}
	if got := hexID(delivery.TraceId); got != traceID {
		t.Errorf("delivery span in trace %s, want the send's %s", got, traceID)
	}
	if got := hexID(delivery.ParentSpanId); got != hexID(send.SpanId) {
		t.Errorf("delivery span's parent %s, want the send's span %s", got, hexID(send.SpanId))
	}
	if delivery.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("delivery span kind %v", delivery.Kind)
	}
	if attr(delivery, "faxhook.fax_id") != strconv.FormatInt(id, 10) || attr(delivery, "faxhook.event_type") != "fax_completed" ||
		attr(delivery, "http.response.status_code") != "200" || attr(delivery, "url.full") != te.rcvURL+"/traced" {
		t.Errorf("delivery span attributes %v", delivery.Attributes)
	}
	// The status request that revealed the completion is a trace of its own, linked.
	if len(delivery.Links) != 1 {
		t.Fatalf("delivery span links %v, want one to the status request", delivery.Links)
	}
	link := delivery.Links[0]
	status := te.col.waitSpan(t, "span of the linked status request", func(s *tracepb.Span) bool {
		return bytes.Equal(s.SpanId, link.SpanId) && bytes.Equal(s.TraceId, link.TraceId)
	})
	if status.Name != fmt.Sprintf("GET /v2.1/faxes/%d", id) {
		t.Errorf("the delivery links to %q, want the status request of fax %d", status.Name, id)
	}

	hdr := te.rcv.headers()
	if want := "00-" + traceID + "-" + hexID(delivery.SpanId) + "-01"; len(hdr) != 1 || hdr[0] != want {
		t.Errorf("receiver got traceparent %q, want %q (the delivery span)", hdr, want)
	}
}

// A resend makes a new fax: its webhook is delivered in the resend request's trace, as a child
// of the resend's span, not of the first send's.
func TestTracingResendStartsItsOwnFax(t *testing.T) {
	te := newTracingEnv(t, true, nil, "")
	ctx := ctxT(t, 60*time.Second)
	first := te.sendDone(ctx, t, "/first")
	second, err := te.client.Resend(ctx, first, te.rcvURL+"/resent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := te.client.WaitDone(ctx, second, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := te.rcv.Wait(ctx, 2); err != nil {
		t.Fatalf("webhooks: %v", err)
	}
	resend := te.col.waitSpan(t, "span of the resend request", func(s *tracepb.Span) bool {
		return s.Name == fmt.Sprintf("POST /v2.1/faxes/%d/resend", first)
	})
	delivery := te.col.waitSpan(t, "delivery span of the resent fax", func(s *tracepb.Span) bool {
		return s.Name == "webhook fax_completed" && attr(s, "faxhook.fax_id") == strconv.FormatInt(second, 10)
	})
	if !bytes.Equal(delivery.TraceId, resend.TraceId) || !bytes.Equal(delivery.ParentSpanId, resend.SpanId) {
		t.Errorf("resent fax's delivery span: trace %s parent %s, want a child of the resend's span %s/%s",
			hexID(delivery.TraceId), hexID(delivery.ParentSpanId), hexID(resend.TraceId), hexID(resend.SpanId))
	}
}

// After a restart, until a traced request shows faxhook Caddy's tracer provider again, a
// traced fax's retry still carries its trace: the traceparent of the send's span, stored with
// the job; the attempt itself is not exported.
func TestTracingRetryAfterRestartKeepsTheSendsTrace(t *testing.T) {
	var accept atomic.Bool
	te := newTracingEnv(t, true, func(receiver.Delivery) int {
		if accept.Load() {
			return 200
		}
		return 500
	}, "retry_schedule 1s 1s")
	ctx := ctxT(t, 60*time.Second)
	te.sendDone(ctx, t, "/restart")
	if _, err := te.rcv.Wait(ctx, 1); err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	send := te.col.waitSpan(t, "span of the send request", func(s *tracepb.Span) bool { return s.Name == "POST /v2.1/faxes" })
	te.col.waitSpan(t, "span of the failed first attempt", func(s *tracepb.Span) bool { return s.Name == "webhook fax_completed" })
	if err := te.caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	accept.Store(true)
	if err := te.caddy.Start(); err != nil {
		t.Fatal(err)
	}
	ds, err := te.rcv.Wait(ctx, 2)
	if err != nil {
		t.Fatalf("retry after the restart: %v", err)
	}
	if ds[1].Status != 200 {
		t.Fatalf("retry answered %d", ds[1].Status)
	}
	hdr := te.rcv.headers()
	if want := "00-" + hexID(send.TraceId) + "-" + hexID(send.SpanId) + "-01"; hdr[1] != want {
		t.Errorf("retry after restart carried traceparent %q, want the send's stored %q", hdr[1], want)
	}
	if hdr[0] == hdr[1] {
		t.Errorf("first attempt carried %q too: want its own span's", hdr[0])
	}
	if err := te.caddy.Stop(); err != nil { // flushes what Caddy's provider holds
		t.Fatal(err)
	}
	spans, _ := te.col.exported()
	n := 0
	for _, s := range spans {
		if s.Name == "webhook fax_completed" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d delivery spans exported, want 1: the retry went out before any traced request (see README, Tracing)", n)
	}
}

// Without `tracing`, nothing changes: no traceparent reaches the receiver, even when the
// client's own request carried one, and nothing is exported although OTEL_* points at a
// collector.
func TestNoTracingNoTraceParent(t *testing.T) {
	te := newTracingEnv(t, false, nil, "")
	ctx := ctxT(t, 60*time.Second)
	te.sendDone(ctx, t, "/untraced")
	ds, err := te.rcv.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("no webhook: %v", err)
	}
	if !ds[0].Verified {
		t.Fatalf("delivery %+v", ds[0])
	}
	if err := te.caddy.Stop(); err != nil { // a provider, had one been made, flushes at shutdown
		t.Fatal(err)
	}
	if hdr := te.rcv.headers(); len(hdr) != 1 || hdr[0] != "" {
		t.Errorf("receiver got traceparent headers %q, want none", hdr)
	}
	if spans, n := te.col.exported(); n != 0 {
		t.Errorf("%d export requests (%d spans) without tracing configured", n, len(spans))
	}
}

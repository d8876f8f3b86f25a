package httpsend

import (
	"context"
	"encoding/hex"
	"net/url"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/queue"
)

// Labels of a job's Meta that the Sender reads for tracing (W3C Trace Context). The queue
// stores them like any label; the application sets them when it enqueues the job.
const (
	// LabelTraceParent holds the W3C traceparent of the trace the job belongs to (for faxhook,
	// the request that revealed the fax). Each attempt is a span in that trace, a child of this
	// context, and the webhook carries a traceparent header in it. A job without the label is
	// not traced and its webhook carries no traceparent header.
	LabelTraceParent = "traceparent"
	// LabelTraceLink holds another W3C traceparent that the attempt spans link to (for faxhook,
	// the request that revealed the event, when it is not the one in LabelTraceParent).
	LabelTraceLink = "tracelink"
)

// HeaderTraceParent is the W3C Trace Context header a traced webhook carries.
const HeaderTraceParent = "traceparent"

// SpanName is the name of the span of one delivery attempt, unless Options.SpanName names it.
const SpanName = "webhook POST"

// tracerName names the instrumentation that makes the attempt spans.
const tracerName = "github.com/faxhook/caddy-faxhook/queue/httpsend"

// traceContext is the W3C propagator: the one format the traceparent label is stored in and
// the one header the webhook carries, whatever propagators the tracing provider's own
// requests use.
var traceContext = propagation.TraceContext{}

// ParseTraceParent returns the span context of a W3C traceparent value; it is invalid
// (trace.SpanContext.IsValid false) when v is not one.
func ParseTraceParent(v string) trace.SpanContext {
	if v == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{HeaderTraceParent: v})
	return trace.SpanContextFromContext(ctx)
}

// FormatTraceParent returns the W3C traceparent value of sc, "" when sc is invalid: what
// propagation.TraceContext injects (version 00, the sampled and random flags only), formatted
// here in one allocation, as the handler does it for every traced fax API request.
func FormatTraceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	flags := sc.TraceFlags() & (trace.FlagsSampled | trace.FlagsRandom)
	var b [55]byte // 00-<32 hex>-<16 hex>-<2 hex>
	b[0], b[1], b[2] = '0', '0', '-'
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(flags)})
	return string(b[:])
}

// attemptTrace is the tracing of one attempt: the traceparent header it sends ("" for none)
// and its span (nil when no tracer provider traces it).
type attemptTrace struct {
	header string
	span   trace.Span
}

// startAttempt begins the tracing of an attempt of job: nothing for a job without a valid
// LabelTraceParent; otherwise a client span that is a child of that context (linked to the
// context in LabelTraceLink, if any) when a tracer provider is available, whose context the
// webhook's traceparent header then carries; without a provider, the header carries the stored
// context itself, so that the receiver's own trace still joins it.
func (s *Sender) startAttempt(ctx context.Context, job *queue.Job, u *url.URL, target string) (context.Context, attemptTrace) {
	parent := ParseTraceParent(job.Meta.Get(LabelTraceParent))
	if !parent.IsValid() {
		return ctx, attemptTrace{}
	}
	ctx = trace.ContextWithRemoteSpanContext(ctx, parent)
	var tp trace.TracerProvider
	if s.tracerProvider != nil {
		tp = s.tracerProvider()
	}
	if tp == nil {
		return ctx, attemptTrace{header: FormatTraceParent(parent)}
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", "POST"),
		attribute.String("url.full", target),
		attribute.String("server.address", u.Hostname()),
		attribute.String("webhook.job_id", job.ID),
		attribute.String("webhook.event_id", job.EventID),
		attribute.Int("webhook.attempt", len(job.Attempts)+1),
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		attrs = append(attrs, attribute.Int("server.port", p))
	}
	if s.spanAttributes != nil {
		attrs = append(attrs, s.spanAttributes(job)...)
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...)}
	if link := ParseTraceParent(job.Meta.Get(LabelTraceLink)); link.IsValid() && !link.Equal(parent) {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	name := SpanName
	if s.spanName != nil {
		if n := s.spanName(job); n != "" {
			name = n
		}
	}
	ctx, span := tp.Tracer(tracerName).Start(ctx, name, opts...)
	at := attemptTrace{header: FormatTraceParent(span.SpanContext()), span: span}
	if at.header == "" {
		// A provider whose spans have no context of their own (a no-op one) still passes the
		// stored context on.
		at.header = FormatTraceParent(parent)
	}
	return ctx, at
}

// end ends the attempt's span with its outcome.
func (at attemptTrace) end(res queue.Result) {
	if at.span == nil {
		return
	}
	if res.Status != 0 {
		at.span.SetAttributes(attribute.Int("http.response.status_code", res.Status))
	}
	if res.Err != nil {
		at.span.SetStatus(codes.Error, res.Err.Error())
		if res.Status != 0 {
			at.span.SetAttributes(attribute.String("error.type", strconv.Itoa(res.Status)))
		}
	}
	at.span.End()
}

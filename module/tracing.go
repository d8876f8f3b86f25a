package module

import (
	"context"
	"reflect"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/module/render"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
)

// The job labels (queue.Job.Meta) that carry a fax's trace to its webhooks' senders.
const (
	labelTraceParent = httpsend.LabelTraceParent
	labelTraceLink   = httpsend.LabelTraceLink
)

// Tracing (OpenTelemetry) follows Caddy's `tracing` handler: faxhook has no tracing option of
// its own and sets no global provider.
//
// Caddy's tracing handler builds one TracerProvider per process (exporter from the OTEL_*
// environment variables) and keeps it to itself: it does not install it as OpenTelemetry's
// global provider, and no other module can ask for it. What a downstream handler does see is
// the span the tracing handler started for the request, in the request's context; an SDK span
// names its provider (trace.Span.TracerProvider). So the faxhook handler reads the request's
// span context (the traceparent a fax's events keep) and, from a recording span, the provider
// (the one delivery attempts are traced with). Until a traced request has been seen since
// Caddy started, no provider is known: webhooks of traced faxes then carry their stored
// traceparent, but their attempts are not exported. A site without `tracing` has no span in
// its requests' contexts: nothing is stored, exported or sent.

// tracerHolder keeps the tracer provider of Caddy's tracing handler, learned from the spans of
// the requests it traced; the engine's HTTP senders trace delivery attempts with it.
type tracerHolder struct {
	v atomic.Pointer[tracerBox]
}

type tracerBox struct{ tp trace.TracerProvider }

// learn makes tp the provider of delivery spans; nil is ignored. Caddy keeps one provider
// while any config uses `tracing`, and makes a new one after a config without it: the newest
// seen wins.
func (h *tracerHolder) learn(tp trace.TracerProvider) {
	if tp == nil {
		return
	}
	if cur := h.v.Load(); cur != nil && reflect.TypeOf(tp).Comparable() && reflect.TypeOf(cur.tp) == reflect.TypeOf(tp) && cur.tp == tp {
		return // the common case: no allocation per traced request
	}
	h.v.Store(&tracerBox{tp})
}

// provider returns the provider learned last, nil if none.
func (h *tracerHolder) provider() trace.TracerProvider {
	if b := h.v.Load(); b != nil {
		return b.tp
	}
	return nil
}

// TraceOf returns what the span of Caddy's tracing handler in a request's context tells
// faxhook: the request's W3C traceparent (kept with the events of the faxes it reveals), and,
// when the span records, its tracer provider (for delivery spans). Both are empty when the
// site has no `tracing`: a traceparent header from the client alone does not count.
func TraceOf(ctx context.Context) (traceparent string, tp trace.TracerProvider) {
	span := trace.SpanFromContext(ctx)
	sc := span.SpanContext()
	if !sc.IsValid() {
		return "", nil
	}
	if span.IsRecording() {
		tp = span.TracerProvider()
	}
	return httpsend.FormatTraceParent(sc), tp
}

// traceMeta returns the job labels that trace an event of the fax rec: the fax's trace
// context and, when the observation that revealed the event came from another traced
// request, that request's as a link. Nil for a fax no traced request revealed.
func traceMeta(rec *trackedFax) queue.Labels {
	var l queue.Labels
	if rec.TraceParent != "" {
		l = append(l, queue.Label{Name: labelTraceParent, Value: rec.TraceParent})
	}
	if rec.traceLink != "" && rec.traceLink != rec.TraceParent {
		l = append(l, queue.Label{Name: labelTraceLink, Value: rec.traceLink})
	}
	return l
}

// spanName names the delivery spans of a webhook job after its event: "webhook fax_completed",
// so that a trace reads send → webhook fax_completed.
func spanName(j *queue.Job) string {
	if _, eventType := render.FaxOf(j.Meta); eventType != "" {
		return "webhook " + eventType
	}
	return ""
}

// spanAttributes describes a webhook job on its delivery spans: the fax and the event.
func spanAttributes(j *queue.Job) []attribute.KeyValue {
	faxID, eventType := render.FaxOf(j.Meta)
	return []attribute.KeyValue{attribute.Int64("faxhook.fax_id", faxID), attribute.String("faxhook.event_type", eventType)}
}

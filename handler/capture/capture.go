// Package capture tees an HTTP response: every byte goes to the client first, unchanged, and a
// bounded copy is kept for faxhook to inspect after the handler chain returns. It also decodes
// the captured copy (gzip, deflate, zstd) behind a decompressed-size cap.
//
// Unlike caddyhttp.NewResponseRecorder, which buffers all or nothing, a Writer never holds back
// client bytes, so streaming, flushing, server-sent events and hijacking keep working.
package capture

import (
	"io"
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Writer wraps a response writer: every byte goes to the client first, unchanged, and a bounded
// copy is kept.
//
// The decision whether to keep a copy is taken once, when the final (non-1xx) status is written,
// by the want function given to NewWriter. Writer embeds *caddyhttp.ResponseWriterWrapper, so
// http.NewResponseController finds the underlying writer through Unwrap (flush, hijack, deadlines,
// full duplex). A Writer is used by one handler goroutine like any http.ResponseWriter; its
// accessors are meant to be called after the handler chain returned.
type Writer struct {
	*caddyhttp.ResponseWriterWrapper

	want      func(status int, h http.Header) bool
	limit     int
	status    int
	capture   bool
	truncated bool
	buf       []byte
	pooled    *[]byte // the pool entry buf came from (its slice header is reused on Release)
}

// NewWriter returns a Writer around w that keeps at most limit bytes of the response body when
// want(status, header) returns true for the final status. A nil want captures nothing; a limit
// of zero or less keeps no bytes (any body then counts as truncated).
func NewWriter(w http.ResponseWriter, limit int, want func(status int, h http.Header) bool) *Writer {
	if limit < 0 {
		limit = 0
	}
	return &Writer{
		ResponseWriterWrapper: &caddyhttp.ResponseWriterWrapper{ResponseWriter: w},
		want:                  want,
		limit:                 limit,
	}
}

// WriteHeader forwards the status to the client. Informational (1xx) statuses pass through and
// are not recorded; the first final status is recorded and decides, through want, whether the
// body is captured. Later calls are forwarded unchanged (net/http reports them as superfluous).
func (w *Writer) WriteHeader(status int) {
	if status >= 100 && status <= 199 {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	if w.status == 0 {
		w.status = status
		if w.want != nil {
			w.capture = w.want(status, w.ResponseWriter.Header())
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write writes p to the client first, then keeps a copy of the bytes the client writer accepted,
// up to the limit. A first Write without WriteHeader implies status 200.
func (w *Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(p)
	if w.capture && n > 0 {
		w.keep(p[:n])
	}
	return n, err
}

// ReadFrom implements io.ReaderFrom. While capturing, bytes are copied through Write so that the
// copy is kept; otherwise the call is forwarded to the underlying writer's ReadFrom, so that
// sendfile/splice still work for uncaptured responses.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.capture {
		// The anonymous struct hides Writer.ReadFrom so io.Copy cannot recurse into it.
		return io.Copy(struct{ io.Writer }{w}, r)
	}
	return w.ResponseWriterWrapper.ReadFrom(r)
}

// FlushError flushes the underlying writer through http.ResponseController, so a writer chain
// that supports flushing anywhere below is flushed. Like net/http, a flush before any status
// commits status 200, which is recorded here.
func (w *Writer) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher for callers that type-assert it; errors are dropped (use
// http.NewResponseController, which prefers FlushError).
func (w *Writer) Flush() { _ = w.FlushError() }

// Status returns the final status written, or 0 if none was written (1xx statuses are not
// recorded).
func (w *Writer) Status() int { return w.status }

// Captured reports whether want accepted the response at its final status, i.e. whether Bytes
// holds (a prefix of) the body.
func (w *Writer) Captured() bool { return w.capture }

// Truncated reports whether a captured body had more than limit bytes, so that Bytes holds only
// its first limit bytes. It is false for responses that were not captured.
func (w *Writer) Truncated() bool { return w.truncated }

// Bytes returns the captured copy of the body, exactly as written to the client (possibly
// compressed; see Decode). The slice is owned by the Writer and is valid until Release.
func (w *Writer) Bytes() []byte { return w.buf }

// Release returns the capture buffer to a pool; Bytes returns nil afterwards. Buffers larger than
// twice the limit are not pooled. Release is idempotent.
func (w *Writer) Release() {
	if w.buf == nil && w.pooled == nil {
		return
	}
	b := w.buf
	p := w.pooled
	w.buf, w.pooled = nil, nil
	if cap(b) == 0 || cap(b) > 2*w.limit {
		return
	}
	if p == nil {
		p = new([]byte)
	}
	*p = b[:0]
	bufPool.Put(p)
}

// bufPool holds *[]byte so that Put does not allocate.
var bufPool sync.Pool

// minGrow is the smallest capture buffer allocated.
const minGrow = 4 << 10

// keep appends p to the capture buffer, up to the limit.
func (w *Writer) keep(p []byte) {
	room := w.limit - len(w.buf)
	if len(p) > room {
		p = p[:room]
		w.truncated = true
	}
	if len(p) == 0 {
		return
	}
	if w.buf == nil {
		if v, ok := bufPool.Get().(*[]byte); ok {
			w.pooled = v
			w.buf = (*v)[:0]
		}
	}
	if need := len(w.buf) + len(p); need > cap(w.buf) {
		c := max(2*cap(w.buf), need, minGrow)
		c = min(c, w.limit) // the copy never exceeds the limit, so neither does the buffer
		nb := make([]byte, len(w.buf), c)
		copy(nb, w.buf)
		w.buf = nb
	}
	w.buf = append(w.buf, p...)
}

// Interface guards.
var (
	_ http.ResponseWriter = (*Writer)(nil)
	_ http.Flusher        = (*Writer)(nil)
	_ io.ReaderFrom       = (*Writer)(nil)
	_ interface {
		Unwrap() http.ResponseWriter
	} = (*Writer)(nil)
)

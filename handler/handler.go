// Package handler is faxhook's HTTP middleware, `http.handlers.faxhook`. Put it in front of
// `reverse_proxy` to a fax service: it asks the faxhook app's profile which fax API call a
// request is, taps the callback URL of send, resend and phone-number requests as they stream,
// keeps a bounded copy of the service's JSON responses, and hands these raw captures to the app,
// which parses them with the same profile. The client gets exactly the upstream's bytes; parsing
// and persistence happen in the app, off the request path.
package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/handler/capture"
	"github.com/faxhook/caddy-faxhook/handler/jsontap"
	"github.com/faxhook/caddy-faxhook/module"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// DefaultMaxCapture is how much of a response body is kept for parsing by default.
const DefaultMaxCapture = 1 << 20

// MaxCaptureLimit is the largest MaxCapture accepted (1 GiB), the bound the Caddyfile always
// had: every response being observed may hold that much memory.
const MaxCaptureLimit = 1 << 30

// Handler observes fax API traffic on its way to and from the fax service.
type Handler struct {
	// MaxCapture is how many bytes of a matched JSON response are kept for parsing (after
	// decompression too). Larger responses still reach the client whole; faxhook skips them.
	// 1 byte to MaxCaptureLimit (1 GiB); default 1 MiB.
	MaxCapture int `json:"max_capture,omitempty"`

	// Mapping is no longer an option of the handler: the mapping is an option of the faxhook
	// app (global option `faxhook { mapping FILE }`, JSON apps.faxhook.mapping), so that the
	// poller and the PDF fetch use it too. A config that still sets it fails to provision with
	// an error that says so.
	Mapping json.RawMessage `json:"mapping,omitempty"`

	app  *module.App
	prof profile.Profile
	log  *zap.Logger
}

// Interface guards.
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.faxhook", New: func() caddy.Module { return new(Handler) }}
}

// Provision finds the faxhook app (instantiating it with defaults if the config has none).
func (h *Handler) Provision(ctx caddy.Context) error {
	h.log = ctx.Logger()
	if err := module.CheckCount("max_capture", int64(h.MaxCapture), MaxCaptureLimit, "1 MiB"); err != nil {
		return err
	}
	if h.MaxCapture == 0 {
		h.MaxCapture = DefaultMaxCapture
	}
	if len(h.Mapping) > 0 {
		return ErrHandlerMapping
	}
	a, err := ctx.App("faxhook")
	if err != nil {
		return fmt.Errorf("loading the faxhook app: %w", err)
	}
	h.app = a.(*module.App)
	h.prof = h.app.Profile()
	return nil
}

// ErrHandlerMapping is the error of a config that sets `mapping` on the handler, where it was
// before it became an option of the app.
var ErrHandlerMapping = errors.New("faxhook handler: mapping moved to the faxhook app: " +
	"set it in the global option (faxhook { mapping FILE }), or as apps.faxhook.mapping in JSON")

// wantJSON captures successful JSON responses.
func wantJSON(status int, hdr http.Header) bool {
	if status < 200 || status > 299 {
		return false
	}
	ct := hdr.Get("Content-Type")
	return ct == "" || strings.Contains(ct, "json")
}

// ServeHTTP passes the request on and observes it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	rt, faxID := h.profile().Route(r.Method, r.URL.Path)
	if rt == profile.RouteNone || rt == profile.RouteFile {
		return next.ServeHTTP(w, r)
	}
	var tap jsontap.RequestTap
	creating := rt.Creates(r.Method)
	if creating {
		// A nil *formtap.Tap or *jsontap.JSONTap must not become a non-nil interface.
		if t := jsontap.AttachRequest(r, []string{h.callbackField()}, MaxCallbackURL); t != nil {
			tap = t
		}
	}
	if ae := r.Header.Get("Accept-Encoding"); ae != "" {
		// Ask only for codings faxhook can decode; the client still gets the upstream's bytes.
		if f := capture.DecodableEncodings(ae); f != "" {
			r.Header.Set("Accept-Encoding", f)
		} else {
			r.Header.Del("Accept-Encoding")
		}
	}
	cw := capture.NewWriter(w, h.MaxCapture, wantJSON)
	c := &module.Capture{Route: rt, FaxID: faxID, APIKey: h.app.AccountOf(r)}
	// The span of Caddy's `tracing` handler, if the site has one (none, and this is a no-op).
	c.TraceParent, c.Tracer = module.TraceOf(r.Context())
	if h.app != nil && h.app.WantsVia() {
		c.Via = module.ViaOf(r, h.profile(), rt, faxID)
	}
	if tap != nil || (creating && h.queryCallback(r).found) {
		return h.serveCreate(cw, r, next, c, tap)
	}
	err := next.ServeHTTP(cw, r)
	if err != nil || !cw.Captured() {
		if err == nil && cw.Status() >= 200 && cw.Status() < 300 {
			h.app.CaptureSkipped("not_json")
		}
		cw.Release()
		return err
	}
	c.Path = r.URL.RequestURI()
	h.submit(cw, c)
	return nil
}

// maxHeld bounds the response of a creating request that faxhook holds back until it committed
// what the request said.
const maxHeld = 64 << 10

// MaxCallbackURL is the longest callback_url faxhook takes from a request (bytes, as decoded).
// A longer one that counts (see callbacks) leaves the request without a callback URL, with a
// warning in the log.
const MaxCallbackURL = 4096

// callbackField is the request field that names a fax's or number's callback URL.
func (h *Handler) callbackField() string { return h.profile().CallbackField() }

// profile is the app's profile, which Provision took; Phaxio v2.1 before that.
func (h *Handler) profile() profile.Profile {
	if h.prof == nil {
		return profile.PhaxioV21
	}
	return h.prof
}

// callbackValue is what one source (body or query string) of a request says about its
// callback URL.
type callbackValue struct {
	found bool   // the source names the field (with a value, empty, or over-long)
	value string // the value, when found and not over-long
	over  int    // length in bytes of an over-long value, else 0
}

// queryCallback reads the callback field from the request's query string the way r.FormValue
// does (url.ParseQuery, first value).
func (h *Handler) queryCallback(r *http.Request) callbackValue {
	if r.URL.RawQuery == "" {
		return callbackValue{}
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // like ParseForm, keep the pairs that parsed
	vals, ok := q[h.callbackField()]
	switch {
	case !ok || len(vals) == 0:
		return callbackValue{}
	case len(vals[0]) > MaxCallbackURL:
		return callbackValue{found: true, over: len(vals[0])}
	}
	return callbackValue{found: true, value: vals[0]}
}

// callbacks returns the callback URL of a creating request that its upstream would honour, as
// a list of at most one. The body's value comes from the tap: the first value of a form field
// (as r.FormValue), the last of a repeated JSON key (as encoding/json). The query string's
// first value counts when the body has none, and, for a multipart body, before the body's:
// net/http's r.Form lists a urlencoded body's values before the query's but a multipart body's
// after them (ParseMultipartForm appends them), and r.FormValue returns the first. A value that
// counts but is longer than MaxCallbackURL means no callback URL from this request (not another
// value instead); it is logged with its length, never its text.
func (h *Handler) callbacks(r *http.Request, tap jsontap.RequestTap) []string {
	field := h.callbackField()
	var body callbackValue
	if tap != nil {
		if v := tap.Fields()[field]; len(v) > 0 {
			body = callbackValue{found: true, value: v[0]}
		} else if n := tap.TruncatedLength(field); n > 0 {
			body = callbackValue{found: true, over: n}
		}
	}
	query := h.queryCallback(r)
	first, second, source, other := body, query, "body", "query string"
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "multipart/form-data" {
		first, second, source, other = query, body, "query string", "body"
	}
	if !first.found {
		first, source = second, other
	}
	switch {
	case !first.found:
		return nil
	case first.over > 0:
		h.log.Warn("ignoring a "+field+" longer than the limit; the request names no callback URL",
			zap.String("path", r.URL.Path), zap.String("source", source),
			zap.Int("length", first.over), zap.Int("limit", MaxCallbackURL))
		return nil
	}
	return []string{first.value}
}

// serveCreate handles a request that creates a fax or a phone number. Its callback_url exists
// nowhere but in this request, so faxhook records it, together with the new id from the
// response, before the client receives that response: a crash right after cannot lose it. The
// response is held only when it is a small JSON success with a known length; otherwise it
// streams and is observed afterwards like any other. tap is nil when the body is of a type
// faxhook does not read (the callback URL can then only come from the query string).
func (h *Handler) serveCreate(cw *capture.Writer, r *http.Request, next caddyhttp.Handler, c *module.Capture, tap jsontap.RequestTap) error {
	held := new(bytes.Buffer)
	rec := caddyhttp.NewResponseRecorder(cw, held, func(status int, hdr http.Header) bool {
		n, err := strconv.Atoi(hdr.Get("Content-Length"))
		return wantJSON(status, hdr) && err == nil && n <= maxHeld
	})
	err := next.ServeHTTP(rec, r)
	if tap != nil {
		tap.Finish()
	}
	c.CallbackURLs, c.Path = h.callbacks(r, tap), r.URL.Path
	if err != nil {
		cw.Release()
		return err
	}
	if !rec.Buffered() {
		if cw.Captured() {
			h.submit(cw, c)
		} else {
			cw.Release()
		}
		return nil
	}
	if body, ok := h.decode(rec.Header().Get("Content-Encoding"), held.Bytes(), c.Path); ok {
		c.Body = body
		if err := h.app.RecordCapture(c); err != nil {
			h.log.Error("recording a send before answering it; its callback_url may be lost",
				zap.String("path", r.URL.Path), zap.Error(err))
		}
	}
	err = rec.WriteResponse()
	cw.Release()
	return err
}

// submit hands a captured response to the app, to be parsed and recorded off the request path;
// the app takes ownership of cw's buffer. The response has reached the client already; an
// encoded response is decoded here, within max_capture.
func (h *Handler) submit(cw *capture.Writer, c *module.Capture) {
	if cw.Truncated() {
		cw.Release()
		h.app.CaptureSkipped("too_large")
		h.log.Warn("response too large to observe; raise max_capture",
			zap.String("path", c.Path), zap.Int("max_capture", h.MaxCapture))
		return
	}
	body, ok := h.decode(cw.Header().Get("Content-Encoding"), cw.Bytes(), c.Path)
	if !ok {
		cw.Release()
		return
	}
	c.Body, c.Release = body, cw.Release
	h.app.Submit(c)
}

// decode undoes the response's Content-Encoding (enc) within max_capture; ok is false (logged
// and counted) when it cannot.
func (h *Handler) decode(enc string, raw []byte, path string) ([]byte, bool) {
	body, err := capture.Decode(enc, raw, h.MaxCapture)
	if err != nil {
		h.app.CaptureSkipped("decode_error")
		h.log.Warn("cannot decode response to observe it", zap.String("path", path), zap.Error(err))
		return nil, false
	}
	return body, true
}

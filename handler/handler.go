// Package handler is faxhook's HTTP middleware, `http.handlers.faxhook`. Put it in front of
// `reverse_proxy` to a fax service: it picks up the callback_url of send and resend requests and
// the fax objects in the service's JSON responses, and hands them to the faxhook app. The client
// gets exactly the upstream's bytes; parsing and persistence happen off the request path.
package handler

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/handler/capture"
	"github.com/faxhook/caddy-faxhook/handler/extract"
	"github.com/faxhook/caddy-faxhook/handler/mapping"
	"github.com/faxhook/caddy-faxhook/module"
	"github.com/faxhook/caddy-faxhook/queue"
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

	// Mapping describes a fax service whose API is not shaped like Phaxio's: its routes and where
	// each fax field lives in its JSON. faxhook builds the v2.1 fax object from it. Default: the
	// Phaxio v2.1 profile (routes …/faxes, …/faxes/{id}, …/phone_numbers; envelope
	// {"success","data"}).
	Mapping *mapping.Mapping `json:"mapping,omitempty"`

	app  *module.App
	log  *zap.Logger
	seen seenCache
}

// seenCache remembers, per request path, a hash of the last response that was recorded, so that a
// client polling an unchanged fax costs a hash instead of a parse and a transaction. It is
// direct-mapped: bounded memory, and a collision only costs a parse.
type seenCache struct {
	mu    sync.Mutex
	seed  maphash.Seed
	slots [4096]struct{ key, body uint64 }
}

func (c *seenCache) hashes(key string, body []byte) (k, b uint64) {
	return maphash.String(c.seed, key), maphash.Bytes(c.seed, body)
}

func (c *seenCache) unchanged(k, b uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := &c.slots[k%uint64(len(c.slots))]
	return s.key == k && s.body == b
}

func (c *seenCache) remember(k, b uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.slots[k%uint64(len(c.slots))] = struct{ key, body uint64 }{k, b}
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
	h.seen.seed = maphash.MakeSeed()
	if h.Mapping != nil {
		if err := h.Mapping.Validate(); err != nil {
			return err
		}
	}
	a, err := ctx.App("faxhook")
	if err != nil {
		return fmt.Errorf("loading the faxhook app: %w", err)
	}
	h.app = a.(*module.App)
	return nil
}

// route is the kind of fax API call a request is.
type route int

const (
	routeNone    route = iota
	routeSend          // POST .../faxes
	routeResend        // POST .../faxes/{id}/resend
	routeGet           // GET .../faxes/{id}
	routeList          // GET .../faxes
	routeCancel        // POST .../faxes/{id}/cancel
	routeNumbers       // GET or POST .../phone_numbers, GET .../phone_numbers/{number}
)

// match classifies a request by the end of its path, so any API prefix (/v2.1, /api/v2.1) works.
func match(r *http.Request) route {
	p := strings.TrimSuffix(r.URL.Path, "/")
	if i := strings.LastIndex(p, "/phone_numbers"); i >= 0 {
		rest := p[i+len("/phone_numbers"):]
		switch {
		case rest == "" && (r.Method == http.MethodGet || r.Method == http.MethodPost):
			return routeNumbers
		case strings.Count(rest, "/") == 1 && len(rest) > 1 && r.Method == http.MethodGet:
			return routeNumbers
		}
		return routeNone
	}
	i := strings.LastIndex(p, "/faxes")
	if i < 0 {
		return routeNone
	}
	rest := p[i+len("/faxes"):]
	switch {
	case rest == "":
		switch r.Method {
		case http.MethodPost:
			return routeSend
		case http.MethodGet:
			return routeList
		}
	case strings.Count(rest, "/") == 1 && isID(rest[1:]):
		if r.Method == http.MethodGet {
			return routeGet
		}
	case strings.Count(rest, "/") == 2:
		id, action, _ := strings.Cut(rest[1:], "/")
		if !isID(id) || r.Method != http.MethodPost {
			return routeNone
		}
		switch action {
		case "resend":
			return routeResend
		case "cancel":
			return routeCancel
		}
	}
	return routeNone
}

func isID(s string) bool {
	if s == "" || len(s) > 19 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// mappedRoutes translates a mapping's route names into the handler's routes.
var mappedRoutes = map[string]route{
	mapping.RouteSend: routeSend, mapping.RouteResend: routeResend, mapping.RouteStatus: routeGet,
	mapping.RouteList: routeList, mapping.RouteCancel: routeCancel,
}

// routeNames are the mapping's names of the handler's routes.
var routeNames = map[route]string{
	routeSend: mapping.RouteSend, routeResend: mapping.RouteResend, routeGet: mapping.RouteStatus,
	routeList: mapping.RouteList, routeCancel: mapping.RouteCancel,
}

// route classifies a request with the mapping when there is one, else by the Phaxio profile.
func (h *Handler) route(r *http.Request) route {
	if h.Mapping == nil {
		return match(r)
	}
	name, _, ok := h.Mapping.Match(r.Method, r.URL.Path)
	if !ok {
		return routeNone
	}
	return mappedRoutes[name] // routeNone for the file route
}

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
	rt := h.route(r)
	if rt == routeNone {
		return next.ServeHTTP(w, r)
	}
	var tap mapping.RequestTap
	creating := rt == routeSend || rt == routeResend || (rt == routeNumbers && r.Method == http.MethodPost)
	if creating {
		// A nil *formtap.Tap or *mapping.JSONTap must not become a non-nil interface.
		if t := mapping.AttachRequest(r, []string{h.callbackField()}, MaxCallbackURL); t != nil {
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
	if tap != nil || (creating && h.queryCallback(r).found) {
		return h.serveCreate(cw, r, next, rt, tap)
	}
	err := next.ServeHTTP(cw, r)
	if err != nil || !cw.Captured() {
		if err == nil && cw.Status() >= 200 && cw.Status() < 300 {
			h.app.CaptureSkipped("not_json")
		}
		cw.Release()
		return err
	}
	h.observeAsync(cw, rt, r.URL.RequestURI(), nil)
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
func (h *Handler) callbackField() string {
	if h.Mapping != nil {
		return h.Mapping.Callback()
	}
	return "callback_url"
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
func (h *Handler) callbacks(r *http.Request, tap mapping.RequestTap) []string {
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
func (h *Handler) serveCreate(cw *capture.Writer, r *http.Request, next caddyhttp.Handler, rt route, tap mapping.RequestTap) error {
	held := new(bytes.Buffer)
	rec := caddyhttp.NewResponseRecorder(cw, held, func(status int, hdr http.Header) bool {
		n, err := strconv.Atoi(hdr.Get("Content-Length"))
		return wantJSON(status, hdr) && err == nil && n <= maxHeld
	})
	err := next.ServeHTTP(rec, r)
	if tap != nil {
		tap.Finish()
	}
	callbacks := h.callbacks(r, tap)
	if err != nil {
		cw.Release()
		return err
	}
	if !rec.Buffered() {
		if cw.Captured() {
			h.observeAsync(cw, rt, r.URL.Path, callbacks)
		} else {
			cw.Release()
		}
		return nil
	}
	enc := rec.Header().Get("Content-Encoding")
	if obs := h.observation(rt, enc, held.Bytes(), callbacks, r.URL.Path); obs != nil {
		if err := h.app.Record(obs); err != nil {
			h.log.Error("recording a send before answering it; its callback_url may be lost",
				zap.String("path", r.URL.Path), zap.Error(err))
		}
	}
	err = rec.WriteResponse()
	cw.Release()
	return err
}

// observeAsync hands a captured response to the app, to be parsed and recorded off the
// request path; it takes ownership of cw's buffer.
func (h *Handler) observeAsync(cw *capture.Writer, rt route, path string, callbacks []string) {
	if cw.Truncated() {
		cw.Release()
		h.app.CaptureSkipped("too_large")
		h.log.Warn("response too large to observe; raise max_capture",
			zap.String("path", path), zap.Int("max_capture", h.MaxCapture))
		return
	}
	enc := cw.Header().Get("Content-Encoding")
	ok := h.app.Observe(len(cw.Bytes()), func() *module.Observation {
		defer cw.Release()
		if rt != routeGet && rt != routeList {
			return h.observation(rt, enc, cw.Bytes(), callbacks, path)
		}
		k, b := h.seen.hashes(path, cw.Bytes())
		if h.seen.unchanged(k, b) {
			return nil // the same answer as last time, which is recorded already
		}
		o := h.observation(rt, enc, cw.Bytes(), callbacks, path)
		if o != nil {
			o.OnRecorded = func() { h.seen.remember(k, b) }
		}
		return o
	})
	if !ok {
		cw.Release()
	}
}

// observation parses a response body (encoded with enc) of a route into what it tells faxhook.
func (h *Handler) observation(rt route, enc string, raw []byte, callbacks []string, path string) *module.Observation {
	log := h.log
	body, err := capture.Decode(enc, raw, h.MaxCapture)
	if err != nil {
		h.app.CaptureSkipped("decode_error")
		log.Warn("cannot decode response to observe it", zap.String("path", path), zap.Error(err))
		return nil
	}
	if rt == routeNumbers {
		nums, err := extract.PhoneNumbers(body)
		if err != nil {
			log.Debug("no phone numbers in response", zap.String("path", path), zap.Error(err))
			return nil
		}
		// A provisioning request's callback_url applies when the response does not echo it.
		if cb := validURLs(log, callbacks); len(cb) > 0 && len(nums) == 1 && !nums[0].HasCallback {
			nums[0].CallbackURL, nums[0].HasCallback = cb[0], true
		}
		return &module.Observation{Numbers: nums}
	}
	var objs []extract.Object
	if h.Mapping != nil {
		objs, err = h.Mapping.Extract(routeNames[rt], body)
	} else {
		objs, err = extract.Phaxio(body)
	}
	if err != nil {
		// A mapping may convert some faxes of a list and not others: use those it did.
		log.Debug("fax objects not (all) extracted from response", zap.String("path", path), zap.Error(err))
	}
	if len(objs) == 0 {
		return nil
	}
	return &module.Observation{Faxes: objs, CallbackURLs: validURLs(log, callbacks)}
}

// validURLs keeps the callback URLs faxhook can deliver to and logs the others.
func validURLs(log *zap.Logger, urls []string) []string {
	var out []string
	for _, u := range urls {
		if u == "" {
			continue
		}
		if err := module.ValidateURL(u); err != nil {
			log.Warn("ignoring callback_url", zap.String("url", queue.RedactURL(u)), zap.Error(err))
			continue
		}
		out = append(out, u)
	}
	return out
}

package module

import (
	"cmp"
	"container/list"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap/zapcore"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// Via describes the client request through which the handler saw a fax, so that, with no
// poll upstream configured, the app can fetch a received fax's PDF the same way: back through
// the Caddy site that served the request (and its reverse_proxy), with the request's
// credentials. A Via lives in memory only (see viaCache): it is never stored, journaled, shown
// by the admin API or logged with its credentials (String and MarshalLogObject leave them out).
type Via struct {
	// LocalAddr is the address (host:port) of Caddy's listener that accepted the request's
	// connection.
	LocalAddr string
	// TLS reports whether the request came over TLS.
	TLS bool
	// Host is the request's Host header.
	Host string
	// ServerName is the TLS server name (SNI) the client asked for; empty without TLS.
	ServerName string
	// Root is the API root as the client used it: the request's (escaped) path minus what the
	// profile's route matched, e.g. "/v2.1" for "/v2.1/faxes".
	Root string
	// Credentials are the request's headers that may authenticate it (see credentialHeader).
	Credentials http.Header
}

// String describes v without its credentials.
func (v *Via) String() string {
	if v == nil {
		return "<nil>"
	}
	scheme := "http"
	if v.TLS {
		scheme = "https"
	}
	return fmt.Sprintf("%s://%s%s (Host %s, %d credential headers)", scheme, v.LocalAddr, v.Root, v.Host, len(v.Credentials))
}

// MarshalLogObject logs v without its credentials (only their header names).
func (v *Via) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("local_addr", v.LocalAddr)
	enc.AddBool("tls", v.TLS)
	enc.AddString("host", v.Host)
	enc.AddString("root", v.Root)
	names := make([]string, 0, len(v.Credentials))
	for k := range v.Credentials {
		names = append(names, k)
	}
	enc.AddString("credential_headers", strings.Join(names, ","))
	return nil
}

// credentialHeader reports whether a request header may carry credentials the upstream checks:
// Authorization (HTTP Basic, as Phaxio's api_key/api_secret, or a bearer token), Cookie, and
// API-key or token headers such as X-Api-Key or X-Auth-Token.
func credentialHeader(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "cookie":
		return true
	}
	return strings.Contains(n, "api-key") || strings.Contains(n, "apikey") ||
		strings.Contains(n, "token") || strings.Contains(n, "auth")
}

// ViaOf describes request r for a later fetch of a received fax's PDF through the same route,
// or returns nil when r cannot serve for that: a route other than status or list (the only
// ones that reveal received faxes), a listener that is not TCP, or a path whose API root
// cannot be told from the profile's own request for the route. rt and faxID are the profile's
// classification of r. The handler calls it and puts the result in Capture.Via.
func ViaOf(r *http.Request, p profile.Profile, rt profile.Route, faxID string) *Via {
	var tail string
	switch rt {
	case profile.RouteStatus:
		req, err := p.StatusRequest(faxID)
		if err != nil {
			return nil
		}
		tail = req.Path
	case profile.RouteList:
		req, err := p.ReceivedRequest(time.Time{})
		if err != nil {
			return nil
		}
		tail, _, _ = strings.Cut(req.Path, "?")
	default:
		return nil
	}
	addr, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr)
	if !ok || addr == nil {
		return nil
	}
	// The path as the client sent it: a handle_path or uri strip before faxhook changed r.URL.
	u := r.URL
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
		u = orig.URL
	}
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	tail = strings.TrimSuffix(tail, "/")
	if !strings.HasSuffix(path, tail) {
		return nil
	}
	v := &Via{LocalAddr: addr.String(), TLS: r.TLS != nil, Host: r.Host, Root: strings.TrimSuffix(path, tail)}
	if r.TLS != nil {
		v.ServerName = r.TLS.ServerName
	}
	for name, vals := range r.Header {
		if credentialHeader(name) {
			if v.Credentials == nil {
				v.Credentials = http.Header{}
			}
			v.Credentials[name] = append([]string(nil), vals...)
		}
	}
	return v
}

// fetch makes request req (a profile's request, relative to the API root) the way the request
// v describes was made, and returns the body of a 200 answer, reading at most limit bytes
// (errTooLarge beyond); status is the answer's status code (0 when there was none).
func (v *Via) fetch(ctx context.Context, req profile.Request, limit int64) (body []byte, status int, err error) {
	scheme := "http"
	if v.TLS {
		scheme = "https"
	}
	u := scheme + "://" + v.LocalAddr + v.Root + "/" + strings.TrimPrefix(req.Path, "/")
	hr, err := http.NewRequestWithContext(ctx, cmp.Or(req.Method, http.MethodGet), u, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("building request for %s: %w", req.Path, err)
	}
	hr.Host = v.Host
	for name, vals := range v.Credentials {
		hr.Header[name] = vals
	}
	sni := v.ServerName
	if sni == "" {
		sni, _, err = net.SplitHostPort(v.Host)
		if err != nil {
			sni = v.Host
		}
	}
	tr := &http.Transport{
		Proxy:               nil, // straight to our own listener, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		// The dial goes to the exact local address of the listener that accepted the client's
		// connection: it is this Caddy, whatever certificate it serves for sni (possibly one
		// from an internal CA, or one for a name this machine does not resolve to itself).
		// Verifying it would prove nothing more and fail in such setups.
		TLSClientConfig:   &tls.Config{ServerName: sni, InsecureSkipVerify: true}, //nolint:gosec // see above
		ForceAttemptHTTP2: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   60 * time.Second,
		// A redirect could take the credentials elsewhere: take the answer as it is.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s through %s: %w", hr.Method, req.Path, v.LocalAddr, err)
	}
	return readAnswer(resp, hr.Method, req.Path, limit)
}

// Bounds of the vias the app remembers.
const (
	// maxVias is how many faxes' vias are kept at most; the oldest go first.
	maxVias = 10000
	// viaTTL is how long a via is kept after the request that revealed its fax.
	viaTTL = 15 * time.Minute
)

// viaCache maps the upstream id of a received fax to the Via of the last client request that
// revealed it, bounded in size (maxVias, oldest out first) and age (viaTTL). The zero value is
// ready to use. It lives in memory only: a restart forgets it.
type viaCache struct {
	mu    sync.Mutex
	max   int                      // 0: maxVias
	ttl   time.Duration            // 0: viaTTL
	now   func() time.Time         // nil: time.Now
	m     map[string]*list.Element // upstream id → element of order
	order list.List                // of *viaEntry, oldest first
}

type viaEntry struct {
	id  string
	via *Via
	at  time.Time
}

func (c *viaCache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// remember records v for the received faxes among objs (those of one response share it).
func (c *viaCache) remember(objs []profile.Object, v *Via) {
	if v == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now, limit := c.clock(), cmp.Or(c.max, maxVias)
	if c.m == nil {
		c.m = make(map[string]*list.Element)
	}
	c.expire(now)
	for _, o := range objs {
		if o.Fax.Direction != "received" {
			continue
		}
		id := o.UpstreamIDOrID()
		if el, ok := c.m[id]; ok {
			c.order.Remove(el)
		}
		c.m[id] = c.order.PushBack(&viaEntry{id: id, via: v, at: now})
		for c.order.Len() > limit {
			c.drop(c.order.Front())
		}
	}
}

// get returns the via of the fax with upstream id id, nil when there is none or it expired.
func (c *viaCache) get(id string) *Via {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(c.clock())
	if el, ok := c.m[id]; ok {
		return el.Value.(*viaEntry).via
	}
	return nil
}

// len is the number of vias held.
func (c *viaCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// expire drops the entries older than the ttl (the oldest are first).
func (c *viaCache) expire(now time.Time) {
	ttl := cmp.Or(c.ttl, viaTTL)
	for el := c.order.Front(); el != nil && now.Sub(el.Value.(*viaEntry).at) >= ttl; el = c.order.Front() {
		c.drop(el)
	}
}

func (c *viaCache) drop(el *list.Element) {
	delete(c.m, el.Value.(*viaEntry).id)
	c.order.Remove(el)
}

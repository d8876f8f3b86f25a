// Package httpsend delivers webhook jobs over HTTP(S) the way Phaxio does: a multipart/form-data
// POST signed with X-Phaxio-Signature, credentials from the URL's user:password@ part sent as HTTP
// Basic auth, redirects not followed, and only a 2xx answer counting as delivered. Opt-in
// (Options.StandardWebhooks), it also adds the Standard Webhooks headers webhook-id,
// webhook-timestamp and webhook-signature over the exact body sent.
//
// Every attempt of a job sends byte-identical bodies with the identical signature: the multipart
// boundary is derived from the job's ID, not drawn at random.
//
// Webhooks go out over HTTP/1.1 on keep-alive connections the Sender pools per destination and
// drives from the attempt's own goroutine (h1Client, which says why it is not net/http's
// Transport); net/http's client is used instead when Options.Transport is set or a proxy from
// the environment applies. Either way the request is the same: HTTP/1.1 (HTTP/2 is not offered),
// the webhook's header fields, no Accept-Encoding.
//
// With Options.Guard set, the sender refuses loopback, private, link-local, metadata and other
// special-purpose destinations (package ssrf): literal IP URLs before any I/O, host names at dial
// time on the address they resolve to. A refused destination is a permanent failure.
//
// A job that names a W3C trace context in its Meta (LabelTraceParent) is traced: its webhook
// carries a traceparent header in that trace, and, with Options.TracerProvider, each attempt
// is an OpenTelemetry client span there. Other jobs carry no trace header.
package httpsend

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/sign"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// Defaults applied by New to zero Options fields.
const (
	// DefaultTimeout bounds a whole attempt: connecting, sending and reading the answer.
	DefaultTimeout = 30 * time.Second
	// DefaultUserAgent is the User-Agent header sent with every webhook.
	DefaultUserAgent = "faxhook"
	// DefaultBodyLimit is how many bytes of the response body are kept for the attempt log.
	DefaultBodyLimit = 4096
	// DefaultContentType is the Content-Type of a file part whose File.ContentType is empty.
	DefaultContentType = "application/pdf"
)

// Header names, besides sign.Header, that every webhook carries.
const (
	// HeaderEventID carries the job's EventID, stable across attempts and URLs, for deduplication.
	HeaderEventID = "X-Faxhook-Event-Id"
	// HeaderAttempt carries the 1-based number of the attempt.
	HeaderAttempt = "X-Faxhook-Attempt"
)

const (
	// maxRetryAfter caps the delay a receiver can ask for with Retry-After.
	maxRetryAfter = 6 * time.Hour
	// drainLimit is how much of an unread response body is discarded so the connection can be reused.
	drainLimit = 64 << 10
)

// Options configures a Sender. The zero value is usable: every zero field takes its default.
type Options struct {
	// Token is the webhook token that signs deliveries. Empty means no X-Phaxio-Signature header.
	Token string
	// Timeout bounds a whole attempt, from dialing to reading the response body. Default 30s.
	Timeout time.Duration
	// UserAgent is the User-Agent header value. Default "faxhook".
	UserAgent string
	// Transport performs the requests. Default: the Sender's own HTTP/1.1 client, and for URLs a
	// proxy from the environment (HTTP_PROXY and friends) applies to, a transport of its own; with
	// Guard set, both dial through the guard and no proxy is used. A custom Transport is used as
	// given: Guard then still refuses literal IP URLs before sending, but dial-time checks are the
	// Transport's business.
	Transport http.RoundTripper
	// MaxIdleConnsPerHost is how many keep-alive connections to one destination stay open
	// between webhooks, for 90s each. Give it at least the most attempts to one destination that
	// can be under way at once (the dispatcher's per-host limit): connections beyond it are
	// closed after their webhook, and the next webhooks dial anew. Default 16. Ignored with a
	// custom Transport.
	MaxIdleConnsPerHost int
	// Guard, if non-nil, refuses destinations it blocks (see package ssrf): a literal IP URL before
	// any network I/O, a host name at dial time on the resolved address actually dialled. Either way
	// the attempt fails permanently with an error matching ssrf.ErrBlocked. Nil means no guard.
	Guard *ssrf.Guard
	// BodyLimit is how many bytes of the response body are kept in Result.Body. Default 4096.
	BodyLimit int
	// StandardWebhooks, if not empty, adds the Standard Webhooks headers (webhook-id,
	// webhook-timestamp, webhook-signature; see package sign) to the webhooks whose URL one of
	// its rules matches. A URL takes the keys of every rule with the longest matching Prefix:
	// several keys give several space-separated signatures. No rule matching: no headers.
	StandardWebhooks []StandardRule
	// TracerProvider, if set, returns the OpenTelemetry tracer provider that traces attempts,
	// or nil while there is none. Only jobs whose Meta holds a LabelTraceParent are traced:
	// each attempt is a client span (SpanName), a child of that context, and the webhook
	// carries its traceparent header; without a provider the header carries the stored context
	// as it is. Jobs without the label are never traced and carry no traceparent header.
	TracerProvider func() trace.TracerProvider
	// SpanAttributes, if set, returns attributes that describe job on its attempt spans (what
	// its event is about, from its Meta), besides the HTTP ones the Sender sets.
	SpanAttributes func(job *queue.Job) []attribute.KeyValue
	// SpanName, if set, names the attempt spans of job (e.g. after its event); "" or unset
	// gives SpanName.
	SpanName func(job *queue.Job) string
}

// StandardRule gives the webhooks to the URLs under Prefix Standard Webhooks signatures.
type StandardRule struct {
	// Prefix is matched against the start of the webhook's URL without its user:password@
	// part; empty matches every URL.
	Prefix string
	// Keys sign the webhooks the rule matches, one signature each.
	Keys []sign.StandardKey
}

// Sender delivers webhook jobs to http and https URLs. It implements queue.Sender and is safe for
// concurrent use.
type Sender struct {
	token     string
	signer    *sign.Signer // nil without a token
	timeout   time.Duration
	userAgent string
	bodyLimit int
	client    *http.Client
	h1        *h1Client // nil when Options.Transport is set: then client posts every webhook
	guard     *ssrf.Guard
	standard  []StandardRule
	// now tells the time: Retry-After dates and the webhook-timestamp of each attempt.
	now func() time.Time
	// tracerProvider, spanAttributes and spanName are those of Options.
	tracerProvider func() trace.TracerProvider
	spanAttributes func(job *queue.Job) []attribute.KeyValue
	spanName       func(job *queue.Job) string
}

var _ queue.Sender = (*Sender)(nil)

// New returns a Sender configured by opts, with defaults for its zero fields.
func New(opts Options) *Sender {
	s := &Sender{
		token:     opts.Token,
		timeout:   opts.Timeout,
		userAgent: opts.UserAgent,
		bodyLimit: opts.BodyLimit,
		guard:     opts.Guard,
		standard:  opts.StandardWebhooks,
		now:       time.Now,

		tracerProvider: opts.TracerProvider,
		spanAttributes: opts.SpanAttributes,
		spanName:       opts.SpanName,
	}
	if s.token != "" {
		s.signer = sign.NewSigner(s.token)
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.userAgent == "" {
		s.userAgent = DefaultUserAgent
	}
	if s.bodyLimit <= 0 {
		s.bodyLimit = DefaultBodyLimit
	}
	idlePerHost := opts.MaxIdleConnsPerHost
	if idlePerHost <= 0 {
		idlePerHost = DefaultMaxIdleConnsPerHost
	}
	rt := opts.Transport
	if rt == nil {
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		if opts.Guard != nil {
			// The guard checks, in the dialer's Control, the address about to be connected,
			// after name resolution: the address checked is the address dialled.
			dialer = opts.Guard.Dialer()
		}
		rt = defaultTransport(dialer, opts.Guard == nil, idlePerHost)
		s.h1 = newH1Client(dialer.DialContext, idlePerHost)
	}
	s.client = &http.Client{
		Transport: rt,
		// A redirect is a failed attempt: hand the 3xx back instead of following it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s
}

// DefaultMaxIdleConnsPerHost is the default of Options.MaxIdleConnsPerHost.
const DefaultMaxIdleConnsPerHost = 16

// defaultTransport returns a transport of the Sender's own, for the URLs a proxy applies to, so
// that its connection pool is neither shared with nor disturbed by the rest of the process. It
// dials with dialer and uses a proxy from the environment only if proxy is set: a guarded Sender
// uses none, as through a proxy the guard would only ever see the proxy's address. It sends what
// h1Client sends: HTTP/1.1 only, and no Accept-Encoding, as only the first BodyLimit bytes of an
// answer are kept, for the attempt log.
func defaultTransport(dialer *net.Dialer, proxy bool, idlePerHost int) *http.Transport {
	t := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{NextProtos: []string{"http/1.1"}},
		TLSHandshakeTimeout:   10 * time.Second,
		DisableCompression:    true,
		MaxIdleConns:          max(100, idlePerHost),
		MaxIdleConnsPerHost:   idlePerHost,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		Protocols:             new(http.Protocols),
	}
	if proxy {
		t.Proxy = http.ProxyFromEnvironment
	}
	t.Protocols.SetHTTP1(true)
	return t
}

// CloseIdleConnections closes the Sender's idle keep-alive connections, and those of attempts
// under way as they end. Call it when the Sender is retired: it still sends afterwards, but
// keeps no connection open.
func (s *Sender) CloseIdleConnections() {
	s.client.CloseIdleConnections()
	if s.h1 != nil {
		s.h1.closeIdle()
	}
}

// proxied reports whether a webhook to u goes through a proxy from the environment (HTTP_PROXY
// and friends), which only net/http's client speaks. A guarded Sender uses no proxy.
func (s *Sender) proxied(u *url.URL) bool {
	if s.guard != nil {
		return false
	}
	p, err := http.ProxyFromEnvironment(&http.Request{URL: u})
	return p != nil || err != nil
}

// Send makes one delivery attempt of job to its http or https URL and reports the outcome. A URL
// that can never work (malformed, another scheme, no host) or a job that cannot be encoded gives a
// Permanent failure without any network I/O. Only a 2xx status is a success; the status decides,
// so a 2xx whose body cannot be read in full still counts as delivered. Send returns when ctx ends
// or the attempt times out, whichever is first. A job with a LabelTraceParent is traced (see
// Options.TracerProvider).
func (s *Sender) Send(ctx context.Context, job *queue.Job) queue.Result {
	if job == nil {
		return queue.Result{Err: errors.New("sending webhook: nil job"), Permanent: true}
	}
	u, err := ParseURL(job.URL)
	if err != nil {
		return queue.Result{Err: err, Permanent: true}
	}
	target := queue.SignedURL(job.URL) // textual, as ParseTarget's Signed: no second parse
	ctx, at := s.startAttempt(ctx, job, u, target)
	res := s.send(ctx, job, u, target, at.header)
	at.end(res)
	return res
}

// send makes the attempt Send describes, to the parsed URL u (target without its
// credentials), with traceparent as its traceparent header ("" for none).
func (s *Sender) send(ctx context.Context, job *queue.Job, u *url.URL, target, traceparent string) queue.Result {
	if s.guard != nil {
		if err := s.guard.CheckHost(u.Hostname()); err != nil {
			return queue.Result{Err: fmt.Errorf("posting webhook to %s: %w", target, err), Permanent: true}
		}
	}

	body, contentType, err := Encode(job)
	if err != nil {
		return queue.Result{Err: fmt.Errorf("encoding webhook for %s: %w", target, err), Permanent: true}
	}

	header := make([]string, 0, 12)
	header = append(header, "Content-Type", contentType, "User-Agent", s.userAgent,
		HeaderEventID, job.EventID, HeaderAttempt, strconv.Itoa(len(job.Attempts)+1))
	if s.signer != nil {
		header = append(header, sign.Header, signature(s.signer, job))
	}
	if traceparent != "" {
		header = append(header, HeaderTraceParent, traceparent)
	}
	if keys := s.standardKeys(target); len(keys) > 0 {
		id, ts := StandardID(job), s.now().Unix()
		header = append(header, sign.StandardHeaderID, id, sign.StandardHeaderTimestamp, strconv.FormatInt(ts, 10),
			sign.StandardHeaderSignature, sign.StandardSignature(keys, id, ts, body))
	}
	if u.User != nil {
		// Only a URL with credentials pays for the Target that splits them off.
		t, err := queue.ParseTarget(job.URL)
		if err != nil {
			return queue.Result{Err: fmt.Errorf("invalid webhook URL %s: %w", t.Redacted, err), Permanent: true}
		}
		if user, pass, ok := t.BasicAuth(); ok {
			header = append(header, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
		}
	}
	for i := 1; i < len(header); i += 2 {
		if strings.ContainsAny(header[i], "\r\n\x00") {
			return queue.Result{Err: fmt.Errorf("posting webhook to %s: header %s holds a line break or NUL", target, header[i-1]), Permanent: true}
		}
	}

	var resp *http.Response
	var respBody string
	if s.h1 != nil && !s.proxied(u) {
		resp, respBody, err = s.sendH1(ctx, u, target, header, body)
	} else {
		resp, respBody, err = s.sendNetHTTP(ctx, target, header, body)
	}
	if err != nil {
		// A destination refused by the guard cannot become acceptable by retrying.
		return queue.Result{Err: err, Permanent: errors.Is(err, ssrf.ErrBlocked) && ctx.Err() == nil}
	}
	return s.result(resp, respBody)
}

// StandardID returns the webhook-id of job: "msg_" and the job's ID, which is stable for the
// event and URL, so every attempt of the job carries the same id and no other job does.
func StandardID(job *queue.Job) string { return "msg_" + job.ID }

// standardKeys returns the Standard Webhooks keys for a webhook to target (the URL without its
// credentials): those of every rule with the longest prefix of target, nil when none matches.
func (s *Sender) standardKeys(target string) []sign.StandardKey {
	var keys []sign.StandardKey
	best := -1
	for _, r := range s.standard {
		if !strings.HasPrefix(target, r.Prefix) || len(r.Prefix) < best {
			continue
		}
		if len(r.Prefix) > best {
			best, keys = len(r.Prefix), nil
		}
		keys = append(keys, r.Keys...)
	}
	return keys
}

// sendH1 posts body through the Sender's own HTTP/1.1 client, within s.timeout.
func (s *Sender) sendH1(ctx context.Context, u *url.URL, target string, header []string, body []byte) (*http.Response, string, error) {
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	// target is the URL less its credentials: its destination is the URL's.
	r := &h1Request{u: u, key: queue.Destination(target), header: header, body: body, deadline: deadline}
	resp, respBody, err := s.h1.do(ctx, r, s.bodyLimit)
	if err != nil {
		return nil, "", s.transportError(ctx, target, isTimeout(err), err)
	}
	return resp, respBody, nil
}

// sendNetHTTP posts body with net/http's client, through the Options.Transport or a proxy.
//
// target is the URL less its credentials, which header carries as Authorization.
func (s *Sender) sendNetHTTP(ctx context.Context, target string, header []string, body []byte) (*http.Response, string, error) {
	actx, cancel := context.WithTimeoutCause(ctx, s.timeout, errAttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		// ParseURL accepted the URL, so this is not expected; never echo the raw URL.
		return nil, "", fmt.Errorf("building request for %s: %w", target, unwrapURLError(err))
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, "", s.transportError(ctx, target, errors.Is(context.Cause(actx), errAttemptTimeout), err)
	}
	respBody, _ := readBody(resp.Body, s.bodyLimit)
	return resp, respBody, nil
}

// result turns the receiver's answer into the attempt's Result: only a 2xx is a success.
func (s *Sender) result(resp *http.Response, body string) queue.Result {
	res := queue.Result{Status: resp.StatusCode, Body: body}
	code := resp.StatusCode
	switch {
	case code >= 200 && code <= 299:
		return res
	case code >= 300 && code <= 399 && resp.Header.Get("Location") != "":
		loc := "(unparsable Location)"
		if lu, err := resp.Location(); err == nil {
			lu.User = nil
			loc = lu.String()
		}
		res.Err = fmt.Errorf("redirect to %s not followed (receiver answered %s)", loc, statusText(code))
	default:
		res.Err = fmt.Errorf("receiver answered %s", statusText(code))
	}
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
	}
	return res
}

// errAttemptTimeout is the cause of the attempt context when Options.Timeout runs out.
var errAttemptTimeout = errors.New("webhook attempt timed out")

// transportError describes a failed round trip, of either client: cancellation (parent ended)
// and the attempt's own timeout (timedOut) in plain words, anything else (refused connection, TLS
// failure, reset) as the client reported it. The url.Error wrapper is removed because it repeats
// the URL, user name included.
func (s *Sender) transportError(parent context.Context, target string, timedOut bool, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("posting webhook to %s: attempt abandoned: %w", target, context.Cause(parent))
	case timedOut:
		return fmt.Errorf("posting webhook to %s: timed out after %s: %w", target, s.timeout, context.DeadlineExceeded)
	default:
		return fmt.Errorf("posting webhook to %s: %w", target, unwrapURLError(err))
	}
}

// readBody keeps the first limit bytes of a response body, drains up to drainLimit more so the
// connection can be reused, and closes it. drained reports whether the body was read to its end.
// Read errors are ignored: the status decides the outcome.
func readBody(rc io.ReadCloser, limit int) (body string, drained bool) {
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, int64(limit)))
	_, err := io.CopyN(io.Discard, rc, drainLimit)
	return string(b), errors.Is(err, io.EOF)
}

// statusText renders a status code as "500 Internal Server Error", or just the number when the code
// has no standard text. The receiver's own reason phrase is not used.
func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

// ParseURL checks that rawURL is a webhook URL this package can deliver to: absolute, http or https,
// with a host. Its errors never contain the URL's user information.
func ParseURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if strings.Contains(rawURL, "@") {
			// url.Parse's detail may quote pieces of a misplaced password.
			return nil, errors.New("invalid webhook URL (not shown, it may contain credentials): malformed URL")
		}
		return nil, fmt.Errorf("invalid webhook URL %q: %w", rawURL, unwrapURLError(err))
	}
	shown := queue.SignedURL(rawURL) // exact: the URL parsed, and both cut the authority alike
	switch u.Scheme {
	case "http", "https":
	case "":
		return nil, fmt.Errorf("invalid webhook URL %q: no scheme, want http or https", shown)
	default:
		return nil, fmt.Errorf("invalid webhook URL %q: scheme %q is not http or https", shown, u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("invalid webhook URL %q: no host", shown)
	}
	if err := queue.CheckHostForm(u.Hostname()); err != nil {
		return nil, fmt.Errorf("invalid webhook URL %q: %w", shown, err)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid webhook URL %q: port %s out of range", shown, p)
		}
	}
	return u, nil
}

// unwrapURLError drops a *url.Error wrapper, whose text repeats the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Signature returns the X-Phaxio-Signature value of job under token: the HMAC over the URL as
// configured minus any user:password@ part, the non-file fields and the SHA-1 of every file part.
func Signature(token string, job *queue.Job) string {
	return signature(sign.NewSigner(token), job)
}

// signature returns the X-Phaxio-Signature value of job by signer.
func signature(signer *sign.Signer, job *queue.Job) string {
	fields := make([]sign.Field, len(job.Fields))
	for i, f := range job.Fields {
		fields[i] = sign.Field{Name: f.Name, Value: f.Value}
	}
	files := make([]sign.File, len(job.Files))
	for i, f := range job.Files {
		files[i] = sign.FileOf(f.Name, f.Data)
	}
	return signer.Sign(queue.SignedURL(job.URL), fields, files)
}

// parseRetryAfter reads a Retry-After value, delay-seconds or an HTTP date, as a delay from now. It
// returns 0 for an absent, malformed or past value and caps the delay at six hours.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter // all digits but too large for int64, or beyond the cap
		}
		d = time.Duration(n) * time.Second
	} else {
		t, err := http.ParseTime(v)
		if err != nil {
			return 0
		}
		d = t.Sub(now)
	}
	if d <= 0 {
		return 0
	}
	return min(d, maxRetryAfter)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

package httpsend

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// h1Client posts webhooks over HTTP/1.1 keep-alive connections it pools per destination, writing
// each request and reading its answer in the calling goroutine. It exists for speed: net/http's
// Transport hands every request to a writer and a reader goroutine of its connection and back.
// Measured with `go run ./examples/cmd/qbench -cases b` (2 vCPUs, loopback receivers, 1 KB
// webhooks, runs alternated; the Transport's RoundTrip called directly, HTTP/1.1 only, no
// compression), that costs about 25 µs more CPU per webhook (medians 122 against 97 µs) and puts
// signed deliveries at 0.58–0.78 of a plain net/http client, median 0.66, against 0.62–0.96,
// median 0.78, with h1Client; faxhook's goal is 0.7.
//
// The Sender uses it for http and https URLs unless it was given a Transport or a proxy applies.
// HTTP/2 is not offered.
type h1Client struct {
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig *tls.Config // cloned per connection, ServerName set
	maxIdle   int         // idle connections kept per destination
	idleFor   time.Duration

	mu        sync.Mutex
	idle      map[string][]*h1Conn // by scheme://host:port, most recently used last
	lastSweep time.Time
	retired   bool // closeIdle was called: connections are closed after use, not kept
}

// h1Conn is one connection of an h1Client.
type h1Conn struct {
	nc       net.Conn
	cr       countingReader
	br       *bufio.Reader
	bw       *bufio.Writer
	idleFrom time.Time
}

// countingReader counts the bytes read from a connection, so that a failure on a reused
// connection can be told apart: nothing read means the receiver closed it while idle.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// newH1Client returns a client that dials with dial and keeps up to maxIdle idle connections per
// destination.
func newH1Client(dial func(ctx context.Context, network, addr string) (net.Conn, error), maxIdle int) *h1Client {
	return &h1Client{
		dial:      dial,
		tlsConfig: &tls.Config{NextProtos: []string{"http/1.1"}},
		maxIdle:   maxIdle,
		idleFor:   90 * time.Second,
		idle:      map[string][]*h1Conn{},
	}
}

// h1Request is one POST for h1Client.do.
type h1Request struct {
	u        *url.URL
	key      string   // the pool key: the URL's destination (queue.Target.Destination)
	header   []string // name, value, name, value…: values checked by the caller
	body     []byte
	deadline time.Time
}

// aLongTimeAgo is a deadline in the past: setting it makes pending reads and writes fail now.
var aLongTimeAgo = time.Unix(1, 0)

// do posts r and returns the receiver's answer with at most limit bytes of its body. The
// response's Body is already closed. A request that fails on a reused connection before anything
// was read back (the receiver closed the idle connection) is sent once more on a new one.
func (c *h1Client) do(ctx context.Context, r *h1Request, limit int) (*http.Response, string, error) {
	key := r.key
	hostport, err := dialAddr(r.u)
	if err != nil {
		return nil, "", err
	}
	for try := 0; ; try++ {
		var conn *h1Conn
		if try == 0 {
			conn = c.get(key)
		}
		reused := conn != nil
		if conn == nil {
			if conn, err = c.connect(ctx, r, hostport); err != nil {
				return nil, "", err
			}
		}
		resp, body, keep, err := c.roundTrip(ctx, conn, r, limit)
		if err == nil {
			if keep {
				c.put(key, conn)
			} else {
				conn.nc.Close()
			}
			return resp, body, nil
		}
		conn.nc.Close()
		if reused && try == 0 && conn.cr.n == 0 && ctx.Err() == nil && isStale(err) {
			continue
		}
		return nil, "", err
	}
}

// roundTrip writes r on conn and reads the answer. keep reports whether conn can carry another
// request.
func (c *h1Client) roundTrip(ctx context.Context, conn *h1Conn, r *h1Request, limit int) (resp *http.Response, body string, keep bool, err error) {
	conn.cr.n = 0
	if err := conn.nc.SetDeadline(r.deadline); err != nil {
		return nil, "", false, err
	}
	stop := context.AfterFunc(ctx, func() { conn.nc.SetDeadline(aLongTimeAgo) })
	defer func() {
		if !stop() {
			keep = false // ctx ended meanwhile: the deadline may have been cut short
		}
	}()
	writeRequest(conn.bw, r)
	if err := conn.bw.Flush(); err != nil {
		return nil, "", false, err
	}
	req := &http.Request{Method: http.MethodPost, URL: r.u}
	for {
		resp, err = http.ReadResponse(conn.br, req)
		if err != nil {
			return nil, "", false, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		resp.Body.Close() // an informational answer (100 Continue, 103 Early Hints): the real one follows
	}
	body, drained := readBody(resp.Body, limit)
	keep = drained && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols
	if keep {
		keep = conn.nc.SetDeadline(time.Time{}) == nil
	}
	return resp, body, keep, nil
}

// writeRequest writes the POST of r: request line, Host, the caller's header fields,
// Content-Length and the body.
func writeRequest(w *bufio.Writer, r *h1Request) {
	w.WriteString("POST ")
	w.WriteString(r.u.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(hostHeader(r.u.Host))
	w.WriteString("\r\n")
	for i := 0; i+1 < len(r.header); i += 2 {
		w.WriteString(r.header[i])
		w.WriteString(": ")
		w.WriteString(r.header[i+1])
		w.WriteString("\r\n")
	}
	w.WriteString("Content-Length: ")
	w.Write(strconv.AppendInt(w.AvailableBuffer(), int64(len(r.body)), 10))
	w.WriteString("\r\n\r\n")
	w.Write(r.body)
}

// hostHeader is the Host header of an URL's host: as given, less an IPv6 zone, as net/http sends it.
func hostHeader(host string) string {
	if i := strings.LastIndex(host, "%"); i >= 0 && strings.HasPrefix(host, "[") {
		if j := strings.LastIndex(host, "]"); j > i {
			return host[:i] + host[j:]
		}
	}
	return host
}

// dialAddr returns the address to dial of u: its host and port, the scheme's default port if
// it names none.
func dialAddr(u *url.URL) (hostport string, err error) {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		default:
			return "", fmt.Errorf("unsupported scheme %q", u.Scheme)
		}
	}
	return net.JoinHostPort(u.Hostname(), port), nil
}

// connect dials hostport, with TLS for https, within r's deadline.
func (c *h1Client) connect(ctx context.Context, r *h1Request, hostport string) (*h1Conn, error) {
	dctx, cancel := context.WithDeadline(ctx, r.deadline)
	defer cancel()
	nc, err := c.dial(dctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	if r.u.Scheme == "https" {
		cfg := c.tlsConfig.Clone()
		cfg.ServerName = r.u.Hostname()
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	conn := &h1Conn{nc: nc, cr: countingReader{r: nc}}
	conn.br = bufio.NewReaderSize(&conn.cr, 4096)
	conn.bw = bufio.NewWriterSize(nc, 4096)
	return conn, nil
}

// get takes an idle connection to key, nil if there is none young enough.
func (c *h1Client) get(key string) *h1Conn {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.idle[key]
	for len(l) > 0 {
		conn := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(conn.idleFrom) < c.idleFor {
			c.idle[key] = l
			return conn
		}
		conn.nc.Close()
	}
	delete(c.idle, key)
	return nil
}

// put keeps conn for the next request to key, unless maxIdle are kept already; now and then it
// closes the connections idle for too long.
func (c *h1Client) put(key string, conn *h1Conn) {
	now := time.Now()
	conn.idleFrom = now
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired || len(c.idle[key]) >= c.maxIdle {
		conn.nc.Close()
	} else {
		c.idle[key] = append(c.idle[key], conn)
	}
	if now.Sub(c.lastSweep) < c.idleFor/2 {
		return
	}
	c.lastSweep = now
	for k, l := range c.idle {
		kept := l[:0]
		for _, ic := range l {
			if now.Sub(ic.idleFrom) < c.idleFor {
				kept = append(kept, ic)
			} else {
				ic.nc.Close()
			}
		}
		if len(kept) == 0 {
			delete(c.idle, k)
		} else {
			c.idle[k] = kept
		}
	}
}

// closeIdle closes every idle connection, and those of requests under way once they end: the
// Sender is retired.
func (c *h1Client) closeIdle() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired = true
	for k, l := range c.idle {
		for _, conn := range l {
			conn.nc.Close()
		}
		delete(c.idle, k)
	}
}

// isTimeout reports whether err is a deadline running out.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// isStale reports whether err is what a connection the receiver closed gives.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

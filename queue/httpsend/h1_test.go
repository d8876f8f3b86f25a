package httpsend

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts the connections a test server accepted and closed, and the requests it
// answered.
type connCounter struct {
	conns, closed, reqs atomic.Int32
}

func (c *connCounter) server(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.reqs.Add(1)
		io.Copy(io.Discard, r.Body)
		if h != nil {
			h(w, r)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			c.conns.Add(1)
		case http.StateClosed:
			c.closed.Add(1)
		}
	}
	for _, f := range configure {
		f(srv.Config)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// A receiver that closes keep-alive connections after a short idle time is not a failed attempt:
// the webhook goes out once more on a new connection, and the receiver gets it once.
func TestSendRetriesOnceWhenReceiverClosedIdleConnection(t *testing.T) {
	var c connCounter
	srv := c.server(t, nil, func(hs *http.Server) { hs.IdleTimeout = 50 * time.Millisecond })
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 3 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil || res.Status != 200 {
			t.Fatalf("attempt %d: %+v", i, res)
		}
		// The receiver closes the idle connection; the sender still holds it as idle.
		for deadline := time.Now().Add(5 * time.Second); c.closed.Load() < int32(i+1); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the receiver never closed connection %d", i+1)
			}
		}
	}
	if n := c.reqs.Load(); n != 3 {
		t.Errorf("receiver got %d requests for 3 webhooks", n)
	}
	if n := c.conns.Load(); n != 3 {
		t.Errorf("%d connections, want 3 (one per webhook, the closed one not used twice)", n)
	}
}

// Keep-alive connections are reused, except after "Connection: close".
func TestSendReusesConnectionsUnlessClosed(t *testing.T) {
	var c connCounter
	var closeNext atomic.Bool
	srv := c.server(t, func(w http.ResponseWriter, r *http.Request) {
		if closeNext.Load() {
			w.Header().Set("Connection", "close")
		}
	})
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 3 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil {
			t.Fatalf("attempt %d: %+v", i, res)
		}
	}
	if n := c.conns.Load(); n != 1 {
		t.Fatalf("%d connections for 3 sequential webhooks, want 1", n)
	}
	closeNext.Store(true)
	for i := range 2 {
		if res := s.Send(context.Background(), newJob(srv.URL)); res.Err != nil {
			t.Fatalf("attempt %d with Connection: close: %+v", i, res)
		}
	}
	if n := c.conns.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the first closed by the receiver after its answer, the second new", n)
	}
}

// Informational answers are passed over, chunked bodies are read, and the request carries Host,
// Content-Length and the webhook's headers.
func TestSendReadsChunkedAnswerAfterEarlyHints(t *testing.T) {
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(http.StatusAccepted)
		for range 3 {
			io.WriteString(w, "part;")
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
	}))
	defer srv.Close()
	s := New(Options{Token: "tok"})
	defer s.CloseIdleConnections()
	job := newJob(srv.URL + "/hook?a=b%20c")
	res := s.Send(context.Background(), job)
	if res.Err != nil || res.Status != http.StatusAccepted || res.Body != "part;part;part;" {
		t.Fatalf("Send = %+v", res)
	}
	body, _, _ := Encode(job)
	if got.Host != strings.TrimPrefix(srv.URL, "http://") || got.URL.RequestURI() != "/hook?a=b%20c" ||
		got.ContentLength != int64(len(body)) || got.Header.Get(HeaderEventID) != "evt-1" ||
		got.Header.Get("X-Phaxio-Signature") != Signature("tok", job) {
		t.Errorf("request: host %q, uri %q, length %d (want %d), headers %v", got.Host, got.URL.RequestURI(), got.ContentLength, len(body), got.Header)
	}
}

// An event ID that would break the request's header is a permanent failure, and nothing is sent.
func TestSendRefusesHeaderInjection(t *testing.T) {
	var c connCounter
	srv := c.server(t, nil)
	s := New(Options{})
	defer s.CloseIdleConnections()
	job := newJob(srv.URL)
	job.EventID = "evt-1\r\nX-Evil: 1"
	res := s.Send(context.Background(), job)
	if res.Err == nil || !res.Permanent || !strings.Contains(res.Err.Error(), HeaderEventID) {
		t.Errorf("Send = %+v, want a permanent failure naming %s", res, HeaderEventID)
	}
	if n := c.reqs.Load(); n != 0 {
		t.Errorf("receiver got %d requests", n)
	}
}

// A receiver that answers with garbage fails the attempt (retryable) and its connection is not
// reused.
func TestSendMalformedAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 abc nonsense\r\n\r\n")
			}()
		}
	}()
	s := New(Options{})
	defer s.CloseIdleConnections()
	for i := range 2 {
		res := s.Send(context.Background(), newJob("http://"+ln.Addr().String()+"/hook"))
		if res.Err == nil || res.Permanent || res.Status != 0 {
			t.Fatalf("attempt %d: Send = %+v, want a retryable failure", i, res)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("%d connections for 2 attempts, want 2", n)
	}
}

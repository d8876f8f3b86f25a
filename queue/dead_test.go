package queue_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/httpsend"
	"github.com/faxhook/caddy-faxhook/queue/ssrf"
)

// TestDeadLogSaysWhy runs the real dispatcher and HTTP sender against a loopback receiver: a
// destination the SSRF guard refuses, and URLs whose host is an IPv4 address in a numeric form
// (2130706433 is 127.0.0.1 to inet_aton), die after their first attempt with the reason in the
// "webhook dead" log entry and the Caddy-facing reason; a receiver that keeps failing dies after
// the ladder with "no more retries". The receiver is never reached through a numeric host.
func TestDeadLogSaysWhy(t *testing.T) {
	var hitsN atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hitsN.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	port := strings.TrimPrefix(srv.URL, "http://127.0.0.1:")

	cases := []struct {
		name, url string
		guard     *ssrf.Guard
		attempts  int
		log       string
	}{
		{"guarded loopback", srv.URL + "/hook", ssrf.New(nil), 1, "webhook dead: destination refused by the SSRF guard (permanent)"},
		{"decimal host", "http://2130706433:" + port + "/hook", nil, 1, "webhook dead: permanent failure, not retried"},
		{"hex host", "http://0x7f.1:" + port + "/hook", nil, 1, "webhook dead: permanent failure, not retried"},
		{"octal host", "http://017700000001:" + port + "/hook", nil, 1, "webhook dead: permanent failure, not retried"},
		{"short dotted host", "http://127.1:" + port + "/hook", nil, 1, "webhook dead: permanent failure, not retried"},
		{"guarded decimal host", "http://2130706433:" + port + "/hook", ssrf.New(nil), 1, "webhook dead: permanent failure, not retried"},
		{"failing receiver", srv.URL + "/hook", nil, 3, "webhook dead: no more retries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := hitsN.Load()
			core, logs := observer.New(zapcore.InfoLevel)
			t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := queue.NewFakeClock(t0)
			outcomes := make(chan queue.Result, 10)
			dead := make(chan *queue.Job, 1)
			st := openStore(t, t.TempDir())
			d := queue.NewDispatcher(st, httpsend.New(httpsend.Options{Guard: c.guard}), queue.Options{
				Clock: clock, Schedule: []time.Duration{time.Minute, time.Minute}, Logger: zap.New(core),
				OnOutcome: func(j *queue.Job, res queue.Result) {
					// dead first: the test reads dead at once once it has the outcome.
					if j.State == queue.StateDead {
						dead <- j
					}
					outcomes <- res
				},
			})
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			defer d.Stop()
			enqueue(t, d, "j", c.url, t0)
			var j *queue.Job
			var last queue.Result
			for j == nil {
				select {
				case last = <-outcomes:
				case <-time.After(10 * time.Second):
					t.Fatal("no attempt outcome")
				}
				select {
				case j = <-dead:
				default:
					clock.Advance(time.Minute) // the next retry is due
				}
			}
			if len(j.Attempts) != c.attempts {
				t.Fatalf("dead after %d attempts (last error %v), want %d", len(j.Attempts), last.Err, c.attempts)
			}
			entries := logs.FilterMessage(c.log).All()
			if len(entries) != 1 {
				var msgs []string
				for _, e := range logs.All() {
					msgs = append(msgs, e.Message)
				}
				t.Fatalf("log %q, want one %q", msgs, c.log)
			}
			if got := strings.TrimPrefix(c.log, "webhook dead: "); queue.DeadReason(last) != got {
				t.Errorf("DeadReason = %q, want %q", queue.DeadReason(last), got)
			}
			if c.attempts == 1 && hitsN.Load() != before {
				t.Errorf("the receiver was reached through %s", c.url)
			}
			if strings.Contains(c.name, "host") {
				u, _ := url.Parse(c.url)
				if msg := fmt.Sprint(last.Err); !strings.Contains(msg, fmt.Sprintf("host %q is numeric", u.Hostname())) {
					t.Errorf("attempt error = %q, want one saying the host is numeric", msg)
				}
			}
		})
	}
}

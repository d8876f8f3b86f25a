package httpsend

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

const (
	stdSecret      = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	stdOtherSecret = "whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24="
)

func mustKey(t *testing.T, secret string) sign.StandardKey {
	t.Helper()
	k, err := sign.ParseStandardSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestStandardWebhooksVerifyWithReferenceLibrary delivers a real webhook to a loopback receiver
// and verifies what it got with the Standard Webhooks reference library (Go), timestamp
// tolerance included; the X-Phaxio-Signature is still there and still verifies.
func TestStandardWebhooksVerifyWithReferenceLibrary(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	job := newJob(rec.srv.URL + "/hook")
	s := New(Options{Token: testToken, StandardWebhooks: []StandardRule{{Keys: []sign.StandardKey{mustKey(t, stdSecret)}}}})
	defer s.CloseIdleConnections()
	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatal(res.Err)
	}
	r := rec.requests()[0]
	wh, err := standardwebhooks.NewWebhook(stdSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(r.body, r.header); err != nil {
		t.Fatalf("reference library: %v (headers %v)", err, r.header)
	}
	if got := r.header.Get(sign.StandardHeaderID); got != "msg_job-1" {
		t.Errorf("webhook-id %q", got)
	}
	if !verify(testToken, r.header.Get(sign.Header), r.fullURL(), parseBody(t, r.header.Get("Content-Type"), r.body)) {
		t.Error("X-Phaxio-Signature does not verify next to the Standard Webhooks headers")
	}
	other, _ := standardwebhooks.NewWebhook(stdOtherSecret)
	if other.Verify(r.body, r.header) == nil {
		t.Error("verified with a key that did not sign")
	}
}

// TestStandardWebhooksRetryKeepsIDChangesTimestamp drives two attempts of one job with a fake
// clock: the id stays, the timestamp is each attempt's, and both verify.
func TestStandardWebhooksRetryKeepsIDChangesTimestamp(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	job := newJob(rec.srv.URL + "/hook")
	s := New(Options{StandardWebhooks: []StandardRule{{Keys: []sign.StandardKey{mustKey(t, stdSecret)}}}})
	defer s.CloseIdleConnections()
	t0 := time.Unix(1700000000, 0)
	now := t0
	s.now = func() time.Time { return now }
	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatal(res.Err)
	}
	job.Attempts = append(job.Attempts, queue.Attempt{At: t0, Status: 500, Error: "x"})
	now = t0.Add(5 * time.Minute)
	if res := s.Send(context.Background(), job); res.Err != nil {
		t.Fatal(res.Err)
	}
	reqs := rec.requests()
	a, b := reqs[0].header, reqs[1].header
	if a.Get(sign.StandardHeaderID) != b.Get(sign.StandardHeaderID) || a.Get(sign.StandardHeaderID) == "" {
		t.Errorf("webhook-id %q then %q", a.Get(sign.StandardHeaderID), b.Get(sign.StandardHeaderID))
	}
	if a.Get(sign.StandardHeaderTimestamp) != strconv.FormatInt(t0.Unix(), 10) ||
		b.Get(sign.StandardHeaderTimestamp) != strconv.FormatInt(now.Unix(), 10) {
		t.Errorf("webhook-timestamp %q then %q", a.Get(sign.StandardHeaderTimestamp), b.Get(sign.StandardHeaderTimestamp))
	}
	if a.Get(sign.StandardHeaderSignature) == b.Get(sign.StandardHeaderSignature) {
		t.Error("signature did not change with the timestamp")
	}
	wh, _ := standardwebhooks.NewWebhook(stdSecret)
	for i, r := range reqs {
		if err := wh.VerifyIgnoringTimestamp(r.body, r.header); err != nil {
			t.Errorf("attempt %d: %v", i+1, err)
		}
	}
	// Another job to the same URL has another id.
	job2 := newJob(rec.srv.URL + "/hook")
	job2.ID = "job-2"
	if res := s.Send(context.Background(), job2); res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := rec.requests()[2].header.Get(sign.StandardHeaderID); got == a.Get(sign.StandardHeaderID) {
		t.Errorf("two jobs share webhook-id %q", got)
	}
}

// TestStandardWebhooksPerURL: the longest matching prefix wins; several keys of one prefix give
// several signatures, each verifying; an unmatched URL gets no headers; credentials in the URL
// do not take part in the match.
func TestStandardWebhooksPerURL(t *testing.T) {
	rec := newRecorder(t, http.StatusOK)
	base := rec.srv.URL
	s := New(Options{StandardWebhooks: []StandardRule{
		{Prefix: base + "/a/", Keys: []sign.StandardKey{mustKey(t, stdSecret)}},
		{Prefix: base + "/a/b/", Keys: []sign.StandardKey{mustKey(t, stdOtherSecret)}},
		{Prefix: base + "/a/b/", Keys: []sign.StandardKey{mustKey(t, stdSecret)}},
	}})
	defer s.CloseIdleConnections()
	withCreds := strings.Replace(base, "http://", "http://u:p@", 1)
	for _, u := range []string{base + "/a/x", withCreds + "/a/b/y", base + "/c"} {
		if res := s.Send(context.Background(), newJob(u)); res.Err != nil {
			t.Fatal(res.Err)
		}
	}
	reqs := rec.requests()
	one, _ := standardwebhooks.NewWebhook(stdSecret)
	two, _ := standardwebhooks.NewWebhook(stdOtherSecret)
	if err := one.Verify(reqs[0].body, reqs[0].header); err != nil {
		t.Errorf("/a/x: %v", err)
	}
	if two.Verify(reqs[0].body, reqs[0].header) == nil {
		t.Error("/a/x verified with /a/b/'s key")
	}
	if n := len(strings.Fields(reqs[1].header.Get(sign.StandardHeaderSignature))); n != 2 {
		t.Errorf("/a/b/y: %d signatures, want 2", n)
	}
	for name, wh := range map[string]*standardwebhooks.Webhook{"one": one, "two": two} {
		if err := wh.Verify(reqs[1].body, reqs[1].header); err != nil {
			t.Errorf("/a/b/y with key %s: %v", name, err)
		}
	}
	for _, h := range []string{sign.StandardHeaderID, sign.StandardHeaderTimestamp, sign.StandardHeaderSignature} {
		if v := reqs[2].header.Get(h); v != "" {
			t.Errorf("/c: %s %q, want none", h, v)
		}
	}
}

package module

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/faxhook/caddy-faxhook/module/profile"
	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/sign"
)

const testSWHSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// A standard_webhooks secret from {env.*} reaches the HTTP sender: a fax's webhook, failed once
// and then delivered, carries Standard Webhooks headers that the reference library verifies on
// both attempts, with one webhook-id; the admin API shows neither the secret nor its key, even
// when a receiver quotes it in its answer.
func TestStandardWebhooksEndToEnd(t *testing.T) {
	t.Setenv("FAXHOOK_TEST_SWH", testSWHSecret)
	rules, secrets, err := standardRules([]StandardWebhooksConfig{{Secret: "{env.FAXHOOK_TEST_SWH}"}}, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		header http.Header
		body   []byte
	}
	var mu sync.Mutex
	var reqs []got
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{r.Header.Clone(), b})
		n := len(reqs)
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "did not verify with %s", testSWHSecret)
		}
	}))
	t.Cleanup(srv.Close)
	e := startEngine(t, settings{token: "s3cret-token", schedule: []time.Duration{1100 * time.Millisecond}, timeout: 5 * time.Second,
		workers: 2, standard: rules, standardSecrets: secrets})
	completeFax(t, e, 301, srv.URL+"/hook")
	j := jobOf(t, e, 301)
	waitState(t, e, j.ID, queue.StateDelivered)

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	wh, err := standardwebhooks.NewWebhook(testSWHSecret)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reqs {
		if err := wh.Verify(r.body, r.header); err != nil {
			t.Errorf("attempt %d: reference library: %v", i+1, err)
		}
		if r.header.Get(sign.Header) == "" {
			t.Errorf("attempt %d: no X-Phaxio-Signature", i+1)
		}
	}
	id0, id1 := reqs[0].header.Get(sign.StandardHeaderID), reqs[1].header.Get(sign.StandardHeaderID)
	if id0 != "msg_"+j.ID || id1 != id0 {
		t.Errorf("webhook-id %q then %q, want msg_%s both times", id0, id1, j.ID)
	}
	if ts0, ts1 := reqs[0].header.Get(sign.StandardHeaderTimestamp), reqs[1].header.Get(sign.StandardHeaderTimestamp); ts0 == ts1 {
		t.Errorf("webhook-timestamp %q on both attempts, a second apart", ts0)
	}

	c := newAdminClient(t, nil)
	var d map[string]any
	c.ok("GET", "/faxhook/deliveries/"+j.ID, &d)
	c.ok("GET", "/faxhook/deliveries", &d)
	if len(c.bodies) == 0 || !strings.Contains(strings.Join(c.bodies, ""), "REDACTED") {
		t.Fatalf("admin answers do not show the scrubbed receiver body: %v", c.bodies)
	}
	c.noSecrets(testSWHSecret, strings.TrimPrefix(testSWHSecret, "whsec_"))
}

// A secret that is empty or invalid once its placeholder is replaced fails provisioning with an
// error that names the placeholder and never the secret.
func TestStandardRulesErrors(t *testing.T) {
	t.Setenv("FAXHOOK_TEST_SWH_BAD", "whsec_!!notbase64!!")
	for cfg, want := range map[string]string{
		"{env.FAXHOOK_TEST_SWH_UNSET}": "{env.FAXHOOK_TEST_SWH_UNSET}): parsing Standard Webhooks secret: it is empty",
		"{env.FAXHOOK_TEST_SWH_BAD}":   "{env.FAXHOOK_TEST_SWH_BAD}): parsing Standard Webhooks secret: the part after \"whsec_\" is not valid base64",
	} {
		_, _, err := standardRules([]StandardWebhooksConfig{{Secret: testSWHSecret}, {Secret: cfg}}, caddy.NewReplacer())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "entry 2") {
			t.Errorf("%s: error %v, want one naming entry 2 and %q", cfg, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "notbase64") {
			t.Errorf("%s: error shows the secret: %v", cfg, err)
		}
	}
	rules, _, err := standardRules([]StandardWebhooksConfig{{Secret: testSWHSecret, URLPrefixes: []string{"https://a.example/x/", "https://b.example/"}}}, caddy.NewReplacer())
	if err != nil || len(rules) != 2 || rules[0].Prefix != "https://a.example/x/" || rules[1].Prefix != "https://b.example/" {
		t.Fatalf("rules %+v, %v", rules, err)
	}
}

// An account with a token of its own gets a sender of its own; its webhooks carry the global
// standard_webhooks signatures too.
func TestStandardWebhooksAccountSender(t *testing.T) {
	rules, secrets, err := standardRules([]StandardWebhooksConfig{{Secret: testSWHSecret}}, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var hdr http.Header
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hdr, body = r.Header.Clone(), b
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	s := settings{token: "app-token", timeout: 5 * time.Second, standard: rules, standardSecrets: secrets}
	if s.accounts, err = accountSettings(&s, []*Account{{APIKey: "key-b", Token: "account-b-token"}}, nil, caddy.NewReplacer()); err != nil {
		t.Fatal(err)
	}
	set := newSenderSet(&s, nil)
	defer set.closeIdle()
	j := &queue.Job{ID: "job-b", EventID: "e", URL: srv.URL + "/hook", Meta: queue.Labels{{Name: labelAccount, Value: "key-b"}},
		Payload: queue.Payload{Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}}}}
	snd := set.of(j)
	if snd == set.base {
		t.Fatal("the account with its own token got the app's sender")
	}
	if res := snd.Send(t.Context(), j); res.Err != nil {
		t.Fatal(res.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	wh, _ := standardwebhooks.NewWebhook(testSWHSecret)
	if err := wh.Verify(body, hdr); err != nil {
		t.Fatalf("account webhook: %v", err)
	}
}

// An account's own standard_webhooks secret signs that account's webhooks; other faxes keep
// the app's rules (here: none, so no Standard Webhooks headers).
func TestStandardWebhooksPerAccount(t *testing.T) {
	var mu sync.Mutex
	headers := map[string]http.Header{} // by path
	bodies := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		headers[r.URL.Path], bodies[r.URL.Path] = r.Header.Clone(), b
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	base := settings{token: "s3cret-token", schedule: []time.Duration{time.Second}, timeout: 5 * time.Second, workers: 2}
	accounts, err := accountSettings(&base, []*Account{{APIKey: "acct-a", StandardWebhooks: []StandardWebhooksConfig{{Secret: testSWHSecret}}}}, nil, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	base.accounts = accounts
	e := startEngine(t, base)
	for _, f := range []struct {
		id   int64
		key  string
		path string
	}{{401, "acct-a", "/a"}, {402, "", "/global"}} {
		done := fax.Fax{ID: f.id, Direction: fax.DirectionSent, Status: fax.StatusSuccess, IsTest: true,
			CompletedAt: fax.Str(time.Now().Format("2006-01-02T15:04:05.000-07:00")),
			Recipients:  []fax.Recipient{{PhoneNumber: "+15550100000", Status: fax.Str(fax.StatusSuccess)}}}
		for _, o := range []*Observation{
			{Faxes: []profile.Object{{Fax: fax.Fax{ID: f.id}}}, CallbackURLs: []string{srv.URL + f.path}, APIKey: f.key},
			{Faxes: []profile.Object{{Fax: done, Full: true}}},
		} {
			if err := e.tracker.record([]*Observation{o}); err != nil {
				t.Fatal(err)
			}
		}
		waitState(t, e, jobOf(t, e, f.id).ID, queue.StateDelivered)
	}
	mu.Lock()
	defer mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(testSWHSecret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(bodies["/a"], headers["/a"]); err != nil {
		t.Errorf("account's webhook: reference library: %v", err)
	}
	if h := headers["/global"].Get(sign.StandardHeaderSignature); h != "" {
		t.Errorf("a fax of no account got webhook-signature %q; the app has no standard_webhooks", h)
	}
	for _, p := range []string{"/a", "/global"} {
		if headers[p].Get(sign.Header) == "" {
			t.Errorf("%s: no X-Phaxio-Signature", p)
		}
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// Two accounts of the fax service behind one faxhook, each with its own webhook token, URLs and
// numbers, next to the app's global settings for every other API key.
func TestAccountsGetTheirOwnWebhooks(t *testing.T) {
	const (
		keyA, secretA, tokenA = "acct-a", "secret-a", "token-of-a"
		keyB, secretB, tokenB = "acct-b", "secret-b", "token-of-b"
		numberA               = "+18005550111"
	)
	rcvA := receiver.New(receiver.Config{Token: tokenA})
	rcvB := receiver.New(receiver.Config{Token: tokenB})
	srvA, srvB := httptest.NewServer(rcvA), httptest.NewServer(rcvB)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	opts := fmt.Sprintf(`sent_url RCV/global-sent
		received_url RCV/global-received
		account %s {
			token {env.TOKEN_A}
			sent_url %s/a-sent
			received_url %s/a-received
			number %s %s/a-number
			metrics on
		}
		account %s {
			token %s
			sent_url %s/b-sent
			received_url %s/b-received
			webhook_version 1
		}`, keyA, srvA.URL, srvA.URL, numberA, srvA.URL, keyB, tokenB, srvB.URL, srvB.URL)
	svc := faxapp.Config{Tick: 50 * time.Millisecond, Seed: 5, Accounts: map[string]string{keyA: secretA, keyB: secretB}}
	e := newEnvIn(t, svc, nil, opts, "", "TOKEN_A="+tokenA)
	ctx := ctxT(t, 90*time.Second)
	clientA := &harness.Client{Base: e.client.Base, Key: keyA, Secret: secretA}
	clientB := &harness.Client{Base: e.client.Base, Key: keyB, Secret: secretB}

	sentA, err := clientA.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	if err != nil {
		t.Fatal(err)
	}
	sentB, err := clientB.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	if err != nil {
		t.Fatal(err)
	}
	sentG := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	// B receives a fax on A's number: it is B's fax, so A's number URL is not used for it.
	recvB, err := clientB.TestReceive(ctx, faxapp.PDF(2), "+15550300000", numberA)
	if err != nil {
		t.Fatal(err)
	}
	recvA, err := clientA.TestReceive(ctx, faxapp.PDF(2), "+15550300000", numberA)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		c  *harness.Client
		id int64
	}{{clientA, sentA}, {clientB, sentB}, {clientB, recvB}, {clientA, recvA}} {
		if _, err := f.c.WaitDone(ctx, f.id, 30*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}

	waitN := func(r *receiver.Receiver, n int, who string) []receiver.Delivery {
		t.Helper()
		if _, err := r.Wait(ctx, n); err != nil {
			t.Fatalf("%s: waiting for %d deliveries (got %d): %v", who, n, r.Count(), err)
		}
		time.Sleep(300 * time.Millisecond)
		ds := r.Deliveries()
		if len(ds) != n {
			t.Fatalf("%s: %d deliveries, want %d: %+v", who, len(ds), n, ds)
		}
		return ds
	}
	check := func(ds []receiver.Delivery, who string, want map[int64]string) {
		t.Helper()
		for _, d := range ds {
			if !d.Verified {
				t.Errorf("%s: delivery to %s not signed with the account's token", who, d.URL)
			}
			id := parseFax(t, d).ID
			if w, ok := want[id]; !ok || d.URL != w {
				t.Errorf("%s: fax %d delivered to %s; want %v", who, id, d.URL, want)
			}
		}
	}
	check(waitN(rcvA, 2, "account A"), "account A", map[int64]string{sentA: srvA.URL + "/a-sent", recvA: srvA.URL + "/a-number"})
	dsB := waitN(rcvB, 2, "account B")
	check(dsB, "account B", map[int64]string{sentB: srvB.URL + "/b-sent", recvB: srvB.URL + "/b-received"})
	for _, d := range dsB { // account B's receivers speak Phaxio's v1 webhooks
		if _, ok := d.Fields["event_type"]; ok || d.Fields["success"] == "" || d.Fields["direction"] == "" {
			t.Errorf("account B (webhook_version 1) got fields %v; want v1's success, is_test, direction, fax", d.Fields)
		}
	}
	check(waitN(e.rcv, 1, "global"), "global", map[int64]string{sentG: e.rcvURL + "/global-sent"})

	// The admin API knows each job's account, and filters by it.
	if got := strings.Count(e.get("/faxhook/deliveries?account="+keyA), `"state":"delivered"`); got != 2 {
		t.Errorf("deliveries of account A: %d delivered, want 2", got)
	}
	if got := strings.Count(e.get("/faxhook/deliveries?account="+keyB), `"account":"`+keyB+`"`); got != 2 {
		t.Errorf("deliveries of account B: %d listed with its key, want 2", got)
	}
	// Only the account that opted in gets a metrics label.
	metrics := e.get("/metrics")
	if want := `faxhook_account_deliveries_total{account="` + keyA + `",outcome="delivered"} 2`; !strings.Contains(metrics, want) {
		t.Errorf("metrics lack %s", want)
	}
	if strings.Contains(metrics, `account="`+keyB+`"`) {
		t.Errorf("metrics label account B, which did not opt in")
	}
}

// With a poller, each account's faxes are polled, its received faxes listed and their PDFs
// fetched with the account's own credentials: the fax service shows an account only its own
// faxes, so the poll block's credentials would not find them.
func TestAccountsPollWithTheirOwnCredentials(t *testing.T) {
	const (
		keyA, secretA, tokenA = "acct-a", "secret-a", "token-of-a"
		keyB, secretB, tokenB = "acct-b", "secret-b", "token-of-b"
	)
	rcvA := receiver.New(receiver.Config{Token: tokenA})
	rcvB := receiver.New(receiver.Config{Token: tokenB})
	srvA, srvB := httptest.NewServer(rcvA), httptest.NewServer(rcvB)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	opts := pollBlock("") + fmt.Sprintf(`
		account %s {
			token %s
			sent_url %s/a-sent
			poll_secret {env.SECRET_A}
		}
		account %s {
			token %s
			received_url %s/b-received
			poll_secret %s
		}`, keyA, tokenA, srvA.URL, keyB, tokenB, srvB.URL, secretB)
	svc := faxapp.Config{Tick: 50 * time.Millisecond, Seed: 6, Accounts: map[string]string{keyA: secretA, keyB: secretB}}
	e := newEnvIn(t, svc, nil, opts, "", "SECRET_A="+secretA)
	ctx := ctxT(t, 90*time.Second)
	clientA := &harness.Client{Base: e.client.Base, Key: keyA, Secret: secretA}
	// Straight to the fax service, not through Caddy: only B's listing can reveal this fax.
	directB := &harness.Client{Base: e.faxURL + "/v2.1", Key: keyB, Secret: secretB}

	sentAndListed(ctx, t, e, clientA, directB, rcvA, rcvB, "A", "B", "+18005550122")
}

// An API that takes its key as a bearer token (account_key bearer): faxhook finds each fax's
// account by the token, which is a secret, so the account goes by its name everywhere faxhook
// shows or stores it, and the poller lists each account's received faxes with its own token.
func TestAccountsByBearerToken(t *testing.T) {
	const (
		keyA, secretA, bearerA, tokenA = "acct-a", "secret-a", "bearer-secret-of-a-0123", "token-of-a"
		keyB, secretB, bearerB, tokenB = "acct-b", "secret-b", "bearer-secret-of-b-4567", "token-of-b"
	)
	rcvA := receiver.New(receiver.Config{Token: tokenA})
	rcvB := receiver.New(receiver.Config{Token: tokenB})
	srvA, srvB := httptest.NewServer(rcvA), httptest.NewServer(rcvB)
	t.Cleanup(srvA.Close)
	t.Cleanup(srvB.Close)
	opts := pollBlock("") + fmt.Sprintf(`
		account_key bearer
		account {env.BEARER_A} {
			name acme
			token %s
			sent_url %s/a-sent
		}
		account %s {
			name bravo
			token %s
			received_url %s/b-received
		}`, tokenA, srvA.URL, bearerB, tokenB, srvB.URL)
	svc := faxapp.Config{Tick: 50 * time.Millisecond, Seed: 7,
		Accounts: map[string]string{keyA: secretA, keyB: secretB},
		Bearer:   map[string]string{bearerA: keyA, bearerB: keyB}}
	e := newEnvIn(t, svc, nil, opts, "", "BEARER_A="+bearerA)
	ctx := ctxT(t, 90*time.Second)
	clientA := &harness.Client{Base: e.client.Base, Bearer: bearerA}
	// Straight to the fax service, not through Caddy: only B's listing, with B's token, can
	// reveal this fax.
	directB := &harness.Client{Base: e.faxURL + "/v2.1", Bearer: bearerB}

	sentAndListed(ctx, t, e, clientA, directB, rcvA, rcvB, "acme", "bravo", "+18005550133")
	listing := e.get("/faxhook/deliveries")
	for _, name := range []string{"acme", "bravo"} {
		if !strings.Contains(listing, `"account":"`+name+`"`) {
			t.Errorf("the admin API does not name account %s: %s", name, listing)
		}
	}
	shown := listing + e.get("/faxhook/faxes") + e.get("/faxhook/stats") + e.get("/metrics")
	for _, secret := range []string{bearerA, bearerB} {
		if strings.Contains(shown, secret) {
			t.Errorf("a bearer token shows in the admin API or metrics")
		}
	}
}

// sentAndListed sends a fax through Caddy with clientA's credentials and has directB receive
// one straight at the fax service (so that only the listing with B's credentials reveals it),
// then checks that each account's receiver, rcvA and rcvB, got its one signed webhook (B's with
// the PDF) and the global URLs none.
func sentAndListed(ctx context.Context, t *testing.T, e *env, clientA, directB *harness.Client, rcvA, rcvB *receiver.Receiver, nameA, nameB, number string) {
	t.Helper()
	sentA, err := clientA.Send(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1)})
	if err != nil {
		t.Fatal(err)
	}
	pdf := faxapp.PDF(3)
	recvB, err := directB.TestReceive(ctx, pdf, "+15550300000", number)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rcvA.Wait(ctx, 1); err != nil {
		t.Fatalf("account %s's sent fax: no webhook (got %d): %v", nameA, rcvA.Count(), err)
	}
	if _, err := rcvB.Wait(ctx, 1); err != nil {
		t.Fatalf("account %s's received fax: no webhook (got %d): %v", nameB, rcvB.Count(), err)
	}
	time.Sleep(300 * time.Millisecond)
	a, b := rcvA.Deliveries(), rcvB.Deliveries()
	if len(a) != 1 || !a[0].Verified || parseFax(t, a[0]).ID != sentA || a[0].Fields["event_type"] != "fax_completed" {
		t.Errorf("account %s got %+v; want one fax_completed of fax %d signed with its token", nameA, a, sentA)
	}
	if len(b) != 1 || !b[0].Verified || parseFax(t, b[0]).ID != recvB || len(b[0].Files) != 1 || b[0].Files[0].Size != len(pdf) {
		t.Errorf("account %s got %+v; want one webhook of fax %d with its PDF, signed with its token", nameB, b, recvB)
	}
	if n := e.rcv.Count(); n != 0 {
		t.Errorf("%d webhooks went to the global URLs; want none", n)
	}
}

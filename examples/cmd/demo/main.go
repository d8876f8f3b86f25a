// Command demo runs faxhook's main job on loopback: the simulated fax service, a webhook receiver
// that verifies signatures, and Caddy with the faxhook plugin in front of the service. It sends a
// few faxes through Caddy, follows them through Caddy as a client would, prints each verified
// webhook as it arrives and exits 0 once every expected webhook arrived (1 otherwise).
//
//	go run ./examples/cmd/demo -caddy ./caddy
//
// With -profile sinch_v3, telnyx or twilio_fax it runs a shipped profile's demo instead (see
// runProfile).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/examples/smtpsink"
)

const (
	token  = "demo-webhook-token"
	key    = "demo-key"
	secret = "demo-secret"
	// A second account of the fax service, with webhook settings of its own.
	acmeToken  = "acme-webhook-token"
	acmeKey    = "acme-key"
	acmeSecret = "acme-secret"
)

func main() {
	bin := flag.String("caddy", "./caddy", "Caddy binary with the faxhook plugin (./xcaddy.sh build)")
	timeout := flag.Duration("timeout", 90*time.Second, "give up after this long")
	keep := flag.Bool("keep", false, "keep the work directory (Caddyfile, logs, storage)")
	stay := flag.Bool("stay", false, "after the demo, keep everything running, with the web console open, until interrupted (Ctrl-C)")
	prof := flag.String("profile", "", "instead, the demo of a shipped profile: sinch_v3, telnyx or twilio_fax (a simulated API of that shape)")
	flag.Parse()
	err := func() error {
		if *prof != "" {
			return runProfile(*bin, *prof, *timeout, *keep)
		}
		return run(*bin, *timeout, *keep, *stay)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(bin string, timeout time.Duration, keep, stay bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "faxhook-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	svc := faxapp.New(faxapp.Config{APIKey: key, APISecret: secret, Accounts: map[string]string{acmeKey: acmeSecret}, Tick: 150 * time.Millisecond, Seed: 7})
	faxURL, stopFax, err := harness.Serve(svc)
	if err != nil {
		return err
	}
	defer stopFax()
	var mu sync.Mutex // one line at a time from the receivers and the SMTP sink
	printer := newPrinter(&mu)
	rcv := receiver.New(receiver.Config{Token: token, Respond: printer})
	rcvURL, stopRcv, err := harness.Serve(rcv)
	if err != nil {
		return err
	}
	defer stopRcv()
	// The second account's receiver checks signatures with that account's own token.
	acmeRcv := receiver.New(receiver.Config{Token: acmeToken, Respond: printer})
	acmeURL, stopAcme, err := harness.Serve(acmeRcv)
	if err != nil {
		return err
	}
	defer stopAcme()
	sink, err := smtpsink.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sink.Close()
	sink.OnMessage = func(m smtpsink.Message) {
		mu.Lock()
		defer mu.Unlock()
		p, err := smtpsink.Parse(m.Data)
		if err != nil {
			fmt.Println("e-mail   (unreadable):", err)
			return
		}
		fmt.Printf("e-mail   to %v: %q (text %d bytes, html %d bytes)\n", m.To, p.Subject, len(p.Text), len(p.HTML))
		for _, line := range strings.Split(strings.TrimSpace(p.Text), "\n") {
			fmt.Println("         |", line)
		}
	}

	admin, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	site, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	consoleSite, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	caddyfile := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		storage %s
		token {env.FAXHOOK_TOKEN}
		sent_url %s/phaxio/sent
		retry_schedule 1s 2s 4s
		allow_private 127.0.0.0/8
		smtp {
			server %s
			from "Faxhook demo <fax@faxhook.test>"
			tls opportunistic
		}
		account %s {
			token {env.ACME_TOKEN}
			sent_url %s/acme/sent
			webhook_version 1
		}
	}
}

http://%s {
	faxhook
	reverse_proxy %s
}

# The web console, on a loopback address only (elsewhere: behind basic_auth).
http://%s {
	faxhook_console
}
`, admin, filepath.Join(dir, "storage"), rcvURL, sink.Addr(), acmeKey, acmeURL, site, faxURL, consoleSite)
	fmt.Printf("fax service  %s\nreceiver     %s\nacme's      %s  (account %s: its own URL and token, Phaxio v1 webhooks)\nsmtp sink    %s\ncaddy        http://%s  (faxhook + reverse_proxy)\nconsole      http://%s/faxhook/console/\n\n",
		faxURL, rcvURL, acmeURL, acmeKey, sink.Addr(), site, consoleSite)
	caddy, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, caddyfile, "FAXHOOK_TOKEN="+token, "ACME_TOKEN="+acmeToken)
	if err != nil {
		return err
	}
	defer caddy.Stop()

	client := &harness.Client{Base: "http://" + site + "/v2.1", Key: key, Secret: secret}
	acme := &harness.Client{Base: client.Base, Key: acmeKey, Secret: acmeSecret}
	type send struct {
		c *harness.Client
		harness.SendOptions
	}
	sends := []send{
		{client, harness.SendOptions{To: []string{"+15558670000"}, File: faxapp.PDF(2), CallbackURL: rcvURL + "/phaxio/callback?customer=42"}},
		{client, harness.SendOptions{To: []string{"+15558670001", "+15558670000"}, File: faxapp.PDF(3)}},
		{client, harness.SendOptions{To: []string{"+15558670002"}, File: faxapp.PDF(1), CallbackURL: rcvURL + "/phaxio/callback?customer=7", CallbackAfterFile: true}},
		{client, harness.SendOptions{To: []string{"+15558670000"}, File: faxapp.PDF(1), CallbackURL: "mailto:frontdesk@faxhook.test", Tags: map[string]string{"patient": "<b>Jane</b>"}}},
		// Sent with the second account's API key: its webhook goes to that account's URL, signed
		// with that account's token.
		{acme, harness.SendOptions{To: []string{"+15558670000"}, File: faxapp.PDF(1)}},
	}
	const webhooks, acmeWebhooks = 3, 1 // the e-mail goes to the SMTP sink
	var wg sync.WaitGroup
	errs := make(chan error, len(sends))
	for _, o := range sends {
		id, err := o.c.Send(ctx, o.SendOptions)
		if err != nil {
			return err
		}
		fmt.Printf("sent     fax=%d to %v through Caddy as %s (callback_url %q)\n", id, o.To, o.c.Key, o.CallbackURL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := o.c.WaitDone(ctx, id, 200*time.Millisecond)
			if err != nil {
				errs <- err
				return
			}
			fmt.Printf("polled   fax=%d is %s\n", id, s)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	if _, err := rcv.Wait(ctx, webhooks); err != nil {
		return fmt.Errorf("waiting for %d webhooks (got %d): %w; caddy log:\n%s", webhooks, rcv.Count(), err, caddy.Tail(30))
	}
	if _, err := acmeRcv.Wait(ctx, acmeWebhooks); err != nil {
		return fmt.Errorf("waiting for account %s's webhook (got %d): %w; caddy log:\n%s", acmeKey, acmeRcv.Count(), err, caddy.Tail(30))
	}
	if _, err := sink.Wait(ctx, 1); err != nil {
		return fmt.Errorf("waiting for the e-mail webhook: %w; caddy log:\n%s", err, caddy.Tail(30))
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would show up now
	ds, acmeDs := rcv.Deliveries(), acmeRcv.Deliveries()
	for _, d := range append(ds, acmeDs...) {
		if !d.Verified {
			return fmt.Errorf("a webhook failed signature verification: %+v", d)
		}
	}
	if len(ds) != webhooks || len(acmeDs) != acmeWebhooks || len(sink.Messages()) != 1 {
		return fmt.Errorf("%d + %d webhooks and %d e-mails arrived, want %d + %d and 1", len(ds), len(acmeDs), len(sink.Messages()), webhooks, acmeWebhooks)
	}
	fmt.Printf("\nall %d webhooks arrived, signed and verified (%d of them to account %s's own URL, with its own token), and 1 e-mail webhook\n",
		len(ds)+len(acmeDs), len(acmeDs), acmeKey)
	fmt.Printf("the web console: http://%s/faxhook/console/\n", consoleSite)
	if stay {
		fmt.Println("running until interrupted (Ctrl-C); send faxes to the fax API through Caddy at http://" + site + "/v2.1")
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
	}
	return nil
}

// newPrinter returns a receiver's Respond that prints each webhook on one line and refuses one
// whose signature does not verify; mu keeps its lines whole among other printers'.
func newPrinter(mu *sync.Mutex) func(receiver.Delivery) int {
	return func(d receiver.Delivery) int {
		mu.Lock()
		defer mu.Unlock()
		status := "VERIFIED"
		if !d.Verified {
			status = "INVALID SIGNATURE"
		}
		event := d.Fields["event_type"]
		if event == "" { // Phaxio v1 webhooks have no event type
			event = "v1 callback"
		}
		fmt.Printf("webhook  %-17s %-15s fax=%s  %s  %s\n", status, event, faxID(d.Fields["fax"]), faxStatus(d.Fields["fax"]), d.URL)
		if !d.Verified {
			return http.StatusUnauthorized
		}
		return http.StatusOK
	}
}

func faxID(j string) string {
	var f struct {
		ID int64 `json:"id"`
	}
	if json.Unmarshal([]byte(j), &f) != nil {
		return "?"
	}
	return fmt.Sprint(f.ID)
}

func faxStatus(j string) string {
	var f struct {
		Status string `json:"status"`
	}
	if json.Unmarshal([]byte(j), &f) != nil {
		return "?"
	}
	return f.Status
}

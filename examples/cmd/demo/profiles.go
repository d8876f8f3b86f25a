package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/mediafax"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
	"github.com/faxhook/caddy-faxhook/examples/sinchfax"
)

// The numbers of the profile demo: a line that answers, one that fails, and the service's own
// line on which it receives a fax.
const (
	demoOK, demoFail = "+15559870000", "+15559870001"
	demoFrom         = "+15559880000"
	demoLine         = "+18005550199"
)

// shippedAPI is a simulated fax API for a shipped profile, and how a client of that API sends
// a fax and authenticates.
type shippedAPI struct {
	handler http.Handler
	prefix  string // the API root under the service's address
	// creds is the poll block's credentials line; auth sets a client's on a request.
	creds string
	auth  func(*http.Request)
	// send builds the body of one send request to "to" with the document at mediaURL (or in
	// pdf) and the webhook URL cb; it returns the path under prefix, the content type and body.
	send func(to, mediaURL string, pdf []byte, cb string) (path, ctype string, body []byte)
}

// newShippedAPI returns the simulated API of the shipped profile name, failing every fax to
// demoFail.
func newShippedAPI(name string) (*shippedAPI, error) {
	tick := 250 * time.Millisecond
	switch name {
	case "sinch_v3":
		sim := sinchfax.New(sinchfax.Config{KeyID: key, KeySecret: secret, Tick: tick, FailTo: []string{demoFail}})
		return &shippedAPI{handler: sim, prefix: sim.Prefix(), creds: "credentials " + key + " " + secret,
			auth: func(r *http.Request) { r.SetBasicAuth(key, secret) },
			send: func(to, _ string, pdf []byte, cb string) (string, string, []byte) {
				b, _ := json.Marshal(map[string]any{"to": to, "callbackUrl": cb,
					"files": []map[string]string{{"file": base64.StdEncoding.EncodeToString(pdf), "fileType": "PDF"}}})
				return "/faxes", "application/json", b
			}}, nil
	case "telnyx", "twilio_fax":
		sim, err := mediafax.New(mediafax.Config{Shape: mediafax.Shape(name), APIKey: key, AccountSID: key, AuthToken: secret,
			Tick: tick, FailTo: []string{demoFail}})
		if err != nil {
			return nil, err
		}
		if name == "telnyx" {
			return &shippedAPI{handler: sim, prefix: sim.Prefix(), creds: `header Authorization "Bearer ` + key + `"`,
				auth: func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) },
				send: func(to, mediaURL string, _ []byte, cb string) (string, string, []byte) {
					b, _ := json.Marshal(map[string]string{"connection_id": "demo", "to": to, "from": demoFrom,
						"media_url": mediaURL, "webhook_url": cb})
					return "/faxes", "application/json", b
				}}, nil
		}
		return &shippedAPI{handler: sim, prefix: sim.Prefix(), creds: "credentials " + key + " " + secret,
			auth: func(r *http.Request) { r.SetBasicAuth(key, secret) },
			send: func(to, mediaURL string, _ []byte, cb string) (string, string, []byte) {
				v := url.Values{"To": {to}, "From": {demoFrom}, "MediaUrl": {mediaURL}, "StatusCallback": {cb}}
				return "/Faxes.json", "application/x-www-form-urlencoded", []byte(v.Encode())
			}}, nil
	}
	return nil, fmt.Errorf("-profile %q: want sinch_v3, telnyx or twilio_fax", name)
}

// do sends one request to the API (through Caddy or directly) as its client would.
func (a *shippedAPI) do(ctx context.Context, method, u, ctype string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	a.auth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// runProfile is the demo of a shipped profile: the simulated API of that service, Caddy with
// `faxhook { profile NAME poll { … } }` in front of it, two faxes sent through Caddy (one fails)
// and one received by the service. No client asks about them afterwards: faxhook's poller
// finds how they end and the received fax, and the receiver gets Phaxio v2.1 webhooks.
func runProfile(bin, name string, timeout time.Duration, keep bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	api, err := newShippedAPI(name)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "faxhook-demo-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Println("work directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	apiURL, stopAPI, err := harness.Serve(api.handler)
	if err != nil {
		return err
	}
	defer stopAPI()
	doc := faxapp.PDF(3)
	docURL, stopDoc, err := harness.Serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(doc)
	}))
	if err != nil {
		return err
	}
	defer stopDoc()
	rcv := receiver.New(receiver.Config{Token: token, Respond: newPrinter(new(sync.Mutex))})
	rcvURL, stopRcv, err := harness.Serve(rcv)
	if err != nil {
		return err
	}
	defer stopRcv()
	admin, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	site, err := harness.FreeAddr()
	if err != nil {
		return err
	}
	caddyfile := fmt.Sprintf(`{
	admin %s
	auto_https off
	faxhook {
		profile %s
		storage %s
		token {env.FAXHOOK_TOKEN}
		received_url %s/received
		allow_private 127.0.0.0/8
		poll {
			upstream %s%s
			%s
			interval 2s
		}
	}
}

http://%s {
	faxhook
	reverse_proxy %s
}
`, admin, name, filepath.Join(dir, "storage"), rcvURL, apiURL, api.prefix, api.creds, site, apiURL)
	fmt.Printf("fax service  %s%s  (simulated %s API)\nreceiver     %s\ncaddy        http://%s  (faxhook { profile %s } + reverse_proxy)\n\n",
		apiURL, api.prefix, name, rcvURL, site, name)
	caddy, err := harness.StartCaddy(bin, filepath.Join(dir, "caddy"), admin, caddyfile, "FAXHOOK_TOKEN="+token)
	if err != nil {
		return err
	}
	defer caddy.Stop()

	for _, to := range []string{demoOK, demoFail} {
		path, ctype, body := api.send(to, docURL+"/document.pdf", doc, rcvURL+"/sent")
		code, answer, err := api.do(ctx, http.MethodPost, "http://"+site+api.prefix+path, ctype, body)
		if err != nil {
			return fmt.Errorf("sending a fax through Caddy: %w", err)
		}
		if code/100 != 2 {
			return fmt.Errorf("sending a fax through Caddy: %d %s", code, answer)
		}
		fmt.Printf("sent     a fax to %s through Caddy: %d %s\n", to, code, firstLine(answer))
	}
	in, _ := json.Marshal(map[string]string{"from": demoFrom, "to": demoLine, "file": base64.StdEncoding.EncodeToString(faxapp.PDF(2))})
	code, answer, err := api.do(ctx, http.MethodPost, apiURL+"/_sim/inbound", "application/json", in)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("receiving a fax: %d %s %v", code, answer, err)
	}
	fmt.Printf("received a fax on %s at the service (no client asks about it): %s\n\n", demoLine, firstLine(answer))

	const completed = 3 // both sent faxes and the received one
	for {
		n := 0
		for _, d := range rcv.Deliveries() {
			if !d.Verified {
				return fmt.Errorf("a webhook failed signature verification: %+v", d)
			}
			if d.Fields["event_type"] == "fax_completed" {
				n++
			}
		}
		if n == completed {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d fax_completed webhooks after %s; caddy log:\n%s", n, completed, timeout, caddy.Tail(30))
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(300 * time.Millisecond) // a duplicate would show up now
	fmt.Printf("\nall %d webhooks arrived, Phaxio v2.1 shaped and signed, from a %s API that sends none of its own kind\n",
		len(rcv.Deliveries()), name)
	return nil
}

// firstLine shortens an API answer for the demo's output.
func firstLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return s
}

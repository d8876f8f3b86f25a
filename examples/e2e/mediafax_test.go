package e2e

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/mediafax"
	"github.com/faxhook/caddy-faxhook/module/profile"
)

// The shipped profiles telnyx and twilio_fax against the simulator of both APIs: a fax to a line
// that succeeds and one to a line that fails, each sent through Caddy (both APIs take one "to"
// per fax), and a fax the service receives directly, whose document is at an absolute media_url
// that needs no credentials.
const (
	mediaKey              = "telnyx-api-key"
	mediaAccount          = "AC0123456789abcdef"
	mediaToken            = "signalwire-token"
	mediaOK, mediaFail    = "+15550600000", "+15550600001"
	mediaFrom, mediaLine  = "+15550700000", "+18005550133"
	mediaPages, mediaRcvd = 3, 2
)

// mediaShape is what the tests need to know of one shape: the profile's name, the tag that
// carries the upstream id, the error type of a failed fax, and how a client talks to the API.
type mediaShape struct {
	shape     mediafax.Shape
	idTag     string
	failError string
	// stale: the received fax's media link has expired by the time faxhook fetches it
	// (mediafax.Config.StaleMedia).
	stale bool
}

// refreshes reports whether the shape's API can refresh an expired media link (Telnyx).
func (s mediaShape) refreshes() bool { return s.shape == mediafax.Telnyx }

var (
	telnyxShape = mediaShape{shape: mediafax.Telnyx, idTag: "telnyx_fax_id", failError: "generalError"}
	twilioShape = mediaShape{shape: mediafax.TwilioFax, idTag: "fax_sid", failError: "lineError"}
)

// newSim starts the simulator of the shape, with the failing line.
func (s mediaShape) newSim(t *testing.T) *mediafax.Service {
	t.Helper()
	sim, err := mediafax.New(mediafax.Config{Shape: s.shape, APIKey: mediaKey, AccountSID: mediaAccount,
		AuthToken: mediaToken, Tick: 250 * time.Millisecond, FailTo: []string{mediaFail}, StaleMedia: s.stale})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

// pollOpts is the poll block a user writes for the shape: the upstream and their credentials.
func (s mediaShape) pollOpts(sim *mediafax.Service) string {
	creds := "header Authorization \"Bearer " + mediaKey + "\""
	if s.shape == mediafax.TwilioFax {
		creds = "credentials " + mediaAccount + " " + mediaToken
	}
	return "profile " + string(s.shape) + "\n\t\tpoll {\n\t\t\tupstream FAX" + sim.Prefix() + "\n\t\t\t" + creds +
		"\n\t\t\tinterval 100ms\n\t\t}"
}

// do makes an authenticated API call as the shape's clients do: Telnyx JSON with a bearer key,
// the Twilio resource's forms with HTTP Basic. A nil form is a GET.
func (s mediaShape) do(ctx context.Context, t *testing.T, rawURL string, form map[string]string) (int, []byte) {
	t.Helper()
	method, ctype := http.MethodGet, ""
	var body []byte
	if form != nil {
		method = http.MethodPost
		if s.shape == mediafax.Telnyx {
			body, _ = json.Marshal(form)
			ctype = "application/json"
		} else {
			v := url.Values{}
			for k, x := range form {
				v.Set(k, x)
			}
			body, ctype = []byte(v.Encode()), "application/x-www-form-urlencoded"
		}
	}
	return s.call(ctx, t, method, rawURL, ctype, body)
}

// call makes a request with the shape's credentials and returns the status and body.
func (s mediaShape) call(ctx context.Context, t *testing.T, method, rawURL, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if s.shape == mediafax.Telnyx {
		req.Header.Set("Authorization", "Bearer "+mediaKey)
	} else {
		req.SetBasicAuth(mediaAccount, mediaToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// object returns the fax object of an answer (Telnyx wraps it in "data").
func (s mediaShape) object(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var o map[string]any
	if err := json.Unmarshal(body, &o); err != nil {
		t.Fatalf("answer %s: %v", body, err)
	}
	if d, ok := o["data"].(map[string]any); ok && s.shape == mediafax.Telnyx {
		return d
	}
	return o
}

// scenario sends a fax of mediaPages pages to mediaOK and to mediaFail through Caddy and has
// the simulator receive a fax of mediaRcvd pages. It returns the sent faxes' upstream ids (by
// number) and the received fax's id and PDF.
func (s mediaShape) scenario(ctx context.Context, t *testing.T, r *profileRun, sim *mediafax.Service) (sent map[string]string, rcvID string, pdf []byte) {
	t.Helper()
	media := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		w.Write(faxapp.PDF(mediaPages))
	})) + "/document.pdf"
	sent = map[string]string{}
	for _, to := range []string{mediaOK, mediaFail} {
		form := map[string]string{"to": to, "from": mediaFrom, "media_url": media,
			"connection_id": "1293384261075731499", "webhook_url": r.rcvURL + "/sent"}
		path := "/faxes"
		if s.shape == mediafax.TwilioFax {
			form = map[string]string{"To": to, "From": mediaFrom, "MediaUrl": media, "StatusCallback": r.rcvURL + "/sent"}
			path = "/Faxes.json"
		}
		code, body := s.do(ctx, t, "http://"+r.site+sim.Prefix()+path, form)
		if code != http.StatusAccepted && code != http.StatusCreated {
			t.Fatalf("send to %s through Caddy: %d %s", to, code, body)
		}
		id, _ := s.object(t, body)["id"].(string)
		if s.shape == mediafax.TwilioFax {
			id, _ = s.object(t, body)["sid"].(string)
		}
		if id == "" {
			t.Fatalf("send to %s: no id in %s", to, body)
		}
		sent[to] = id
	}
	pdf = faxapp.PDF(mediaRcvd)
	b, _ := json.Marshal(map[string]string{"from": mediaFrom, "to": mediaLine, "file": base64.StdEncoding.EncodeToString(pdf)})
	code, body := s.call(ctx, t, http.MethodPost, r.upURL+"/_sim/inbound", "application/json", b)
	o := s.object(t, body)
	rcvID, _ = o["id"].(string)
	if s.shape == mediafax.TwilioFax {
		rcvID, _ = o["sid"].(string)
	}
	if code != http.StatusOK || rcvID == "" {
		t.Fatalf("receiving a fax: %d %s", code, body)
	}
	return sent, rcvID, pdf
}

// check waits for the scenario's three fax_completed webhooks and checks every webhook: v2.1
// fax objects with the upstream id in tags and id derived from it, one recipient per sent fax,
// both outcomes, the received fax with its PDF byte-identical, every signature verified.
func (s mediaShape) check(t *testing.T, r *profileRun, sent map[string]string, rcvID string, pdf []byte) {
	t.Helper()
	ds := r.waitCompleted(3)
	seen := map[string]bool{}
	var pages []string // the transmitting_page events of mediaOK, in order of arrival
	for _, d := range ds {
		if !d.Verified {
			t.Errorf("webhook to %s not verified: %s", d.URL, d.Error)
		}
		var f struct {
			ID          int64             `json:"id"`
			Direction   string            `json:"direction"`
			Status      string            `json:"status"`
			Tags        map[string]string `json:"tags"`
			FromNumber  *string           `json:"from_number"`
			ToNumber    *string           `json:"to_number"`
			CallerID    *string           `json:"caller_id"`
			ErrorType   *string           `json:"error_type"`
			NumPages    int               `json:"num_pages"`
			CreatedAt   string            `json:"created_at"`
			CompletedAt *string           `json:"completed_at"`
			Recipients  []map[string]any  `json:"recipients"`
		}
		if err := json.Unmarshal([]byte(d.Fields["fax"]), &f); err != nil {
			t.Fatalf("fax field: %v: %s", err, d.Fields["fax"])
		}
		uid := f.Tags[s.idTag]
		if f.ID != profile.DeriveID(uid) {
			t.Errorf("id %d is not DeriveID of tags.%s %q", f.ID, s.idTag, uid)
		}
		if _, err := time.Parse(time.RFC3339, f.CreatedAt); err != nil || f.CompletedAt == nil {
			t.Errorf("times of a completed fax: created_at %q, completed_at %v", f.CreatedAt, f.CompletedAt)
		}
		switch {
		case strings.HasSuffix(d.URL, "/received"):
			seen["received"] = true
			if uid != rcvID || f.Direction != "received" || f.Status != "success" || f.FromNumber == nil ||
				*f.FromNumber != mediaFrom || f.ToNumber == nil || *f.ToNumber != mediaLine || len(f.Recipients) != 0 ||
				f.CallerID != nil {
				t.Errorf("received fax webhook: %s", d.Fields["fax"])
			}
			if s.shape == mediafax.TwilioFax && f.NumPages != mediaRcvd {
				t.Errorf("received fax num_pages %d, want %d", f.NumPages, mediaRcvd)
			}
			if s.stale && !s.refreshes() {
				// The link is refused and cannot be refreshed: the webhook goes without it.
				if len(d.Files) != 0 {
					t.Errorf("received fax's PDF from an expired link: %+v", d.Files)
				}
				break
			}
			sum := sha1.Sum(pdf)
			if len(d.Files) != 1 || d.Files[0].SHA1 != hex.EncodeToString(sum[:]) || d.Files[0].Size != len(pdf) {
				t.Errorf("received fax's PDF: %+v, want %d bytes with SHA-1 %x", d.Files, len(pdf), sum)
			}
		case strings.HasSuffix(d.URL, "/sent"):
			if len(f.Recipients) != 1 || f.Direction != "sent" || f.FromNumber != nil || f.ToNumber != nil ||
				f.CallerID == nil || *f.CallerID != mediaFrom || len(d.Files) != 0 {
				t.Errorf("sent fax webhook: %s", d.Fields["fax"])
				continue
			}
			to, _ := f.Recipients[0]["phone_number"].(string)
			if sent[to] != uid {
				t.Errorf("recipient %s with %s %q, want %q", to, s.idTag, uid, sent[to])
			}
			if d.Fields["event_type"] == "transmitting_page" {
				// The API tells no progress; a recipient's success tells that all num_pages
				// pages went out, and inflight on announces them before fax_completed.
				if to != mediaOK || seen[to] || d.Fields["recipient_phone_number"] != to {
					t.Errorf("transmitting_page %s of %s after its fax_completed=%v", d.Fields["page"], to, seen[to])
				}
				pages = append(pages, d.Fields["page"])
				continue
			}
			seen[to] = true
			switch to {
			case mediaOK:
				if f.Status != "success" || f.Recipients[0]["status"] != "success" || f.ErrorType != nil ||
					(s.shape == mediafax.TwilioFax && f.NumPages != mediaPages) {
					t.Errorf("successful fax: %s", d.Fields["fax"])
				}
			case mediaFail:
				if f.Status != "failure" || f.Recipients[0]["status"] != "failure" || f.ErrorType == nil ||
					*f.ErrorType != s.failError || f.Recipients[0]["error_type"] != s.failError {
					t.Errorf("failed fax: %s", d.Fields["fax"])
				}
			default:
				t.Errorf("a webhook for recipient %q: %s", to, d.Fields["fax"])
			}
		default:
			t.Errorf("webhook to %s", d.URL)
		}
	}
	if !seen["received"] || !seen[mediaOK] || !seen[mediaFail] {
		t.Errorf("webhooks seen for %v, want the received fax and both recipients", seen)
	}
	// Telnyx's fax object has no page count, so there are no pages to announce; the Twilio
	// resource's num_pages gives the successful fax's three.
	want := []string{}
	if s.shape == mediafax.TwilioFax {
		want = []string{"1", "2", "3"}
	}
	if strings.Join(pages, " ") != strings.Join(want, " ") {
		t.Errorf("transmitting_page events of %s: %v, want %v", mediaOK, pages, want)
	}
}

// Each shape fronted by its shipped profile, the poll upstream and the user's credentials:
// the sends go through Caddy, and nobody but faxhook's poller asks about the faxes afterwards
// or learns of the received one.
func TestMediaProfilesThroughThePoller(t *testing.T) {
	for _, s := range []mediaShape{telnyxShape, twilioShape} {
		t.Run(string(s.shape), func(t *testing.T) { s.throughThePoller(t) })
	}
}

// The same without a poll upstream: faxhook learns everything from the client's own requests
// through Caddy (each fax's status, the list of received faxes), and fetches the received fax's
// PDF through the client's status route and credentials, then from its media_url without them.
func TestMediaProfilesThroughTraffic(t *testing.T) {
	for _, s := range []mediaShape{telnyxShape, twilioShape} {
		t.Run(string(s.shape), func(t *testing.T) { s.throughTraffic(t) })
	}
}

// A received fax whose media link has expired when faxhook fetches it (a fax seen hours late):
// with Telnyx, faxhook has the link refreshed (POST …/actions/refresh, with the poll
// credentials or through the client's route) and the webhook carries the PDF; with the Twilio
// resource, which has no such action, the webhook goes without it, on its first attempt.
func TestMediaProfilesExpiredLink(t *testing.T) {
	for _, c := range []struct {
		name    string
		s       mediaShape
		traffic bool
	}{
		{"telnyx/poller", telnyxShape, false},
		{"telnyx/traffic", telnyxShape, true},
		{"twilio_fax/poller", twilioShape, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.s.stale = true
			var sim *mediafax.Service
			if c.traffic {
				sim = c.s.throughTraffic(t)
			} else {
				sim = c.s.throughThePoller(t)
			}
			if n := sim.Refreshes(); c.s.refreshes() != (n > 0) {
				t.Errorf("%d refresh actions", n)
			}
		})
	}
}

// throughThePoller runs the scenario with a poll block and checks the webhooks.
func (s mediaShape) throughThePoller(t *testing.T) *mediafax.Service {
	sim := s.newSim(t)
	r := startProfileRun(t, sim, s.pollOpts(sim))
	ctx := ctxT(t, 60*time.Second)
	sent, rcvID, pdf := s.scenario(ctx, t, r, sim)
	s.check(t, r, sent, rcvID, pdf)
	return sim
}

// throughTraffic runs the scenario without a poll block, the client asking through Caddy
// about each sent fax until it is done and listing the received ones, and checks the webhooks.
func (s mediaShape) throughTraffic(t *testing.T) *mediafax.Service {
	sim := s.newSim(t)
	r := startProfileRun(t, sim, "profile "+string(s.shape))
	ctx := ctxT(t, 60*time.Second)
	sent, rcvID, pdf := s.scenario(ctx, t, r, sim)
	base := "http://" + r.site + sim.Prefix()
	status, list := "/faxes/", "/faxes?filter%5Bdirection%5D%5Beq%5D=inbound&page%5Bsize%5D=50"
	if s.shape == mediafax.TwilioFax {
		status, list = "/Faxes/", "/Faxes.json?PageSize=50"
	}
	done := map[string]bool{}
	for len(done) < len(sent) {
		for _, id := range sent {
			path := base + status + id
			if s.shape == mediafax.TwilioFax {
				path += ".json"
			}
			code, body := s.do(ctx, t, path, nil)
			if code != http.StatusOK {
				t.Fatalf("status through Caddy: %d %s", code, body)
			}
			switch s.object(t, body)["status"] {
			case "delivered", "failed", "busy":
				done[id] = true
			}
		}
		time.Sleep(60 * time.Millisecond)
	}
	code, body := s.do(ctx, t, base+list, nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte(rcvID)) {
		t.Fatalf("received faxes through Caddy: %d %s", code, body)
	}
	s.check(t, r, sent, rcvID, pdf)
	return sim
}

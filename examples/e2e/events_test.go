package e2e

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/receiver"
)

// summary renders a delivery as "event recipient value", e.g. "transmitting_page +1…0 2".
func summary(d receiver.Delivery) string {
	switch d.Fields["event_type"] {
	case "transmitting_page":
		return "page " + d.Fields["recipient_phone_number"] + " " + d.Fields["page"]
	case "retry_scheduled":
		return "retry " + d.Fields["recipient_phone_number"] + " " + d.Fields["retry_count"]
	}
	return d.Fields["event_type"]
}

func TestInflightEventsPerRecipientInOrder(t *testing.T) {
	e := newEnv(t, nil, "inflight on\n\t\tsent_url RCV/sent")
	ctx := ctxT(t, 60*time.Second)
	const ok, busy = "+15550200000", "+15550200001"
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{ok, busy}, File: faxapp.PDF(3)})
	ds := e.expectExactly(8)
	var got []string
	for _, d := range ds {
		if !d.Verified {
			t.Errorf("unverified delivery: %+v", d)
		}
		got = append(got, summary(d))
	}
	// Per recipient: the pages in order, the retry before the busy recipient's pages, and
	// fax_completed last.
	want := map[string][]string{
		ok:   {"page " + ok + " 1", "page " + ok + " 2", "page " + ok + " 3"},
		busy: {"retry " + busy + " 1", "page " + busy + " 1", "page " + busy + " 2", "page " + busy + " 3"},
	}
	for ph, seq := range want {
		var mine []string
		for _, s := range got {
			if strings.Contains(s, ph) {
				mine = append(mine, s)
			}
		}
		if strings.Join(mine, ",") != strings.Join(seq, ",") {
			t.Errorf("recipient %s saw %v, want %v", ph, mine, seq)
		}
	}
	if got[len(got)-1] != "fax_completed" {
		t.Errorf("last delivery is %q, want fax_completed; all: %v", got[len(got)-1], got)
	}
	if f := ds[0].Fields["fax"]; strings.Contains(f, "x_current_page") {
		t.Errorf("the fax object carries the extension field: %s", f)
	}
}

func TestInflightOffSendsOnlyCompletion(t *testing.T) {
	e := newEnv(t, nil, "sent_url RCV/sent")
	ctx := ctxT(t, 60*time.Second)
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550200000", "+15550200001"}, File: faxapp.PDF(3)})
	ds := e.expectExactly(1)
	if ds[0].Fields["event_type"] != "fax_completed" {
		t.Fatalf("got %s", summary(ds[0]))
	}
}

func TestPollerAloneProducesWebhooks(t *testing.T) {
	e := newEnv(t, nil, "inflight on\n\t\tsent_url RCV/sent\n\t\t"+pollBlock(""))
	ctx := ctxT(t, 60*time.Second)
	// Sent through Caddy, then never asked about again by any client.
	if _, err := e.client.Send(ctx, harness.SendOptions{To: []string{"+15550200000"}, File: faxapp.PDF(2)}); err != nil {
		t.Fatal(err)
	}
	ds, err := e.rcv.Wait(ctxT(t, 30*time.Second), 3)
	if err != nil {
		t.Fatalf("the poller did not produce the webhooks: %v", err)
	}
	var got []string
	for _, d := range ds {
		got = append(got, summary(d))
	}
	if strings.Join(got, ",") != "page +15550200000 1,page +15550200000 2,fax_completed" {
		t.Fatalf("deliveries %v", got)
	}
}

// pollBlock is a poll option block for the env's fax service; RCV and FAX are filled in.
func pollBlock(extra string) string {
	return "poll {\n\t\t\tupstream FAX/v2.1\n\t\t\tcredentials " + key + " " + secret + "\n\t\t\tinterval 100ms\n\t\t\t" + extra + "\n\t\t}"
}

func TestReceivedFaxCarriesPDFAndNumberURLWins(t *testing.T) {
	e := newEnv(t, nil, "received_url RCV/global-received\n\t\t"+pollBlock(""))
	ctx := ctxT(t, 60*time.Second)
	line, err := e.client.ProvisionNumber(ctx, "415", e.rcvURL+"/line?n=1")
	if err != nil {
		t.Fatal(err)
	}
	pdf := faxapp.PDF(2)
	sum := sha1.Sum(pdf)
	if _, err := e.client.TestReceive(ctx, pdf, "+15550300000", line); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.TestReceive(ctx, faxapp.PDF(1), "+15550300000", "+18005550199"); err != nil {
		t.Fatal(err)
	}
	ds := e.expectExactly(2)
	byURL := map[string]receiver.Delivery{}
	for _, d := range ds {
		byURL[d.URL] = d
		if !d.Verified || d.Fields["event_type"] != "fax_completed" || !strings.Contains(d.Fields["fax"], `"direction":"received"`) {
			t.Errorf("delivery %+v", d)
		}
	}
	d, ok := byURL[e.rcvURL+"/line?n=1"]
	if !ok {
		t.Fatalf("nothing delivered to the number's URL; got %v", keys(byURL))
	}
	if len(d.Files) != 1 || d.Files[0].Name != "file" || d.Files[0].SHA1 != hex.EncodeToString(sum[:]) || d.Files[0].Size != len(pdf) {
		t.Fatalf("file part %+v, want the PDF (sha1 %x)", d.Files, sum)
	}
	if _, ok := byURL[e.rcvURL+"/global-received"]; !ok {
		t.Fatalf("a fax to a number without URL did not go to received_url; got %v", keys(byURL))
	}
}

func keys(m map[string]receiver.Delivery) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestResendMapsNewFaxToItsCallbackURL(t *testing.T) {
	e := newEnv(t, nil, "sent_url RCV/global")
	ctx := ctxT(t, 60*time.Second)
	first := e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1), CallbackURL: e.rcvURL + "/first"})
	second, err := e.client.Resend(ctx, first, e.rcvURL+"/resent")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.WaitDone(ctx, second, 30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ds := e.expectExactly(2)
	got := map[int64]string{}
	for _, d := range ds {
		got[parseFax(t, d).ID] = strings.TrimPrefix(d.URL, e.rcvURL)
	}
	if got[first] != "/first" || got[second] != "/resent" {
		t.Fatalf("webhook URLs by fax: %v (want %d → /first, %d → /resent)", got, first, second)
	}
}

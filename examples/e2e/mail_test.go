package e2e

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/faxhook/caddy-faxhook/examples/faxapp"
	"github.com/faxhook/caddy-faxhook/examples/harness"
	"github.com/faxhook/caddy-faxhook/examples/smtpsink"
)

func TestMailtoWebhooksOverSMTP(t *testing.T) {
	sink, err := smtpsink.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	e := newEnv(t, nil, "smtp {\n\t\t\tserver "+sink.Addr()+"\n\t\t\tfrom \"Faxhook <fax@faxhook.test>\"\n\t\t\ttls opportunistic\n\t\t}\n\t\t"+
		"number +15550400001 mailto:line1@faxhook.test\n\t\t"+pollBlock(""))
	ctx := ctxT(t, 60*time.Second)
	e.sendAndFollow(ctx, harness.SendOptions{To: []string{"+15550100000"}, File: faxapp.PDF(1),
		CallbackURL: "mailto:ops@faxhook.test,desk@faxhook.test?cc=boss@faxhook.test",
		Tags:        map[string]string{"order": "<script>alert(1)</script>"}})
	pdf := faxapp.PDF(2)
	if _, err := e.client.TestReceive(ctx, pdf, "+15550300000", "+15550400001"); err != nil {
		t.Fatal(err)
	}
	msgs, err := sink.Wait(ctxT(t, 30*time.Second), 2)
	if err != nil {
		t.Fatalf("%v; caddy log:\n%s", err, e.caddy.Tail(30))
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != 2 {
		t.Fatalf("%d e-mails, want 2", n)
	}
	var sent, received *smtpsink.Parsed
	for _, m := range msgs {
		p, err := smtpsink.Parse(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		switch strings.Join(m.To, ",") {
		case "ops@faxhook.test,desk@faxhook.test,boss@faxhook.test":
			sent = p
		case "line1@faxhook.test":
			received = p
		default:
			t.Fatalf("e-mail to unexpected recipients %v", m.To)
		}
	}
	if sent == nil || received == nil {
		t.Fatal("missing an e-mail")
	}
	if !strings.Contains(sent.Subject, "completed") || sent.Text == "" || sent.HTML == "" {
		t.Fatalf("sent-fax e-mail: subject %q, text %d bytes, html %d bytes", sent.Subject, len(sent.Text), len(sent.HTML))
	}
	if strings.Contains(sent.HTML, "<script>") || !strings.Contains(sent.HTML, "&lt;script&gt;") {
		t.Fatalf("the tag is not escaped in the HTML part:\n%s", sent.HTML)
	}
	if !strings.Contains(sent.Text, "<script>alert(1)</script>") {
		t.Fatalf("the tag is not in the text part as written:\n%s", sent.Text)
	}
	var att []byte
	for _, b := range received.Attachments {
		att = b
	}
	if !bytes.Equal(att, pdf) {
		t.Fatalf("received-fax e-mail attachment is %d bytes, want the %d-byte PDF byte for byte", len(att), len(pdf))
	}
}

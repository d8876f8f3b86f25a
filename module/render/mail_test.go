package render

import (
	"reflect"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

const xssTag = "<script>alert(1)</script>"

// sentFaxJSON is a completed sent fax with two recipients and a hostile tag.
func sentFaxJSON(t testing.TB) string {
	t.Helper()
	f := fax.Fax{
		ID: 1234, Direction: fax.DirectionSent, NumPages: 3, Status: fax.StatusPartialSuccess,
		CreatedAt: "2024-05-01T10:00:00.000000Z", CallerID: fax.Str("+15550001111"),
		CompletedAt: fax.Str("2024-05-01T10:03:00.000000Z"), Cost: 21,
		Tags: map[string]string{"note": xssTag, "order": "42"},
		Recipients: []fax.Recipient{
			{PhoneNumber: "+15551234567", Status: fax.Str(fax.StatusSuccess), CompletedAt: fax.Str("2024-05-01T10:02:00.000000Z"), Bitrate: fax.Int(14400), Resolution: fax.Int(8040)},
			{PhoneNumber: "+15557654321", Status: fax.Str(fax.StatusFailure), RetryCount: 2,
				ErrorType: fax.Str("faxError"), ErrorID: fax.Int(31), ErrorMessage: fax.Str("Busy & <unreachable>")},
		},
		ErrorType: fax.Str("faxError"), ErrorID: fax.Int(31), ErrorMessage: fax.Str("Busy & <unreachable>"),
	}
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// receivedFaxJSON is a completed received fax.
func receivedFaxJSON(t testing.TB) string {
	t.Helper()
	f := fax.Fax{
		ID: 5678, Direction: fax.DirectionReceived, NumPages: 1, Status: fax.StatusSuccess,
		CreatedAt: "2024-05-02T08:00:00.000000Z", FromNumber: fax.Str("+15559998888"),
		ToNumber: fax.Str("+15550002222"), CallerName: fax.Str("ACME <Corp> & Sons"),
		CompletedAt: fax.Str("2024-05-02T08:01:00.000000Z"), Cost: 7, IsTest: true,
	}
	b, err := f.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var pdf = []byte("%PDF-1.4\n%\xe2\xe3\xcf\xd3\r\n1 0 obj <<>> endobj\r\n%%EOF\n")

// sentEvent is the fax_completed event of the fax of sentFaxJSON.
func sentEvent(t testing.TB) Event {
	return Event{FaxID: 1234, Type: fax.EventFaxCompleted, FaxJSON: sentFaxJSON(t)}
}

// receivedEvent is the fax_completed event of the fax of receivedFaxJSON, with its PDF.
func receivedEvent(t testing.TB) Event {
	return Event{FaxID: 5678, Type: fax.EventFaxCompleted, FaxJSON: receivedFaxJSON(t), FileRef: "faxes/5678/file"}
}

// mailOf renders the e-mail of ev, with the PDF attached when ev has a file.
func mailOf(t *testing.T, ev Event) *queue.Mail {
	t.Helper()
	var files []queue.File
	if ev.FileRef != "" {
		files = []queue.File{PDF(ev.FaxID, pdf)}
	}
	m, err := Mail(ev.ID(), ev.Fields(), files)
	if err != nil {
		t.Fatalf("Mail: %v", err)
	}
	return m
}

func TestMailSentFax(t *testing.T) {
	m := mailOf(t, sentEvent(t))
	if want := "Fax 1234 (sent) completed: partialsuccess"; m.Subject != want {
		t.Errorf("Subject %q, want %q", m.Subject, want)
	}
	for _, want := range []string{"note: " + xssTag, "Fax ID:", "1234", "+15550001111", "21 cents",
		"+15551234567: success", "+15557654321: failure, retries 2", "Busy & <unreachable> (faxError, error id 31)"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text body lacks %q:\n%s", want, m.Text)
		}
	}
	if strings.Contains(m.HTML, "<script>") {
		t.Errorf("HTML body contains an unescaped <script>:\n%s", m.HTML)
	}
	for _, want := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "Busy &amp; &lt;unreachable&gt;",
		"<td>&#43;15551234567</td>", "<td>14400</td>", "partialsuccess", "2024-05-01T10:03:00.000000Z"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML body lacks %q:\n%s", want, m.HTML)
		}
	}
}

func TestMailReceivedFax(t *testing.T) {
	m := mailOf(t, receivedEvent(t))
	if want := "Fax 5678 (received) completed: success"; m.Subject != want {
		t.Errorf("Subject %q, want %q", m.Subject, want)
	}
	for _, want := range []string{"ACME <Corp> & Sons", "+15559998888", "+15550002222", "Test fax:", "attached as fax-5678.pdf"} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text body lacks %q:\n%s", want, m.Text)
		}
	}
	if !strings.Contains(m.HTML, "ACME &lt;Corp&gt; &amp; Sons") {
		t.Errorf("HTML body lacks the escaped caller name:\n%s", m.HTML)
	}
	if strings.Contains(m.Text, "Recipients:") {
		t.Errorf("received fax shows a recipient table:\n%s", m.Text)
	}
}

// inflightFields returns the fields of an inflight event of the sent fax of sentFaxJSON.
func inflightFields(t testing.TB, eventType string, extra ...queue.Field) []queue.Field {
	return Event{FaxID: 1234, Type: eventType, FaxJSON: sentFaxJSON(t), Extra: extra}.Fields()
}

func TestRenderEvents(t *testing.T) {
	for _, tc := range []struct {
		name             string
		fields           []queue.Field
		subject          string
		line, htmlMarker string
	}{
		{
			name:    "fax_completed",
			fields:  sentEvent(t).Fields(),
			subject: "Fax 1234 (sent) completed: partialsuccess",
			line:    "The sent fax 1234 has completed with status partialsuccess.",
		},
		{
			name: "transmitting_page",
			fields: inflightFields(t, fax.EventTransmittingPage,
				queue.Field{Name: "page", Value: "2"}, queue.Field{Name: "recipient_phone_number", Value: "+15557654321"}),
			subject:    "Fax 1234: page 2 transmitting to +15557654321",
			line:       "Page 2 of 3 is being transmitted to +15557654321.",
			htmlMarker: `<tr style="font-weight: bold;"><td>&#43;15557654321</td>`,
		},
		{
			name: "retry_scheduled",
			fields: inflightFields(t, fax.EventRetryScheduled,
				queue.Field{Name: "retry_count", Value: "1"}, queue.Field{Name: "recipient_phone_number", Value: "+15557654321"}),
			subject:    "Fax 1234: retry 1 scheduled for +15557654321",
			line:       "Retry 1 has been scheduled for +15557654321.",
			htmlMarker: `<tr style="font-weight: bold;"><td>&#43;15557654321</td>`,
		},
		{
			name:    "transmitting_page without fields",
			fields:  inflightFields(t, fax.EventTransmittingPage),
			subject: "Fax 1234: page ? transmitting",
			line:    "Page ? of 3 is being transmitted.",
		},
		{
			name:    "unknown event",
			fields:  inflightFields(t, "fax_exploded"),
			subject: "Fax 1234 (sent): fax_exploded",
			line:    "Event fax_exploded for the sent fax 1234.",
		},
		{
			name: "hostile inflight fields",
			fields: inflightFields(t, fax.EventTransmittingPage,
				queue.Field{Name: "page", Value: "2\r\nBcc: x@y"}, queue.Field{Name: "recipient_phone_number", Value: "<b>+1</b>"}),
			subject:    "Fax 1234: page 2  Bcc: x@y transmitting to <b>+1</b>",
			line:       "Page 2  Bcc: x@y of 3 is being transmitted to <b>+1</b>.",
			htmlMarker: "to &lt;b&gt;&#43;1&lt;/b&gt;.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Mail("1234.x", tc.fields, nil)
			if err != nil {
				t.Fatalf("Mail: %v", err)
			}
			if m.Subject != tc.subject {
				t.Errorf("subject %q, want %q", m.Subject, tc.subject)
			}
			if !strings.HasPrefix(m.Text, tc.subject+"\n\n"+tc.line+"\n") {
				t.Errorf("text does not start with subject and %q:\n%s", tc.line, m.Text)
			}
			if tc.htmlMarker != "" && !strings.Contains(m.HTML, tc.htmlMarker) {
				t.Errorf("HTML lacks %q:\n%s", tc.htmlMarker, m.HTML)
			}
			if strings.Contains(m.HTML, "<b>") || strings.ContainsAny(m.Subject, "\r\n") {
				t.Errorf("unescaped value in HTML or control character in subject")
			}
		})
	}
}

func TestRenderFields(t *testing.T) {
	m := mailOf(t, receivedEvent(t))
	for _, want := range []string{
		"Fax ID:        5678", "Direction:     received", "Status:        success", "Pages:         1",
		"From number:   +15559998888", "To number:     +15550002222", "Caller name:   ACME <Corp> & Sons",
		"Created at:    2024-05-02T08:00:00.000000Z", "Completed at:  2024-05-02T08:01:00.000000Z",
		"Cost:          7 cents", "Test fax:      yes", "event 5678.fax_completed",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, m.Text)
		}
	}
	for _, want := range []string{"<th align=\"left\" style=\"padding-right: 16px;\">Caller name</th><td>ACME &lt;Corp&gt; &amp; Sons</td>",
		"<b>fax-5678.pdf</b>"} {
		if !strings.Contains(m.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, m.HTML)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []queue.Field
		want   string
	}{
		{"no fax", []queue.Field{{Name: "event_type", Value: "fax_completed"}}, `event 9.fax_completed: job has no "fax" field`},
		{"bad fax", []queue.Field{{Name: "fax", Value: `{"id":"x"}`}}, `decoding "fax" field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Mail("9.fax_completed", tc.fields, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Mail error %v, want %q", err, tc.want)
			}
		})
	}
}

// An event renders to the fields, metadata and payloads the tracker enqueues: the fields in body
// order, an e-mail only for mailto: URLs, and a received fax's e-mail only once its file is
// fetched.
func TestEventPayloads(t *testing.T) {
	ev := Event{FaxID: 77, Type: fax.EventTransmittingPage, FaxJSON: `{"id":77}`,
		Extra: []queue.Field{{Name: "page", Value: "2"}, {Name: "recipient_phone_number", Value: "+1555"}}}
	if got, want := ev.ID(), "77.transmitting_page.page=2.recipient_phone_number=+1555"; got != want {
		t.Errorf("ID %q, want %q", got, want)
	}
	fields := ev.Fields()
	want := []queue.Field{{Name: "fax", Value: `{"id":77}`}, {Name: "event_type", Value: "transmitting_page"},
		{Name: "page", Value: "2"}, {Name: "recipient_phone_number", Value: "+1555"}}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("Fields %+v, want %+v", fields, want)
	}
	if m := ev.Meta(); m.Get(MetaFaxID) != "77" || m.Get(MetaEventType) != "transmitting_page" || len(m) != 2 {
		t.Errorf("Meta %+v", m)
	}
	p, err := ev.Payload("https://example.com/hook", fields)
	if err != nil || !reflect.DeepEqual(p, queue.Payload{Fields: fields}) {
		t.Errorf("http payload %+v, %v", p, err)
	}
	p, err = ev.Payload("MAILTO:a@x.test", fields)
	if err != nil || p.Mail == nil || !strings.HasPrefix(p.Mail.Subject, "Fax 77: page 2 transmitting") || p.Prepare != "" {
		t.Errorf("mail payload %+v, %v", p, err)
	}

	rec := receivedEvent(t)
	p, err = rec.Payload("mailto:a@x.test", rec.Fields())
	if err != nil || p.Mail != nil || p.Prepare != "faxes/5678/file" || p.Files != nil {
		t.Fatalf("received mail payload before its file %+v, %v", p, err)
	}
	job := &queue.Job{EventID: rec.ID(), URL: "mailto:a@x.test", Payload: p}
	file := PDF(5678, pdf)
	got, err := Prepared(job, &file)
	if err != nil || got.Prepare != "" || len(got.Files) != 1 || got.Files[0].Filename != "fax-5678.pdf" ||
		got.Mail == nil || !reflect.DeepEqual(got.Mail, mailOf(t, rec)) {
		t.Errorf("prepared %+v, %v", got, err)
	}
	got, err = Prepared(job, nil)
	if err != nil || got.Files != nil || got.Mail == nil || strings.Contains(got.Mail.Text, "attached") {
		t.Errorf("prepared without the file %+v, %v", got, err)
	}
	job.URL = "https://example.com/hook"
	if got, err := Prepared(job, &file); err != nil || got.Mail != nil || !reflect.DeepEqual(got.Files, []queue.File{file}) {
		t.Errorf("prepared http payload %+v, %v", got, err)
	}
}

// An account's fax names the account in its e-mail, at enqueue (Event.Payload) and once its
// file is fetched (Prepared, from the job's metadata); a fax of no account does not.
func TestMailNamesTheAccount(t *testing.T) {
	ev := sentEvent(t)
	ev.Account = "acme-<key>"
	p, err := ev.Payload("mailto:desk@example.com", ev.Fields())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Mail.Text, "Account:") || !strings.Contains(p.Mail.Text, "acme-<key>") || !strings.Contains(p.Mail.HTML, "acme-&lt;key&gt;") {
		t.Fatalf("e-mail does not name the account (escaped in HTML):\n%s\n%s", p.Mail.Text, p.Mail.HTML)
	}
	rev := receivedEvent(t)
	j := &queue.Job{EventID: rev.ID(), URL: "mailto:desk@example.com", Meta: append(rev.Meta(), queue.Label{Name: MetaAccount, Value: "acme"}),
		Payload: queue.Payload{Fields: rev.Fields()}}
	f := PDF(rev.FaxID, pdf)
	pp, err := Prepared(j, &f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(pp.Mail.Text, "acme") {
		t.Fatalf("prepared e-mail does not name the account:\n%s", pp.Mail.Text)
	}
	if m := mailOf(t, sentEvent(t)); strings.Contains(m.Text, "Account:") {
		t.Fatalf("a fax of no account names one:\n%s", m.Text)
	}
}

package mailsend

import (
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// inflightJob returns an inflight event job for the sent fax of sentFaxJSON.
func inflightJob(t testing.TB, eventType string, extra ...queue.Field) *queue.Job {
	j := sentJob(t, "mailto:a@x.test")
	j.EventType = eventType
	j.Fields = append([]queue.Field{{Name: "fax", Value: sentFaxJSON(t)}, {Name: "event_type", Value: eventType}}, extra...)
	return j
}

func TestRenderEvents(t *testing.T) {
	for _, tc := range []struct {
		name             string
		job              *queue.Job
		subject          string
		line, htmlMarker string
	}{
		{
			name:    "fax_completed",
			job:     sentJob(t, "mailto:a@x.test"),
			subject: "Fax 1234 (sent) completed: partialsuccess",
			line:    "The sent fax 1234 has completed with status partialsuccess.",
		},
		{
			name: "transmitting_page",
			job: inflightJob(t, fax.EventTransmittingPage,
				queue.Field{Name: "page", Value: "2"}, queue.Field{Name: "recipient_phone_number", Value: "+15557654321"}),
			subject:    "Fax 1234: page 2 transmitting to +15557654321",
			line:       "Page 2 of 3 is being transmitted to +15557654321.",
			htmlMarker: `<tr style="font-weight: bold;"><td>&#43;15557654321</td>`,
		},
		{
			name: "retry_scheduled",
			job: inflightJob(t, fax.EventRetryScheduled,
				queue.Field{Name: "retry_count", Value: "1"}, queue.Field{Name: "recipient_phone_number", Value: "+15557654321"}),
			subject:    "Fax 1234: retry 1 scheduled for +15557654321",
			line:       "Retry 1 has been scheduled for +15557654321.",
			htmlMarker: `<tr style="font-weight: bold;"><td>&#43;15557654321</td>`,
		},
		{
			name:    "transmitting_page without fields",
			job:     inflightJob(t, fax.EventTransmittingPage),
			subject: "Fax 1234: page ? transmitting",
			line:    "Page ? of 3 is being transmitted.",
		},
		{
			name:    "unknown event",
			job:     inflightJob(t, "fax_exploded"),
			subject: "Fax 1234 (sent): fax_exploded",
			line:    "Event fax_exploded for the sent fax 1234.",
		},
		{
			name: "hostile inflight fields",
			job: inflightJob(t, fax.EventTransmittingPage,
				queue.Field{Name: "page", Value: "2\r\nBcc: x@y"}, queue.Field{Name: "recipient_phone_number", Value: "<b>+1</b>"}),
			subject:    "Fax 1234: page 2  Bcc: x@y transmitting to <b>+1</b>",
			line:       "Page 2  Bcc: x@y of 3 is being transmitted to <b>+1</b>.",
			htmlMarker: "to &lt;b&gt;&#43;1&lt;/b&gt;.",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject, html, text, err := Render(tc.job)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if subject != tc.subject {
				t.Errorf("subject %q, want %q", subject, tc.subject)
			}
			if !strings.HasPrefix(text, tc.subject+"\n\n"+tc.line+"\n") {
				t.Errorf("text does not start with subject and %q:\n%s", tc.line, text)
			}
			if tc.htmlMarker != "" && !strings.Contains(html, tc.htmlMarker) {
				t.Errorf("HTML lacks %q:\n%s", tc.htmlMarker, html)
			}
			if strings.Contains(html, "<b>") || strings.ContainsAny(subject, "\r\n") {
				t.Errorf("unescaped value in HTML or control character in subject")
			}
		})
	}
}

func TestRenderFields(t *testing.T) {
	_, html, text, err := Render(receivedJob(t, "mailto:a@x.test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Fax ID:        5678", "Direction:     received", "Status:        success", "Pages:         1",
		"From number:   +15559998888", "To number:     +15550002222", "Caller name:   ACME <Corp> & Sons",
		"Created at:    2024-05-02T08:00:00.000000Z", "Completed at:  2024-05-02T08:01:00.000000Z",
		"Cost:          7 cents", "Test fax:      yes", "event 5678.fax_completed",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"<th align=\"left\" style=\"padding-right: 16px;\">Caller name</th><td>ACME &lt;Corp&gt; &amp; Sons</td>",
		"<b>fax-5678.pdf</b>"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML lacks %q:\n%s", want, html)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  *queue.Job
		want string
	}{
		{"nil", nil, "nil job"},
		{"no fax", &queue.Job{FaxID: 9, Fields: []queue.Field{{Name: "event_type", Value: "fax_completed"}}}, `fax 9: job has no "fax" field`},
		{"bad fax", &queue.Job{Fields: []queue.Field{{Name: "fax", Value: `{"id":"x"}`}}}, `decoding "fax" field`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := Render(tc.job)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Render error %v, want %q", err, tc.want)
			}
		})
	}
}

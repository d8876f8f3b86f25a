// Package render turns a fax event into what the queue delivers: the form fields of a Phaxio
// webhook in the version its receiver speaks (v2.1, v2 or v1; see Version), the e-mail of a mailto: webhook, the received fax's PDF as a file part, and the
// job metadata that listings and logs show. The queue sends what it is given and knows no
// faxes; everything about faxes in a payload is decided here.
package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Form field names of a webhook (and of the fields the e-mail is rendered from).
const (
	fieldFax                  = "fax"
	fieldEventType            = "event_type"
	fieldPage                 = "page"
	fieldRetryCount           = "retry_count"
	fieldRecipientPhoneNumber = "recipient_phone_number"
)

// fieldFile is the name of the file part that holds a received fax's PDF.
const fieldFile = "file"

// Names of the job metadata (queue.Job.Meta) the app sets: the admin API lists and filters by
// them, and the dispatcher logs them with every outcome.
const (
	// MetaFaxID is the id of the fax the event is about, in decimal.
	MetaFaxID = "fax_id"
	// MetaEventType is the event type (fax_completed, transmitting_page, retry_scheduled).
	MetaEventType = "event_type"
	// MetaAccount is the API key of the configured account the fax belongs to; absent for
	// faxes of no account. Its e-mails name it.
	MetaAccount = "account"
)

// Event is one fax event to deliver to every URL it goes to.
type Event struct {
	// FaxID is the id of the fax the event is about.
	FaxID int64
	// Account is the API key of the configured account the fax belongs to, "" for none; its
	// e-mails name it.
	Account string
	// Type is the v2.1 event type.
	Type string
	// FaxJSON is the encoded v2.1 fax object of the "fax" field.
	FaxJSON string
	// Extra are the fields of an inflight event after "fax" and "event_type" (page,
	// retry_count, recipient_phone_number), in body order.
	Extra []queue.Field
	// FileRef, when set (PrepareReceivedPDF), asks for the received fax's PDF: the app's
	// preparer fetches it once before the first attempt (queue.Payload.Prepare), through the
	// profile, for the fax the job's metadata names, and attaches it as a file part named "file".
	FileRef string
	// Version is the webhook version of the event's HTTP jobs (V21 when zero). A v1 or v2
	// event is a fax_completed without Extra; its jobs to mailto: URLs are rendered as v2.1
	// (see For), since e-mails do not change with the version.
	Version Version
	// Fax is the fax object the event is about; v1 and v2 fields are rendered from it (v2.1
	// ones from FaxJSON).
	Fax *fax.Fax
}

// For returns the event as delivered to url: a mailto: URL gets the v2.1 event whatever the
// version, since e-mail webhooks do not change with it.
func (ev Event) For(url string) Event {
	if IsMail(url) {
		ev.Version = V21
	}
	return ev
}

// WireFields returns the form fields of the event's HTTP webhook in its Version: Fields for
// v2.1, the v1 or v2 fields (see legacyFields) otherwise.
func (ev Event) WireFields() ([]queue.Field, error) {
	if ev.Version == V21 {
		return ev.Fields(), nil
	}
	if ev.Fax == nil {
		return nil, fmt.Errorf("rendering a v%s webhook of fax %d: no fax object", ev.Version, ev.FaxID)
	}
	return legacyFields(ev.Version, ev.Fax)
}

// PrepareReceivedPDF is the Event.FileRef (and queue.Payload.Prepare) of a job that waits for
// its received fax's PDF. The fax and the upstream request for its file are not in it: the
// preparer reads the fax id from the job's metadata and asks the profile for the request, so a
// job enqueued before a change of profile still fetches through the current one.
const PrepareReceivedPDF = "received-fax-pdf"

// ID is the event's stable id, shared by its jobs to every URL of its version: the fax id, the
// event type, any extra fields and, below v2.1, the version (".v1", ".v2"), so that one event
// rendered in two versions has two ids (and its jobs, whose ids derive from the event id and
// the URL, stay distinct even for one URL).
func (ev Event) ID() string {
	id := strconv.FormatInt(ev.FaxID, 10) + "." + ev.Type
	for _, f := range ev.Extra {
		id += "." + f.Name + "=" + f.Value
	}
	if ev.Version != V21 {
		id += ".v" + ev.Version.String()
	}
	return id
}

// Fields returns the webhook's form fields in body order: "fax", "event_type", then Extra.
func (ev Event) Fields() []queue.Field {
	return append([]queue.Field{{Name: fieldFax, Value: ev.FaxJSON}, {Name: fieldEventType, Value: ev.Type}}, ev.Extra...)
}

// Meta returns the job metadata of the event's jobs (MetaFaxID, MetaEventType, and MetaVersion
// below v2.1).
func (ev Event) Meta() queue.Labels {
	l := queue.Labels{{Name: MetaFaxID, Value: strconv.FormatInt(ev.FaxID, 10)}, {Name: MetaEventType, Value: ev.Type}}
	if ev.Version != V21 {
		l = append(l, queue.Label{Name: MetaVersion, Value: ev.Version.String()})
	}
	return l
}

// FaxOf returns the fax id and the event type that job metadata made by Event.Meta names; 0
// and "" for what it does not name.
func FaxOf(meta queue.Labels) (faxID int64, eventType string) {
	faxID, _ = strconv.ParseInt(meta.Get(MetaFaxID), 10, 64)
	return faxID, meta.Get(MetaEventType)
}

// Payload returns the payload of the event's job to url, given the event's fields (Fields):
// the fields, the file to prepare if any, and for a mailto: URL the e-mail. The e-mail of an
// event with a file to fetch is rendered once the file is there (Prepared).
func (ev Event) Payload(url string, fields []queue.Field) (queue.Payload, error) {
	p := queue.Payload{Fields: fields, Prepare: ev.FileRef}
	if IsMail(url) && ev.FileRef == "" {
		m, err := MailOf(ev.ID(), ev.Account, fields, nil)
		if err != nil {
			return queue.Payload{}, err
		}
		p.Mail = m
	}
	return p, nil
}

// Prepared returns the payload of job once its file is fetched: its fields, the file (nil when
// it could not be had and the webhook goes without it) and, for a mailto: job, the e-mail, which
// mentions the file. The file part is named as the job's version wants it ("file" in v2.1,
// "filename" in v1 and v2; see MetaVersion).
func Prepared(job *queue.Job, file *queue.File) (queue.Payload, error) {
	p := queue.Payload{Fields: job.Fields}
	if file != nil {
		f := *file
		f.Name = filePart(versionOf(job.Meta))
		p.Files = []queue.File{f}
	}
	if IsMail(job.URL) {
		m, err := MailOf(job.EventID, job.Meta.Get(MetaAccount), p.Fields, p.Files)
		if err != nil {
			return queue.Payload{}, err
		}
		p.Mail = m
	}
	return p, nil
}

// PDF returns the file part of a received fax's PDF: part "file", named fax-<id>.pdf.
func PDF(faxID int64, data []byte) queue.File {
	return queue.File{Name: fieldFile, Filename: pdfName(faxID), ContentType: "application/pdf", Data: data}
}

// pdfName is the file name of a fax's PDF.
func pdfName(faxID int64) string { return fmt.Sprintf("fax-%d.pdf", faxID) }

// IsMail reports whether a webhook URL is a mailto: URL, delivered as an e-mail.
func IsMail(url string) bool { return len(url) >= 7 && strings.EqualFold(url[:7], "mailto:") }

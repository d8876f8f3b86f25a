// Package render turns a fax event into what the queue delivers: the form fields of a Phaxio
// v2.1 webhook, the e-mail of a mailto: webhook, the received fax's PDF as a file part, and the
// job metadata that listings and logs show. The queue sends what it is given and knows no
// faxes; everything about faxes in a payload is decided here.
package render

import (
	"fmt"
	"strconv"
	"strings"

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
)

// Event is one fax event to deliver to every URL it goes to.
type Event struct {
	// FaxID is the id of the fax the event is about.
	FaxID int64
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
}

// PrepareReceivedPDF is the Event.FileRef (and queue.Payload.Prepare) of a job that waits for
// its received fax's PDF. The fax and the upstream request for its file are not in it: the
// preparer reads the fax id from the job's metadata and asks the profile for the request, so a
// job enqueued before a change of profile still fetches through the current one.
const PrepareReceivedPDF = "received-fax-pdf"

// ID is the event's stable id, shared by its jobs to every URL: the fax id, the event type and
// any extra fields.
func (ev Event) ID() string {
	id := strconv.FormatInt(ev.FaxID, 10) + "." + ev.Type
	for _, f := range ev.Extra {
		id += "." + f.Name + "=" + f.Value
	}
	return id
}

// Fields returns the webhook's form fields in body order: "fax", "event_type", then Extra.
func (ev Event) Fields() []queue.Field {
	return append([]queue.Field{{Name: fieldFax, Value: ev.FaxJSON}, {Name: fieldEventType, Value: ev.Type}}, ev.Extra...)
}

// Meta returns the job metadata of the event's jobs (MetaFaxID, MetaEventType).
func (ev Event) Meta() queue.Labels {
	return queue.Labels{{Name: MetaFaxID, Value: strconv.FormatInt(ev.FaxID, 10)}, {Name: MetaEventType, Value: ev.Type}}
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
		m, err := Mail(ev.ID(), fields, nil)
		if err != nil {
			return queue.Payload{}, err
		}
		p.Mail = m
	}
	return p, nil
}

// Prepared returns the payload of job once its file is fetched: its fields, the file (nil when
// it could not be had and the webhook goes without it) and, for a mailto: job, the e-mail, which
// mentions the file.
func Prepared(job *queue.Job, file *queue.File) (queue.Payload, error) {
	p := queue.Payload{Fields: job.Fields}
	if file != nil {
		p.Files = []queue.File{*file}
	}
	if IsMail(job.URL) {
		m, err := Mail(job.EventID, p.Fields, p.Files)
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

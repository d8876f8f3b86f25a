package render

import (
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"sort"
	"strconv"
	"strings"
	texttemplate "text/template"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
	"github.com/faxhook/caddy-faxhook/queue/mailsend"
)

// row is one labelled value of the fax summary.
type row struct {
	Label, Value string
}

// recipientRow is one line of the recipient table of a sent fax.
type recipientRow struct {
	PhoneNumber, Status, RetryCount, CompletedAt, Bitrate, Resolution, Error string
	// Current marks the recipient the inflight event is about.
	Current bool
}

// barcodeRow is one barcode found on a received fax.
type barcodeRow struct {
	Type, Page, Value string
}

// view is what both templates render.
type view struct {
	Subject    string
	EventLine  string
	Rows       []row
	Tags       []row
	Recipients []recipientRow
	Barcodes   []barcodeRow
	Attachment string
	EventID    string
}

// Mail renders the e-mail of the event eventID, whose webhook has the form fields fields and the
// file parts files (see Event.Fields and PDF): the fax object (field "fax", Phaxio v2.1 JSON),
// the event type (field "event_type") and, for inflight events, "page", "retry_count" and
// "recipient_phone_number". The message has a default subject (a mailto: URL's subject replaces
// it when sent), a plain-text body and its HTML alternative; a file part "file" (the received
// fax's PDF) is mentioned as attached.
//
// Every value from the fields is escaped in the HTML (html/template); the plain text carries
// values as they are, minus control characters. Mail fails only when there is no fax object or
// the object is not valid JSON.
func Mail(eventID string, fields []queue.Field, files []queue.File) (*queue.Mail, error) {
	return MailOf(eventID, "", fields, files)
}

// MailOf is Mail for a fax of an account (its API key; "" for none), which the e-mail names.
func MailOf(eventID, account string, fields []queue.Field, files []queue.File) (*queue.Mail, error) {
	v, err := buildView(eventID, fields, files)
	if err != nil {
		return nil, fmt.Errorf("rendering e-mail for event %s: %w", eventID, err)
	}
	if account = mailsend.Clean(account); account != "" {
		v.Rows = append(v.Rows[:1:1], append([]row{{"Account", account}}, v.Rows[1:]...)...)
	}
	var hb, tb strings.Builder
	if err := htmlTemplate.Execute(&hb, v); err != nil {
		return nil, fmt.Errorf("rendering HTML body for event %s: %w", eventID, err)
	}
	if err := textTemplate.Execute(&tb, v); err != nil {
		return nil, fmt.Errorf("rendering text body for event %s: %w", eventID, err)
	}
	return &queue.Mail{Subject: v.Subject, Text: tb.String(), HTML: hb.String()}, nil
}

// buildView decodes the fields into the values the templates show.
func buildView(eventID string, formFields []queue.Field, files []queue.File) (*view, error) {
	fields := map[string]string{}
	for _, f := range formFields {
		if _, dup := fields[f.Name]; !dup {
			fields[f.Name] = f.Value
		}
	}
	faxJSON, ok := fields[fieldFax]
	if !ok {
		return nil, errors.New(`job has no "fax" field`)
	}
	var fx fax.Fax
	if err := json.Unmarshal([]byte(faxJSON), &fx); err != nil {
		return nil, fmt.Errorf(`decoding "fax" field: %w`, err)
	}
	eventType := mailsend.Clean(fields[fieldEventType])
	page := mailsend.Clean(fields[fieldPage])
	retry := mailsend.Clean(fields[fieldRetryCount])
	phone := mailsend.Clean(fields[fieldRecipientPhoneNumber])
	dir := mailsend.Clean(fx.Direction)
	status := mailsend.Clean(fx.Status)

	v := &view{EventID: mailsend.Clean(eventID)}
	switch eventType {
	case fax.EventFaxCompleted:
		v.Subject = fmt.Sprintf("Fax %d (%s) completed: %s", fx.ID, dir, status)
		v.EventLine = fmt.Sprintf("The %s fax %d has completed with status %s.", dir, fx.ID, status)
	case fax.EventTransmittingPage:
		v.Subject = fmt.Sprintf("Fax %d: page %s transmitting", fx.ID, or(page, "?"))
		v.EventLine = "Page " + or(page, "?")
		if fx.NumPages > 0 {
			v.EventLine += " of " + strconv.Itoa(fx.NumPages)
		}
		v.EventLine += " is being transmitted"
		if phone != "" {
			v.Subject += " to " + phone
			v.EventLine += " to " + phone
		}
		v.EventLine += "."
	case fax.EventRetryScheduled:
		v.Subject = fmt.Sprintf("Fax %d: retry %s scheduled", fx.ID, or(retry, "?"))
		v.EventLine = "Retry " + or(retry, "?") + " has been scheduled"
		if phone != "" {
			v.Subject += " for " + phone
			v.EventLine += " for " + phone
		}
		v.EventLine += "."
	default:
		ev := or(eventType, "unknown event")
		v.Subject = fmt.Sprintf("Fax %d (%s): %s", fx.ID, dir, ev)
		v.EventLine = fmt.Sprintf("Event %s for the %s fax %d.", ev, dir, fx.ID)
	}

	add := func(label, value string) {
		if value = mailsend.Clean(value); value != "" {
			v.Rows = append(v.Rows, row{label, value})
		}
	}
	add("Fax ID", strconv.FormatInt(fx.ID, 10))
	add("Event", eventType)
	add("Direction", dir)
	add("Status", status)
	add("Pages", strconv.Itoa(fx.NumPages))
	if eventType == fax.EventTransmittingPage {
		add("Page", page)
	}
	if eventType == fax.EventRetryScheduled {
		add("Retry", retry)
	}
	if eventType == fax.EventTransmittingPage || eventType == fax.EventRetryScheduled {
		add("Recipient", phone)
	}
	add("From number", deref(fx.FromNumber))
	add("To number", deref(fx.ToNumber))
	add("Caller ID", deref(fx.CallerID))
	add("Caller name", deref(fx.CallerName))
	add("Created at", fx.CreatedAt)
	add("Completed at", deref(fx.CompletedAt))
	add("Cost", cents(fx.Cost))
	if fx.IsTest {
		add("Test fax", "yes")
	}
	add("Error", errorText(fx.ErrorType, fx.ErrorID, fx.ErrorMessage))

	keys := make([]string, 0, len(fx.Tags))
	for k := range fx.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v.Tags = append(v.Tags, row{mailsend.Clean(k), mailsend.Clean(fx.Tags[k])})
	}

	for _, r := range fx.Recipients {
		rr := recipientRow{
			PhoneNumber: mailsend.Clean(r.PhoneNumber),
			Status:      mailsend.Clean(deref(r.Status)),
			RetryCount:  strconv.Itoa(r.RetryCount),
			CompletedAt: mailsend.Clean(deref(r.CompletedAt)),
			Error:       errorText(r.ErrorType, r.ErrorID, r.ErrorMessage),
		}
		if r.Bitrate != nil {
			rr.Bitrate = strconv.Itoa(*r.Bitrate)
		}
		if r.Resolution != nil {
			rr.Resolution = strconv.Itoa(*r.Resolution)
		}
		rr.Current = phone != "" && rr.PhoneNumber == phone &&
			(eventType == fax.EventTransmittingPage || eventType == fax.EventRetryScheduled)
		v.Recipients = append(v.Recipients, rr)
	}
	for _, b := range fx.Barcodes {
		v.Barcodes = append(v.Barcodes, barcodeRow{mailsend.Clean(b.Type), strconv.Itoa(b.Page), mailsend.Clean(b.Value)})
	}
	for _, f := range files {
		if f.Name == fieldFile {
			v.Attachment = mailsend.Clean(attachmentName(f, fx.ID))
			break
		}
	}
	return v, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func or(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// cents renders a v2.1 cost, which is in cents.
func cents(n int) string {
	if n == 1 {
		return "1 cent"
	}
	return strconv.Itoa(n) + " cents"
}

// errorText joins a fax's or recipient's error fields: "message (type, error id N)".
func errorText(typ *string, id *int, msg *string) string {
	m, t := mailsend.Clean(deref(msg)), mailsend.Clean(deref(typ))
	var detail []string
	if t != "" {
		detail = append(detail, t)
	}
	if id != nil {
		detail = append(detail, "error id "+strconv.Itoa(*id))
	}
	switch {
	case len(detail) == 0:
		return m
	case m == "":
		return strings.Join(detail, ", ")
	}
	return m + " (" + strings.Join(detail, ", ") + ")"
}

// attachmentName is the file name under which a file part is attached.
func attachmentName(f queue.File, faxID int64) string {
	if name := mailsend.Clean(f.Filename); name != "" {
		return name
	}
	return pdfName(faxID)
}

var textTemplate = texttemplate.Must(texttemplate.New("text").Parse(`{{.Subject}}

{{.EventLine}}
{{if .Attachment}}The received fax is attached as {{.Attachment}}.
{{end}}
{{range .Rows}}{{printf "%-14s" (print .Label ":")}} {{.Value}}
{{end}}{{if .Tags}}
Tags:
{{range .Tags}}  {{.Label}}: {{.Value}}
{{end}}{{end}}{{if .Recipients}}
Recipients:
{{range .Recipients}}  {{.PhoneNumber}}{{if .Current}} (this event){{end}}: {{or .Status "-"}}, retries {{.RetryCount}}{{if .CompletedAt}}, completed at {{.CompletedAt}}{{end}}{{if .Bitrate}}, {{.Bitrate}} bps{{end}}{{if .Resolution}}, resolution {{.Resolution}}{{end}}{{if .Error}}, error: {{.Error}}{{end}}
{{end}}{{end}}{{if .Barcodes}}
Barcodes:
{{range .Barcodes}}  page {{.Page}}, {{.Type}}: {{.Value}}
{{end}}{{end}}
-- 
Sent by faxhook{{if .EventID}}, event {{.EventID}}{{end}}.
`))

var htmlTemplate = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>{{.Subject}}</title>
</head>
<body style="font-family: Helvetica, Arial, sans-serif; font-size: 14px; color: #222;">
<h2 style="font-size: 18px;">{{.Subject}}</h2>
<p>{{.EventLine}}</p>
{{- if .Attachment}}
<p>The received fax is attached as <b>{{.Attachment}}</b>.</p>
{{- end}}
<table cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
{{- range .Rows}}
<tr><th align="left" style="padding-right: 16px;">{{.Label}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- if .Tags}}
<h3 style="font-size: 15px;">Tags</h3>
<table cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
{{- range .Tags}}
<tr><th align="left" style="padding-right: 16px;">{{.Label}}</th><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Recipients}}
<h3 style="font-size: 15px;">Recipients</h3>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
<tr><th align="left">Phone number</th><th align="left">Status</th><th align="left">Retries</th><th align="left">Completed at</th><th align="left">Bitrate</th><th align="left">Resolution</th><th align="left">Error</th></tr>
{{- range .Recipients}}
<tr{{if .Current}} style="font-weight: bold;"{{end}}><td>{{.PhoneNumber}}</td><td>{{.Status}}</td><td>{{.RetryCount}}</td><td>{{.CompletedAt}}</td><td>{{.Bitrate}}</td><td>{{.Resolution}}</td><td>{{.Error}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if .Barcodes}}
<h3 style="font-size: 15px;">Barcodes</h3>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse: collapse;">
<tr><th align="left">Page</th><th align="left">Type</th><th align="left">Value</th></tr>
{{- range .Barcodes}}
<tr><td>{{.Page}}</td><td>{{.Type}}</td><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
<p style="color: #888; font-size: 12px;">Sent by faxhook{{if .EventID}}, event {{.EventID}}{{end}}.</p>
</body>
</html>
`))

package render

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

// Version is a Phaxio webhook version: the shape of the form fields and of the fax object that
// an HTTP webhook carries. The zero value is V21, the current one. E-mail (mailto:) webhooks are
// the same in every version.
type Version uint8

// Webhook versions.
const (
	// V21 is Phaxio API v2.1: fields fax and event_type (plus the inflight events' extras),
	// the PDF in file part "file".
	V21 Version = iota
	// V2 is Phaxio API v2: fields success, is_test, direction and fax (the v2 fax object, the
	// v2.1 one without barcodes); fax_completed only; the PDF in file part "filename".
	V2
	// V1 is Phaxio API v1: fields success, is_test, direction, fax (the v1 fax object: Unix
	// times, 10-digit numbers, error_code), metadata for received faxes, and message;
	// fax_completed only; the PDF in file part "filename".
	V1
)

// String returns the version as the Caddyfile and the JSON config write it: "2.1", "2", "1".
func (v Version) String() string {
	switch v {
	case V1:
		return "1"
	case V2:
		return "2"
	}
	return "2.1"
}

// Inflight reports whether the version has inflight events (transmitting_page,
// retry_scheduled): only v2.1 does.
func (v Version) Inflight() bool { return v == V21 }

// ParseVersion reads a webhook version: "2.1" (also "2.1.0", "v2.1"), "2" ("2.0", "2.0.0",
// "v2") or "1" ("1.0", "1.0.0", "v1"). The empty string is V21, the default.
func ParseVersion(s string) (Version, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return V21, nil
	}
	switch strings.TrimPrefix(t, "v") {
	case "2.1", "2.1.0":
		return V21, nil
	case "2", "2.0", "2.0.0":
		return V2, nil
	case "1", "1.0", "1.0.0":
		return V1, nil
	}
	return V21, fmt.Errorf("webhook version %q is not 2.1, 2 or 1", s)
}

// Form field names of v1 and v2 webhooks, and their PDF's file part.
const (
	fieldSuccess   = "success"
	fieldIsTest    = "is_test"
	fieldDirection = "direction"
	fieldMetadata  = "metadata"
	fieldMessage   = "message"
	// fieldFilename is the file part of a received fax's PDF in v1 (documented) and v2 (see
	// the README: phaxio-ruby's v2 README receives it as params[:filename]).
	fieldFilename = "filename"
)

// MetaVersion is the job metadata (queue.Job.Meta) that names the webhook version of a job
// rendered for v1 or v2; v2.1 jobs carry none. Prepared reads it to name the PDF's file part.
const MetaVersion = "webhook_version"

// versionOf returns the version that job metadata names; V21 when none.
func versionOf(meta queue.Labels) Version {
	v, err := ParseVersion(meta.Get(MetaVersion))
	if err != nil {
		return V21
	}
	return v
}

// filePart returns the name of the file part of a received fax's PDF in version v.
func filePart(v Version) string {
	if v == V21 {
		return fieldFile
	}
	return fieldFilename
}

// legacyFields returns the form fields of a v1 or v2 fax_completed webhook of f, in the order
// Phaxio's pages list them: success, is_test, direction, fax, then for v1 metadata (received
// faxes) and message.
func legacyFields(v Version, f *fax.Fax) ([]queue.Field, error) {
	var b []byte
	var err error
	if v == V1 {
		b, err = json.Marshal(faxV1Of(f))
	} else {
		b, err = json.Marshal(faxV2Of(f))
	}
	if err != nil {
		return nil, fmt.Errorf("encoding the v%s fax object: %w", v, err)
	}
	fields := []queue.Field{
		{Name: fieldSuccess, Value: boolText(f.Status == fax.StatusSuccess)},
		{Name: fieldIsTest, Value: boolText(f.IsTest)},
		{Name: fieldDirection, Value: f.Direction},
		{Name: fieldFax, Value: string(b)},
	}
	if v == V1 {
		if f.Direction == fax.DirectionReceived {
			fields = append(fields, queue.Field{Name: fieldMetadata, Value: phaxCodeMetadata(f)})
		}
		fields = append(fields, queue.Field{Name: fieldMessage, Value: failureMessage(f)})
	}
	return fields, nil
}

// boolText is how a form field carries a boolean.
func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// failureMessage is v1's message field: the error of a fax that did not succeed (its
// error_message, else its error_type), empty for a successful one.
func failureMessage(f *fax.Fax) string {
	if f.Status == fax.StatusSuccess {
		return ""
	}
	switch {
	case f.ErrorMessage != nil && *f.ErrorMessage != "":
		return *f.ErrorMessage
	case f.ErrorType != nil:
		return *f.ErrorType
	}
	return ""
}

// phaxCodeMetadata is v1's metadata field: the metadata of the first PhaxCode found on the
// received fax (a JSON string is unquoted, other JSON is passed as is), empty without one.
func phaxCodeMetadata(f *fax.Fax) string {
	for _, bc := range f.Barcodes {
		m := bc.Metadata
		if len(m) == 0 || string(m) == "null" {
			continue
		}
		var s string
		if json.Unmarshal(m, &s) == nil {
			return s
		}
		return string(m)
	}
	return ""
}

package render

import (
	"encoding/json"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
	"github.com/faxhook/caddy-faxhook/queue"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"": V21, "2.1": V21, "2.1.0": V21, "v2.1": V21,
		"2": V2, "2.0": V2, "2.0.0": V2, "V2": V2,
		"1": V1, "1.0": V1, "1.0.0": V1, " v1 ": V1,
	} {
		if got, err := ParseVersion(in); err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"3", "2.2", "1.1", "latest", "v"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
	if V21.String() != "2.1" || V2.String() != "2" || V1.String() != "1" || !V21.Inflight() || V2.Inflight() || V1.Inflight() {
		t.Error("String or Inflight")
	}
}

// A failed v1 fax: success false, message the error, error_code in the object and its
// recipient; a number outside North America keeps its country code.
func TestV1FailedFax(t *testing.T) {
	f := &fax.Fax{ID: 9, Direction: fax.DirectionSent, Status: fax.StatusFailure, CreatedAt: "bad time",
		ErrorType: fax.Str("lineError"), ErrorID: fax.Int(17), ErrorMessage: fax.Str("Busy"),
		Recipients: []fax.Recipient{{PhoneNumber: "+442071234567", Status: fax.Str(fax.StatusFailure), RetryCount: 2,
			ErrorType: fax.Str("lineError"), ErrorID: fax.Int(17), ErrorMessage: fax.Str("Busy")}}}
	fields, err := Event{FaxID: 9, Type: fax.EventFaxCompleted, Version: V1, Fax: f}.WireFields()
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.Field{{Name: "success", Value: "false"}, {Name: "is_test", Value: "false"}, {Name: "direction", Value: "sent"},
		{Name: "fax"}, {Name: "message", Value: "Busy"}}
	want[3].Value = `{"id":9,"num_pages":0,"cost":0,"direction":"sent","status":"failure","is_test":false,"requested_at":0,` +
		`"error_type":"lineError","error_id":17,"error_code":"Busy","recipients":[{"number":"442071234567","status":"failure",` +
		`"retry_count":2,"error_type":"lineError","error_id":17,"error_code":"Busy"}]}`
	if len(fields) != len(want) {
		t.Fatalf("fields %v", fields)
	}
	for i := range want {
		if fields[i] != want[i] {
			t.Errorf("field %d = %v\nwant %v", i, fields[i], want[i])
		}
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(fields[3].Value), &v); err != nil {
		t.Fatal(err)
	}
}

// Events of another version have ids and metadata of their own; a mailto: URL gets v2.1; a v1
// or v2 job's PDF goes in part "filename".
func TestVersionIDsMetaAndFilePart(t *testing.T) {
	ev := Event{FaxID: 5, Type: fax.EventFaxCompleted, Version: V2, Fax: &fax.Fax{ID: 5}}
	if ev.ID() != "5.fax_completed.v2" || ev.Meta().Get(MetaVersion) != "2" {
		t.Errorf("v2 id %s, meta %v", ev.ID(), ev.Meta())
	}
	m := ev.For("mailto:ops@x.test")
	if m.Version != V21 || m.ID() != "5.fax_completed" || m.Meta().Get(MetaVersion) != "" {
		t.Errorf("mailto: event %+v", m)
	}
	if ev.For("https://x.example/").Version != V2 {
		t.Error("http URL lost its version")
	}
	pdf := PDF(5, []byte("%PDF"))
	for meta, part := range map[string]string{"": "file", "2": "filename", "1": "filename"} {
		job := &queue.Job{URL: "https://x.example/", Meta: queue.Labels{{Name: MetaVersion, Value: meta}}}
		p, err := Prepared(job, &pdf)
		if err != nil || len(p.Files) != 1 || p.Files[0].Name != part {
			t.Errorf("version %q: files %+v, %v; want part %q", meta, p.Files, err, part)
		}
	}
	if pdf.Name != "file" {
		t.Error("Prepared changed the caller's file")
	}
	if _, err := (Event{FaxID: 6, Version: V1}).WireFields(); err == nil {
		t.Error("a v1 event without its fax object rendered")
	}
}

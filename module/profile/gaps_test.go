package profile

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// The tests of this file cover the mapping gaps of issue 18. Their mappings are JSON text, as
// an operator writes them, so that they compile against a Mapping without the new fields.

// sinchLike is a mapping of a Sinch-Fax-v3-shaped API: one fax per "to", a fax-level status,
// string ids, a decimal price, a count of finished pages, fields that differ by direction, and
// a send that answers {"faxes":[…]}.
const sinchLike = `{
  "send": "POST /faxes", "status": "GET /faxes/{id}", "list": "GET /faxes", "file": "GET /faxes/{id}/file",
  "list_objects": "faxes", "send_object": "faxes", "single_recipient": true, "upstream_id_tag": "upstream_id",
  "cost_unit": "currency",
  "fields": {"id": "id", "direction": "direction", "status": "status", "num_pages": "numberOfPages",
    "created_at": "createTime", "completed_at": "completedTime", "cost": "price", "tags": "labels",
    "caller_id": "from", "recipients": ".", "error_type": "errorType", "error_message": "errorMessage"},
  "fields_by_direction": {"received": {"caller_id": "-", "recipients": "-", "from_number": "from", "to_number": "to"}},
  "recipient": {"phone_number": "to", "status": "status", "retry_count": "retryCount",
    "pages_done": "pagesSentSuccessfully", "completed_at": "completedTime",
    "error_type": "errorType", "error_message": "errorMessage"},
  "status_map": {"QUEUED": "queued", "IN_PROGRESS": "inprogress", "COMPLETED": "success", "FAILURE": "failure"},
  "recipient_status_map": {"QUEUED": "", "IN_PROGRESS": "inprogress", "COMPLETED": "success", "FAILURE": "failure"},
  "direction_map": {"OUTBOUND": "sent", "INBOUND": "received"},
  "error_type_map": {"CALL_ERROR": "lineError", "FAX_ERROR": "faxError"}
}`

func mappingOf(t *testing.T, text string) *Mapping {
	t.Helper()
	var m Mapping
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("validating the mapping: %v", err)
	}
	return &m
}

func extractOne(t *testing.T, m *Mapping, route, body string) Found {
	t.Helper()
	found, err := m.ExtractWithIDs(route, []byte(body))
	if err != nil || len(found) != 1 {
		t.Fatalf("extracting %s: %d faxes, %v", body, len(found), err)
	}
	return found[0]
}

const sinchSent = `{"id":"01HXA7Q2M3","direction":"OUTBOUND","from":"+15551110000","to":"+15552220000",
 "numberOfPages":3,"pagesSentSuccessfully":%d,"status":"%s","createTime":"2026-12-05T03:00:00Z",
 "completedTime":%s,"price":"0.07","labels":{"order":"42"},"retryCount":0}`

func sinchSentBody(done int, status, completed string) string {
	return strings.NewReplacer("%d", itoa(done), "%s\"", status+"\"", "%s", completed).Replace(sinchSent)
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// Gap 1: a fax-level "to" and status make the one recipient ("recipients": "." with
// single_recipient), and so does a plain phone-number value.
func TestGapSingleRecipient(t *testing.T) {
	m := mappingOf(t, sinchLike)
	f := extractOne(t, m, RouteStatus, sinchSentBody(1, "IN_PROGRESS", "null")).Object.Fax
	if len(f.Recipients) != 1 || f.Recipients[0].PhoneNumber != "+15552220000" ||
		f.Recipients[0].Status == nil || *f.Recipients[0].Status != fax.StatusInProgress {
		t.Fatalf("recipients: %+v", f.Recipients)
	}
	plain := mappingOf(t, `{"status":"GET /f/{id}","single_recipient":true,
	  "fields":{"id":"id","status":"state","recipients":"to"},"recipient":{"phone_number":"."}}`)
	f = extractOne(t, plain, RouteStatus, `{"id":7,"state":"queued","to":"+15553330000"}`).Object.Fax
	if len(f.Recipients) != 1 || f.Recipients[0].PhoneNumber != "+15553330000" {
		t.Fatalf("recipients from a plain value: %+v", f.Recipients)
	}
	// An array where one recipient is expected is a mapping error naming the field.
	if _, err := plain.ExtractWithIDs(RouteStatus, []byte(`{"id":7,"state":"queued","to":["+1"]}`)); err == nil ||
		!strings.Contains(err.Error(), "fields.recipients") {
		t.Fatalf("an array with single_recipient: %v", err)
	}
}

// Gap 2: the upstream's string id reaches the receiver in a tag, besides being kept (Found.
// UpstreamID) for the poller and the PDF fetch.
func TestGapUpstreamIDTag(t *testing.T) {
	m := mappingOf(t, `{"status":"GET /faxes/{id}","upstream_id_tag":"upstream_id",
	  "fields":{"id":"id","status":"status","tags":"labels"},"status_map":{"QUEUED":"queued"}}`)
	got := extractOne(t, m, RouteStatus, sinchSentBody(0, "QUEUED", "null"))
	if got.UpstreamID != "01HXA7Q2M3" || got.Object.Fax.ID != DeriveID("01HXA7Q2M3") {
		t.Fatalf("ids: %q %d", got.UpstreamID, got.Object.Fax.ID)
	}
	if tags := got.Object.Fax.Tags; tags["upstream_id"] != "01HXA7Q2M3" || tags["order"] != "42" {
		t.Fatalf("tags: %v", tags)
	}
}

// Gap 4: from_number and to_number only on received faxes; sent faxes keep caller_id and their
// recipient.
func TestGapFieldsByDirection(t *testing.T) {
	m := mappingOf(t, `{"status":"GET /faxes/{id}",
	  "fields":{"id":"id","status":"status","direction":"direction","caller_id":"from","recipients":"recipients"},
	  "recipient":{"phone_number":"."},
	  "fields_by_direction":{"received":{"caller_id":"-","recipients":"-","from_number":"from","to_number":"to"}},
	  "status_map":{"COMPLETED":"success"},"direction_map":{"OUTBOUND":"sent","INBOUND":"received"}}`)
	sent := extractOne(t, m, RouteStatus, `{"id":"01HXA","direction":"OUTBOUND","from":"+15551110000",
	  "to":"+15552220000","recipients":["+15552220000"],"status":"COMPLETED"}`).Object.Fax
	if sent.FromNumber != nil || sent.ToNumber != nil || sent.CallerID == nil || *sent.CallerID != "+15551110000" ||
		len(sent.Recipients) != 1 {
		t.Fatalf("sent fax: %+v", sent)
	}
	rcv := extractOne(t, m, RouteStatus, `{"id":"01HXB","direction":"INBOUND","from":"+15554440000",
	  "to":"+15551110000","recipients":["+15551110000"],"status":"COMPLETED"}`).Object.Fax
	if rcv.Direction != fax.DirectionReceived || rcv.FromNumber == nil || *rcv.FromNumber != "+15554440000" ||
		rcv.ToNumber == nil || *rcv.ToNumber != "+15551110000" || rcv.CallerID != nil || len(rcv.Recipients) != 0 {
		t.Fatalf("received fax: %+v", rcv)
	}
}

// Gap 6: a decimal price into integer cents.
func TestGapDecimalPrice(t *testing.T) {
	m := mappingOf(t, `{"status":"GET /faxes/{id}","cost_unit":"currency",
	  "fields":{"id":"id","status":"status","cost":"price"},"status_map":{"QUEUED":"queued"}}`)
	for text, want := range map[string]int{`"0.07"`: 7, `0.07`: 7, `"12"`: 1200, `"0.005"`: 1, `"1.004"`: 100, `"-0.015"`: -2} {
		body := strings.Replace(sinchSentBody(0, "QUEUED", "null"), `"0.07"`, text, 1)
		if got := extractOne(t, m, RouteStatus, body).Object.Fax.Cost; got != want {
			t.Errorf("price %s: %d cents, want %d", text, got, want)
		}
	}
	if _, err := m.ExtractWithIDs(RouteStatus, []byte(strings.Replace(sinchSentBody(0, "QUEUED", "null"), `"0.07"`, `"7 USD"`, 1))); err == nil ||
		!strings.Contains(err.Error(), "fields.cost") {
		t.Fatalf("a price that is no decimal: %v", err)
	}
}

// Gap 6: a count of finished pages gives the page on the wire: the next one while the
// recipient transmits, else the last finished one.
func TestGapPagesDone(t *testing.T) {
	m := mappingOf(t, `{"status":"GET /faxes/{id}",
	  "fields":{"id":"id","status":"status","num_pages":"numberOfPages","recipients":"dest"},
	  "recipient":{"phone_number":"to","status":"status","pages_done":"done"},
	  "status_map":{"QUEUED":"queued","IN_PROGRESS":"inprogress","COMPLETED":"success","FAILURE":"failure"},
	  "recipient_status_map":{"QUEUED":"","IN_PROGRESS":"inprogress","COMPLETED":"success","FAILURE":"failure"}}`)
	for _, c := range []struct {
		done   int
		status string
		page   int
	}{
		{0, "QUEUED", 0},      // not started: no page
		{0, "IN_PROGRESS", 1}, // in progress: page 1 on the wire
		{2, "IN_PROGRESS", 3}, // pages 1 and 2 done: page 3 on the wire
		{3, "IN_PROGRESS", 3}, // every page done, not yet completed
		{3, "COMPLETED", 3},
		{1, "FAILURE", 1}, // failed after page 1
	} {
		body := `{"id":"x","status":"` + c.status + `","numberOfPages":3,"dest":[{"to":"+15552220000","status":"` +
			c.status + `","done":` + itoa(c.done) + `}]}`
		o := extractOne(t, m, RouteStatus, body).Object
		if got := o.CurrentPage["+15552220000"]; got != c.page {
			t.Errorf("%d pages done, %s: page %d, want %d", c.done, c.status, got, c.page)
		}
	}
}

// Gap 6: a send that answers a list of new faxes, {"faxes":[…]}, or a list of ids.
func TestGapSendAnswersAList(t *testing.T) {
	m := mappingOf(t, `{"send":"POST /faxes","status":"GET /faxes/{id}","send_object":"faxes",
	  "fields":{"id":"id","status":"status","recipients":"to"},"recipient":{"phone_number":"."},
	  "status_map":{"QUEUED":"queued"}}`)
	send := `{"faxes":[{"id":"01HXA7Q2M3","status":"QUEUED","to":["+15552220000"]},
	  {"id":"01HXA7Q2M4","status":"QUEUED","to":["+15552220001"]}]}`
	found, err := m.ExtractWithIDs(RouteSend, []byte(send))
	if err != nil || len(found) != 2 || found[0].UpstreamID != "01HXA7Q2M3" || found[1].UpstreamID != "01HXA7Q2M4" ||
		found[1].Object.Fax.Recipients[0].PhoneNumber != "+15552220001" {
		t.Fatalf("send answering a list: %+v, %v", found, err)
	}
	// A send for one recipient that answers the fax itself (nothing at send_object) is read at
	// object.
	if got := extractOne(t, m, RouteSend, `{"id":"01HXA7Q2M5","status":"QUEUED","to":["+15552220002"]}`); got.UpstreamID != "01HXA7Q2M5" {
		t.Fatalf("send answering one fax: %+v", got)
	}
	// The status route still reads the body itself.
	if got := extractOne(t, m, RouteStatus, `{"id":"01HXA7Q2M3","status":"QUEUED"}`); got.UpstreamID != "01HXA7Q2M3" {
		t.Fatalf("status: %+v", got)
	}
	// send_id may name an array of ids, one per new fax.
	ids := mappingOf(t, `{"send":"POST /f","send_id":"ids","fields":{"id":"id","status":"state"}}`)
	found, err = ids.ExtractWithIDs(RouteSend, []byte(`{"ids":["a-1","a-2"]}`))
	if err != nil || len(found) != 2 || found[0].UpstreamID != "a-1" || found[1].UpstreamID != "a-2" {
		t.Fatalf("send_id naming an array: %+v, %v", found, err)
	}
}

// Every new option together, as a Sinch-Fax-v3-shaped API needs them.
func TestGapsTogether(t *testing.T) {
	m := mappingOf(t, sinchLike)
	o := extractOne(t, m, RouteStatus, sinchSentBody(2, "IN_PROGRESS", "null")).Object
	f := o.Fax
	if f.Cost != 7 || f.Tags["upstream_id"] != "01HXA7Q2M3" || len(f.Recipients) != 1 ||
		o.CurrentPage["+15552220000"] != 3 || f.FromNumber != nil || *f.CallerID != "+15551110000" {
		t.Fatalf("sent fax: %+v, pages %v", f, o.CurrentPage)
	}
	rcv := extractOne(t, m, RouteStatus, `{"id":"01HXB","direction":"INBOUND","from":"+15554440000",
	  "to":"+15551110000","numberOfPages":2,"status":"COMPLETED","createTime":"2026-12-05T03:00:00Z",
	  "completedTime":"2026-12-05T03:00:30Z","price":"0.00"}`).Object.Fax
	if rcv.FromNumber == nil || *rcv.FromNumber != "+15554440000" || len(rcv.Recipients) != 0 || rcv.CallerID != nil {
		t.Fatalf("received fax: %+v", rcv)
	}
}

// Validate lists every problem of the new options, each with its field.
func TestGapValidate(t *testing.T) {
	var m Mapping
	err := json.Unmarshal([]byte(`{"status":"GET /f/{id}","send_id":"id","send_object":"a..b",
	  "single_recipient":true, "cost_unit":"dollars", "upstream_id_tag":" x",
	  "fields":{"id":"id","status":"state"},
	  "fields_by_direction":{"outbound":{"from_number":"from"},"received":{"id":"x","direction":"d","tags":"=t","recipients":"r","to_number":"a..b"}},
	  "recipient":{"current_page":"p","pages_done":"d"}}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad mapping")
	}
	for _, want := range []string{
		"mapping: send_object: path \"a..b\" has an empty segment",
		"mapping: send_object: cannot be set together with send_id",
		"mapping: cost_unit: \"dollars\" is neither cents nor currency",
		"mapping: upstream_id_tag: \" x\" has surrounding white space",
		"mapping: fields_by_direction.outbound: \"outbound\" is not a v2.1 direction",
		"mapping: fields_by_direction.received.id: cannot differ by direction",
		"mapping: fields_by_direction.received.direction: cannot differ by direction",
		"mapping: fields_by_direction.received.tags: \"=t\": a constant cannot stand for an object or array",
		"mapping: fields_by_direction.received.to_number: path \"a..b\" has an empty segment",
		"mapping: recipient.phone_number: required when fields_by_direction.received.recipients is set",
		"mapping: recipient.pages_done: cannot be set together with recipient.current_page",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate's error lacks %q:\n%v", want, err)
		}
	}
	m = Mapping{}
	if err := json.Unmarshal([]byte(`{"status":"GET /f/{id}","single_recipient":true,"fields":{"id":"id","status":"s"}}`), &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), "mapping: single_recipient: needs fields.recipients") {
		t.Errorf("single_recipient without recipients: %v", err)
	}
}

// Gap 5: IsMappingError tells a mapping that does not fit the service's JSON from an answer
// that merely carries no fax.
func TestIsMappingError(t *testing.T) {
	m := mappingOf(t, `{"status":"GET /j/{id}","cancel":"POST /j/{id}/cancel","list":"GET /j","object":"job",
	  "list_objects":"items","fields":{"id":"id","status":"state"}}`)
	for _, c := range []struct {
		route, body string
		want        bool
	}{
		{RouteStatus, `{"job":{"id":"a","state":"WEIRD"}}`, true},  // a value that does not fit
		{RouteStatus, `{"fax":{"id":"a","state":"queued"}}`, true}, // nothing at object
		{RouteList, `{"items":"none"}`, true},                      // neither object nor array
		{RouteCancel, `{"ok":true}`, false},                        // a cancel answer need not carry a fax
		{RouteList, `{"page":1}`, false},                           // an empty list, its array left out
		{RouteStatus, `not json`, false},
		{RouteStatus, `{"job":{"id":"a","state":"queued"}}`, false},
	} {
		_, err := m.ExtractWithIDs(c.route, []byte(c.body))
		if got := IsMappingError(err); got != c.want {
			t.Errorf("%s %s: IsMappingError(%v) = %v, want %v", c.route, c.body, err, got, c.want)
		}
	}
}

package profile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile/fax"
)

// queuedFax is the recorded v2.1 GET /faxes/{id} data (phaxio-ruby cassette), plus an extension
// field on the recipient.
const queuedFax = `{"id":323034813,"direction":"sent","num_pages":0,"status":"queued","is_test":true,
 "created_at":"2021-11-04T16:28:30.000-05:00","caller_id":null,"from_number":null,"completed_at":null,
 "caller_name":null,"cost":0,"tags":{},"recipients":[{"phone_number":"+15558675309","status":null,
 "retry_count":0,"completed_at":null,"bitrate":null,"resolution":null,"error_type":null,"error_id":null,
 "error_message":null,"x_current_page":2}],"to_number":null,"error_id":null,"error_type":null,"error_message":null,"barcodes":[]}`

func TestPhaxioSingle(t *testing.T) {
	body := `{"success":true,"message":"Metadata for fax","data":` + queuedFax + `}`
	objs, err := Phaxio([]byte(body))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objs %d err %v", len(objs), err)
	}
	o := objs[0]
	if !o.Full || o.Fax.ID != 323034813 || o.Fax.Status != fax.StatusQueued || !o.Fax.IsTest || o.Fax.Direction != "sent" {
		t.Fatalf("object %+v", o)
	}
	if len(o.Fax.Recipients) != 1 || o.Fax.Recipients[0].PhoneNumber != "+15558675309" || o.Fax.Recipients[0].Status != nil {
		t.Fatalf("recipients %+v", o.Fax.Recipients)
	}
	if o.CurrentPage["+15558675309"] != 2 || len(o.CurrentPage) != 1 {
		t.Fatalf("CurrentPage %v", o.CurrentPage)
	}
	// Round trip: the v2.1 encoding of what we decoded equals Phaxio's (extension field dropped).
	got, err := o.Fax.JSON()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer("\n", "", ` "`, `"`, `,"x_current_page":2`, "").Replace(queuedFax)
	if string(got) != want {
		t.Fatalf("JSON\n got %s\nwant %s", got, want)
	}
}

func TestPhaxioCompleted(t *testing.T) {
	body := `{"success":true,"data":{"id":"1234","direction":"sent","num_pages":"3","status":"partialsuccess",
	"is_test":false,"cost":14,"tags":{"order":"A-1","n":5},"caller_id":"+15550001111",
	"error_id":"17","error_type":"lineError","error_message":"Busy",
	"recipients":[{"phone_number":"+15558675309","status":"success","retry_count":0,"bitrate":14400,"resolution":8040,"completed_at":"2016-01-20T11:28:52.000-06:00"},
	              {"phone_number":"+15551112222","status":"failure","retry_count":"2","error_id":17,"error_type":"lineError","x_current_page":"1"},
	              "junk", 7],
	"barcodes":[{"type":"code-128-A","page":1,"value":"barcode-value","identifier":null,"metadata":{"k":"v"}}],
	"unknown_field":{"nested":[1,2,3]}}}`
	objs, err := Phaxio([]byte(body))
	if err != nil || len(objs) != 1 {
		t.Fatalf("objs %d err %v", len(objs), err)
	}
	f := objs[0].Fax
	if f.ID != 1234 || f.NumPages != 3 || f.Cost != 14 || *f.ErrorID != 17 || *f.CallerID != "+15550001111" {
		t.Fatalf("fax %+v", f)
	}
	if f.Tags["order"] != "A-1" || f.Tags["n"] != "5" {
		t.Fatalf("tags %v", f.Tags)
	}
	if len(f.Recipients) != 2 || f.Recipients[1].RetryCount != 2 || *f.Recipients[0].Bitrate != 14400 || *f.Recipients[1].ErrorID != 17 {
		t.Fatalf("recipients %+v", f.Recipients)
	}
	if objs[0].CurrentPage["+15551112222"] != 1 || len(objs[0].CurrentPage) != 1 {
		t.Fatalf("CurrentPage %v", objs[0].CurrentPage)
	}
	if len(f.Barcodes) != 1 || string(f.Barcodes[0].Metadata) != `{"k":"v"}` || string(f.Barcodes[0].Identifier) != "null" {
		t.Fatalf("barcodes %+v", f.Barcodes)
	}
	if f.FromNumber != nil || f.CreatedAt != "" {
		t.Fatal("absent fields got values")
	}
}

func TestPhaxioArray(t *testing.T) {
	body := `{"success":true,"message":"Retrieved faxes successfully","data":[` +
		`{"id":1,"status":"success","direction":"sent"},` +
		`{"status":"success"},` + // no id: skipped
		`{"id":"abc","status":"success"},` + // non-numeric id: skipped
		`null, 5, "x",` +
		`{"id":3.0,"status":"failure"},` +
		`{"id":"4"}` +
		`],"paging":{"total":4,"per_page":25,"page":1}}`
	objs, err := Phaxio([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, o := range objs {
		ids = append(ids, o.Fax.ID)
	}
	if fmt.Sprint(ids) != "[1 3 4]" || !objs[0].Full || !objs[1].Full || objs[2].Full {
		t.Fatalf("ids %v full %v %v %v", ids, objs[0].Full, objs[1].Full, objs[2].Full)
	}
	// An empty list is not an error.
	objs, err = Phaxio([]byte(`{"success":true,"data":[],"paging":{"total":0}}`))
	if err != nil || len(objs) != 0 {
		t.Fatalf("empty list: %v %v", objs, err)
	}
}

func TestPhaxioIDOnly(t *testing.T) {
	objs, err := Phaxio([]byte(`{"success":true,"message":"Fax queued for sending","data":{"id":323034811}}`))
	if err != nil || len(objs) != 1 || objs[0].Full || objs[0].Fax.ID != 323034811 {
		t.Fatalf("objs %+v err %v", objs, err)
	}
	if objs[0].Fax.Status != "" {
		t.Fatal("an id-only object got a status")
	}
	// A status of the wrong type does not make an object full.
	objs, _ = Phaxio([]byte(`{"success":true,"data":{"id":1,"status":null}}`))
	if len(objs) != 1 || objs[0].Full {
		t.Fatalf("status null: %+v", objs)
	}
}

func TestPhaxioErrors(t *testing.T) {
	cases := map[string]string{
		"success false":     `{"success":false,"message":"Fax not found","data":{"id":1,"status":"success"}}`,
		"no data":           `{"success":true,"message":"Deleted fax successfully!"}`,
		"null data":         `{"success":true,"data":null}`,
		"scalar data":       `{"success":true,"data":42}`,
		"malformed":         `{"success":true,"data":{"id":1,`,
		"not json":          `<html>502 Bad Gateway</html>`,
		"empty":             ``,
		"array body":        `[{"id":1}]`,
		"bad success":       `{"success":"maybe","data":{"id":1}}`,
		"trailing garbage":  `{"success":true,"data":{"id":1}} x`,
		"string false":      `{"success":"false","data":{"id":1}}`,
		"null":              `null`,
		"number body":       `12`,
		"nested bad object": `{"success":true,"data":{"id":1,"tags":{"a":}}}`,
	}
	for name, body := range cases {
		objs, err := Phaxio([]byte(body))
		if err == nil || len(objs) != 0 {
			t.Errorf("%s: objs %v err %v", name, objs, err)
		}
	}
	_, err := Phaxio([]byte(`{"success":false,"message":"Fax not found"}`))
	if !errors.Is(err, ErrNoObjects) || !strings.Contains(err.Error(), "Fax not found") {
		t.Errorf("error %v", err)
	}
	// No success field at all is tolerated.
	objs, err := Phaxio([]byte(`{"data":{"id":9,"status":"queued"}}`))
	if err != nil || len(objs) != 1 {
		t.Errorf("no success: %v %v", objs, err)
	}
	// A data object that is not a fax yields nothing, without error.
	objs, err = Phaxio([]byte(`{"success":true,"data":{"phone_number":"+15558675309","city":"Birmingham"}}`))
	if err != nil || len(objs) != 0 {
		t.Errorf("phone number: %v %v", objs, err)
	}
}

func TestID(t *testing.T) {
	cases := []struct {
		body string
		id   int64
		ok   bool
	}{
		{`{"success":true,"message":"Fax queued for sending","data":{"id":323034811}}`, 323034811, true},
		{`{"success":true,"message":"Fax queued for resending","data":{"id":"42"}}`, 42, true},
		{`{"success":true,"data":{"id":9007199254740993}}`, 9007199254740993, true},
		{`{"success":false,"message":"no","data":{"id":1}}`, 0, false},
		{`{"success":true,"data":[{"id":1}]}`, 0, false},
		{`{"success":true,"data":{"id":null}}`, 0, false},
		{`{"success":true,"data":{"id":1.5}}`, 0, false},
		{`{"success":true}`, 0, false},
		{`garbage`, 0, false},
	}
	for _, c := range cases {
		id, ok := ID([]byte(c.body))
		if id != c.id || ok != c.ok {
			t.Errorf("ID(%s) = %d %v", c.body, id, ok)
		}
	}
}

func FuzzPhaxio(f *testing.F) {
	f.Add([]byte(`{"success":true,"data":` + queuedFax + `}`))
	f.Add([]byte(`{"success":true,"data":[{"id":"1","status":"success","recipients":[{"phone_number":1,"x_current_page":"2"}]},{"id":2}]}`))
	f.Add([]byte(`{"success":false,"message":"x"}`))
	f.Add([]byte(`{"success":true,"data":{"id":1e3,"tags":{"a":1},"barcodes":[{"page":"1"}],"error_id":"-5"}}`))
	f.Add([]byte(`{"data":{"id":-1,"num_pages":99999999999999999999}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		objs, err := Phaxio(body)
		if err != nil && len(objs) != 0 {
			t.Fatal("objects returned with an error")
		}
		for _, o := range objs {
			if _, err := o.Fax.JSON(); err != nil {
				t.Fatalf("JSON: %v", err)
			}
		}
		if id, ok := ID(body); ok && (len(objs) != 1 || objs[0].Fax.ID != id) {
			t.Fatalf("ID %d disagrees with Phaxio %v", id, objs)
		}
	})
}

func BenchmarkPhaxio(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"success":true,"message":"Retrieved faxes successfully","data":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":%d,"direction":"sent","num_pages":3,"status":"success","is_test":false,`+
			`"created_at":"2021-11-04T16:28:30.000-05:00","caller_id":"+15550001111","from_number":null,`+
			`"completed_at":"2021-11-04T16:31:02.000-05:00","caller_name":null,"cost":21,"tags":{"order":"A-%d"},`+
			`"recipients":[{"phone_number":"+15558675309","status":"success","retry_count":0,`+
			`"completed_at":"2021-11-04T16:31:02.000-05:00","bitrate":14400,"resolution":8040,"error_type":null,`+
			`"error_id":null,"error_message":null,"x_current_page":3}],"to_number":null,"error_id":null,`+
			`"error_type":null,"error_message":null,"barcodes":[]}`, 323034800+i, i)
	}
	sb.WriteString(`],"paging":{"total":100,"per_page":100,"page":1}}`)
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		objs, err := Phaxio(body)
		if err != nil || len(objs) != 100 {
			b.Fatal(len(objs), err)
		}
	}
}

// The x_current_page struct tag must follow the shared constant.
func TestExtCurrentPageName(t *testing.T) {
	if fax.ExtCurrentPage != "x_current_page" {
		t.Fatalf("fax.ExtCurrentPage is %q; update wireRecipient's tag", fax.ExtCurrentPage)
	}
}

package sign

import (
	"strings"
	"sync"
	"testing"
)

const token = "test-webhook-token"

const (
	f1 = `{"id":1234,"direction":"sent","status":"success","is_test":true}`
	f2 = `{"id":5678,"direction":"received","status":"success","is_test":true}`
)

// The vectors of phaxio-v2.1-webhooks.md §3.1; the first is the Ruby gem's official one.
func TestVectors(t *testing.T) {
	const u = "https://example.com/phaxio/webhook?account=42"
	cases := []struct {
		name   string
		url    string
		fields []Field
		files  []File
		want   string
	}{
		{"official", "example.com", []Field{{"test", "true"}}, nil, "64a735ef0c47a0ae671e381c046648f0966deb29"},
		{"A", u, []Field{{"fax", f1}, {"event_type", "fax_completed"}}, nil, "38b7ac8123f3ae48d7870a1ee168bec75217b028"},
		{"B", u, []Field{{"page", "2"}, {"event_type", "transmitting_page"}, {"fax", f1}, {"recipient_phone_number", "+15558675309"}}, nil, "e7d01f5d0c5abd24d7d824ecf94c021eae645835"},
		{"C", u, []Field{{"event_type", "retry_scheduled"}, {"fax", f1}, {"retry_count", "1"}, {"recipient_phone_number", "+15558675309"}}, nil, "93c8fe48bb6588473e25d0f70913ce12f9f9ca98"},
		{"D", "https://example.com/phaxio/received", []Field{{"event_type", "fax_completed"}, {"fax", f2}}, []File{FileOf("file", []byte("%PDF-1.4\n"))}, "aeb1b4b7084aaa499db0cd9fe45b87e67cf656b9"},
	}
	signer := NewSigner(token)
	for _, c := range cases {
		if got := Sign(token, c.url, c.fields, c.files); got != c.want {
			t.Errorf("%s: Sign = %s, want %s", c.name, got, c.want)
		}
		for range 2 { // the second time on a reused HMAC state
			if got := signer.Sign(c.url, c.fields, c.files); got != c.want {
				t.Errorf("%s: Signer.Sign = %s, want %s", c.name, got, c.want)
			}
		}
		if !Verify(token, c.want, c.url, c.fields, c.files) {
			t.Errorf("%s: Verify rejected the right signature", c.name)
		}
		if Verify("other-token", c.want, c.url, c.fields, c.files) {
			t.Errorf("%s: Verify accepted a signature under another token", c.name)
		}
	}
}

func TestFileHash(t *testing.T) {
	if got := FileOf("file", []byte("%PDF-1.4\n")).SHA1Hex; got != "95607b02d48a786cb786897d727114fc79814b1e" {
		t.Fatalf("sha1 = %s", got)
	}
}

func TestMessageOrderAndNoMutation(t *testing.T) {
	fields := []Field{{"fax", "F"}, {"event_type", "E"}}
	got := string(Message("u", fields, []File{{"z", "1"}, {"file", "2"}}))
	if got != "uevent_typeEfaxFfile2z1" {
		t.Fatalf("message = %q", got)
	}
	if fields[0].Name != "fax" {
		t.Fatal("Message reordered its input")
	}
}

// A Signer gives Sign's value for big fields, equal names (kept in their order) and files, also
// from many goroutines at once.
func TestSignerMatchesSign(t *testing.T) {
	big := strings.Repeat("0123456789", 3000) // more than the Signer feeds the HMAC at once
	fields := []Field{{"z", big}, {"a", "1"}, {"m", big[:100]}, {"a", "2"}, {"b", big}}
	files := []File{FileOf("file", []byte("%PDF")), FileOf("extra", []byte("x"))}
	want := Sign(token, "https://example.com/h", fields, files)
	signer := NewSigner(token)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if got := signer.Sign("https://example.com/h", fields, files); got != want {
					t.Errorf("Signer.Sign = %s, want %s", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

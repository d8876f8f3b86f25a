package profile

import "testing"

func TestPhoneNumbers(t *testing.T) {
	body := `{"success":true,"message":"Retrieved user phone numbers successfully","data":[
		{"phone_number":"+15551230001","city":"X","callback_url":"https://a.example/in"},
		{"phone_number":"+15551230002","callback_url":null},
		{"phone_number":"+15551230003"},
		{"city":"no number"}]}`
	got, err := PhoneNumbers([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Number{
		{"+15551230001", "https://a.example/in", true},
		{"+15551230002", "", true},
		{"+15551230003", "", false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("number %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	one, err := PhoneNumbers([]byte(`{"success":true,"data":{"phone_number":"+15551230009","callback_url":"https://b.example/x"}}`))
	if err != nil || len(one) != 1 || one[0].CallbackURL != "https://b.example/x" {
		t.Fatalf("single object: %+v %v", one, err)
	}
	for _, bad := range []string{`not json`, `{"success":false}`, `{"data":5}`} {
		if _, err := PhoneNumbers([]byte(bad)); err == nil {
			t.Errorf("PhoneNumbers(%s) gave no error", bad)
		}
	}
}

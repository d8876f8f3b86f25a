package sign

import (
	"fmt"
	"strings"
	"testing"
)

// The test vector of the Standard Webhooks reference libraries (libraries/go/webhook_test.go,
// TestWebhookSign; the same in the JavaScript and Python libraries).
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTime   = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestStandardSignVector(t *testing.T) {
	k, err := ParseStandardSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Sign(vectorID, vectorTime, []byte(vectorBody)); got != vectorSig {
		t.Fatalf("signature %s, want %s", got, vectorSig)
	}
}

func TestStandardRoundTripAndRotation(t *testing.T) {
	k1, err := ParseStandardSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseStandardSecret("whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24=")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("--b\r\nContent-Disposition: form-data; name=\"fax\"\r\n\r\n{}\r\n--b--\r\n")
	h := StandardSignature([]StandardKey{k1, k2}, "msg_job-1", 1700000000, body)
	if n := len(strings.Fields(h)); n != 2 {
		t.Fatalf("want 2 signatures, got %q", h)
	}
	for i, k := range []StandardKey{k1, k2} {
		if !VerifyStandard(k, h, "msg_job-1", 1700000000, body) {
			t.Errorf("key %d does not verify %q", i, h)
		}
	}
	for name, ok := range map[string]bool{
		"other id":        VerifyStandard(k1, h, "msg_job-2", 1700000000, body),
		"other timestamp": VerifyStandard(k1, h, "msg_job-1", 1700000001, body),
		"other body":      VerifyStandard(k1, h, "msg_job-1", 1700000000, append([]byte{}, body[1:]...)),
	} {
		if ok {
			t.Errorf("%s verified", name)
		}
	}
}

func TestParseStandardSecretErrors(t *testing.T) {
	for _, s := range []string{"", "   ", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_not base64!", "whsec_%%%%"} {
		_, err := ParseStandardSecret(s)
		if err == nil {
			t.Errorf("%q: no error", s)
			continue
		}
		if len(s) > 6 && strings.Contains(err.Error(), strings.TrimPrefix(s, "whsec_")) {
			t.Errorf("%q: error shows the secret: %v", s, err)
		}
	}
	// Unpadded base64 is accepted, as some tools print it.
	if _, err := ParseStandardSecret("whsec_c2Vjb25kLWtleS1mb3Itcm90YXRpb24"); err != nil {
		t.Errorf("unpadded: %v", err)
	}
}

func TestStandardKeyHidesKey(t *testing.T) {
	k, _ := ParseStandardSecret(vectorSecret)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v", k, k, k)} {
		if strings.Contains(s, "MfKQ") || !strings.Contains(s, "REDACTED") {
			t.Errorf("formatted key: %s", s)
		}
	}
}

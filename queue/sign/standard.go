package sign

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Standard Webhooks (https://www.standardwebhooks.com) header names. A webhook signed the
// Standard Webhooks way carries all three, besides X-Phaxio-Signature.
const (
	// StandardHeaderID carries the message id, the same on every attempt of one message.
	StandardHeaderID = "webhook-id"
	// StandardHeaderTimestamp carries the attempt's time as decimal Unix seconds.
	StandardHeaderTimestamp = "webhook-timestamp"
	// StandardHeaderSignature carries one or more space-separated signatures, "v1,<base64>".
	StandardHeaderSignature = "webhook-signature"
)

// StandardSecretPrefix starts every Standard Webhooks secret; the rest is the key in base64.
const StandardSecretPrefix = "whsec_"

// StandardKey is a parsed Standard Webhooks secret: the HMAC-SHA256 key. Its String and
// GoString methods never show the key.
type StandardKey struct {
	key []byte
}

// ParseStandardSecret parses a secret written as "whsec_" followed by the key in standard
// base64 (with or without padding). Its errors never contain the secret.
func ParseStandardSecret(secret string) (StandardKey, error) {
	secret = strings.TrimSpace(secret)
	if secret == "" {
		return StandardKey{}, errors.New("parsing Standard Webhooks secret: it is empty")
	}
	b64, ok := strings.CutPrefix(secret, StandardSecretPrefix)
	if !ok {
		return StandardKey{}, fmt.Errorf("parsing Standard Webhooks secret: it does not start with %q", StandardSecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil {
		return StandardKey{}, fmt.Errorf("parsing Standard Webhooks secret: the part after %q is not valid base64", StandardSecretPrefix)
	}
	if len(key) == 0 {
		return StandardKey{}, fmt.Errorf("parsing Standard Webhooks secret: no key after %q", StandardSecretPrefix)
	}
	return StandardKey{key: key}, nil
}

// String hides the key.
func (StandardKey) String() string { return "StandardKey(REDACTED)" }

// GoString hides the key.
func (k StandardKey) GoString() string { return k.String() }

// Valid reports whether k holds a key (the zero StandardKey does not).
func (k StandardKey) Valid() bool { return len(k.key) > 0 }

// Sign returns one versioned signature, "v1," + base64(HMAC-SHA256(key, id + "." +
// timestamp + "." + body)), timestamp in decimal Unix seconds.
func (k StandardKey) Sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(nil, timestamp, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// StandardSignature returns the webhook-signature header value for the message under every key:
// their signatures in order, separated by spaces, as the spec allows during a key rotation.
func StandardSignature(keys []StandardKey, id string, timestamp int64, body []byte) string {
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		sigs = append(sigs, k.Sign(id, timestamp, body))
	}
	return strings.Join(sigs, " ")
}

// VerifyStandard reports whether signatureHeader (a webhook-signature value) holds a v1
// signature of the message under key. It compares in constant time and checks no timestamp
// tolerance: that is the receiver's policy.
func VerifyStandard(key StandardKey, signatureHeader, id string, timestamp int64, body []byte) bool {
	want := []byte(key.Sign(id, timestamp, body))
	ok := false
	for _, s := range strings.Fields(signatureHeader) {
		if hmac.Equal([]byte(s), want) {
			ok = true
		}
	}
	return ok
}

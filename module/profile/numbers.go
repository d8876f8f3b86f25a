package profile

import (
	"encoding/json"
	"fmt"
)

// Number is a v2.1 phone number object as far as faxhook cares: the number and its webhook URL.
type Number struct {
	// PhoneNumber is the number in E.164 form.
	PhoneNumber string
	// CallbackURL is the number's webhook URL; empty when it has none (null).
	CallbackURL string
	// HasCallback reports whether the object carried the callback_url field at all (a null
	// counts): only then does it say anything about the number's URL.
	HasCallback bool
}

// PhoneNumbers extracts phone number objects from a Phaxio-shaped envelope whose data is one
// phone number object or a list of them. Objects without a phone_number string are skipped.
func PhoneNumbers(body []byte) ([]Number, error) {
	var env struct {
		Success *bool           `json:"success"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("extract: phone numbers: body is not a JSON object: %w", err)
	}
	if env.Success != nil && !*env.Success {
		return nil, fmt.Errorf("extract: phone numbers: %w: success is false", ErrNoObjects)
	}
	type wireNumber struct {
		PhoneNumber any             `json:"phone_number"`
		CallbackURL json.RawMessage `json:"callback_url"`
	}
	var list []wireNumber
	switch firstByte(env.Data) {
	case '{':
		var one wireNumber
		if err := json.Unmarshal(env.Data, &one); err != nil {
			return nil, fmt.Errorf("extract: phone numbers: %w", err)
		}
		list = []wireNumber{one}
	case '[':
		if err := json.Unmarshal(env.Data, &list); err != nil {
			return nil, fmt.Errorf("extract: phone numbers: %w", err)
		}
	default:
		return nil, fmt.Errorf("extract: phone numbers: %w: data is neither object nor array", ErrNoObjects)
	}
	var out []Number
	for _, w := range list {
		pn, ok := w.PhoneNumber.(string)
		if !ok || pn == "" {
			continue
		}
		n := Number{PhoneNumber: pn, HasCallback: len(w.CallbackURL) > 0}
		var s string
		if json.Unmarshal(w.CallbackURL, &s) == nil {
			n.CallbackURL = s
		}
		out = append(out, n)
	}
	return out, nil
}

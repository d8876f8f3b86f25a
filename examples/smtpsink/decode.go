package smtpsink

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"
)

// decodeCTE undoes a Content-Transfer-Encoding.
func decodeCTE(cte string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

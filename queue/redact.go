package queue

import "strings"

// RedactURL returns rawURL with any user:password@ part replaced by REDACTED@, for logs and the
// admin API. mailto: URLs and URLs without credentials come back unchanged.
func RedactURL(rawURL string) string {
	i := strings.Index(rawURL, "://")
	if i < 0 {
		return rawURL
	}
	rest := rawURL[i+3:]
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		return rawURL[:i+3] + "REDACTED@" + rest[at+1:]
	}
	return rawURL
}

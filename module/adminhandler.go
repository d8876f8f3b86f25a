package module

import (
	"cmp"
	"errors"
	"net/http"

	"github.com/caddyserver/caddy/v2"
)

// AdminHandler returns faxhook's admin API (the endpoints under /faxhook/ of Caddy's admin
// endpoint, see adminAPI) as a plain http.Handler, for in-process clients such as the console:
// it answers what the admin endpoint would, errors as `{"error": "…"}` with their status.
func AdminHandler() http.Handler {
	a := &adminAPI{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := a.serve(w, r)
		if err == nil {
			return
		}
		var apiErr caddy.APIError
		if !errors.As(err, &apiErr) {
			apiErr = caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err, Message: err.Error()}
		}
		msg := apiErr.Message
		if msg == "" && apiErr.Err != nil {
			msg = apiErr.Err.Error()
		}
		writeJSON(w, cmp.Or(apiErr.HTTPStatus, http.StatusInternalServerError), map[string]string{"error": msg})
	})
}

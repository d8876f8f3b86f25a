package module

import (
	"strconv"
	"testing"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// The poller paces a fax by whether its status answers change: an answer that differs only
// in what faxhook does not read (a message, a request id, the time of the answer) is no
// change, while a new status or a new page on the wire is.
func TestAnswerSumIgnoresWhatIsNotRead(t *testing.T) {
	answer := func(message, status string, page int) []byte {
		return []byte(`{"success":true,"message":"` + message + `","data":{"id":7,"direction":"sent","status":"` + status +
			`","num_pages":3,"is_test":false,"created_at":"2026-12-05T10:00:00.000000Z","recipients":[{"phone_number":"+15550100000","status":"` +
			status + `","retry_count":0,"x_current_page":` + strconv.Itoa(page) + `}]}}`)
	}
	sum := func(body []byte) uint64 {
		t.Helper()
		objs, err := profile.PhaxioV21.Faxes(profile.RouteStatus, body)
		if err != nil || len(objs) != 1 {
			t.Fatalf("reading %s: %v %v", body, objs, err)
		}
		return answerSum(objs, body)
	}
	base := sum(answer("Retrieved fax at 10:00:01 (request 1)", "inprogress", 1))
	if s := sum(answer("Retrieved fax at 10:00:02 (request 2)", "inprogress", 1)); s != base {
		t.Error("an answer that differs only in its message counts as a change")
	}
	if s := sum(answer("Retrieved fax at 10:00:03 (request 3)", "inprogress", 2)); s == base {
		t.Error("the next page on the wire does not count as a change")
	}
	if s := sum(answer("Retrieved fax at 10:00:04 (request 4)", "success", 1)); s == base {
		t.Error("a new status does not count as a change")
	}
	// Nothing readable: the bytes decide.
	if answerSum(nil, []byte("a")) == answerSum(nil, []byte("b")) {
		t.Error("two unreadable answers that differ have the same sum")
	}
}

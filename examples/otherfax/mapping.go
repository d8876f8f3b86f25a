package otherfax

import "github.com/faxhook/caddy-faxhook/module/profile"

// ExampleMappingJSON is ExampleMapping as JSON: the value of the faxhook app's "mapping" option
// in Caddy's JSON config (apps.faxhook.mapping), or the file named by the global Caddyfile option
// `faxhook { mapping FILE }`, for a Caddy in front of this service.
const ExampleMappingJSON = `{
  "send": "POST /api/fax/jobs",
  "resend": "POST /api/fax/jobs/{id}/retry",
  "cancel": "POST /api/fax/jobs/{id}/cancel",
  "status": "GET /api/fax/jobs/{id}",
  "list": "GET /api/fax/jobs",
  "file": "GET /api/fax/jobs/{id}/document",
  "object": "job",
  "list_objects": "items",
  "send_id": "job_id",
  "list_received": "kind=inbound&limit=100",
  "fields": {
    "id": "job_id",
    "direction": "kind",
    "status": "state",
    "is_test": "sandbox",
    "num_pages": "page_count",
    "created_at": "submitted",
    "completed_at": "finished",
    "caller_id": "caller_id",
    "from_number": "remote.number",
    "to_number": "line_number",
    "caller_name": "remote.name",
    "cost": "price_cents",
    "tags": "labels",
    "error_type": "failure.category",
    "error_id": "failure.code",
    "error_message": "failure.text",
    "recipients": "destinations"
  },
  "recipient": {
    "phone_number": "number",
    "status": "state",
    "retry_count": "retries",
    "completed_at": "finished",
    "current_page": "page",
    "bitrate": "line.bps",
    "resolution": "line.ppm",
    "error_type": "failure.category",
    "error_id": "failure.code",
    "error_message": "failure.text"
  },
  "status_map": {
    "PENDING": "queued",
    "BATCHED": "pendingbatch",
    "ACTIVE": "inprogress",
    "DELIVERED": "success",
    "PARTIAL": "partialsuccess",
    "FAILED": "failure"
  },
  "recipient_status_map": {
    "WAITING": "",
    "DIALING": "ringing",
    "BUSY_RETRY": "willretry",
    "TRANSMITTING": "callactive",
    "DONE": "success",
    "ERROR": "failure"
  },
  "direction_map": {
    "outbound": "sent",
    "inbound": "received"
  },
  "error_type_map": {
    "line": "lineError",
    "document": "documentConversionError",
    "protocol": "faxError",
    "fatal": "fatalError",
    "general": "generalError"
  },
  "time_format": "unix",
  "callback_field": "notify_url"
}`

// ExampleMapping returns the mapping with which faxhook sees this service's jobs as the v2.1 fax
// objects faxapp returns for the same faxes (times in UTC), and so sends the same webhooks.
func ExampleMapping() profile.Mapping {
	return profile.Mapping{
		Send:         "POST /api/fax/jobs",
		Resend:       "POST /api/fax/jobs/{id}/retry",
		Cancel:       "POST /api/fax/jobs/{id}/cancel",
		Status:       "GET /api/fax/jobs/{id}",
		List:         "GET /api/fax/jobs",
		File:         "GET /api/fax/jobs/{id}/document",
		Object:       "job",
		ListObjects:  "items",
		SendID:       "job_id",
		ListReceived: "kind=inbound&limit=100",
		Fields: profile.FieldMap{
			ID:           "job_id",
			Direction:    "kind",
			Status:       "state",
			IsTest:       "sandbox",
			NumPages:     "page_count",
			CreatedAt:    "submitted",
			CompletedAt:  "finished",
			CallerID:     "caller_id",
			FromNumber:   "remote.number",
			ToNumber:     "line_number",
			CallerName:   "remote.name",
			Cost:         "price_cents",
			Tags:         "labels",
			ErrorType:    "failure.category",
			ErrorID:      "failure.code",
			ErrorMessage: "failure.text",
			Recipients:   "destinations",
		},
		Recipient: profile.RecipientFieldMap{
			PhoneNumber:  "number",
			Status:       "state",
			RetryCount:   "retries",
			CompletedAt:  "finished",
			CurrentPage:  "page",
			Bitrate:      "line.bps",
			Resolution:   "line.ppm",
			ErrorType:    "failure.category",
			ErrorID:      "failure.code",
			ErrorMessage: "failure.text",
		},
		StatusMap: map[string]string{
			"PENDING": "queued", "BATCHED": "pendingbatch", "ACTIVE": "inprogress",
			"DELIVERED": "success", "PARTIAL": "partialsuccess", "FAILED": "failure",
		},
		RecipientStatusMap: map[string]string{
			"WAITING": "", "DIALING": "ringing", "BUSY_RETRY": "willretry",
			"TRANSMITTING": "callactive", "DONE": "success", "ERROR": "failure",
		},
		DirectionMap: map[string]string{"outbound": "sent", "inbound": "received"},
		ErrorTypeMap: map[string]string{
			"line": "lineError", "document": "documentConversionError", "protocol": "faxError",
			"fatal": "fatalError", "general": "generalError",
		},
		TimeFormat:    profile.TimeUnix,
		CallbackField: "notify_url",
	}
}

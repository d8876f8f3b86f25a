package module

import (
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/faxhook/caddy-faxhook/module/profile"
)

// Bounds of the mapping error log: each distinct error is logged once, up to
// maxDistinctMappingErrors of them; past that, at most one error per mappingErrorEvery.
const (
	maxDistinctMappingErrors = 256
	mappingErrorEvery        = time.Minute
	reasonMappingError       = "mapping_error"
)

// mappingErrors remembers which mapping errors were logged already. A wrong mapping fails the
// same way on every response, so logging each distinct error once makes it visible at the
// default log level without flooding the log.
var mappingErrors = struct {
	mu   sync.Mutex
	seen map[string]struct{}
	last time.Time // when the last error past the distinct bound was logged
	now  func() time.Time
}{seen: map[string]struct{}{}, now: time.Now}

// reportMappingError reports an error of profile.Profile.Faxes for a successful answer: one that
// says the mapping does not fit the service's JSON (profile.IsMappingError: faxes skipped because
// a value did not fit its field, or no fax object at the mapping's path) is counted in
// faxhook_capture_skipped_total{reason="mapping_error"} and logged at Warn, once per distinct
// error text (see maxDistinctMappingErrors); other errors (a Phaxio body without fax data, a
// cancel answer without a fax) are logged at Debug.
func reportMappingError(log *zap.Logger, msg string, err error, fields ...zap.Field) {
	fields = append(fields, zap.Error(err))
	if !profile.IsMappingError(err) {
		log.Debug(msg, fields...)
		return
	}
	metricCaptureSkipped.WithLabelValues(reasonMappingError).Inc()
	key := err.Error()
	me := &mappingErrors
	me.mu.Lock()
	_, seen := me.seen[key]
	logIt := !seen
	switch {
	case seen:
	case len(me.seen) < maxDistinctMappingErrors:
		me.seen[key] = struct{}{}
	case me.now().Sub(me.last) >= mappingErrorEvery:
		me.last = me.now()
	default:
		logIt = false
	}
	me.mu.Unlock()
	if logIt {
		log.Warn(msg+" (the mapping does not fit the fax service's JSON; each distinct error is logged once)", fields...)
	} else {
		log.Debug(msg, fields...)
	}
}

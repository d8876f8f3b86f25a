package module

import "fmt"

// Bounds of the app's count and size options. A value of 0 (or an absent option) takes the
// default; anything outside 1..max fails validation.
const (
	// MaxWorkers bounds Workers.
	MaxWorkers = 1024
	// MaxPerHost bounds PerHost.
	MaxPerHost = 1024
	// MaxPollConcurrency bounds PollConfig.Concurrency.
	MaxPollConcurrency = 256
	// MaxPollRate bounds PollConfig.MaxRate.
	MaxPollRate = 10000
	// MaxRetries bounds the number of entries of RetrySchedule.
	MaxRetries = 100
	// MaxRecipientsLimit bounds MaxRecipients.
	MaxRecipientsLimit = 100000
	// MaxEventsLimit bounds MaxEvents.
	MaxEventsLimit = 100000
	// MaxFileSizeLimit bounds MaxFileSize (256 MiB).
	MaxFileSizeLimit = 256 << 20
)

// CheckCount checks a count or size option whose 0 means its default (def, shown in the error):
// it must lie within 0..hi. The error names the option, the value and the allowed range.
func CheckCount(name string, v, hi int64, def string) error {
	switch {
	case v < 0:
		return fmt.Errorf("%s: %d is negative; allowed: 1 to %d, or 0 for the default (%s)", name, v, hi, def)
	case v > hi:
		return fmt.Errorf("%s: %d is too large; allowed: 1 to %d, or 0 for the default (%s)", name, v, hi, def)
	}
	return nil
}

package breakerbox_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	breakerbox "breakerbox/bindings/go"
)

// A breaker that trips on the failure rate of its last 10 calls, on a clock
// moved by hand, and what its rejections say.
func Example_rateWindow() {
	var nowMs atomic.Int64
	b, err := breakerbox.New(
		breakerbox.WithName("orders-db"),
		breakerbox.WithCountWindow(10),
		breakerbox.WithFailureRateThreshold(50), // percent
		breakerbox.WithMinimumCalls(4),
		breakerbox.WithResetTimeout(10*time.Second), // the first open period
		breakerbox.WithExponentialBackoff(2, 5*time.Minute, breakerbox.JitterNone),
		breakerbox.WithClock(func() time.Duration { return time.Duration(nowMs.Load()) * time.Millisecond }),
	)
	if err != nil {
		panic(err)
	}
	defer b.Close()
	for i := 0; i < 4; i++ { // every other call fails: 50% once 4 calls are in
		_ = b.Do(func() error {
			if i%2 == 1 {
				return errors.New("down")
			}
			return nil
		})
	}
	fmt.Println("breaker is", b.State())

	err = b.Do(func() error { return nil })
	var rejected *breakerbox.RejectedError
	if errors.As(err, &rejected) {
		d, _ := rejected.RetryAfter()
		fmt.Println("rejected; retry in", d)
	}
	nowMs.Add(10000)
	_ = b.Do(func() error { return errors.New("still down") }) // the probe fails: open for twice as long
	open, _ := b.OpenFor()
	fmt.Println("open for", open)
	// Output:
	// breaker is open
	// rejected; retry in 10s
	// open for 20s
}

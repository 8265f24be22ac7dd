package breakerbox

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newBreaker(t *testing.T, opts ...Option) *Breaker {
	t.Helper()
	b, err := New(opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func config(failMax, successThreshold, halfOpenMaxCalls uint32, more ...Option) []Option {
	return append([]Option{
		WithFailMax(failMax), WithSuccessThreshold(successThreshold), WithHalfOpenMaxCalls(halfOpenMaxCalls),
	}, more...)
}

var errDown = errors.New("dependency down")

func TestDefaultsAndVersion(t *testing.T) {
	failMax, resetTimeout, successThreshold, halfOpenMaxCalls := Defaults()
	if failMax != 5 || resetTimeout != time.Minute || successThreshold != 1 || halfOpenMaxCalls != 1 {
		t.Fatalf("defaults: %d %v %d %d", failMax, resetTimeout, successThreshold, halfOpenMaxCalls)
	}
	if Version() == "" {
		t.Fatal("empty version")
	}
	b := newBreaker(t, WithName("inventory"))
	if b.Name() != "inventory" || b.State() != Closed {
		t.Fatalf("name %q state %v", b.Name(), b.State())
	}
}

func TestDoTripsRejectsAndReturnsTheCallsError(t *testing.T) {
	b := newBreaker(t, config(3, 1, 1)...)
	for i := 0; i < 3; i++ {
		if err := b.Do(func() error { return errDown }); !errors.Is(err, errDown) {
			t.Fatalf("call %d: got %v, want the call's own error", i, err)
		}
	}
	if b.State() != Open {
		t.Fatalf("state %v after 3 failures, want open", b.State())
	}
	ran := false
	if err := b.Do(func() error { ran = true; return nil }); !errors.Is(err, ErrRejected) {
		t.Fatalf("got %v, want ErrRejected", err)
	}
	if ran {
		t.Fatal("a rejected call ran")
	}
}

func TestSuccessResetsFailures(t *testing.T) {
	b := newBreaker(t, config(3, 1, 1)...)
	_ = b.Do(func() error { return errDown })
	_ = b.Do(func() error { return errDown })
	if b.FailCounter() != 2 {
		t.Fatalf("fail counter %d", b.FailCounter())
	}
	if err := b.Do(func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if b.FailCounter() != 0 {
		t.Fatalf("fail counter %d after a success", b.FailCounter())
	}
}

func TestPanicCountsAsFailure(t *testing.T) {
	b := newBreaker(t, config(2, 1, 1)...)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not continue")
			}
		}()
		_ = b.Do(func() error { panic("boom") })
	}()
	if b.FailCounter() != 1 {
		t.Fatalf("fail counter %d after a panic, want 1", b.FailCounter())
	}
}

func TestResetTimeoutThenProbe(t *testing.T) {
	b := newBreaker(t, config(1, 1, 1, WithResetTimeout(50*time.Millisecond))...)
	start := time.Now()
	_ = b.Do(func() error { return errDown })
	if err := b.Do(func() error { return nil }); !errors.Is(err, ErrRejected) {
		t.Fatalf("got %v right after tripping, want ErrRejected", err)
	}
	var probe Permit
	var err error
	for i := 0; i < 400; i++ {
		if probe, err = b.TryAcquire(); err == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no probe admitted: %v", err)
	}
	if elapsed := time.Since(start); elapsed < 49*time.Millisecond {
		t.Fatalf("probe admitted after %v, before the 50 ms timeout", elapsed)
	}
	if b.State() != HalfOpen {
		t.Fatalf("state %v, want half-open", b.State())
	}
	if _, err := b.TryAcquire(); !errors.Is(err, ErrRejected) {
		t.Fatalf("second probe: got %v, want ErrRejected", err)
	}
	if err := probe.Record(Success); err != nil {
		t.Fatal(err)
	}
	if b.State() != Closed {
		t.Fatalf("state %v, want closed", b.State())
	}
	if err := probe.Record(Success); !errors.Is(err, ErrStalePermit) {
		t.Fatalf("second record: got %v, want ErrStalePermit", err)
	}
}

func TestBadInput(t *testing.T) {
	for name, opts := range map[string][]Option{
		"fail_max 0":            config(0, 1, 1),
		"success_threshold 0":   config(1, 0, 1),
		"half_open_max_calls 0": config(1, 1, 0),
		"too many probes":       config(1, 1, 70000),
		"negative timeout":      {WithResetTimeout(-time.Second)},
		"probe lease 0":         {WithProbeLease(0)},
	} {
		if _, err := New(opts...); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", name, err)
		}
	}
	for _, name := range []string{"\xff\xfe", "a\x00b"} {
		if _, err := New(WithName(name)); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("name %q: got %v, want ErrInvalidArgument", name, err)
		}
	}
	b, err := New(config(1, 1, 1)...)
	if err != nil {
		t.Fatal(err)
	}
	p, err := b.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Record(Outcome(7)); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("outcome 7: got %v", err)
	}
	if err := b.PermitFromBits(0xdeadbeefdeadbeef).Record(Failure); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("forged permit: got %v", err)
	}
	if b.State() != Closed {
		t.Fatalf("bad input changed the state to %v", b.State())
	}
	if err := b.SetFailMax(0); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("SetFailMax(0): got %v", err)
	}
	if err := p.Record(Failure); err != nil {
		t.Fatalf("the permit was spoiled by bad input: %v", err)
	}
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: got %v", err)
	}
}

func TestCallbackSeesEveryTransitionOnce(t *testing.T) {
	type change struct{ from, to, inside State }
	var mu sync.Mutex
	var changes []change
	var b *Breaker
	b = newBreaker(t, config(1, 1, 1, WithResetTimeout(20*time.Millisecond), WithOnStateChange(func(from, to State) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, change{from, to, b.State()})
	}))...)
	_ = b.Do(func() error { return errDown })
	// Ask until the timeout has passed on the library's clock.
	err := ErrRejected
	for deadline := time.Now().Add(2 * time.Second); errors.Is(err, ErrRejected) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		err = b.Do(func() error { return nil })
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = b.ForceClose() // already closed: no callback
	want := []change{{Closed, Open, Open}, {Open, HalfOpen, HalfOpen}, {HalfOpen, Closed, Closed}}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != fmt.Sprint(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
}

func TestConcurrentGoroutinesTripOnce(t *testing.T) {
	var trips int64
	b := newBreaker(t, config(100, 1, 1, WithOnStateChange(func(from, to State) {
		if from == Closed && to == Open {
			atomic.AddInt64(&trips, 1)
		}
	}))...)
	var wg sync.WaitGroup
	var failures, rejected int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				switch err := b.Do(func() error { return errDown }); {
				case errors.Is(err, ErrRejected):
					atomic.AddInt64(&rejected, 1)
				case errors.Is(err, errDown):
					atomic.AddInt64(&failures, 1)
				default:
					t.Errorf("unexpected result %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if b.State() != Open || atomic.LoadInt64(&trips) != 1 {
		t.Fatalf("state %v, %d trips reported; want open, exactly 1", b.State(), trips)
	}
	if failures < 100 || failures+rejected != 16*200 {
		t.Fatalf("%d failures, %d rejected", failures, rejected)
	}
}

func TestConcurrentGoroutinesHalfOpenLimit(t *testing.T) {
	const limit = 3
	b := newBreaker(t, config(5, 65535, limit, WithProbeLease(10*time.Minute))...)
	if err := b.ForceHalfOpen(); err != nil {
		t.Fatal(err)
	}
	var inFlight, maxInFlight, admitted int64
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300; i++ {
				err := b.Do(func() error {
					now := atomic.AddInt64(&inFlight, 1)
					for {
						seen := atomic.LoadInt64(&maxInFlight)
						if now <= seen || atomic.CompareAndSwapInt64(&maxInFlight, seen, now) {
							break
						}
					}
					atomic.AddInt64(&admitted, 1)
					time.Sleep(20 * time.Microsecond) // hold the probe so that others race
					atomic.AddInt64(&inFlight, -1)
					return nil
				})
				if err != nil && !errors.Is(err, ErrRejected) {
					t.Errorf("unexpected result %v", err)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d probes admitted, at most %d at once (limit %d)", admitted, maxInFlight, limit)
	if maxInFlight > limit || maxInFlight < 2 {
		t.Fatalf("%d probes at once, limit %d", maxInFlight, limit)
	}
	if b.State() != HalfOpen || int64(b.SuccessCounter()) != admitted || b.ProbesInFlight() != 0 {
		t.Fatalf("state %v, %d successes counted for %d admitted, %d in flight",
			b.State(), b.SuccessCounter(), admitted, b.ProbesInFlight())
	}
}

func TestDoContext(t *testing.T) {
	b := newBreaker(t, config(2, 1, 1)...)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := b.DoContext(done, func(context.Context) error { ran = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("done context: got %v, want context.Canceled", err)
	}
	if ran {
		t.Fatal("ran with a done context")
	}

	// Cancelled by the caller while running: ignored, not a failure.
	ctx, cancel := context.WithCancel(context.Background())
	err := b.DoContext(ctx, func(ctx context.Context) error {
		cancel()
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) || b.FailCounter() != 0 {
		t.Fatalf("cancelled call: err %v, fail counter %d; want Canceled and 0", err, b.FailCounter())
	}

	// A deadline that expires is the dependency being slow: a failure.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelTimeout()
	err = b.DoContext(ctx, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) || b.FailCounter() != 1 {
		t.Fatalf("expired call: err %v, fail counter %d; want DeadlineExceeded and 1", err, b.FailCounter())
	}
	if err := b.DoContext(context.Background(), func(context.Context) error { return errDown }); !errors.Is(err, errDown) {
		t.Fatalf("got %v, want the call's error", err)
	}
	if b.State() != Open {
		t.Fatalf("state %v after two failures, want open", b.State())
	}
	if err := b.DoContext(context.Background(), func(context.Context) error { return nil }); !errors.Is(err, ErrRejected) {
		t.Fatalf("got %v, want ErrRejected", err)
	}
}

func TestCallbackForcingTheOppositeStateDoesNotNest(t *testing.T) {
	var b *Breaker
	calls, depth, maxDepth := 0, 0, 0
	b = newBreaker(t, config(1, 1, 1, WithOnStateChange(func(from, to State) {
		depth++
		if depth > maxDepth {
			maxDepth = depth
		}
		calls++
		if calls < 1000 {
			if to == Open {
				_ = b.ForceClose()
			} else {
				_ = b.ForceOpen()
			}
		}
		depth--
	}))...)
	_ = b.Do(func() error { return errDown })
	if calls != 1000 || maxDepth != 1 || b.State() != Closed {
		t.Fatalf("%d calls, depth %d, state %v; want 1000, 1, closed", calls, maxDepth, b.State())
	}
}

// testClock is a clock that moves only when a test advances it, for
// WithClock; it counts how often it is read.
type testClock struct {
	ms    atomic.Int64
	reads atomic.Int64
}

func newTestClock() *testClock {
	c := &testClock{}
	c.ms.Store(1000000) // an arbitrary origin
	return c
}

func (c *testClock) now() time.Duration {
	c.reads.Add(1)
	return time.Duration(c.ms.Load()) * time.Millisecond
}

func (c *testClock) advance(d time.Duration) { c.ms.Add(int64(d / time.Millisecond)) }

// retryAfter is how long the rejection err says to wait; it fails the test
// if err is not a rejection that knows.
func retryAfter(t *testing.T, err error) time.Duration {
	t.Helper()
	var rejected *RejectedError
	if !errors.Is(err, ErrRejected) || !errors.As(err, &rejected) {
		t.Fatalf("got %v, want a *RejectedError", err)
	}
	d, ok := rejected.RetryAfter()
	if !ok {
		t.Fatalf("%v: retry-after not known", err)
	}
	return d
}

func outcomeOf(failed bool) error {
	if failed {
		return errDown
	}
	return nil
}

func TestCountWindowTripsOnTheFailureRate(t *testing.T) {
	// 3 failures in 10 calls, never two in a row, the third the 10th call.
	calls := []bool{false, false, true, false, false, true, false, false, false, true}
	windowed := newBreaker(t, WithCountWindow(10), WithMinimumCalls(10), WithFailureRateThreshold(30))
	consecutive := newBreaker(t)
	for i, failed := range calls {
		_ = windowed.Do(func() error { return outcomeOf(failed) })
		_ = consecutive.Do(func() error { return outcomeOf(failed) })
		if i == 8 {
			if rate, ok := windowed.FailureRate(); ok {
				t.Fatalf("failure rate %v with 9 calls, below the minimum of 10", rate)
			}
			if n, _ := windowed.WindowCalls(); n != 9 || windowed.State() != Closed {
				t.Fatalf("%d calls in the window, state %v; want 9, closed", n, windowed.State())
			}
		}
	}
	if windowed.State() != Open {
		t.Fatalf("windowed: state %v after 3 failures of 10 at a 30%% threshold, want open", windowed.State())
	}
	if consecutive.State() != Closed {
		t.Fatalf("consecutive: state %v, want closed", consecutive.State())
	}
	if _, ok := consecutive.FailureRate(); ok {
		t.Fatal("a breaker without a window reports a failure rate")
	}
	if _, ok := consecutive.WindowCalls(); ok {
		t.Fatal("a breaker without a window reports window calls")
	}

	// Below the threshold it stays closed and reports the rate.
	below := newBreaker(t, WithCountWindow(10), WithMinimumCalls(10), WithFailureRateThreshold(40))
	for _, failed := range calls {
		_ = below.Do(func() error { return outcomeOf(failed) })
	}
	if rate, ok := below.FailureRate(); below.State() != Closed || !ok || rate != 30 {
		t.Fatalf("state %v, failure rate %v (%v); want closed, 30", below.State(), rate, ok)
	}
}

func TestTimeWindowForgetsOldFailures(t *testing.T) {
	clock := newTestClock()
	b := newBreaker(t, WithClock(clock.now), WithTimeWindow(time.Second), WithWindowBuckets(10),
		WithMinimumCalls(4), WithFailureRateThreshold(50))
	for i := 0; i < 3; i++ {
		_ = b.Do(func() error { return errDown })
	}
	if n, _ := b.WindowCalls(); n != 3 {
		t.Fatalf("%d calls in the window, want 3", n)
	}
	clock.advance(time.Second) // ten buckets of 100 ms later: out of the window
	if n, _ := b.WindowCalls(); n != 0 {
		t.Fatalf("%d calls in the window a window's span later, want 0", n)
	}
	// Had the 3 old failures stayed, this 4th would trip it (4 of 4).
	_ = b.Do(func() error { return errDown })
	for i := 0; i < 3; i++ {
		_ = b.Do(func() error { return nil })
	}
	if rate, ok := b.FailureRate(); b.State() != Closed || !ok || rate != 25 {
		t.Fatalf("state %v, failure rate %v (%v); want closed, 25", b.State(), rate, ok)
	}
	_ = b.Do(func() error { return errDown }) // 2 of 5
	_ = b.Do(func() error { return errDown }) // 3 of 6: 50%
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
}

func TestSlowCallsTripOnTheSlowCallRate(t *testing.T) {
	clock := newTestClock()
	b := newBreaker(t, WithClock(clock.now), WithCountWindow(10), WithMinimumCalls(4),
		WithSlowCallDuration(100*time.Millisecond), WithSlowCallRateThreshold(50))
	takes := func(d time.Duration) func() error {
		return func() error { clock.advance(d); return nil }
	}
	// Successes all: only their durations can trip it. 100 ms is not longer
	// than the limit; 150 ms is.
	_ = b.Do(takes(0))
	_ = b.Do(takes(100 * time.Millisecond))
	_ = b.DoContext(context.Background(), func(context.Context) error { clock.advance(150 * time.Millisecond); return nil })
	if rate, ok := b.SlowCallRate(); ok || b.State() != Closed {
		t.Fatalf("slow-call rate %v with 3 calls, state %v; want none, closed", rate, b.State())
	}
	_ = b.Do(takes(150 * time.Millisecond)) // 2 slow of 4
	if b.State() != Open {
		t.Fatalf("state %v after 2 slow calls of 4 at a 50%% threshold, want open", b.State())
	}

	// Below the threshold: the rate, and no failure among them.
	b = newBreaker(t, WithClock(clock.now), WithCountWindow(10), WithMinimumCalls(4),
		WithSlowCallDuration(100*time.Millisecond))
	for _, d := range []time.Duration{0, 0, 0, 101 * time.Millisecond} {
		_ = b.Do(takes(d))
	}
	slow, okSlow := b.SlowCallRate()
	failed, okFailed := b.FailureRate()
	if b.State() != Closed || !okSlow || slow != 25 || !okFailed || failed != 0 {
		t.Fatalf("state %v, slow-call rate %v (%v), failure rate %v (%v); want closed, 25, 0",
			b.State(), slow, okSlow, failed, okFailed)
	}
}

func TestTheClockIsReadToTimeCallsOnlyWithSlowCalls(t *testing.T) {
	clock := newTestClock()
	untimed := newBreaker(t, WithClock(clock.now), WithCountWindow(10))
	before := clock.reads.Load()
	for i := 0; i < 10; i++ {
		_ = untimed.Do(func() error { return nil })
	}
	if reads := clock.reads.Load() - before; reads != 0 {
		t.Fatalf("%d clock reads for 10 calls without slow calls, want 0", reads)
	}
	timed := newBreaker(t, WithClock(clock.now), WithCountWindow(10), WithSlowCallDuration(time.Second))
	before = clock.reads.Load()
	_ = timed.Do(func() error { return nil })
	if clock.reads.Load() == before {
		t.Fatal("a call with slow calls configured was not timed")
	}
}

func TestMetricsOnlyReportsButNeverRejects(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	b := newBreaker(t, WithFailMax(1), WithMode(ModeMetricsOnly), WithOnStateChange(func(from, to State) {
		mu.Lock()
		defer mu.Unlock()
		changes = append(changes, fmt.Sprintf("%v->%v", from, to))
	}))
	if b.Mode() != ModeMetricsOnly {
		t.Fatalf("mode %v", b.Mode())
	}
	_ = b.Do(func() error { return errDown })
	if b.State() != Open {
		t.Fatalf("state %v, want the would-be trip to open it", b.State())
	}
	ran := 0
	for i := 0; i < 100; i++ {
		if err := b.Do(func() error { ran++; return errDown }); !errors.Is(err, errDown) {
			t.Fatalf("call %d: got %v, want the call's own error", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 100 || b.State() != Open || fmt.Sprint(changes) != "[closed->open]" {
		t.Fatalf("%d calls ran, state %v, changes %v; want 100, open, [closed->open]", ran, b.State(), changes)
	}
}

func TestDisabledAdmitsAndCountsNothing(t *testing.T) {
	var changes atomic.Int64
	b := newBreaker(t, WithFailMax(1), WithCountWindow(10), WithMinimumCalls(1), WithMode(ModeDisabled),
		WithOnStateChange(func(from, to State) { changes.Add(1) }))
	for i := 0; i < 20; i++ {
		if err := b.Do(func() error { return errDown }); !errors.Is(err, errDown) {
			t.Fatalf("call %d: got %v", i, err)
		}
	}
	n, _ := b.WindowCalls()
	_, hasRate := b.FailureRate()
	if b.State() != Closed || n != 0 || hasRate || changes.Load() != 0 || b.Mode() != ModeDisabled {
		t.Fatalf("state %v, %d window calls, rate %v, %d changes, mode %v; want closed, 0, none, 0, disabled",
			b.State(), n, hasRate, changes.Load(), b.Mode())
	}
	// A forced open still changes the state, and rejects nothing.
	if err := b.ForceOpen(); err != nil {
		t.Fatal(err)
	}
	if err := b.Do(func() error { return nil }); err != nil || b.State() != Open {
		t.Fatalf("got %v, state %v; want nil, open", err, b.State())
	}
}

func TestRetryAfterIsTheTimeLeftOnTheClock(t *testing.T) {
	clock := newTestClock()
	b := newBreaker(t, WithClock(clock.now), WithFailMax(1), WithResetTimeout(time.Second),
		WithProbeLease(5*time.Second))
	_ = b.Do(func() error { return errDown })
	err := b.Do(func() error { return nil })
	if d := retryAfter(t, err); d != time.Second {
		t.Fatalf("retry after %v right after tripping, want 1s", d)
	}
	if err.Error() != ErrRejected.Error()+" (retry after 1s)" {
		t.Fatalf("message %q", err.Error())
	}
	clock.advance(300 * time.Millisecond)
	_, err = b.TryAcquire()
	if d := retryAfter(t, err); d != 700*time.Millisecond {
		t.Fatalf("retry after %v 300 ms in, want 700ms", d)
	}
	clock.advance(700 * time.Millisecond)
	probe, err := b.TryAcquire()
	if err != nil {
		t.Fatalf("no probe at the end of the open period: %v", err)
	}
	// Half-open with its slot taken: the time left on the probe's lease.
	clock.advance(2 * time.Second)
	_, err = b.TryAcquire()
	if d := retryAfter(t, err); d != 3*time.Second {
		t.Fatalf("retry after %v half-open, want the lease's 3s left", d)
	}
	if err := probe.Record(Success); err != nil || b.State() != Closed {
		t.Fatalf("got %v, state %v", err, b.State())
	}
}

func TestBackoffLengthensTheNextOpenPeriod(t *testing.T) {
	clock := newTestClock()
	b := newBreaker(t, WithClock(clock.now), WithFailMax(1), WithResetTimeout(100*time.Millisecond),
		WithExponentialBackoff(2, 350*time.Millisecond, JitterNone))
	_ = b.Do(func() error { return errDown })
	for _, period := range []time.Duration{100, 200, 350, 350} {
		period *= time.Millisecond
		if d, ok := b.OpenFor(); !ok || d != period {
			t.Fatalf("open for %v (%v), want %v", d, ok, period)
		}
		if d := retryAfter(t, b.Do(func() error { return nil })); d != period {
			t.Fatalf("retry after %v, want %v", d, period)
		}
		clock.advance(period - time.Millisecond)
		if d := retryAfter(t, b.Do(func() error { return nil })); d != time.Millisecond {
			t.Fatalf("retry after %v a millisecond before the end of %v, want 1ms", d, period)
		}
		clock.advance(time.Millisecond)
		if err := b.Do(func() error { return errDown }); !errors.Is(err, errDown) {
			t.Fatalf("the probe: got %v", err) // a failed probe re-opens for the next period
		}
	}
	if _, ok := b.OpenFor(); !ok {
		t.Fatal("not open after a failed probe")
	}
	if err := b.ForceClose(); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.OpenFor(); ok {
		t.Fatal("open-for known while closed")
	}
}

func TestCustomBackoffChoosesEachOpenPeriod(t *testing.T) {
	clock := newTestClock()
	type call struct {
		attempt uint32
		rate    float64
		hasRate bool
	}
	var mu sync.Mutex
	var calls []call
	b := newBreaker(t, WithClock(clock.now), WithResetTimeout(100*time.Millisecond), WithCountWindow(4),
		WithMinimumCalls(4), WithBackoff(func(attempt uint32, rate float64, hasRate bool) time.Duration {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, call{attempt, rate, hasRate})
			return time.Duration(attempt) * time.Second
		}))
	_ = b.Do(func() error { return nil })
	for i := 0; i < 3; i++ { // 3 failures of 4: 75%
		_ = b.Do(func() error { return errDown })
	}
	if d, _ := b.OpenFor(); d != time.Second {
		t.Fatalf("first open period %v, want 1s", d)
	}
	clock.advance(time.Second)
	_ = b.Do(func() error { return errDown }) // the probe fails: attempt 2, no rate
	if d := retryAfter(t, b.Do(func() error { return nil })); d != 2*time.Second {
		t.Fatalf("retry after %v, want 2s", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(calls) != fmt.Sprint([]call{{1, 75, true}, {2, 0, false}}) {
		t.Fatalf("backoff calls %v", calls)
	}
}

func TestHalfOpenFailureRateRuleWaitsForEveryProbe(t *testing.T) {
	b := newBreaker(t, WithHalfOpenRule(HalfOpenRuleFailureRate), WithHalfOpenMaxCalls(4),
		WithFailureRateThreshold(50), WithProbeLease(time.Hour))
	if err := b.ForceHalfOpen(); err != nil {
		t.Fatal(err)
	}
	var probes []Permit
	for i := 0; i < 4; i++ {
		p, err := b.TryAcquire()
		if err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		probes = append(probes, p)
	}
	// A failure does not re-open at once, as the successes rule would.
	for i, o := range []Outcome{Failure, Success, Success} {
		if err := probes[i].Record(o); err != nil {
			t.Fatal(err)
		}
	}
	if b.State() != HalfOpen {
		t.Fatalf("state %v with a probe still out, want half-open", b.State())
	}
	if err := probes[3].Record(Failure); err != nil { // 2 of 4 failed: 50%
		t.Fatal(err)
	}
	if b.State() != Open {
		t.Fatalf("state %v, want open", b.State())
	}
}

func TestWindowOptionsRefuseBadInput(t *testing.T) {
	clock := newTestClock()
	noop := func(from, to State) {}
	backoff := func(uint32, float64, bool) time.Duration { return time.Second }
	for name, opts := range map[string][]Option{
		"count window 0":                    {WithCountWindow(0)},
		"time window 0":                     {WithTimeWindow(0)},
		"time window below 1 ms":            {WithTimeWindow(500 * time.Microsecond)},
		"negative time window":              {WithTimeWindow(-time.Second)},
		"buckets 0":                         {WithCountWindow(10), WithWindowBuckets(0)},
		"buckets 17":                        {WithCountWindow(10), WithWindowBuckets(17)},
		"failure rate 0":                    {WithCountWindow(10), WithFailureRateThreshold(0)},
		"failure rate -1":                   {WithCountWindow(10), WithFailureRateThreshold(-1)},
		"failure rate 100.5":                {WithCountWindow(10), WithFailureRateThreshold(100.5)},
		"failure rate just above 100":       {WithCountWindow(10), WithFailureRateThreshold(100.000001)},
		"failure rate NaN":                  {WithCountWindow(10), WithFailureRateThreshold(math.NaN())},
		"failure rate +Inf":                 {WithCountWindow(10), WithFailureRateThreshold(math.Inf(1))},
		"minimum calls 0":                   {WithCountWindow(10), WithMinimumCalls(0)},
		"slow call duration 0":              {WithCountWindow(10), WithSlowCallDuration(0)},
		"negative slow call duration":       {WithCountWindow(10), WithSlowCallDuration(-time.Second)},
		"slow call rate 0":                  {WithCountWindow(10), WithSlowCallRateThreshold(0)},
		"slow call rate 101":                {WithCountWindow(10), WithSlowCallRateThreshold(101)},
		"slow calls without a window":       {WithSlowCallDuration(time.Second)},
		"mode 3":                            {WithMode(Mode(3))},
		"multiplier below 1":                {WithExponentialBackoff(0.5, time.Second, JitterNone)},
		"multiplier NaN":                    {WithExponentialBackoff(math.NaN(), time.Second, JitterNone)},
		"multiplier +Inf":                   {WithExponentialBackoff(math.Inf(1), time.Second, JitterNone)},
		"negative backoff cap":              {WithExponentialBackoff(2, -time.Second, JitterNone)},
		"jitter 3":                          {WithExponentialBackoff(2, time.Second, Jitter(3))},
		"half-open rule 2":                  {WithHalfOpenRule(HalfOpenRule(2))},
		"rate rule with success threshold":  {WithHalfOpenRule(HalfOpenRuleFailureRate), WithSuccessThreshold(2)},
		"rate rule with 32 probes":          {WithHalfOpenRule(HalfOpenRuleFailureRate), WithHalfOpenMaxCalls(32)},
		"negative probe lease":              {WithProbeLease(-time.Second)},
		"callbacks, then a bad window":      {WithOnStateChange(noop), WithClock(clock.now), WithBackoff(backoff), WithCountWindow(0)},
		"callbacks, then a bad combination": {WithClock(clock.now), WithBackoff(backoff), WithSlowCallDuration(time.Second)},
	} {
		before := atomic.LoadInt64(&liveCallbacks)
		if b, err := New(opts...); !errors.Is(err, ErrInvalidArgument) || b != nil {
			t.Errorf("%s: got %v, %v; want nil, ErrInvalidArgument", name, b, err)
		}
		if live := atomic.LoadInt64(&liveCallbacks); live != before {
			t.Errorf("%s: %d callback sets left allocated", name, live-before)
		}
	}
	// The edges are accepted, and a valid breaker frees its callbacks on Close.
	before := atomic.LoadInt64(&liveCallbacks)
	b, err := New(WithClock(clock.now), WithBackoff(backoff), WithOnStateChange(noop), WithCountWindow(1),
		WithFailureRateThreshold(100), WithSlowCallRateThreshold(100), WithWindowBuckets(16), WithMinimumCalls(1),
		WithSlowCallDuration(time.Millisecond), WithExponentialBackoff(1, 0, JitterEqual))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil || atomic.LoadInt64(&liveCallbacks) != before {
		t.Fatalf("Close: %v, %d callback sets left", err, atomic.LoadInt64(&liveCallbacks)-before)
	}
	// RecordTimed refuses a negative duration and records nothing.
	b = newBreaker(t, WithFailMax(1))
	p, err := b.TryAcquire()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RecordTimed(Failure, -time.Millisecond); !errors.Is(err, ErrInvalidArgument) || b.State() != Closed {
		t.Fatalf("got %v, state %v; want ErrInvalidArgument, closed", err, b.State())
	}
	if err := p.RecordTimed(Failure, time.Millisecond); err != nil || b.State() != Open {
		t.Fatalf("got %v, state %v; want nil, open", err, b.State())
	}
}

// A Go function the library calls ends the process if it panics, with its
// message: unwinding would skip the library's frames mid-decision. Each
// case runs in a child process.
func TestACallbackPanicEndsTheProcess(t *testing.T) {
	const env = "BREAKERBOX_TEST_PANIC"
	if which := os.Getenv(env); which != "" {
		panicky := map[string]Option{
			"clock":         WithClock(func() time.Duration { panic("clock broke") }),
			"backoff":       WithBackoff(func(uint32, float64, bool) time.Duration { panic("backoff broke") }),
			"OnStateChange": WithOnStateChange(func(from, to State) { panic("callback broke") }),
		}
		b, err := New(WithFailMax(1), panicky[which])
		if err != nil {
			os.Exit(3)
		}
		_ = b.Do(func() error { return errDown }) // the trip reads the clock, asks the backoff, reports
		os.Exit(0)
	}
	for which, want := range map[string]string{
		"clock":         "breakerbox: the clock panicked inside a call into the C library, which a panic cannot unwind through: clock broke",
		"backoff":       "breakerbox: the backoff function panicked inside a call into the C library, which a panic cannot unwind through: backoff broke",
		"OnStateChange": "breakerbox: the OnStateChange function panicked inside a call into the C library, which a panic cannot unwind through: callback broke",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestACallbackPanicEndsTheProcess$")
		cmd.Env = append(os.Environ(), env+"="+which)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(string(out), want) {
			t.Errorf("%s: %v, output:\n%s\nwant exit status 2 and %q", which, err, out, want)
		}
	}
}

func TestConcurrentFailuresCrossTheRateOnce(t *testing.T) {
	clock := newTestClock()
	var trips, backoffs atomic.Int64
	b := newBreaker(t, WithClock(clock.now), WithTimeWindow(time.Minute), WithMinimumCalls(50),
		WithSlowCallDuration(time.Second),
		WithBackoff(func(uint32, float64, bool) time.Duration { backoffs.Add(1); return time.Hour }),
		WithOnStateChange(func(from, to State) {
			if from == Closed && to == Open {
				trips.Add(1)
			}
		}))
	var wg sync.WaitGroup
	var failures, rejected, unknown atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				switch err := b.Do(func() error { return errDown }); {
				case errors.Is(err, ErrRejected):
					var r *RejectedError
					if !errors.As(err, &r) {
						t.Errorf("got %v, want a *RejectedError", err)
					} else if d, ok := r.RetryAfter(); !ok {
						// Between the trip and the publication of its
						// period (the README's retry-after table): unknown.
						unknown.Add(1)
					} else if d <= 0 || d > time.Hour {
						t.Errorf("retry after %v, want within the hour's open period", d)
					}
					rejected.Add(1)
				case errors.Is(err, errDown):
					failures.Add(1)
				default:
					t.Errorf("unexpected result %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if b.State() != Open || trips.Load() != 1 || backoffs.Load() != 1 {
		t.Fatalf("state %v, %d trips, %d backoff calls; want open, 1, 1", b.State(), trips.Load(), backoffs.Load())
	}
	if failures.Load() < 50 || failures.Load()+rejected.Load() != 16*100 {
		t.Fatalf("%d failures, %d rejected", failures.Load(), rejected.Load())
	}
	if unknown.Load() == rejected.Load() {
		t.Fatalf("no rejection of %d knew its retry-after", rejected.Load())
	}
	// Once published, every rejection knows the period's time left.
	var r *RejectedError
	if err := b.Do(func() error { return nil }); !errors.As(err, &r) {
		t.Fatalf("got %v, want a rejection", err)
	} else if d, ok := r.RetryAfter(); !ok || d <= 0 || d > time.Hour {
		t.Fatalf("retry after %v (%v), want within the hour's open period", d, ok)
	}
}

package breakerbox

import (
	"context"
	"errors"
	"fmt"
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

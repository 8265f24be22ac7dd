// Package breakerbox is a lock-free circuit breaker (closed -> open ->
// half-open) for Go, over the breakerbox C library.
//
//	b, err := breakerbox.New(breakerbox.WithName("db"), breakerbox.WithFailMax(3))
//	if err != nil { ... }
//	defer b.Close()
//	err = b.Do(func() error { return callDependency() })
//	if errors.Is(err, breakerbox.ErrRejected) { /* serve a fallback */ }
//
// By default it trips on consecutive failures. WithCountWindow or
// WithTimeWindow make it trip on the failure rate (and, with
// WithSlowCallDuration, the slow-call rate) of a window of recent calls;
// WithExponentialBackoff or WithBackoff lengthen each consecutive open
// period; WithMode runs it in shadow mode or disables it; a rejection's
// *RejectedError says how long until a probe may be admitted. The rules are
// the Rust crate's (see the README's rate-window table).
//
// The package links the installed C library through pkg-config
// (`make install PREFIX=...` in the repository installs it with its
// breakerbox.pc; point PKG_CONFIG_PATH at PREFIX/lib/pkgconfig).
//
// Every method but Close is safe for concurrent use by any number of
// goroutines; no lock is taken around the protected call.
package breakerbox

/*
#cgo pkg-config: breakerbox
#include <stdint.h>
#include <stdlib.h>
#include "breakerbox.h"
#include "trampoline.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/cgo"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

// State is one of the breaker's three states.
type State uint32

// The states.
const (
	Closed   State = C.CB_STATE_CLOSED
	Open     State = C.CB_STATE_OPEN
	HalfOpen State = C.CB_STATE_HALF_OPEN
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("State(%d)", uint32(s))
}

// Outcome is how a call ended, as far as the breaker is concerned.
type Outcome uint32

// The outcomes.
const (
	Success Outcome = C.CB_OUTCOME_SUCCESS
	Failure Outcome = C.CB_OUTCOME_FAILURE
	Ignored Outcome = C.CB_OUTCOME_IGNORED
)

// Mode is whether a breaker acts on its decisions.
type Mode uint32

// The modes.
const (
	// ModeEnforcing rejects calls while open. The default.
	ModeEnforcing Mode = C.CB_MODE_ENFORCING
	// ModeMetricsOnly is shadow mode, to tune thresholds on live traffic:
	// every decision is made, counted and reported to OnStateChange
	// (transitions included), but no call is rejected. A call admitted
	// where it would have been rejected counts for nothing.
	ModeMetricsOnly Mode = C.CB_MODE_METRICS_ONLY
	// ModeDisabled admits every call and counts or reports nothing. Forced
	// states still change, but reject nothing.
	ModeDisabled Mode = C.CB_MODE_DISABLED
)

// String is the mode's name.
func (m Mode) String() string {
	switch m {
	case ModeEnforcing:
		return "enforcing"
	case ModeMetricsOnly:
		return "metrics-only"
	case ModeDisabled:
		return "disabled"
	}
	return fmt.Sprintf("Mode(%d)", uint32(m))
}

// Jitter is the randomness added to an exponential backoff, so that
// breakers opened together do not probe together.
type Jitter uint32

// The jitters.
const (
	// JitterNone waits exactly the computed duration d.
	JitterNone Jitter = C.CB_JITTER_NONE
	// JitterFull waits a duration drawn uniformly in [0, d].
	JitterFull Jitter = C.CB_JITTER_FULL
	// JitterEqual waits a duration drawn uniformly in [d/2, d].
	JitterEqual Jitter = C.CB_JITTER_EQUAL
)

// HalfOpenRule is how a half-open breaker decides whether to close.
type HalfOpenRule uint32

// The half-open rules.
const (
	// HalfOpenRuleSuccesses closes after SuccessThreshold probe successes;
	// a probe failure re-opens at once. The default.
	HalfOpenRuleSuccesses HalfOpenRule = C.CB_HALF_OPEN_RULE_SUCCESSES
	// HalfOpenRuleFailureRate admits HalfOpenMaxCalls probes in all (at
	// most 31); once every one is recorded, it re-opens if the share that
	// failed is at or above the failure-rate threshold, else closes. An
	// ignored probe gives its permit back. SuccessThreshold must stay 1.
	HalfOpenRuleFailureRate HalfOpenRule = C.CB_HALF_OPEN_RULE_FAILURE_RATE
)

// Errors returned for the library's status codes.
var (
	ErrRejected        = errors.New("breakerbox: circuit breaker is open: call rejected")
	ErrStalePermit     = errors.New("breakerbox: stale permit: already recorded or from an ended episode")
	ErrInvalidArgument = errors.New("breakerbox: invalid argument")
	ErrPanic           = errors.New("breakerbox: internal panic")
	ErrClosed          = errors.New("breakerbox: breaker already closed")
)

// RejectedError is the error of a call the breaker refused:
// errors.Is(err, ErrRejected) holds for it, and errors.As finds it to ask
// RetryAfter.
type RejectedError struct {
	retryAfter time.Duration
	known      bool
}

// Error says the call was rejected and, when known, when to retry.
func (e *RejectedError) Error() string {
	if e.known {
		return fmt.Sprintf("%s (retry after %v)", ErrRejected.Error(), e.retryAfter)
	}
	return ErrRejected.Error()
}

// Unwrap returns ErrRejected.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// RetryAfter is how long until the breaker may admit a probe, from the
// rejection: open, the time left of the open period (read from a coarse
// clock, so it may exceed the truth by a few milliseconds, never fall short
// of it); half-open with every probe slot taken, the time left on the
// latest probe's lease, an upper bound. ok is false when it is not known
// (while a backoff is still choosing the open period's length, or a wait
// beyond what the library keeps, about 49.7 days).
func (e *RejectedError) RetryAfter() (d time.Duration, ok bool) { return e.retryAfter, e.known }

// noValue is CB_NO_VALUE, what a u64 getter returns when it has no value.
const noValue = C.uint64_t(math.MaxUint64)

// fromMillis is a duration the library gave in milliseconds; false for
// CB_NO_VALUE. A duration beyond time.Duration's range is its largest.
func fromMillis(ms C.uint64_t) (time.Duration, bool) {
	switch {
	case ms == noValue:
		return 0, false
	case uint64(ms) > uint64(math.MaxInt64/int64(time.Millisecond)):
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// toMillis is d in whole milliseconds (truncated); false for a negative d.
func toMillis(d time.Duration) (C.uint64_t, bool) {
	if d < 0 {
		return 0, false
	}
	return C.uint64_t(d / time.Millisecond), true
}

// toPercent is p as the library's float; false above 100, which float32
// could round down to 100 (the library checks the rest: NaN, 0 and below).
func toPercent(p float64) (C.float, bool) {
	if p > 100 {
		return 0, false
	}
	return C.float(p), true
}

// fromRate is a rate the library gave in percent; false for CB_RATE_NONE.
func fromRate(r C.float) (float64, bool) {
	if r < 0 {
		return 0, false
	}
	return float64(r), true
}

func statusError(s C.cb_status) error {
	switch s {
	case C.CB_STATUS_OK:
		return nil
	case C.CB_STATUS_REJECTED:
		return ErrRejected
	case C.CB_STATUS_STALE_PERMIT:
		return ErrStalePermit
	case C.CB_STATUS_INVALID_ARGUMENT:
		return ErrInvalidArgument
	case C.CB_STATUS_PANIC:
		return ErrPanic
	}
	return fmt.Errorf("breakerbox: %s (status %d)", C.GoString(C.cb_status_str(s)), uint32(s))
}

// settings are what the options set; the zero of each field means the
// library's default.
type settings struct {
	name             string
	failMax          *uint32
	resetTimeout     *time.Duration
	successThreshold *uint32
	halfOpenMaxCalls *uint32
	probeLease       *time.Duration
	onStateChange    func(from, to State)
	// The cb_builder_set_* calls of the other options, in the order given
	// (a later window or backoff replaces an earlier one, as in C). Each
	// gets the breaker's callbacks, C's user_data for them.
	steps   []func(*C.cb_builder, *C.breakerbox_go_callbacks) C.cb_status
	clock   func() time.Duration
	backoff BackoffFunc
	timed   bool // a slow-call duration is set: Do times its calls
}

// An Option configures New.
type Option func(*settings)

// step adds a cb_builder_set_* call to make.
func step(set func(*C.cb_builder, *C.breakerbox_go_callbacks) C.cb_status) Option {
	return func(s *settings) { s.steps = append(s.steps, set) }
}

// invalid is a step for a value refused before it reaches C.
func invalid(*C.cb_builder, *C.breakerbox_go_callbacks) C.cb_status {
	return C.CB_STATUS_INVALID_ARGUMENT
}

// WithName names the breaker (valid UTF-8 without NUL).
func WithName(name string) Option { return func(s *settings) { s.name = name } }

// WithFailMax sets the consecutive failures that trip the breaker (at least
// 1; default 5). Unused while closed with a window.
func WithFailMax(n uint32) Option { return func(s *settings) { s.failMax = &n } }

// WithResetTimeout sets how long the breaker stays open before it admits a
// probe (whole milliseconds; default 60 s): the first open period, with a
// backoff.
func WithResetTimeout(d time.Duration) Option { return func(s *settings) { s.resetTimeout = &d } }

// WithSuccessThreshold sets the probe successes that close the breaker (1
// to 65535; default 1).
func WithSuccessThreshold(n uint32) Option { return func(s *settings) { s.successThreshold = &n } }

// WithHalfOpenMaxCalls sets how many probes half-open admits at once (1 to
// 65535; default 1).
func WithHalfOpenMaxCalls(n uint32) Option { return func(s *settings) { s.halfOpenMaxCalls = &n } }

// WithProbeLease sets how long a probe may stay unrecorded before its slot
// is given to another (at least 1 ms; default the reset timeout, at least
// one second).
func WithProbeLease(d time.Duration) Option { return func(s *settings) { s.probeLease = &d } }

// WithOnStateChange sets a function called once per transition, on the
// goroutine whose call made it, after the new state is visible. It must not
// call Close. A change it causes itself is reported after it returns. It
// must not panic: a panic cannot unwind through the C library, so it ends
// the process with the panic's message and stack.
func WithOnStateChange(fn func(from, to State)) Option {
	return func(s *settings) { s.onStateChange = fn }
}

// WithCountWindow makes the closed state trip on the failure rate of the
// last size calls (at least 1) instead of FailMax consecutive failures.
// Replaces a time window given before. The defaults are a 50% threshold and
// 100 minimum calls (at most size), in 10 buckets.
func WithCountWindow(size uint32) Option {
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_count_window(b, C.uint32_t(size))
	})
}

// WithTimeWindow makes the closed state trip on the failure rate of the
// calls of the last d (at least 1 ms, whole milliseconds), kept in buckets
// of d / buckets each: a call counts for between d minus one bucket and d.
// Replaces a count window given before.
func WithTimeWindow(d time.Duration) Option {
	ms, ok := toMillis(d)
	if !ok {
		return step(invalid)
	}
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_time_window_ms(b, ms)
	})
}

// WithWindowBuckets sets the buckets a window is kept in (1 to 16; default
// 10): the window advances one bucket at a time.
func WithWindowBuckets(n uint32) Option {
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_window_buckets(b, C.uint32_t(n))
	})
}

// WithFailureRateThreshold sets the failure rate, in percent, at or above
// which a window trips (above 0 and at most 100; default 50); the
// HalfOpenRuleFailureRate rule judges its probes by it too.
func WithFailureRateThreshold(percent float64) Option {
	p, ok := toPercent(percent)
	if !ok {
		return step(invalid)
	}
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_failure_rate_threshold(b, p)
	})
}

// WithMinimumCalls sets how many calls a window must hold before it may
// trip (at least 1; default 100, at most a count window's size). Below it
// the rates are not known and the window never trips.
func WithMinimumCalls(n uint32) Option {
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_minimum_calls(b, C.uint32_t(n))
	})
}

// WithSlowCallDuration makes a call that takes longer than d (at least
// 1 ms, whole milliseconds) slow, whatever its outcome; a window then also
// trips when its slow-call rate reaches WithSlowCallRateThreshold. Needs a
// window. Do and DoContext time their calls only when it is set.
func WithSlowCallDuration(d time.Duration) Option {
	ms, ok := toMillis(d)
	if !ok {
		return step(invalid)
	}
	return func(s *settings) {
		s.timed = true
		step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
			return C.cb_builder_set_slow_call_duration_ms(b, ms)
		})(s)
	}
}

// WithSlowCallRateThreshold sets the slow-call rate, in percent, at or
// above which a window trips (above 0 and at most 100; default 100).
func WithSlowCallRateThreshold(percent float64) Option {
	p, ok := toPercent(percent)
	if !ok {
		return step(invalid)
	}
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_slow_call_rate_threshold(b, p)
	})
}

// WithMode sets whether the breaker rejects, only reports, or does nothing
// (default ModeEnforcing).
func WithMode(m Mode) Option {
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_mode(b, C.cb_mode(m))
	})
}

// WithHalfOpenRule sets how half-open decides (default
// HalfOpenRuleSuccesses). HalfOpenRuleFailureRate refuses a
// HalfOpenMaxCalls above 31 and a SuccessThreshold other than 1.
func WithHalfOpenRule(r HalfOpenRule) Option {
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_half_open_rule(b, C.cb_half_open_rule(r))
	})
}

// WithExponentialBackoff lengthens each consecutive open period: period n
// (1 for the first since the breaker last closed) lasts min(maxPeriod,
// ResetTimeout × multiplier^(n−1)) (a maxPeriod below the reset timeout is
// the reset timeout; whole milliseconds), then jitter is applied. A close
// starts over at the reset timeout. The multiplier is at least 1 and
// finite. Replaces a backoff given before.
func WithExponentialBackoff(multiplier float64, maxPeriod time.Duration, jitter Jitter) Option {
	ms, ok := toMillis(maxPeriod)
	if !ok {
		return step(invalid)
	}
	return step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
		return C.cb_builder_set_open_backoff_exponential(b, C.double(multiplier), ms, C.cb_jitter(jitter))
	})
}

// BackoffFunc chooses how long an open period lasts (whole milliseconds; a
// negative duration is zero). attempt counts the open periods since the
// breaker last closed, from 1. failureRate is the window's failure rate in
// percent when the breaker opened; hasRate is false when there is none (no
// window, fewer calls in it than the minimum, so always after a failed
// probe, as every transition empties the window).
//
// It is called once per open period, on the goroutine whose call opened
// the breaker, before OnStateChange hears of it; until it returns the
// breaker rejects every call. It must be quick and must not call the
// breaker being opened. It must not panic: a panic cannot unwind through
// the C library, so it ends the process with the panic's message and stack.
type BackoffFunc func(attempt uint32, failureRate float64, hasRate bool) time.Duration

// WithBackoff lets fn choose each open period's length; nil removes any
// backoff given before (every open period lasts the reset timeout).
// Replaces a backoff given before.
func WithBackoff(fn BackoffFunc) Option {
	return func(s *settings) {
		if fn == nil {
			step(func(b *C.cb_builder, _ *C.breakerbox_go_callbacks) C.cb_status {
				return C.cb_builder_set_open_backoff_custom(b, nil, nil)
			})(s)
			return
		}
		s.backoff = fn
		step(func(b *C.cb_builder, cbs *C.breakerbox_go_callbacks) C.cb_status {
			return C.cb_builder_set_open_backoff_custom(b, C.breakerbox_go_backoff_trampoline(), unsafe.Pointer(cbs))
		})(s)
	}
}

// WithClock makes the breaker read the time from now instead of the
// system's monotonic clock, so that tests move time by hand instead of
// sleeping. now returns the time since an arbitrary origin (whole
// milliseconds; a negative time is zero); a reading below an earlier one is
// taken as the earlier one. nil is the system's clock.
//
// now is called from any goroutine whose call needs the time, possibly
// from several at once: it must be safe for concurrent use, quick, and
// must not call the breaker. It must not panic: a panic cannot unwind
// through the C library, so it ends the process with the panic's message
// and stack.
func WithClock(now func() time.Duration) Option { return func(s *settings) { s.clock = now } }

// Defaults are the library's defaults: FailMax 5, ResetTimeout 60 s,
// SuccessThreshold 1, HalfOpenMaxCalls 1.
func Defaults() (failMax uint32, resetTimeout time.Duration, successThreshold, halfOpenMaxCalls uint32) {
	c := C.cb_config_default()
	return uint32(c.fail_max), time.Duration(c.reset_timeout_ms) * time.Millisecond,
		uint32(c.success_threshold), uint32(c.half_open_max_calls)
}

// Breaker is a circuit breaker. Release it with Close.
type Breaker struct {
	ptr       *C.cb_breaker
	callbacks *C.breakerbox_go_callbacks // C memory holding the cgo.Handles, when a Go function is set
	// now times calls for the slow-call rate; nil when no slow-call
	// duration is set, so the clock is read only then.
	now func() time.Duration
}

// liveCallbacks counts the callback sets allocated and not yet freed, so
// that tests see that a failed New frees its own.
var liveCallbacks int64

//export breakerboxGoStateChange
func breakerboxGoStateChange(h C.uintptr_t, from, to C.cb_state) {
	defer mustNotPanic("the OnStateChange function")
	cgo.Handle(h).Value().(func(from, to State))(State(from), State(to))
}

//export breakerboxGoClock
func breakerboxGoClock(h C.uintptr_t) C.uint64_t {
	defer mustNotPanic("the clock")
	ms, _ := toMillis(cgo.Handle(h).Value().(func() time.Duration)())
	return ms
}

//export breakerboxGoBackoff
func breakerboxGoBackoff(h C.uintptr_t, attempt C.uint32_t, failureRate C.float) C.uint64_t {
	defer mustNotPanic("the backoff function")
	rate, hasRate := fromRate(failureRate)
	ms, _ := toMillis(cgo.Handle(h).Value().(BackoffFunc)(uint32(attempt), rate, hasRate))
	return ms
}

// mustNotPanic, deferred by each function C calls, ends the process on a
// panic: unwinding would skip the library's frames mid-decision.
func mustNotPanic(what string) {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "breakerbox: %s panicked inside a call into the C library, "+
			"which a panic cannot unwind through: %v\n\n%s", what, r, debug.Stack())
		os.Exit(2)
	}
}

// New makes a breaker. A zero threshold or size, a negative duration, a
// percentage out of range, a name that is not valid UTF-8 or contains NUL,
// or options that do not combine (a slow-call duration without a window;
// see WithHalfOpenRule) give ErrInvalidArgument, and nothing is built.
func New(opts ...Option) (*Breaker, error) {
	var s settings
	for _, opt := range opts {
		opt(&s)
	}
	if !utf8.ValidString(s.name) || strings.IndexByte(s.name, 0) >= 0 {
		return nil, ErrInvalidArgument
	}
	c := C.cb_config_default()
	if s.failMax != nil {
		c.fail_max = C.uint32_t(*s.failMax)
	}
	if s.resetTimeout != nil {
		if *s.resetTimeout < 0 {
			return nil, ErrInvalidArgument
		}
		c.reset_timeout_ms = C.uint64_t(*s.resetTimeout / time.Millisecond)
	}
	if s.successThreshold != nil {
		c.success_threshold = C.uint32_t(*s.successThreshold)
	}
	if s.halfOpenMaxCalls != nil {
		c.half_open_max_calls = C.uint32_t(*s.halfOpenMaxCalls)
	}
	if s.name != "" {
		name := C.CString(s.name)
		defer C.free(unsafe.Pointer(name)) // copied by cb_builder_new
		c.name = name
	}
	b := &Breaker{}
	if s.onStateChange != nil || s.clock != nil || s.backoff != nil {
		b.callbacks = (*C.breakerbox_go_callbacks)(C.calloc(1, C.size_t(unsafe.Sizeof(C.breakerbox_go_callbacks{}))))
		atomic.AddInt64(&liveCallbacks, 1)
	}
	if s.onStateChange != nil {
		b.callbacks.state_change = C.uintptr_t(cgo.NewHandle(s.onStateChange))
		c.on_state_change = C.breakerbox_go_state_change_trampoline()
		c.user_data = unsafe.Pointer(b.callbacks)
	}
	var builder *C.cb_builder
	if err := statusError(C.cb_builder_new(&c, &builder)); err != nil {
		b.freeCallbacks()
		return nil, err
	}
	defer C.cb_builder_free(builder)
	if err := b.configure(builder, &s); err != nil {
		b.freeCallbacks()
		return nil, err
	}
	if err := statusError(C.cb_builder_build(builder, &b.ptr)); err != nil {
		b.freeCallbacks()
		return nil, err
	}
	if s.timed {
		b.now = s.clock
		if b.now == nil {
			start := time.Now()
			b.now = func() time.Duration { return time.Since(start) }
		}
	}
	return b, nil
}

// configure makes the builder calls of the options beyond cb_config.
func (b *Breaker) configure(builder *C.cb_builder, s *settings) error {
	if s.probeLease != nil {
		ms, ok := toMillis(*s.probeLease)
		if !ok {
			return ErrInvalidArgument
		}
		if err := statusError(C.cb_builder_set_probe_lease_ms(builder, ms)); err != nil {
			return err
		}
	}
	if s.backoff != nil {
		b.callbacks.backoff = C.uintptr_t(cgo.NewHandle(s.backoff))
	}
	for _, set := range s.steps {
		if err := statusError(set(builder, b.callbacks)); err != nil {
			return err
		}
	}
	if s.clock != nil {
		b.callbacks.clock = C.uintptr_t(cgo.NewHandle(s.clock))
		return statusError(C.cb_builder_set_clock(builder, C.breakerbox_go_clock_trampoline(), unsafe.Pointer(b.callbacks)))
	}
	return nil
}

func (b *Breaker) freeCallbacks() {
	if b.callbacks == nil {
		return
	}
	for _, h := range []C.uintptr_t{b.callbacks.state_change, b.callbacks.clock, b.callbacks.backoff} {
		if h != 0 {
			cgo.Handle(h).Delete()
		}
	}
	C.free(unsafe.Pointer(b.callbacks))
	b.callbacks = nil
	atomic.AddInt64(&liveCallbacks, -1)
}

// Close releases the breaker. No other call may be in progress or follow.
func (b *Breaker) Close() error {
	if b.ptr == nil {
		return ErrClosed
	}
	C.cb_free(b.ptr)
	b.ptr = nil
	b.freeCallbacks()
	return nil
}

// Permit is leave to run one call; record it once with Record.
type Permit struct {
	b   *Breaker
	raw C.cb_permit
}

// TryAcquire asks to run one call: a Permit, or a *RejectedError
// (errors.Is(err, ErrRejected)) saying when to retry.
func (b *Breaker) TryAcquire() (Permit, error) {
	var p C.cb_permit
	var retryAfter C.uint64_t
	switch status := C.cb_try_acquire_retry_after(b.ptr, &p, &retryAfter); status {
	case C.CB_STATUS_OK:
		return Permit{b: b, raw: p}, nil
	case C.CB_STATUS_REJECTED:
		d, known := fromMillis(retryAfter)
		return Permit{}, &RejectedError{retryAfter: d, known: known}
	default:
		return Permit{}, statusError(status)
	}
}

// Bits is the permit's opaque token.
func (p Permit) Bits() uint64 { return uint64(p.raw.bits) }

// PermitFromBits rebuilds a permit from Bits (forged bits are refused by Record).
func (b *Breaker) PermitFromBits(bits uint64) Permit {
	return Permit{b: b, raw: C.cb_permit{bits: C.uint64_t(bits)}}
}

// Record records how the call ended: nil, ErrStalePermit, or ErrInvalidArgument.
func (p Permit) Record(o Outcome) error {
	return statusError(C.cb_record(p.b.ptr, p.raw, C.cb_outcome(o)))
}

// RecordTimed is Record with how long the call took, measured by the
// caller (whole milliseconds): with a slow-call duration set, a call longer
// than it is slow, whatever its outcome. A negative elapsed is
// ErrInvalidArgument, and nothing is recorded.
func (p Permit) RecordTimed(o Outcome, elapsed time.Duration) error {
	ms, ok := toMillis(elapsed)
	if !ok {
		return ErrInvalidArgument
	}
	return statusError(C.cb_record_timed(p.b.ptr, p.raw, C.cb_outcome(o), ms))
}

// Do runs fn if the breaker admits it and records how it ended: nil is a
// success, an error a failure, a panic a failure (the panic continues).
// It returns a *RejectedError (errors.Is(err, ErrRejected)) without
// running fn, or fn's own error. With a slow-call duration set, the call is
// timed on the breaker's clock (WithClock's, or the system's).
func (b *Breaker) Do(fn func() error) error {
	return b.do(func() (Outcome, error) {
		if err := fn(); err != nil {
			return Failure, err
		}
		return Success, nil
	})
}

// DoContext is Do for calls that take a context. A context already done is
// returned at once, without asking the breaker. If fn fails after ctx was
// cancelled (context.Canceled), the call is recorded as ignored: the caller
// gave up, the dependency did not fail. An expired deadline is a failure
// (the dependency was too slow).
func (b *Breaker) DoContext(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return b.do(func() (Outcome, error) {
		err := fn(ctx)
		switch {
		case err == nil:
			return Success, nil
		case errors.Is(ctx.Err(), context.Canceled):
			return Ignored, err
		default:
			return Failure, err
		}
	})
}

// do asks for a permit, runs call and records the outcome it gives; a
// panic records a failure and continues.
func (b *Breaker) do(call func() (Outcome, error)) error {
	p, err := b.TryAcquire()
	if err != nil {
		return err
	}
	// Timed here rather than with cb_try_acquire_timed, which tells no
	// retry-after; the clock is the breaker's own.
	var start time.Duration
	if b.now != nil {
		start = b.now()
	}
	recorded := false
	defer func() {
		if !recorded {
			_ = b.finish(p, Failure, start)
		}
	}()
	outcome, err := call()
	recorded = true
	_ = b.finish(p, outcome, start)
	return err
}

// finish records p, with the time since start when calls are timed.
func (b *Breaker) finish(p Permit, o Outcome, start time.Duration) error {
	if b.now == nil {
		return p.Record(o)
	}
	elapsed := b.now() - start
	if elapsed < 0 { // a test clock moved back
		elapsed = 0
	}
	return p.RecordTimed(o, elapsed)
}

// State is the current state.
func (b *Breaker) State() State { return State(C.cb_current_state(b.ptr)) }

// FailCounter is the consecutive failures counted in the closed state.
func (b *Breaker) FailCounter() uint32 { return uint32(C.cb_fail_counter(b.ptr)) }

// SuccessCounter is the probe successes counted in the half-open state.
func (b *Breaker) SuccessCounter() uint32 { return uint32(C.cb_success_counter(b.ptr)) }

// ProbesInFlight is the half-open probes admitted and not yet recorded.
func (b *Breaker) ProbesInFlight() uint32 { return uint32(C.cb_probes_in_flight(b.ptr)) }

// FailureRate is the window's failure rate in percent (0 to 100); ok is
// false without a window or with fewer calls in it than the minimum.
func (b *Breaker) FailureRate() (percent float64, ok bool) { return fromRate(C.cb_failure_rate(b.ptr)) }

// SlowCallRate is the window's slow-call rate in percent (0 to 100); ok is
// false without a window or slow-call duration, or with fewer calls in the
// window than the minimum.
func (b *Breaker) SlowCallRate() (percent float64, ok bool) {
	return fromRate(C.cb_slow_call_rate(b.ptr))
}

// WindowCalls is the calls the window holds now (ignored calls are not
// held); ok is false without a window.
func (b *Breaker) WindowCalls() (calls uint64, ok bool) {
	n := C.cb_window_calls(b.ptr)
	return uint64(n), n != noValue
}

// OpenFor is how long the current open period lasts, counted from when the
// breaker opened (the reset timeout without a backoff); ok is false when
// the breaker is not open, or while a backoff is still choosing.
func (b *Breaker) OpenFor() (time.Duration, bool) { return fromMillis(C.cb_open_for_ms(b.ptr)) }

// Mode is the breaker's mode, fixed when it is built.
func (b *Breaker) Mode() Mode { return Mode(C.cb_current_mode(b.ptr)) }

// Name is the breaker's name ("" when unnamed).
func (b *Breaker) Name() string { return C.GoString(C.cb_name(b.ptr)) }

// ForceOpen forces the breaker open.
func (b *Breaker) ForceOpen() error { return statusError(C.cb_force_open(b.ptr)) }

// ForceHalfOpen forces the breaker half-open with every probe slot free.
func (b *Breaker) ForceHalfOpen() error { return statusError(C.cb_force_half_open(b.ptr)) }

// ForceClose forces the breaker closed with a zero failure count.
func (b *Breaker) ForceClose() error { return statusError(C.cb_force_close(b.ptr)) }

// SetFailMax sets fail_max (at least 1).
func (b *Breaker) SetFailMax(v uint32) error {
	return statusError(C.cb_set_fail_max(b.ptr, C.uint32_t(v)))
}

// SetSuccessThreshold sets success_threshold (1 to 65535).
func (b *Breaker) SetSuccessThreshold(v uint32) error {
	return statusError(C.cb_set_success_threshold(b.ptr, C.uint32_t(v)))
}

// SetHalfOpenMaxCalls sets half_open_max_calls (1 to 65535).
func (b *Breaker) SetHalfOpenMaxCalls(v uint32) error {
	return statusError(C.cb_set_half_open_max_calls(b.ptr, C.uint32_t(v)))
}

// SetResetTimeout sets the reset timeout (whole milliseconds).
func (b *Breaker) SetResetTimeout(d time.Duration) error {
	return statusError(C.cb_set_reset_timeout_ms(b.ptr, C.uint64_t(d/time.Millisecond)))
}

// SetProbeLease sets how long a probe may stay unrecorded (at least 1 ms).
func (b *Breaker) SetProbeLease(d time.Duration) error {
	return statusError(C.cb_set_probe_lease_ms(b.ptr, C.uint64_t(d/time.Millisecond)))
}

// Version is the library's version.
func Version() string { return C.GoString(C.cb_version()) }

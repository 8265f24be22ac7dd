// Package breakerbox is a lock-free circuit breaker (closed -> open ->
// half-open) for Go, over the breakerbox C library.
//
//	b, err := breakerbox.New(breakerbox.WithName("db"), breakerbox.WithFailMax(3))
//	if err != nil { ... }
//	defer b.Close()
//	err = b.Do(func() error { return callDependency() })
//	if errors.Is(err, breakerbox.ErrRejected) { /* serve a fallback */ }
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

cb_state_change_fn breakerbox_go_trampoline(void);
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"runtime/cgo"
	"strings"
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

// Errors returned for the library's status codes.
var (
	ErrRejected        = errors.New("breakerbox: circuit breaker is open: call rejected")
	ErrStalePermit     = errors.New("breakerbox: stale permit: already recorded or from an ended episode")
	ErrInvalidArgument = errors.New("breakerbox: invalid argument")
	ErrPanic           = errors.New("breakerbox: internal panic")
	ErrClosed          = errors.New("breakerbox: breaker already closed")
)

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
}

// An Option configures New.
type Option func(*settings)

// WithName names the breaker (valid UTF-8 without NUL).
func WithName(name string) Option { return func(s *settings) { s.name = name } }

// WithFailMax sets the consecutive failures that trip the breaker (at least
// 1; default 5).
func WithFailMax(n uint32) Option { return func(s *settings) { s.failMax = &n } }

// WithResetTimeout sets how long the breaker stays open before it admits a
// probe (whole milliseconds; default 60 s).
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
// call Close. A change it causes itself is reported after it returns.
func WithOnStateChange(fn func(from, to State)) Option {
	return func(s *settings) { s.onStateChange = fn }
}

// Defaults are the library's defaults: FailMax 5, ResetTimeout 60 s,
// SuccessThreshold 1, HalfOpenMaxCalls 1.
func Defaults() (failMax uint32, resetTimeout time.Duration, successThreshold, halfOpenMaxCalls uint32) {
	c := C.cb_config_default()
	return uint32(c.fail_max), time.Duration(c.reset_timeout_ms) * time.Millisecond,
		uint32(c.success_threshold), uint32(c.half_open_max_calls)
}

// Breaker is a circuit breaker. Release it with Close.
type Breaker struct {
	ptr      *C.cb_breaker
	callback *C.uintptr_t // C memory holding the cgo.Handle, when OnStateChange is set
}

//export breakerboxGoStateChange
func breakerboxGoStateChange(h C.uintptr_t, from, to C.cb_state) {
	cgo.Handle(h).Value().(func(from, to State))(State(from), State(to))
}

// New makes a breaker. A zero threshold, a negative duration, or a name
// that is not valid UTF-8 or contains NUL give ErrInvalidArgument.
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
	if s.onStateChange != nil {
		b.callback = (*C.uintptr_t)(C.malloc(C.size_t(unsafe.Sizeof(C.uintptr_t(0)))))
		*b.callback = C.uintptr_t(cgo.NewHandle(s.onStateChange))
		c.on_state_change = C.breakerbox_go_trampoline()
		c.user_data = unsafe.Pointer(b.callback)
	}
	var builder *C.cb_builder
	if err := statusError(C.cb_builder_new(&c, &builder)); err != nil {
		b.freeCallback()
		return nil, err
	}
	defer C.cb_builder_free(builder)
	if s.probeLease != nil {
		if err := statusError(C.cb_builder_set_probe_lease_ms(builder, C.uint64_t(*s.probeLease/time.Millisecond))); err != nil {
			b.freeCallback()
			return nil, err
		}
	}
	if err := statusError(C.cb_builder_build(builder, &b.ptr)); err != nil {
		b.freeCallback()
		return nil, err
	}
	return b, nil
}

func (b *Breaker) freeCallback() {
	if b.callback != nil {
		cgo.Handle(*b.callback).Delete()
		C.free(unsafe.Pointer(b.callback))
		b.callback = nil
	}
}

// Close releases the breaker. No other call may be in progress or follow.
func (b *Breaker) Close() error {
	if b.ptr == nil {
		return ErrClosed
	}
	C.cb_free(b.ptr)
	b.ptr = nil
	b.freeCallback()
	return nil
}

// Permit is leave to run one call; record it once with Record.
type Permit struct {
	b   *Breaker
	raw C.cb_permit
}

// TryAcquire asks to run one call: a Permit, or ErrRejected.
func (b *Breaker) TryAcquire() (Permit, error) {
	var p C.cb_permit
	if err := statusError(C.cb_try_acquire(b.ptr, &p)); err != nil {
		return Permit{}, err
	}
	return Permit{b: b, raw: p}, nil
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

// Do runs fn if the breaker admits it and records how it ended: nil is a
// success, an error a failure, a panic a failure (the panic continues).
// It returns ErrRejected without running fn, or fn's own error.
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
	recorded := false
	defer func() {
		if !recorded {
			_ = p.Record(Failure)
		}
	}()
	outcome, err := call()
	recorded = true
	_ = p.Record(outcome)
	return err
}

// State is the current state.
func (b *Breaker) State() State { return State(C.cb_current_state(b.ptr)) }

// FailCounter is the consecutive failures counted in the closed state.
func (b *Breaker) FailCounter() uint32 { return uint32(C.cb_fail_counter(b.ptr)) }

// SuccessCounter is the probe successes counted in the half-open state.
func (b *Breaker) SuccessCounter() uint32 { return uint32(C.cb_success_counter(b.ptr)) }

// ProbesInFlight is the half-open probes admitted and not yet recorded.
func (b *Breaker) ProbesInFlight() uint32 { return uint32(C.cb_probes_in_flight(b.ptr)) }

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

/*
 * breakerbox: a lock-free circuit breaker (closed -> open -> half-open), C API.
 *
 * USAGE
 *   Ask with cb_try_acquire() before the protected call; on CB_STATUS_OK run
 *   the call and give the permit back with cb_record(); on CB_STATUS_REJECTED
 *   do not run it.
 *
 * OWNERSHIP
 *   - cb_new() makes a breaker; the caller owns it and releases it once with
 *     cb_free(). cb_free(NULL) is a no-op.
 *   - cb_new() copies what it needs from cb_config (the name included); the
 *     config and its name may be freed as soon as cb_new() returns.
 *   - Out-parameters are written only when the call returns CB_STATUS_OK;
 *     the one exception, cb_try_acquire_retry_after()'s retry-after, is
 *     written only when it returns CB_STATUS_REJECTED.
 *   - Strings returned by the library are never NULL and never freed by the
 *     caller: cb_status_str() and cb_version() return static strings;
 *     cb_name()'s string lives as long as the breaker.
 *   - cb_permit is a plain value: copy it freely, record it at most once.
 *   - cb_builder_new() makes a builder, released once with cb_builder_free();
 *     the breakers cb_builder_build() makes from it are independent of it.
 *
 * THREADING
 *   - Every function taking `const cb_breaker *` is thread-safe, and
 *     lock-free for cb_new() handles (a cb_new_redis() handle's calls that
 *     reach Redis take a pooled connection under a lock and wait up to the
 *     command timeout): share one breaker between any number of threads. Only cb_free() needs
 *     exclusive access: no other call may be in progress or follow it.
 *   - The state-change callback runs on the thread whose call made the
 *     transition, once per transition, after the new state is visible. It
 *     may call any function on the breaker except cb_free(). Its user_data
 *     is used from whichever thread makes a transition, so it must be safe
 *     to use from any thread, and outlive the breaker.
 *   - The clock (cb_builder_set_clock) and backoff
 *     (cb_builder_set_open_backoff_custom) functions are asked for a value
 *     inside a decision, from any thread, possibly several at once: they
 *     must be thread-safe, must not call the library on the breaker that
 *     asks, and must not throw. Their user_data is copied into every
 *     breaker the builder makes and must outlive them all.
 *   - Callbacks never nest on one breaker: a transition (or storage error)
 *     caused by a call made from inside a callback is reported after that
 *     callback returns, on the same thread, in order. So a callback that
 *     forces the opposite state on every change loops, but never grows the
 *     stack; the call that made the first transition returns once the
 *     callback stops causing new ones. Callbacks of different breakers may
 *     nest, at most one of each breaker on a thread.
 *
 * UNWINDING
 *   No exception or panic ever leaves a library function: a panic inside the
 *   library is caught and returned as CB_STATUS_PANIC, and an exception
 *   thrown from a callback (which must not throw) aborts the process at the
 *   library's callback trampoline. Building the library needs Rust 1.81 or
 *   later, where an unwind reaching an `extern "C"` function aborts rather
 *   than being undefined behaviour.
 *
 * ERRORS
 *   Bad input is an error code, never a crash: a NULL pointer, an outcome or
 *   status outside its enum, a zero threshold, an invalid UTF-8 name, or
 *   permit bits that are forged, from another breaker or edited in any bit
 *   give CB_STATUS_INVALID_ARGUMENT (functions returning no status return
 *   the documented default). A panic inside the library is caught at the
 *   boundary and returned as CB_STATUS_PANIC.
 *
 * ABI STABILITY
 *   Every 0.x library has the soname libbreakerbox.so.0, and a program built
 *   against an older 0.x header runs against any newer 0.x library. So these
 *   never change within 0.x: the name, parameters and return type of an
 *   exported function; the layout of cb_config, cb_permit, cb_timed_permit
 *   and cb_storage_health; the value of an existing enum constant or status
 *   code, and what it means. What a 0.x release may do: add functions
 *   (cb_builder setters among them), add enum constants and status codes
 *   after the last (treat an unknown status as an error), and fix behaviour
 *   that contradicts this header. Settings added after 0.1 are set on a
 *   cb_builder; cb_config never grows. A program that needs a newer function
 *   can check cb_version() at run time. Anything else needs a new soname.
 *
 * RECORDING TWICE
 *   A permit is meant to be recorded once. Recording a permit from an earlier
 *   episode returns CB_STATUS_STALE_PERMIT and changes nothing. A second
 *   record of the same permit is caught as far as one atomic word allows: a
 *   half-open probe recorded twice is stale whenever no other probe is in
 *   flight (always so with half_open_max_calls = 1); a closed-state permit
 *   recorded twice is stale only if the state changed in between (a second
 *   success changes nothing anyway; a second failure counts again).
 */

#ifndef BREAKERBOX_H
#define BREAKERBOX_H

/* Generated by cbindgen from ffi/src; do not edit by hand. */

#include <stddef.h>
#include <stdint.h>

/**
 * The major version of this header (the crate's version; a test keeps them equal).
 */
#define BREAKERBOX_VERSION_MAJOR 0

/**
 * The minor version of this header.
 */
#define BREAKERBOX_VERSION_MINOR 1

/**
 * The patch version of this header.
 */
#define BREAKERBOX_VERSION_PATCH 0

/**
 * The failure rate a getter or `cb_backoff_fn` gets when there is none.
 */
#define CB_RATE_NONE -1.0

/**
 * What a `u64` getter returns when it has no value (`UINT64_MAX`).
 */
#define CB_NO_VALUE UINT64_MAX

/**
 * The three states of a circuit breaker.
 */
enum cb_state
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Calls flow; consecutive failures are counted.
     */
    CB_STATE_CLOSED = 0,
    /**
     * Calls are rejected until the reset timeout has passed.
     */
    CB_STATE_OPEN = 1,
    /**
     * A limited number of probe calls decide whether to close again.
     */
    CB_STATE_HALF_OPEN = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_state cb_state;
#else
typedef uint32_t cb_state;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * What a call into the library did. New codes may be added after the last.
 */
enum cb_status
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Done.
     */
    CB_STATUS_OK = 0,
    /**
     * The breaker refused the call (open, or half-open with every probe slot
     * taken): do not run it; serve a fallback.
     */
    CB_STATUS_REJECTED = 1,
    /**
     * The permit's episode has ended, or it is a probe permit already
     * recorded (caught among the first 16 probes of a half-open episode of
     * a `cb_new` handle; a `cb_new_redis` handle's fleet counts probes, so
     * there a second record frees another probe's slot while one is in
     * flight), or the permit of a call that a `CB_MODE_METRICS_ONLY`
     * breaker admitted where it would have rejected it: nothing changed.
     */
    CB_STATUS_STALE_PERMIT = 2,
    /**
     * A NULL pointer, an out-of-range value, an invalid UTF-8 name, or permit
     * bits this breaker never issued (forged or edited). Nothing changed.
     */
    CB_STATUS_INVALID_ARGUMENT = 3,
    /**
     * The library panicked inside the call. A bug: please report it. What
     * the call had done before the panic stays done (a permit may already
     * be recorded); nothing is undone.
     */
    CB_STATUS_PANIC = 4,
    /**
     * The shared-state store could not be reached. Returned only by a
     * breaker whose state lives in a shared store, never by `cb_new` ones.
     */
    CB_STATUS_STORAGE_ERROR = 5,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_status cb_status;
#else
typedef uint32_t cb_status;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * Whether a breaker acts on its decisions.
 *
 * Taken as a 32-bit integer and checked: a value outside this list is
 * `CB_STATUS_INVALID_ARGUMENT`.
 */
enum cb_mode
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Rejects calls while open. The default.
     */
    CB_MODE_ENFORCING = 0,
    /**
     * Shadow mode, to tune thresholds on live traffic: every decision is
     * made, counted and reported to the callbacks (transitions included),
     * but no call is rejected. A call admitted where it would have been
     * rejected counts for nothing: recording its permit returns
     * `CB_STATUS_STALE_PERMIT`.
     */
    CB_MODE_METRICS_ONLY = 1,
    /**
     * Every call is admitted and nothing is counted or reported. Forced
     * states still change, but reject nothing.
     */
    CB_MODE_DISABLED = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_mode cb_mode;
#else
typedef uint32_t cb_mode;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * How a call ended, as far as the breaker is concerned.
 *
 * Functions take it as a 32-bit integer and check it: a value outside this
 * list is `CB_STATUS_INVALID_ARGUMENT`, never undefined behaviour.
 */
enum cb_outcome
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * The dependency answered: resets the failure count, counts toward closing.
     */
    CB_OUTCOME_SUCCESS = 0,
    /**
     * The dependency failed: counts toward tripping, re-opens from half-open.
     */
    CB_OUTCOME_FAILURE = 1,
    /**
     * Counts as neither; frees a probe slot.
     */
    CB_OUTCOME_IGNORED = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_outcome cb_outcome;
#else
typedef uint32_t cb_outcome;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

#if defined(BREAKERBOX_REDIS)
/**
 * What a Redis-backed breaker decides while Redis is unreachable.
 *
 * Taken as a 32-bit integer and checked: a value outside this list is
 * `CB_STATUS_INVALID_ARGUMENT`.
 */
enum cb_fault_policy
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
#if defined(BREAKERBOX_REDIS)
    /**
     * Go on as a per-process breaker on the local mirror. The default.
     */
    CB_FAULT_POLICY_LOCAL = 0,
#endif
#if defined(BREAKERBOX_REDIS)
    /**
     * Admit every call; outcomes are not counted.
     */
    CB_FAULT_POLICY_FAIL_OPEN = 1,
#endif
#if defined(BREAKERBOX_REDIS)
    /**
     * Reject every call.
     */
    CB_FAULT_POLICY_FAIL_CLOSED = 2,
#endif
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_fault_policy cb_fault_policy;
#else
typedef uint32_t cb_fault_policy;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus
#endif

/**
 * Randomness added to an exponential backoff, so that breakers opened
 * together do not probe together.
 *
 * Taken as a 32-bit integer and checked: a value outside this list is
 * `CB_STATUS_INVALID_ARGUMENT`.
 */
enum cb_jitter
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * Exactly the computed duration.
     */
    CB_JITTER_NONE = 0,
    /**
     * Uniform in [0, d] ("full jitter").
     */
    CB_JITTER_FULL = 1,
    /**
     * Uniform in [d/2, d] ("equal jitter").
     */
    CB_JITTER_EQUAL = 2,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_jitter cb_jitter;
#else
typedef uint32_t cb_jitter;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * How a half-open breaker decides whether to close.
 *
 * Taken as a 32-bit integer and checked: a value outside this list is
 * `CB_STATUS_INVALID_ARGUMENT`.
 */
enum cb_half_open_rule
#if defined(__cplusplus) || __STDC_VERSION__ >= 202311L
  : uint32_t
#endif // defined(__cplusplus) || __STDC_VERSION__ >= 202311L
 {
    /**
     * `success_threshold` probe successes close; a probe failure re-opens
     * at once. The default.
     */
    CB_HALF_OPEN_RULE_SUCCESSES = 0,
    /**
     * `half_open_max_calls` probes are admitted in all (at most 31); once
     * every one is recorded, the breaker re-opens if the share of them that
     * failed is at or above the failure-rate threshold
     * (`cb_builder_set_failure_rate_threshold`, default 50%), else closes. An ignored
     * probe gives its permit back. `success_threshold` must stay 1.
     */
    CB_HALF_OPEN_RULE_FAILURE_RATE = 1,
};
#ifndef __cplusplus
#if __STDC_VERSION__ >= 202311L
typedef enum cb_half_open_rule cb_half_open_rule;
#else
typedef uint32_t cb_half_open_rule;
#endif // __STDC_VERSION__ >= 202311L
#endif // __cplusplus

/**
 * A circuit breaker. Opaque: made by `cb_new` (or `cb_builder_build`),
 * released by `cb_free`.
 *
 * Every function taking a `const cb_breaker *` is thread-safe; lock-free for
 * `cb_new` handles.
 */
typedef struct cb_breaker cb_breaker;

/**
 * Settings for a breaker beyond `cb_config`. Opaque: made by
 * `cb_builder_new`, released by `cb_builder_free`; the breakers it built
 * do not depend on it.
 *
 * A builder is not thread-safe: use it from one thread at a time. Its
 * setters check their argument at once (`CB_STATUS_INVALID_ARGUMENT`, and
 * nothing changes); `cb_builder_build` checks the whole.
 */
typedef struct cb_builder cb_builder;

/**
 * Called once per state change, on the thread whose call made it, after the
 * new state is visible (`cb_current_state(breaker)` returns `to` unless yet
 * another change has happened since). `breaker` is the handle `cb_new`
 * returned. The callback must not call `cb_free` on it and should be quick:
 * the call that made the transition waits for it.
 *
 * It may call any other function on the breaker. A change caused from
 * inside the callback (say, `cb_force_close` from the callback reporting
 * the breaker opened) is reported after this callback returns, not nested
 * inside it: a breaker's callback never runs inside itself.
 *
 * It must not throw: an exception thrown from it aborts the process.
 */
typedef void (*cb_state_change_fn)(void *user_data,
                                   const cb_breaker *breaker,
                                   cb_state from,
                                   cb_state to);

/**
 * Configuration for `cb_new`. Start from `cb_config_default()` and change
 * the fields you need.
 *
 * Its layout is frozen: no field is ever added, removed or reordered, so a
 * program built against any 0.x header can pass it to any later library.
 * Settings added after 0.1 are set on a `cb_builder`.
 */
typedef struct {
    /**
     * Consecutive failures in the closed state that trip the breaker.
     * Default 5; at least 1.
     */
    uint32_t fail_max;
    /**
     * Milliseconds the breaker stays open before it admits a probe.
     * Default 60000.
     */
    uint64_t reset_timeout_ms;
    /**
     * Probe successes in half-open needed to close. Default 1; 1 to 65535.
     */
    uint32_t success_threshold;
    /**
     * Probes admitted at once in half-open. Default 1; 1 to 65535.
     */
    uint32_t half_open_max_calls;
    /**
     * NULL (unnamed) or a NUL-terminated UTF-8 name, copied by `cb_new`.
     */
    const char *name;
    /**
     * NULL for none, or called on every state change (see
     * `cb_state_change_fn`).
     */
    cb_state_change_fn on_state_change;
    /**
     * Passed to `on_state_change` as is. It is used from whichever thread
     * makes a transition, so what it points to must be safe to use from any
     * thread, and must outlive the breaker.
     */
    void *user_data;
} cb_config;

/**
 * Called when the store sharing a breaker's state (Redis) fails or times
 * out; the breaker goes on deciding by its fault policy. `message` is a
 * NUL-terminated description, valid only during the call. Runs on the
 * thread that met the error (a caller's, or the breaker's background
 * thread), under the same rules as `cb_state_change_fn`: not nested, must
 * not throw, must not call `cb_free`.
 */
typedef void (*cb_storage_error_fn)(void *user_data, const cb_breaker *breaker, const char *message);

/**
 * Returns the time in milliseconds, for a breaker built with
 * `cb_builder_set_clock`: tests and simulations move it by hand instead of
 * sleeping. Its origin is arbitrary; it must not go backwards (a reading
 * below an earlier one is taken as that earlier one).
 *
 * Called from any thread that asks the breaker for a decision needing the
 * time (a rejection, a transition, a timed call), possibly from several at
 * once; it must be thread-safe and quick, must not call the library on the
 * breaker that asks, and must not throw (an exception thrown from it aborts
 * the process).
 */
typedef uint64_t (*cb_clock_fn)(void *user_data);

/**
 * How the store sharing a breaker's state is doing, as `cb_get_storage_health`
 * reports it. Its layout is frozen, as `cb_config`'s is.
 */
typedef struct {
    /**
     * 1 for a breaker whose state is shared (`cb_new_redis`, or a builder
     * with Redis settings); 0 for one whose state is in memory, which has
     * no store: the other fields are then 1, 0 and 0.
     */
    uint32_t shared;
    /**
     * 1 while calls reach the store; 0 while they decide by the fault
     * policy and the breaker reconnects in the background.
     */
    uint32_t reachable;
    /**
     * Milliseconds since `reachable` last changed (since the breaker was
     * built, if it never did), on the system's monotonic clock.
     */
    uint64_t for_ms;
    /**
     * Bytes in the message of the latest fault met, without its NUL; 0 when
     * none was. The message is copied into the caller's buffer.
     */
    size_t last_error_len;
} cb_storage_health;

/**
 * Leave to run one call, returned by `cb_try_acquire` and passed back by
 * value to `cb_record`. An opaque token: its bits mean nothing to the caller.
 * Bits from another breaker, forged bits, and a permit with any of its bits
 * changed are refused (`CB_STATUS_INVALID_ARGUMENT`); a keyed check covers
 * every field, so only a change guessing the key (about one chance in 2^32)
 * could pass.
 */
typedef struct {
    /**
     * The token; copy it, never compute it.
     */
    uint64_t bits;
} cb_permit;

/**
 * A permit that lets the breaker time its call: returned by
 * `cb_try_acquire_timed`, passed back by value to `cb_record_timed_permit`.
 * A plain value like `cb_permit`; copy it, never compute it.
 */
typedef struct {
    /**
     * The permit itself (may also be given to `cb_record`, untimed).
     */
    cb_permit permit;
    /**
     * When the call started, in milliseconds on the breaker's clock;
     * `CB_NO_VALUE` when the breaker does not time calls.
     */
    uint64_t started_ms;
} cb_timed_permit;

/**
 * Chooses how long an open period lasts, in milliseconds, for a breaker
 * built with `cb_builder_set_open_backoff_custom`. `attempt` counts the
 * open periods since the breaker last closed, from 1. `last_failure_rate`
 * is the window's failure rate in percent when the breaker opened, or
 * `CB_RATE_NONE` (-1) when there is none: no window, or fewer calls in it
 * than `minimum_calls` (so always after a failed probe, as every
 * transition clears the window). `UINT64_MAX` never half-opens by itself.
 *
 * Called once per open period, on the thread whose call opened the
 * breaker, after the breaker is open and before the state-change callback
 * hears of it; until it returns the breaker rejects every call. Several
 * breakers built from one builder share its `user_data` and may call it
 * at once from different threads. It must be quick, must not call the
 * library on the breaker being opened, and must not throw (an exception
 * thrown from it aborts the process).
 */
typedef uint64_t (*cb_backoff_fn)(void *user_data, uint32_t attempt, float last_failure_rate);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The default configuration: fail_max 5, reset_timeout_ms 60000,
 * success_threshold 1, half_open_max_calls 1, no name, no callback.
 */
cb_config cb_config_default(void);

/**
 * Makes a breaker from `config` and writes its handle to `*out`.
 *
 * Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `config` or
 * `out` is NULL, a threshold is 0 or above its maximum, or the name is not
 * valid UTF-8. `*out` is written only on `CB_STATUS_OK`; release the handle
 * with `cb_free`. The name is copied; `config` is not kept.
 *
 * # Safety
 *
 * `config` is NULL or points to a readable `cb_config` whose `name` is NULL
 * or a NUL-terminated string; `out` is NULL or writable.
 */
cb_status cb_new(const cb_config *config, cb_breaker **out);

/**
 * Makes a builder holding `config`'s settings (NULL: the defaults of
 * `cb_config_default()`) and writes it to `*out`. Change settings with the
 * `cb_builder_set_*` functions, make breakers with `cb_builder_build`,
 * release it with `cb_builder_free`.
 *
 * Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `out` is
 * NULL or the name is not valid UTF-8 (thresholds are checked by
 * `cb_builder_build`). `*out` is written only on `CB_STATUS_OK`. The name
 * is copied; `config` is not kept.
 *
 * # Safety
 *
 * `config` is NULL or points to a readable `cb_config` whose `name` is NULL
 * or a NUL-terminated string; `out` is NULL or writable.
 */
cb_status cb_builder_new(const cb_config *config, cb_builder **out);

/**
 * Releases a builder. NULL is a no-op. Breakers it built are not affected.
 *
 * # Safety
 *
 * `builder` is NULL or a builder from `cb_builder_new` not yet freed, not
 * in use by another call, and not used afterwards.
 */
void cb_builder_free(cb_builder *builder);

/**
 * Sets the probe lease in milliseconds (at least 1), as
 * `cb_set_probe_lease_ms` does on a breaker. `CB_STATUS_INVALID_ARGUMENT`
 * for NULL or 0, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_probe_lease_ms(cb_builder *builder, uint64_t probe_lease_ms);

/**
 * Sets the function called when the store sharing the breaker's state
 * fails (see `cb_storage_error_fn`), and the `user_data` passed to it;
 * NULL for none. A breaker whose state is in memory never calls it.
 * `user_data` must be safe to use from any thread and outlive the breakers.
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_on_storage_error(cb_builder *builder,
                                          cb_storage_error_fn on_storage_error,
                                          void *user_data);

/**
 * Makes a breaker from the builder's settings and writes its handle to
 * `*out`; release it with `cb_free`. The builder is not consumed: each
 * call makes a new, independent breaker.
 *
 * Returns `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` when `builder` or
 * `out` is NULL, a threshold is 0 or above its maximum (see `cb_config`),
 * or the settings do not combine (a slow-call duration without a window;
 * a custom backoff or the disabled mode with Redis settings). A
 * builder with Redis settings behaves as `cb_new_redis`.
 * `*out` is written only on `CB_STATUS_OK`.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call; `out` is
 * NULL or writable.
 */
cb_status cb_builder_build(const cb_builder *builder, cb_breaker **out);

/**
 * Makes the breakers this builder builds read the time from `now_ms`
 * (see `cb_clock_fn`), passing it `user_data` as is, instead of the
 * system's monotonic clock; NULL goes back to the system's. Tests move
 * such a clock by hand instead of sleeping.
 *
 * `user_data` is copied into every breaker the builder makes: what it
 * points to must be safe to use from any thread and outlive all of them
 * (freeing the builder does not end its use). `CB_STATUS_INVALID_ARGUMENT`
 * for a NULL builder.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_clock(cb_builder *builder, cb_clock_fn now_ms, void *user_data);

/**
 * Sets how half-open decides (default `CB_HALF_OPEN_RULE_SUCCESSES`).
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or a value outside
 * `cb_half_open_rule`, and nothing changes. Under
 * `CB_HALF_OPEN_RULE_FAILURE_RATE`, `cb_builder_build` refuses a
 * `half_open_max_calls` above 31, a `success_threshold` other than 1, and
 * Redis settings (`CB_STATUS_INVALID_ARGUMENT`).
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_half_open_rule(cb_builder *builder, cb_half_open_rule rule);

/**
 * Releases a breaker made by `cb_new`. NULL is a no-op.
 *
 * # Safety
 *
 * `breaker` is NULL or a handle from `cb_new` not yet freed; no other call
 * may be using it, and it must not be used afterwards (nor freed from
 * inside its own callbacks).
 */
void cb_free(cb_breaker *breaker);

/**
 * The current state; `CB_STATE_OPEN` for NULL. An open breaker whose reset
 * timeout has passed still reports open until a call asks for a permit.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_state cb_current_state(const cb_breaker *breaker);

/**
 * Consecutive failures counted in the closed state (0 in other states, and for NULL).
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
uint32_t cb_fail_counter(const cb_breaker *breaker);

/**
 * Probe successes counted in the half-open state (0 in other states, and for NULL).
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
uint32_t cb_success_counter(const cb_breaker *breaker);

/**
 * Probes admitted in the half-open state and not yet recorded (0 in other
 * states, and for NULL).
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
uint32_t cb_probes_in_flight(const cb_breaker *breaker);

/**
 * Forces the breaker open now; it half-opens after the reset timeout.
 * Already open: nothing changes. `CB_STATUS_OK`, or
 * `CB_STATUS_INVALID_ARGUMENT` for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_force_open(const cb_breaker *breaker);

/**
 * Forces the breaker half-open with every probe slot free. Already
 * half-open: nothing changes. `CB_STATUS_OK`, or
 * `CB_STATUS_INVALID_ARGUMENT` for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_force_half_open(const cb_breaker *breaker);

/**
 * Forces the breaker closed with a zero failure count. `CB_STATUS_OK`, or
 * `CB_STATUS_INVALID_ARGUMENT` for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_force_close(const cb_breaker *breaker);

/**
 * Sets `fail_max` (at least 1) for the next decision. A closed breaker that
 * already has that many failures trips now. `CB_STATUS_INVALID_ARGUMENT`
 * for NULL or 0, and nothing changes.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_set_fail_max(const cb_breaker *breaker, uint32_t fail_max);

/**
 * Sets the reset timeout in milliseconds; an open breaker measures it from
 * when it opened. `CB_STATUS_INVALID_ARGUMENT` for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_set_reset_timeout_ms(const cb_breaker *breaker, uint64_t reset_timeout_ms);

/**
 * Sets `success_threshold` (1 to 65535) for the next decision. A half-open
 * breaker that already has that many successes closes now.
 * `CB_STATUS_INVALID_ARGUMENT` for NULL or out of range, and nothing changes.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_set_success_threshold(const cb_breaker *breaker, uint32_t success_threshold);

/**
 * Sets how many probes half-open admits at once (1 to 65535), for the next
 * decision. `CB_STATUS_INVALID_ARGUMENT` for NULL or out of range, and
 * nothing changes.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_set_half_open_max_calls(const cb_breaker *breaker, uint32_t half_open_max_calls);

/**
 * Sets the probe lease in milliseconds (at least 1): how long a half-open
 * probe may stay unrecorded before its slot is given to another probe (its
 * permit then goes stale). Defaults to the reset timeout, at least one
 * second. `CB_STATUS_INVALID_ARGUMENT` for NULL or 0.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_set_probe_lease_ms(const cb_breaker *breaker, uint64_t probe_lease_ms);

/**
 * The breaker's name, NUL-terminated; "" when unnamed or for NULL. Never
 * NULL. The string lives as long as the breaker; do not free it.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
const char *cb_name(const cb_breaker *breaker);

/**
 * Writes how the store sharing the breaker's state is doing to `*out`, and
 * the latest fault's message (NUL-terminated, cut at a character boundary
 * to fit) to `error_buf` when it is not NULL and `error_buf_len` is not 0;
 * `out->last_error_len` tells how long the whole message is, so a buffer
 * of `last_error_len + 1` bytes holds it. The same message reaches the
 * storage-error callback as each fault happens. Reading it runs no
 * callback and contacts no store.
 *
 * `CB_STATUS_OK`, or `CB_STATUS_INVALID_ARGUMENT` for a NULL `breaker` or
 * `out` (nothing is written).
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle; `out` is NULL or writable;
 * `error_buf` is NULL or writable for `error_buf_len` bytes.
 */
cb_status cb_get_storage_health(const cb_breaker *breaker,
                                cb_storage_health *out,
                                char *error_buf,
                                size_t error_buf_len);

/**
 * Asks to run one call. On `CB_STATUS_OK` writes a permit to `*out_permit`:
 * run the call, then give the permit to `cb_record`. On `CB_STATUS_REJECTED`
 * do not run the call; `*out_permit` is not written.
 *
 * In the closed state this is one atomic load. A permit never recorded is
 * not counted as a failure; a half-open probe's slot is reclaimed after the
 * probe lease (by default the reset timeout, at least one second).
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`; `out_permit` is NULL or
 * writable.
 */
cb_status cb_try_acquire(const cb_breaker *breaker, cb_permit *out_permit);

/**
 * As `cb_try_acquire`, and on `CB_STATUS_REJECTED` writes to
 * `*out_retry_after_ms` how long until the breaker may admit a probe, in
 * milliseconds from the rejection's own clock reading, or `CB_NO_VALUE`
 * when it is not known. On `CB_STATUS_OK` it writes the permit and leaves
 * `*out_retry_after_ms` alone; on `CB_STATUS_REJECTED` the reverse.
 *
 * * Open: the time left of the open period (read from a coarse clock, so
 *   it may exceed the truth by a few milliseconds, never fall short of
 *   it); `CB_NO_VALUE` while a backoff is still choosing the period.
 * * Half-open with every probe slot taken: the time left on the latest
 *   probe's lease, an upper bound (a probe recorded sooner frees its slot
 *   sooner).
 * * `CB_NO_VALUE` also for a shared breaker rejecting by its fault policy
 *   or by the fleet's state when its local mirror would admit.
 *
 * `CB_STATUS_INVALID_ARGUMENT` when any pointer is NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle; `out_permit` and
 * `out_retry_after_ms` are NULL or writable.
 */
cb_status cb_try_acquire_retry_after(const cb_breaker *breaker,
                                     cb_permit *out_permit,
                                     uint64_t *out_retry_after_ms);

/**
 * Records how the call admitted with `permit` ended.
 *
 * Returns `CB_STATUS_OK`; `CB_STATUS_STALE_PERMIT` when the permit was
 * already recorded or its episode has ended (nothing changes);
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL breaker, an outcome outside
 * `cb_outcome`, or bits this breaker never issued.
 *
 * A probe permit recorded twice is stale (each probe holds its own slot),
 * among the first 16 probes admitted in its half-open episode; after that a
 * second record may free another probe's slot. A closed-state permit
 * recorded twice is stale only if the state changed in between (a second
 * success changes nothing anyway; a second failure counts again). Record
 * each permit once.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle from `cb_new`.
 */
cb_status cb_record(const cb_breaker *breaker, cb_permit permit, cb_outcome outcome);

/**
 * As `cb_record`, with how long the call took in milliseconds, measured by
 * the caller. With a slow-call duration set (see
 * `cb_builder_set_slow_call_duration_ms`) a call longer than it counts as
 * slow, whatever its outcome; otherwise the duration is not used.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
cb_status cb_record_timed(const cb_breaker *breaker,
                          cb_permit permit,
                          cb_outcome outcome,
                          uint64_t elapsed_ms);

/**
 * As `cb_try_acquire`, but the breaker times the call from now until
 * `cb_record_timed_permit`. The clock is read only when a slow-call
 * duration is set (the breaker's clock: the system's monotonic clock, or
 * the builder's `cb_builder_set_clock`); otherwise this costs what
 * `cb_try_acquire` does. `*out` is written only on `CB_STATUS_OK`.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle; `out` is NULL or writable.
 */
cb_status cb_try_acquire_timed(const cb_breaker *breaker, cb_timed_permit *out);

/**
 * Records how the call admitted with `timed` ended, with the time since
 * `cb_try_acquire_timed` issued it (as `cb_record_timed` would with that
 * duration; as `cb_record` when the breaker does not time calls). Returns
 * what `cb_record` returns.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
cb_status cb_record_timed_permit(const cb_breaker *breaker,
                                 cb_timed_permit timed,
                                 cb_outcome outcome);

/**
 * Decides the closed state by the failure rate of the last `size` calls
 * (at least 1) instead of `fail_max` consecutive failures, which is then
 * unused while closed. Replaces a time window. The README's rules table
 * gives the semantics; the defaults are a 50% threshold and 100 minimum
 * calls (at most `size`), in 10 buckets. `CB_STATUS_INVALID_ARGUMENT` for
 * a NULL builder or 0, and nothing changes.
 *
 * With `cb_builder_set_redis` the window is the fleet's (every process's
 * counts summed) and `CB_MODE_METRICS_ONLY` watches the fleet's
 * decisions; an exponential backoff grows the fleet's open periods. A
 * custom backoff (its function cannot run at the fleet) and
 * `CB_MODE_DISABLED` are per-process rules, which `cb_builder_build`
 * refuses with it (`CB_STATUS_INVALID_ARGUMENT`).
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_count_window(cb_builder *builder, uint32_t size);

/**
 * Decides the closed state by the failure rate of the calls of the last
 * `duration_ms` milliseconds (at least 1), kept in buckets of
 * `duration_ms / buckets` each: the window covers between `duration_ms`
 * minus one bucket and `duration_ms` of history. Replaces a count window.
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0, and nothing
 * changes. See `cb_builder_set_count_window`.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_time_window_ms(cb_builder *builder, uint64_t duration_ms);

/**
 * Sets the buckets a window is kept in (default 10; 1 to 16): the window
 * advances one bucket at a time. `CB_STATUS_INVALID_ARGUMENT` for a NULL
 * builder or out of range, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_window_buckets(cb_builder *builder, uint32_t buckets);

/**
 * Sets the failure rate, in percent, at or above which a window trips
 * (default 50; above 0 and at most 100). `CB_STATUS_INVALID_ARGUMENT` for
 * a NULL builder, a value out of range or NaN, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_failure_rate_threshold(cb_builder *builder, float percent);

/**
 * Sets how many calls a window must hold before it may trip (default 100,
 * at least 1; a count window needs at most its size). Below it the rates
 * read as none and the window never trips. `CB_STATUS_INVALID_ARGUMENT`
 * for a NULL builder or 0, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_minimum_calls(cb_builder *builder, uint32_t calls);

/**
 * A call recorded as taking longer than `duration_ms` milliseconds (at
 * least 1) is slow, whatever its outcome, and a window also trips when its
 * slow-call rate reaches `cb_builder_set_slow_call_rate_threshold`. Off by
 * default; needs a window (`cb_builder_build` refuses it without one).
 * Only calls recorded with a duration (`cb_record_timed`,
 * `cb_record_timed_permit`) can be slow. `CB_STATUS_INVALID_ARGUMENT` for
 * a NULL builder or 0, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_slow_call_duration_ms(cb_builder *builder, uint64_t duration_ms);

/**
 * Sets the slow-call rate, in percent, at or above which a window trips
 * (default 100; above 0 and at most 100). `CB_STATUS_INVALID_ARGUMENT` for
 * a NULL builder, a value out of range or NaN, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_slow_call_rate_threshold(cb_builder *builder, float percent);

/**
 * Sets whether the breaker rejects, only reports, or does nothing (see
 * `cb_mode`; default `CB_MODE_ENFORCING`). `CB_STATUS_INVALID_ARGUMENT`
 * for a NULL builder or a value outside `cb_mode`, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_mode(cb_builder *builder, cb_mode mode);

/**
 * Lengthens each consecutive open period: period n (1 for the first since
 * the breaker last closed) lasts min(cap_ms, reset_timeout_ms ×
 * multiplier^(n−1)) milliseconds (a cap below the reset timeout is the
 * reset timeout), then `jitter` is applied. A close starts over at the
 * reset timeout. Replaces any backoff set before. With
 * `cb_builder_set_redis` the periods are the fleet's: its script counts
 * them and chooses each (jitter included), for every process.
 *
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder, a multiplier below 1,
 * infinite or NaN, or a jitter outside `cb_jitter`, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_open_backoff_exponential(cb_builder *builder,
                                                  double multiplier,
                                                  uint64_t cap_ms,
                                                  cb_jitter jitter);

/**
 * Lets `backoff` choose each open period's length (see `cb_backoff_fn`),
 * passing it `user_data` as is; replaces any backoff set before. NULL
 * removes the backoff: every open period lasts the reset timeout.
 *
 * `user_data` is copied into every breaker the builder makes: what it
 * points to must be safe to use from any thread and outlive all of them
 * (freeing the builder does not end its use). `CB_STATUS_INVALID_ARGUMENT`
 * for a NULL builder.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_open_backoff_custom(cb_builder *builder,
                                             cb_backoff_fn backoff,
                                             void *user_data);

/**
 * The window's failure rate in percent (0 to 100), or `CB_RATE_NONE` (-1)
 * when there is none: no window, fewer calls in it than `minimum_calls`,
 * or a NULL breaker.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
float cb_failure_rate(const cb_breaker *breaker);

/**
 * The window's slow-call rate in percent (0 to 100), or `CB_RATE_NONE`
 * (-1) when there is none: no window, no slow-call duration set, fewer
 * calls in it than `minimum_calls`, or a NULL breaker.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
float cb_slow_call_rate(const cb_breaker *breaker);

/**
 * The calls the window holds now (ignored calls are not held), or
 * `CB_NO_VALUE` for a breaker without a window (the consecutive rule) and
 * for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
uint64_t cb_window_calls(const cb_breaker *breaker);

/**
 * The breaker's mode (fixed when it is built); `CB_MODE_ENFORCING` for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
cb_mode cb_current_mode(const cb_breaker *breaker);

/**
 * How long the current open period lasts in milliseconds (the reset
 * timeout without a backoff), counted from when the breaker opened; or
 * `CB_NO_VALUE` when the breaker is not open, while a backoff is still
 * choosing the period's length, and for NULL.
 *
 * # Safety
 *
 * `breaker` is NULL or a live handle.
 */
uint64_t cb_open_for_ms(const cb_breaker *breaker);

#if (defined(BREAKERBOX_REDIS) && defined(BREAKERBOX_REDIS_CLUSTER))
/**
 * Shares the state of the breakers this builder makes through the Redis
 * Cluster reached at any of the `nodes_len` URLs at `nodes`
 * ("redis://host:port/" each; the slot map is learnt from the first that
 * answers), under `namespace_` (as for `cb_builder_set_redis`; its keys
 * stay on one slot). Replaces a URL set by `cb_builder_set_redis`; the
 * other Redis options apply alike. Nothing is contacted until
 * `cb_builder_build`. The strings are copied.
 *
 * `CB_STATUS_INVALID_ARGUMENT` when `builder` or `nodes` is NULL,
 * `nodes_len` is 0, a node is NULL, or a string is not valid UTF-8;
 * `CB_STATUS_STORAGE_ERROR` when a node is not a Redis URL. Nothing changes
 * on an error. Only in a library built with the `redis-cluster` feature.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call; `nodes`
 * is NULL or points to `nodes_len` readable pointers, each NULL or a
 * NUL-terminated string; `namespace_` is NULL or a NUL-terminated string.
 */
cb_status cb_builder_set_redis_cluster(cb_builder *builder,
                                       const char *const *nodes,
                                       size_t nodes_len,
                                       const char *namespace_);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Shares the state of the breakers this builder makes through the master
 * that Redis Sentinel names `master_name`, asking the `sentinels_len`
 * sentinels at `sentinels` (`redis://[user:password@]host:port/` each) in
 * turn, under `namespace_` (as for `cb_builder_set_redis`). The master is
 * logged in to as `master_username` with `master_password` (each NULL for
 * none) on database `master_db`; the sentinels' own credentials go in
 * their URLs. Each connection asks the sentinels afresh within the
 * connect and command timeouts, and follows a failover. Replaces a URL set
 * by `cb_builder_set_redis`; the other Redis options apply alike. Nothing
 * is contacted until `cb_builder_build`. The strings are copied.
 *
 * `CB_STATUS_INVALID_ARGUMENT` when `builder`, `sentinels` or
 * `master_name` is NULL, `sentinels_len` is 0, a sentinel is NULL,
 * `master_name` is empty, or a string is not valid UTF-8;
 * `CB_STATUS_STORAGE_ERROR` when a sentinel is not a Redis URL. Nothing
 * changes on an error.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call;
 * `sentinels` is NULL or points to `sentinels_len` readable pointers, each
 * NULL or a NUL-terminated string; the other strings are NULL or
 * NUL-terminated.
 */
cb_status cb_builder_set_redis_sentinel(cb_builder *builder,
                                        const char *const *sentinels,
                                        size_t sentinels_len,
                                        const char *master_name,
                                        const char *master_username,
                                        const char *master_password,
                                        uint32_t master_db,
                                        const char *namespace_);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Makes a breaker whose state is shared, through the Redis at `redis_url`,
 * with every breaker of the same namespace: one logical breaker for a fleet
 * of processes (see the README's consistency model). Writes its handle to
 * `*out`; the handle takes the same functions as a `cb_new` one, and is
 * released with `cb_free`.
 *
 * `redis_url` is like "redis://127.0.0.1:6379/" (a password as
 * "redis://user:password@host/"; "rediss://" for TLS, in a library built
 * with the `redis-tls` feature). `namespace_` is NULL (the
 * breaker's name, or "default") or a NUL-terminated UTF-8 name. Redis is
 * contacted now, within its timeouts (by default 100 ms per command, 250 ms
 * to connect; a `cb_builder` sets them and the fault policy); a Redis that
 * is down is not an error: the breaker decides locally, reconnects in the
 * background and re-syncs.
 *
 * Returns `CB_STATUS_OK`; `CB_STATUS_INVALID_ARGUMENT` as `cb_new` does, or
 * when `redis_url` is NULL or either string is not valid UTF-8;
 * `CB_STATUS_STORAGE_ERROR` when `redis_url` is not a Redis URL. `*out` is
 * written only on `CB_STATUS_OK`.
 *
 * # Safety
 *
 * As `cb_new`; `redis_url` is NULL or a NUL-terminated string; `namespace_`
 * is NULL or a NUL-terminated string.
 */
cb_status cb_new_redis(const cb_config *config,
                       const char *redis_url,
                       const char *namespace_,
                       cb_breaker **out);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Shares the state of the breakers this builder makes through the Redis at
 * `redis_url`, under `namespace_`, as `cb_new_redis` does.
 * `CB_STATUS_INVALID_ARGUMENT` when `builder` or `redis_url` is NULL or a
 * string is not valid UTF-8; `CB_STATUS_STORAGE_ERROR` when `redis_url` is
 * not a Redis URL. Nothing is contacted until `cb_builder_build`.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call;
 * `redis_url` and `namespace_` are NULL or NUL-terminated strings.
 */
cb_status cb_builder_set_redis(cb_builder *builder, const char *redis_url, const char *namespace_);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Sets what the breaker decides while Redis is unreachable (default
 * `CB_FAULT_POLICY_LOCAL`). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder
 * or a value outside `cb_fault_policy`, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_fault_policy(cb_builder *builder, cb_fault_policy policy);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Sets the longest one call waits on Redis, in milliseconds (at least 1;
 * default 100). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_command_timeout_ms(cb_builder *builder, uint64_t ms);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Sets the longest opening a connection to Redis may take, in milliseconds
 * (at least 1; default 250). `CB_STATUS_INVALID_ARGUMENT` for a NULL
 * builder or 0.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_connect_timeout_ms(cb_builder *builder, uint64_t ms);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Sets how often the local mirror is refreshed from Redis in case an
 * announcement was lost, in milliseconds (at least 1; default 1000).
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_refresh_interval_ms(cb_builder *builder, uint64_t ms);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Sets the longest wait between attempts to reconnect to Redis, in
 * milliseconds (at least 1; default 1000; the first wait is 10 ms,
 * doubling up to this). `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or 0.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_max_backoff_ms(cb_builder *builder, uint64_t ms);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Makes `cb_builder_build` fail with `CB_STATUS_STORAGE_ERROR` when its
 * first sync with Redis fails, instead of starting degraded (the default:
 * a Redis that is down is a fault, reported, not an error).
 * `CB_STATUS_INVALID_ARGUMENT` for a NULL builder.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_require_reachable(cb_builder *builder);
#endif

#if defined(BREAKERBOX_REDIS)
/**
 * Whether changes are announced and listened for by pub/sub: 1 (the
 * default) or 0, when processes learn of each other's changes only by the
 * periodic refresh. `CB_STATUS_INVALID_ARGUMENT` for a NULL builder or a
 * value other than 0 and 1, and nothing changes.
 *
 * # Safety
 *
 * `builder` is NULL or a live builder not in use by another call.
 */
cb_status cb_builder_set_redis_notifications(cb_builder *builder, uint32_t on);
#endif

/**
 * A static description of `status`; "unknown status" for a value outside
 * `cb_status`. Never NULL; do not free it.
 */
const char *cb_status_str(cb_status status);

/**
 * The library's version, e.g. "0.1.0": static, never NULL. It equals
 * "BREAKERBOX_VERSION_MAJOR.BREAKERBOX_VERSION_MINOR.BREAKERBOX_VERSION_PATCH"
 * when the header and the library match.
 */
const char *cb_version(void);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* BREAKERBOX_H */

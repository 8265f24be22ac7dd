// The C side of the callbacks: each forwards to its exported Go function
// with the cgo.Handle stored behind user_data.
#include "trampoline.h"
#include "_cgo_export.h"

static void state_change(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    (void)breaker;
    breakerboxGoStateChange(((breakerbox_go_callbacks *)user_data)->state_change, from, to);
}

static uint64_t clock_now(void *user_data) {
    return breakerboxGoClock(((breakerbox_go_callbacks *)user_data)->clock);
}

static uint64_t backoff(void *user_data, uint32_t attempt, float last_failure_rate) {
    return breakerboxGoBackoff(((breakerbox_go_callbacks *)user_data)->backoff, attempt, last_failure_rate);
}

cb_state_change_fn breakerbox_go_state_change_trampoline(void) { return state_change; }
cb_clock_fn breakerbox_go_clock_trampoline(void) { return clock_now; }
cb_backoff_fn breakerbox_go_backoff_trampoline(void) { return backoff; }

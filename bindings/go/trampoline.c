// The C side of the state-change callback: forwards to the exported Go
// function with the cgo.Handle stored behind user_data.
#include "breakerbox.h"
#include "_cgo_export.h"

static void trampoline(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to) {
    (void)breaker;
    breakerboxGoStateChange(*(uintptr_t *)user_data, from, to);
}

cb_state_change_fn breakerbox_go_trampoline(void) { return trampoline; }

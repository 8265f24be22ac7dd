// The C side of the Go callbacks, shared by breakerbox.go and trampoline.c.
#ifndef BREAKERBOX_GO_TRAMPOLINE_H
#define BREAKERBOX_GO_TRAMPOLINE_H

#include <stdint.h>
#include "breakerbox.h"

// The cgo.Handles of one breaker's Go functions (0: none), kept in C memory
// because C keeps a pointer to them: every callback's user_data.
typedef struct {
    uintptr_t state_change;
    uintptr_t clock;
    uintptr_t backoff;
} breakerbox_go_callbacks;

cb_state_change_fn breakerbox_go_state_change_trampoline(void);
cb_clock_fn breakerbox_go_clock_trampoline(void);
cb_backoff_fn breakerbox_go_backoff_trampoline(void);

#endif

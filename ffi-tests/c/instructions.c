/*
 * Loops for counting instructions per C ABI call under callgrind, a figure
 * that does not move with the machine's load (see BENCHMARKS.md):
 *
 *   instructions CASE CALLS     CASE: closed_success | open_rejection | empty
 */
#include "breakerbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s closed_success|open_rejection|empty CALLS\n", argv[0]);
        return 2;
    }
    long calls = atol(argv[2]);
    cb_config config = cb_config_default();
    config.reset_timeout_ms = 3600000;
    cb_breaker *b = NULL;
    if (cb_new(&config, &b) != CB_STATUS_OK) {
        return 1;
    }
    volatile unsigned sink = 0;
    if (strcmp(argv[1], "open_rejection") == 0) {
        cb_force_open(b);
    }
    if (strcmp(argv[1], "empty") == 0) {
        for (long i = 0; i < calls; i++) {
            sink += (unsigned)i;
        }
    } else {
        for (long i = 0; i < calls; i++) {
            cb_permit permit;
            cb_status status = cb_try_acquire(b, &permit);
            if (status == CB_STATUS_OK) {
                status = cb_record(b, permit, CB_OUTCOME_SUCCESS);
            }
            sink += status;
        }
    }
    cb_free(b);
    return sink == 12345u ? 3 : 0;
}

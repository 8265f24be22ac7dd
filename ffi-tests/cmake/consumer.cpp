// Built three ways by CMakeLists.txt; each must trip a breaker through the
// C++ wrapper and say so.
#include "breakerbox.hpp"

#include <cstdio>

int main() {
    cb_config config = cb_config_default();
    config.fail_max = 2;
    breakerbox::Breaker breaker(config);
    for (int i = 0; i < 3; i++) {
        if (auto permit = breaker.try_acquire()) {
            permit->failure();
        }
    }
    if (breaker.state() != breakerbox::State::Open) {
        std::puts("FAIL: the breaker did not open");
        return 1;
    }
    std::printf("breakerbox %s: open after 2 failures\n", breakerbox::Breaker::version().data());
    return 0;
}

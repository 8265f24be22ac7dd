/*
 * breakerbox.hpp: a small header-only C++17 RAII wrapper over breakerbox.h.
 *
 *   breakerbox::Breaker breaker(config);          // owns the cb_breaker; movable, not copyable
 *   if (auto permit = breaker.try_acquire()) {    // std::optional<Permit>; empty when rejected
 *       if (call_dependency()) permit->success(); else permit->failure();
 *   }                                             // a permit destroyed unrecorded records a failure
 *
 * Installed beside breakerbox.h by `make install PREFIX=...`; build with
 * `c++ -std=c++17 app.cpp $(pkg-config --cflags --libs breakerbox)` or link
 * the CMake target breakerbox::breakerbox (find_package(breakerbox)).
 *
 * Every rule of breakerbox.h holds: a Breaker may be used from any number of
 * threads at once (its methods are const and thread-safe); moving it keeps
 * the same handle, so permits stay valid; permits must not outlive their
 * Breaker. A state-change function passed to the constructor runs on the
 * thread that made the transition, never nested inside itself (a change it
 * causes is reported after it returns); it must not throw (an exception
 * there ends the program, as it must not unwind through the C library).
 */
#ifndef BREAKERBOX_HPP
#define BREAKERBOX_HPP

#include "breakerbox.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace breakerbox {

/** The three states of a circuit breaker. */
enum class State : std::uint32_t {
    Closed = CB_STATE_CLOSED,
    Open = CB_STATE_OPEN,
    HalfOpen = CB_STATE_HALF_OPEN,
};

/** Whether a breaker acts on its decisions (see cb_mode). */
enum class Mode : std::uint32_t {
    Enforcing = CB_MODE_ENFORCING,
    MetricsOnly = CB_MODE_METRICS_ONLY,
    Disabled = CB_MODE_DISABLED,
};

/** How a call ended. */
enum class Outcome : std::uint32_t {
    Success = CB_OUTCOME_SUCCESS,
    Failure = CB_OUTCOME_FAILURE,
    Ignored = CB_OUTCOME_IGNORED,
};

/** A status other than CB_STATUS_OK where the wrapper cannot return one. */
class Error : public std::runtime_error {
public:
    explicit Error(cb_status status) : std::runtime_error(cb_status_str(status)), status_(status) {}
    cb_status status() const noexcept { return status_; }

private:
    cb_status status_;
};

/** Called as on_state_change(from, to) on every transition. Must not throw. */
using StateChangeFn = std::function<void(State from, State to)>;

/**
 * Leave to run one call. Record it exactly once with success(), failure(),
 * ignore() or record(); destroyed unrecorded, it records a failure (a call
 * that threw or returned early did not succeed). Movable, not copyable.
 */
class Permit {
public:
    Permit(Permit &&other) noexcept
        : breaker_(other.breaker_), permit_(other.permit_), armed_(std::exchange(other.armed_, false)) {}

    Permit &operator=(Permit &&other) noexcept {
        if (this != &other) {
            settle();
            breaker_ = other.breaker_;
            permit_ = other.permit_;
            armed_ = std::exchange(other.armed_, false);
        }
        return *this;
    }

    Permit(const Permit &) = delete;
    Permit &operator=(const Permit &) = delete;

    ~Permit() { settle(); }

    /** Records `outcome`. CB_STATUS_OK, or CB_STATUS_STALE_PERMIT when it was
     *  already recorded or its episode has ended. */
    cb_status record(Outcome outcome) noexcept {
        if (!armed_) {
            return CB_STATUS_STALE_PERMIT;
        }
        armed_ = false;
        return cb_record(breaker_, permit_, static_cast<cb_outcome>(outcome));
    }

    /** Records `outcome` and how long the call took (see cb_record_timed()). */
    cb_status record_timed(Outcome outcome, std::chrono::milliseconds elapsed) noexcept {
        if (!armed_) {
            return CB_STATUS_STALE_PERMIT;
        }
        armed_ = false;
        const auto ms = elapsed.count() < 0 ? 0 : static_cast<std::uint64_t>(elapsed.count());
        return cb_record_timed(breaker_, permit_, static_cast<cb_outcome>(outcome), ms);
    }

    cb_status success() noexcept { return record(Outcome::Success); }
    cb_status failure() noexcept { return record(Outcome::Failure); }
    cb_status ignore() noexcept { return record(Outcome::Ignored); }

    /** Whether this permit still has to be recorded. */
    bool pending() const noexcept { return armed_; }

    /** Gives up the records-failure-when-destroyed guard and returns the raw
     *  permit, to be passed to cb_record() later. */
    cb_permit release() noexcept {
        armed_ = false;
        return permit_;
    }

private:
    friend class Breaker;

    Permit(const cb_breaker *breaker, cb_permit permit) noexcept
        : breaker_(breaker), permit_(permit), armed_(true) {}

    void settle() noexcept {
        if (armed_) {
            armed_ = false;
            (void)cb_record(breaker_, permit_, CB_OUTCOME_FAILURE);
        }
    }

    const cb_breaker *breaker_;
    cb_permit permit_;
    bool armed_;
};

/** Owns one cb_breaker. Movable, not copyable; every method is thread-safe. */
class Breaker {
public:
    /** Makes a breaker from `config` (see cb_config_default()); throws Error
     *  (CB_STATUS_INVALID_ARGUMENT) when cb_new() refuses it. A non-empty
     *  `on_state_change` replaces config.on_state_change/user_data. */
    explicit Breaker(cb_config config = cb_config_default(), StateChangeFn on_state_change = nullptr) {
        if (on_state_change) {
            callback_ = std::make_unique<StateChangeFn>(std::move(on_state_change));
            config.on_state_change = &Breaker::trampoline;
            config.user_data = callback_.get();
        }
        cb_breaker *handle = nullptr;
        const cb_status status = cb_new(&config, &handle);
        if (status != CB_STATUS_OK) {
            throw Error(status);
        }
        handle_ = handle;
    }

    /** Makes a breaker from a builder's settings (windows, backoff, mode,
     *  clock: the cb_builder_set_* functions); the builder stays the
     *  caller's. Throws Error when cb_builder_build() refuses them. */
    explicit Breaker(const cb_builder *builder) {
        cb_breaker *handle = nullptr;
        const cb_status status = cb_builder_build(builder, &handle);
        if (status != CB_STATUS_OK) {
            throw Error(status);
        }
        handle_ = handle;
    }

    Breaker(Breaker &&other) noexcept
        : handle_(std::exchange(other.handle_, nullptr)), callback_(std::move(other.callback_)) {}

    Breaker &operator=(Breaker &&other) noexcept {
        if (this != &other) {
            cb_free(handle_);
            handle_ = std::exchange(other.handle_, nullptr);
            callback_ = std::move(other.callback_);
        }
        return *this;
    }

    Breaker(const Breaker &) = delete;
    Breaker &operator=(const Breaker &) = delete;

    ~Breaker() { cb_free(handle_); }

    /** A permit, or std::nullopt when the breaker rejects the call. */
    std::optional<Permit> try_acquire() const noexcept {
        cb_permit permit;
        if (cb_try_acquire(handle_, &permit) != CB_STATUS_OK) {
            return std::nullopt;
        }
        return Permit(handle_, permit);
    }

    /** As try_acquire(); when rejected, also sets `retry_after` to how long
     *  until a probe may be admitted (std::nullopt when not known; see
     *  cb_try_acquire_retry_after()). Admitted, `retry_after` is left alone. */
    std::optional<Permit> try_acquire(std::optional<std::chrono::milliseconds> &retry_after) const noexcept {
        cb_permit permit;
        std::uint64_t ms = 0;
        if (cb_try_acquire_retry_after(handle_, &permit, &ms) != CB_STATUS_OK) {
            retry_after = to_duration(ms);
            return std::nullopt;
        }
        return Permit(handle_, permit);
    }

    State state() const noexcept { return static_cast<State>(cb_current_state(handle_)); }
    std::uint32_t fail_counter() const noexcept { return cb_fail_counter(handle_); }
    std::uint32_t success_counter() const noexcept { return cb_success_counter(handle_); }
    std::uint32_t probes_in_flight() const noexcept { return cb_probes_in_flight(handle_); }

    /** The window's failure rate in percent; std::nullopt without a window
     *  or below its minimum number of calls. */
    std::optional<float> failure_rate() const noexcept { return to_rate(cb_failure_rate(handle_)); }
    /** The window's slow-call rate in percent; std::nullopt without a window,
     *  without a slow-call duration, or below its minimum number of calls. */
    std::optional<float> slow_call_rate() const noexcept { return to_rate(cb_slow_call_rate(handle_)); }
    /** Calls in the window; std::nullopt without a window. */
    std::optional<std::uint64_t> window_calls() const noexcept {
        const std::uint64_t calls = cb_window_calls(handle_);
        return calls == CB_NO_VALUE ? std::nullopt : std::optional<std::uint64_t>(calls);
    }
    Mode mode() const noexcept { return static_cast<Mode>(cb_current_mode(handle_)); }
    /** How long the current open period lasts; std::nullopt when not open. */
    std::optional<std::chrono::milliseconds> open_for() const noexcept { return to_duration(cb_open_for_ms(handle_)); }

    void force_open() const noexcept { (void)cb_force_open(handle_); }
    void force_half_open() const noexcept { (void)cb_force_half_open(handle_); }
    void force_close() const noexcept { (void)cb_force_close(handle_); }

    cb_status set_fail_max(std::uint32_t value) const noexcept { return cb_set_fail_max(handle_, value); }
    cb_status set_reset_timeout_ms(std::uint64_t value) const noexcept {
        return cb_set_reset_timeout_ms(handle_, value);
    }
    cb_status set_success_threshold(std::uint32_t value) const noexcept {
        return cb_set_success_threshold(handle_, value);
    }
    cb_status set_half_open_max_calls(std::uint32_t value) const noexcept {
        return cb_set_half_open_max_calls(handle_, value);
    }
    cb_status set_probe_lease_ms(std::uint64_t value) const noexcept {
        return cb_set_probe_lease_ms(handle_, value);
    }

    /** The name; lives as long as this breaker. */
    std::string_view name() const noexcept { return cb_name(handle_); }

    /** The library's version. */
    static std::string_view version() noexcept { return cb_version(); }

    /** The handle, still owned by this Breaker (NULL once moved from). */
    const cb_breaker *get() const noexcept { return handle_; }

private:
    static std::optional<float> to_rate(float rate) noexcept {
        return rate < 0.0f ? std::nullopt : std::optional<float>(rate);
    }

    static std::optional<std::chrono::milliseconds> to_duration(std::uint64_t ms) noexcept {
        using rep = std::chrono::milliseconds::rep;
        if (ms == CB_NO_VALUE || ms > static_cast<std::uint64_t>(std::chrono::milliseconds::max().count())) {
            return std::nullopt;
        }
        return std::chrono::milliseconds(static_cast<rep>(ms));
    }

    static void trampoline(void *user_data, const cb_breaker *, cb_state from, cb_state to) noexcept {
        (*static_cast<StateChangeFn *>(user_data))(static_cast<State>(from), static_cast<State>(to));
    }

    cb_breaker *handle_ = nullptr;
    // Heap-allocated so its address, given to the library as user_data,
    // survives moves of the Breaker.
    std::unique_ptr<StateChangeFn> callback_;
};

}  // namespace breakerbox

#endif  // BREAKERBOX_HPP

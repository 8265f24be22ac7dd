//! The committed C header against the crate: its version matches Cargo.toml,
//! and every function of the C ABI is declared with its contract signature.

use std::ffi::CStr;
use std::path::Path;

fn header() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/breakerbox.h");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The header with every run of whitespace made one space.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn header_version_matches_cargo_toml() {
    let header = header();
    for (name, value) in [
        ("BREAKERBOX_VERSION_MAJOR", env!("CARGO_PKG_VERSION_MAJOR")),
        ("BREAKERBOX_VERSION_MINOR", env!("CARGO_PKG_VERSION_MINOR")),
        ("BREAKERBOX_VERSION_PATCH", env!("CARGO_PKG_VERSION_PATCH")),
    ] {
        let define = format!("#define {name} {value}\n");
        assert!(
            header.contains(&define),
            "include/breakerbox.h lacks `{}`: update the constants in ffi/src/lib.rs to the crate version and regenerate the header",
            define.trim()
        );
    }
}

#[test]
fn cb_version_is_the_crate_version() {
    // SAFETY: cb_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(breakerbox_ffi::cb_version()) };
    assert_eq!(version.to_str(), Ok(env!("CARGO_PKG_VERSION")));
}

#[test]
fn header_declares_the_whole_abi() {
    let header = normalized(&header());
    let contract = [
        "typedef struct cb_breaker cb_breaker;",
        "typedef struct { /** * The token; copy it, never compute it. */ uint64_t bits; } cb_permit;",
        "CB_STATE_CLOSED = 0,",
        "CB_STATE_OPEN = 1,",
        "CB_STATE_HALF_OPEN = 2,",
        "CB_OUTCOME_SUCCESS = 0,",
        "CB_OUTCOME_FAILURE = 1,",
        "CB_OUTCOME_IGNORED = 2,",
        "CB_STATUS_OK = 0,",
        "CB_STATUS_REJECTED = 1,",
        "CB_STATUS_STALE_PERMIT = 2,",
        "CB_STATUS_INVALID_ARGUMENT = 3,",
        "CB_STATUS_PANIC = 4,",
        "CB_STATUS_STORAGE_ERROR = 5,",
        "typedef void (*cb_state_change_fn)(void *user_data, const cb_breaker *breaker, cb_state from, cb_state to);",
        "uint32_t fail_max;",
        "uint64_t reset_timeout_ms;",
        "uint32_t success_threshold;",
        "uint32_t half_open_max_calls;",
        "const char *name;",
        "cb_state_change_fn on_state_change;",
        "void *user_data; } cb_config;",
        "cb_config cb_config_default(void);",
        "cb_status cb_new(const cb_config *config, cb_breaker **out);",
        "void cb_free(cb_breaker *breaker);",
        "cb_status cb_try_acquire(const cb_breaker *breaker, cb_permit *out_permit);",
        "cb_status cb_record(const cb_breaker *breaker, cb_permit permit, cb_outcome outcome);",
        "cb_state cb_current_state(const cb_breaker *breaker);",
        "uint32_t cb_fail_counter(const cb_breaker *breaker);",
        "uint32_t cb_success_counter(const cb_breaker *breaker);",
        "cb_status cb_force_open(const cb_breaker *breaker);",
        "cb_status cb_force_half_open(const cb_breaker *breaker);",
        "cb_status cb_force_close(const cb_breaker *breaker);",
        "cb_status cb_set_fail_max(const cb_breaker *breaker, uint32_t fail_max);",
        "cb_status cb_set_reset_timeout_ms(const cb_breaker *breaker, uint64_t reset_timeout_ms);",
        "cb_status cb_set_success_threshold(const cb_breaker *breaker, uint32_t success_threshold);",
        "cb_status cb_set_half_open_max_calls(const cb_breaker *breaker, uint32_t half_open_max_calls);",
        "const char *cb_name(const cb_breaker *breaker);",
        "const char *cb_status_str(cb_status status);",
        "const char *cb_version(void);",
        "typedef struct cb_builder cb_builder;",
        "typedef void (*cb_storage_error_fn)(void *user_data, const cb_breaker *breaker, const char *message);",
        "cb_status cb_builder_new(const cb_config *config, cb_builder **out);",
        "void cb_builder_free(cb_builder *builder);",
        "cb_status cb_builder_set_probe_lease_ms(cb_builder *builder, uint64_t probe_lease_ms);",
        "cb_status cb_builder_set_on_storage_error(cb_builder *builder, cb_storage_error_fn on_storage_error, void *user_data);",
        "cb_status cb_builder_build(const cb_builder *builder, cb_breaker **out);",
        "cb_status cb_builder_set_half_open_rule(cb_builder *builder, cb_half_open_rule rule);",
        "cb_status cb_new_redis(const cb_config *config, const char *redis_url, const char *namespace_, cb_breaker **out);",
        "cb_status cb_builder_set_redis(cb_builder *builder, const char *redis_url, const char *namespace_);",
        "cb_status cb_builder_set_redis_fault_policy(cb_builder *builder, cb_fault_policy policy);",
        "cb_status cb_builder_set_redis_command_timeout_ms(cb_builder *builder, uint64_t ms);",
        "cb_status cb_builder_set_redis_connect_timeout_ms(cb_builder *builder, uint64_t ms);",
        "cb_status cb_builder_set_redis_refresh_interval_ms(cb_builder *builder, uint64_t ms);",
        "cb_status cb_builder_set_redis_max_backoff_ms(cb_builder *builder, uint64_t ms);",
        "cb_status cb_builder_set_redis_require_reachable(cb_builder *builder);",
        "cb_status cb_builder_set_redis_notifications(cb_builder *builder, uint32_t on);",
        "cb_status cb_builder_set_redis_cluster(cb_builder *builder, const char *const *nodes, size_t nodes_len, const char *namespace_);",
        "#define CB_RATE_NONE -1.0",
        "#define CB_NO_VALUE UINT64_MAX",
        "CB_MODE_ENFORCING = 0,",
        "CB_MODE_METRICS_ONLY = 1,",
        "CB_MODE_DISABLED = 2,",
        "CB_JITTER_NONE = 0,",
        "CB_JITTER_FULL = 1,",
        "CB_JITTER_EQUAL = 2,",
        "typedef uint64_t (*cb_clock_fn)(void *user_data);",
        "typedef uint64_t (*cb_backoff_fn)(void *user_data, uint32_t attempt, float last_failure_rate);",
        "cb_permit permit;",
        "uint64_t started_ms; } cb_timed_permit;",
        "uint32_t shared;",
        "uint32_t reachable;",
        "uint64_t for_ms;",
        "size_t last_error_len; } cb_storage_health;",
        "cb_status cb_builder_set_clock(cb_builder *builder, cb_clock_fn now_ms, void *user_data);",
        "cb_status cb_builder_set_count_window(cb_builder *builder, uint32_t size);",
        "cb_status cb_builder_set_time_window_ms(cb_builder *builder, uint64_t duration_ms);",
        "cb_status cb_builder_set_window_buckets(cb_builder *builder, uint32_t buckets);",
        "cb_status cb_builder_set_failure_rate_threshold(cb_builder *builder, float percent);",
        "cb_status cb_builder_set_minimum_calls(cb_builder *builder, uint32_t calls);",
        "cb_status cb_builder_set_slow_call_duration_ms(cb_builder *builder, uint64_t duration_ms);",
        "cb_status cb_builder_set_slow_call_rate_threshold(cb_builder *builder, float percent);",
        "cb_status cb_builder_set_mode(cb_builder *builder, cb_mode mode);",
        "cb_status cb_builder_set_open_backoff_exponential(cb_builder *builder, double multiplier, uint64_t cap_ms, cb_jitter jitter);",
        "cb_status cb_builder_set_open_backoff_custom(cb_builder *builder, cb_backoff_fn backoff, void *user_data);",
        "cb_status cb_try_acquire_retry_after(const cb_breaker *breaker, cb_permit *out_permit, uint64_t *out_retry_after_ms);",
        "cb_status cb_record_timed(const cb_breaker *breaker, cb_permit permit, cb_outcome outcome, uint64_t elapsed_ms);",
        "cb_status cb_try_acquire_timed(const cb_breaker *breaker, cb_timed_permit *out);",
        "cb_status cb_record_timed_permit(const cb_breaker *breaker, cb_timed_permit timed, cb_outcome outcome);",
        "float cb_failure_rate(const cb_breaker *breaker);",
        "float cb_slow_call_rate(const cb_breaker *breaker);",
        "uint64_t cb_window_calls(const cb_breaker *breaker);",
        "cb_mode cb_current_mode(const cb_breaker *breaker);",
        "uint64_t cb_open_for_ms(const cb_breaker *breaker);",
        "cb_status cb_get_storage_health(const cb_breaker *breaker, cb_storage_health *out, char *error_buf, size_t error_buf_len);",
    ];
    let missing: Vec<_> = contract.iter().filter(|decl| !header.contains(*decl)).collect();
    assert!(missing.is_empty(), "include/breakerbox.h lacks: {missing:#?}");
}

#[test]
fn header_starts_with_the_ownership_and_threading_rules() {
    let header = header();
    let guard = header.find("#ifndef BREAKERBOX_H").expect("include guard");
    let preamble = &header[..guard];
    for rule in [
        "cb_free(NULL) is a no-op",
        "Out-parameters are written only when the call returns CB_STATUS_OK",
        "cb_name()'s string lives as long as the breaker",
        "Every function taking `const cb_breaker *` is thread-safe",
        "runs on the thread whose call made the",
        "except cb_free()",
        "RECORDING TWICE",
        "ABI STABILITY",
        "Callbacks never nest on one breaker",
        "aborts the process at the",
        "Rust 1.81 or",
        "soname libbreakerbox.so.0",
        "cb_config never grows",
        "cb_try_acquire_retry_after()'s retry-after, is",
        "must not call the library on the breaker that",
    ] {
        assert!(preamble.contains(rule), "the header's preamble lacks {rule:?}");
    }
}

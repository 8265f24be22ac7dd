//! What plugs a breaker into the rest of a program: async calls, the
//! registry, and the optional tower, metrics, tracing and LLM adapters. They
//! use the breaker's public API; nothing below imports them.

pub mod future;
#[cfg(feature = "llm")]
pub mod llm;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod registry;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "tracing")]
pub mod tracing;

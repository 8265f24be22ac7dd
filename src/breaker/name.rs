//! Breaker names, interned: a rejection carries its breaker's name as one
//! thin `&'static` pointer, so naming it costs no allocation and no shared
//! write, and `Rejected` stays two words.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// How an unnamed breaker reads in messages and listener lines.
pub(crate) const UNNAMED: &str = "<unnamed>";

/// A breaker's name, stored once for the life of the process.
#[derive(PartialEq, Eq)]
pub(crate) struct Name(&'static str);

/// The name of every unnamed breaker.
static NO_NAME: Name = Name("");

/// Every name a breaker was built with, each stored once: a breaker built
/// again under a name already seen (a registry's re-created breaker) adds
/// nothing.
static NAMES: Mutex<BTreeMap<&'static str, &'static Name>> = Mutex::new(BTreeMap::new());

impl Name {
    /// The process-wide copy of `name`. Taken once per breaker built.
    pub(crate) fn intern(name: String) -> &'static Name {
        if name.is_empty() {
            return &NO_NAME;
        }
        // The map is never left half-updated, so a poisoned lock is still sound.
        let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&interned) = names.get(name.as_str()) {
            return interned;
        }
        let text: &'static str = Box::leak(name.into_boxed_str());
        let interned: &'static Name = Box::leak(Box::new(Name(text)));
        names.insert(text, interned);
        interned
    }

    /// The name ("" when unnamed).
    pub(crate) fn as_str(&self) -> &'static str {
        self.0
    }

    /// The name, or [`UNNAMED`] when it is empty.
    pub(crate) fn display(&self) -> &'static str {
        match self.0 {
            "" => UNNAMED,
            name => name,
        }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display().fmt(f)
    }
}

//! The tracing listener against a capturing subscriber.

use breakerbox::clock::ManualClock;
use breakerbox::tracing::{TracingListener, TARGET};
use breakerbox::{CircuitBreaker, State};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

#[derive(Debug, Clone, PartialEq)]
struct Captured {
    level: Level,
    target: String,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct Fields<'a>(&'a mut Vec<(String, String)>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
}

fn capture(f: impl FnOnce()) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, f);
    let events = capture.0.lock().unwrap().clone();
    events
}

#[test]
fn every_transition_and_rejection_is_an_event_naming_the_breaker() {
    let clock = ManualClock::new();
    let events = capture(|| {
        let b = CircuitBreaker::builder()
            .name("inventory")
            .fail_max(1)
            .reset_timeout(Duration::from_secs(1))
            .clock(clock.clone())
            .listener(TracingListener::new())
            .build()
            .unwrap();
        b.call(|| Ok::<_, &str>(())).unwrap(); // no event: nothing changed
        let _ = b.call(|| Err::<(), _>("down")); // closed -> open
        assert!(b.call(|| Ok::<_, &str>(())).unwrap_err().is_rejected());
        assert!(b.call(|| Ok::<_, &str>(())).unwrap_err().is_rejected());
        clock.advance(Duration::from_secs(1));
        b.call(|| Ok::<_, &str>(())).unwrap(); // open -> half-open -> closed
        assert_eq!(b.state(), State::Closed);
    });

    let summary: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.level,
                e.field("from").map(str::to_owned),
                e.field("to").or(e.field("state")).map(str::to_owned),
            )
        })
        .collect();
    let s = |v: &str| Some(v.to_owned());
    assert_eq!(
        summary,
        vec![
            (Level::WARN, s("closed"), s("open")),
            (Level::DEBUG, None, s("open")),
            (Level::DEBUG, None, s("open")),
            (Level::INFO, s("open"), s("half-open")),
            (Level::INFO, s("half-open"), s("closed")),
        ]
    );
    for e in &events {
        assert_eq!(e.target, TARGET);
        assert_eq!(e.field("breaker"), Some("inventory"), "{e:?}");
        assert!(e.field("message").is_some());
    }
}

#[test]
fn rejection_level_is_configurable() {
    let events = capture(|| {
        let b = CircuitBreaker::builder()
            .name("quota")
            .listener(TracingListener::new().rejection_level(Level::ERROR))
            .build()
            .unwrap();
        b.open();
        assert!(b.try_acquire().is_err());
    });
    assert_eq!(events.len(), 2);
    assert_eq!(events[1].level, Level::ERROR);
    assert_eq!(events[1].field("state"), Some("open"));
    assert_eq!(events[1].field("breaker"), Some("quota"));
}

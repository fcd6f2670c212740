//! The idle lock: after [`IDLE_LOCK_MINUTES`] without keyboard, mouse or touch activity, every key
//! and decrypted record is dropped (logout's local part, without calling the server) and the lock
//! screen asks for the password again.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;

use crate::state::AppState;

/// Minutes without activity before the keys are dropped.
pub const IDLE_LOCK_MINUTES: u32 = 10;

/// `localStorage` key of a shorter timeout, in seconds (for tests and demonstrations; not
/// sensitive). It can only shorten the lock, never lengthen it past [`IDLE_LOCK_MINUTES`].
pub const IDLE_LOCK_STORAGE_KEY: &str = "ov_idle_lock_seconds";

/// What counts as the user being there.
const ACTIVITY_EVENTS: [&str; 6] = [
    "keydown",
    "mousedown",
    "mousemove",
    "pointerdown",
    "touchstart",
    "wheel",
];

/// How often the timer looks at the clock.
const TICK: Duration = Duration::from_secs(1);

/// The timeout in milliseconds: the stored number of seconds if present and valid, else the
/// default. Read on every tick, so changing it takes effect without a reload.
pub fn timeout_ms() -> f64 {
    let default = f64::from(IDLE_LOCK_MINUTES) * 60_000.0;
    web_sys::window()
        .and_then(|w| w.local_storage().ok().flatten())
        .and_then(|s| s.get_item(IDLE_LOCK_STORAGE_KEY).ok().flatten())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(|s| (s * 1000.0).min(default))
        .unwrap_or(default)
}

/// The page the user is on: path, query and fragment.
fn here() -> String {
    web_sys::window()
        .map(|w| {
            let l = w.location();
            format!(
                "{}{}{}",
                l.pathname().unwrap_or_default(),
                l.search().unwrap_or_default(),
                l.hash().unwrap_or_default()
            )
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/clinics".into())
}

/// Starts watching for activity, for the life of the app. The clock starts again whenever
/// someone logs in (Argon2id and loading take a while without any input).
pub fn watch(app: AppState) {
    let last_activity = Rc::new(Cell::new(js_sys::Date::now()));
    for name in ACTIVITY_EVENTS {
        let last = last_activity.clone();
        // Kept for the life of the page: the handle is never removed.
        let _ = window_event_listener_untyped(name, move |_| last.set(js_sys::Date::now()));
    }
    let signed_in_before = Cell::new(false);
    set_interval(
        move || {
            let signed_in = app.session.with_untracked(Option::is_some);
            let now = js_sys::Date::now();
            if !signed_in {
                signed_in_before.set(false);
                return;
            }
            if !signed_in_before.replace(true) {
                last_activity.set(now);
                return;
            }
            if now - last_activity.get() >= timeout_ms() {
                app.idle_lock(here());
            }
        },
        TICK,
    );
}

/// The timeout in words, for the lock screen ("10 minutes").
pub fn timeout_text() -> String {
    let secs = (timeout_ms() / 1000.0).round() as u64;
    match secs {
        s if s % 60 == 0 && s >= 60 => {
            let m = s / 60;
            format!("{m} minute{}", if m == 1 { "" } else { "s" })
        }
        s => format!("{s} second{}", if s == 1 { "" } else { "s" }),
    }
}

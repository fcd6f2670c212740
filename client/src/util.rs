//! Small browser helpers.

use gloo_timers::future::TimeoutFuture;

/// Gives the browser a moment to paint (a spinner, a progress bar) before the page runs something
/// long on the main thread, such as Argon2id.
pub async fn let_browser_paint() {
    TimeoutFuture::new(30).await;
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Today's date in the browser's time zone, as `YYYY-MM-DD`.
pub fn today() -> String {
    let d = js_sys::Date::new_0();
    format!(
        "{:04}-{:02}-{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date()
    )
}

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

/// Now, in seconds since the Unix epoch (the wire's time unit).
pub fn now() -> optovault_shared::UnixTime {
    (js_sys::Date::now() / 1000.0) as optovault_shared::UnixTime
}

/// The start of a `YYYY-MM-DD` day in the browser's time zone, in Unix seconds.
pub fn local_midnight(date: &str) -> Option<optovault_shared::UnixTime> {
    let mut parts = date.trim().splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let t = js_sys::Date::new_with_year_month_day(y as u32, m - 1, d).get_time();
    (!t.is_nan()).then(|| (t / 1000.0) as optovault_shared::UnixTime)
}

/// A Unix time as the browser's local date and time, `YYYY-MM-DD HH:MM`.
pub fn local_time(t: optovault_shared::UnixTime) -> String {
    let d = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(t as f64 * 1000.0));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes()
    )
}

/// The page's origin, e.g. `https://vault.example.org`.
pub fn origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

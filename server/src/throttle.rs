//! Brute-force defence for logins: every login attempt counts against its username and its
//! client address until a login succeeds; past a threshold each further attempt must wait twice
//! as long as the one before (capped). Counting *started* attempts, not only reported failures,
//! means a client that never finishes (or never reports a wrong password) is slowed down too.
//! Usernames are counted whether or not the account exists, so the lockout reveals nothing.
//! State lives in the store, so several server processes share it.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use optovault_shared::UnixTime;

use crate::error::{ApiError, ApiResult};
use crate::store::ThrottleRow;
use crate::AppState;

/// Attempts per username before backoff starts.
pub const USER_FREE_ATTEMPTS: u32 = 5;
/// Attempts per client address before backoff starts (a clinic's staff may share one address).
pub const ADDRESS_FREE_ATTEMPTS: u32 = 50;
/// The longest wait, in seconds.
pub const MAX_BACKOFF_SECS: i64 = 15 * 60;

/// The row after one more attempt at `now`: past `free` attempts, a wait of
/// 2^(attempts - free) seconds (2, 4, 8, …; at least 2 because times are whole seconds), capped.
pub fn after_attempt(row: Option<ThrottleRow>, now: UnixTime, free: u32) -> ThrottleRow {
    let attempts = row.map(|r| r.attempts).unwrap_or(0).saturating_add(1);
    let locked_until = if attempts > free {
        let exp = (attempts - free - 1).min(20);
        now + (2i64 << exp).min(MAX_BACKOFF_SECS)
    } else {
        0
    };
    ThrottleRow {
        attempts,
        last_attempt: now,
        locked_until,
    }
}

pub fn user_key(username: &str) -> String {
    format!("user:{username}")
}

pub fn address_key(ip: &str) -> String {
    format!("ip:{ip}")
}

/// 429 with a Retry-After header and a message saying when to try again.
#[derive(Debug)]
pub struct TooManyAttempts {
    pub retry_after: i64,
}

impl IntoResponse for TooManyAttempts {
    fn into_response(self) -> Response {
        let secs = self.retry_after.max(1);
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("Too many login attempts. Try again in {secs} seconds."),
        )
        .into_response();
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from(secs as u64));
        resp
    }
}

/// Refuses the attempt if the username or the address is waiting out a backoff; otherwise
/// counts it against both.
pub async fn admit_attempt(
    state: &AppState,
    username: &str,
    ip: Option<&str>,
    now: UnixTime,
) -> ApiResult<Result<(), TooManyAttempts>> {
    let mut keys = vec![(user_key(username), USER_FREE_ATTEMPTS)];
    if let Some(ip) = ip {
        keys.push((address_key(ip), ADDRESS_FREE_ATTEMPTS));
    }
    for (key, _) in &keys {
        if let Some(row) = state.store.throttle(key).await? {
            if row.locked_until > now {
                return Ok(Err(TooManyAttempts {
                    retry_after: row.locked_until - now,
                }));
            }
        }
    }
    for (key, free) in keys {
        state
            .store
            .update_throttle(
                &key,
                Box::new(move |row| Some(after_attempt(row, now, free))),
            )
            .await?;
    }
    Ok(Ok(()))
}

/// A successful login clears the username's count and the address's.
pub async fn succeeded(state: &AppState, username: &str, ip: Option<&str>) -> ApiResult<()> {
    state
        .store
        .update_throttle(&user_key(username), Box::new(|_| None))
        .await?;
    if let Some(ip) = ip {
        state
            .store
            .update_throttle(&address_key(ip), Box::new(|_| None))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_after_the_free_attempts_and_is_capped() {
        let mut row = None;
        let mut waits = Vec::new();
        for _ in 0..30 {
            let r = after_attempt(row, 1000, 5);
            waits.push((r.locked_until - 1000).max(0));
            row = Some(r);
        }
        assert_eq!(&waits[..5], &[0, 0, 0, 0, 0]);
        assert_eq!(&waits[5..10], &[2, 4, 8, 16, 32]);
        assert_eq!(*waits.last().unwrap(), MAX_BACKOFF_SECS);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}

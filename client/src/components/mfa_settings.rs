//! The account page's second-factor section: set up an authenticator (QR code of the
//! `otpauth://` URI, drawn here as SVG, plus the secret as text), confirm it with a first code,
//! show the recovery codes once; when on, how many recovery codes are left and turning it off.

use base64::Engine;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{MfaStatus, TotpCode, TotpDisableRequest, TotpEnrollment};

use crate::api;
use crate::components::passkey_settings::PasskeySettings;
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::use_app;

/// The QR code of `text` as an SVG `data:` URL (the CSP allows `img-src data:`).
pub fn qr_data_url(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(svg)
    ))
}

/// The secret in groups of four, easier to type into an app.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn digits(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[component]
pub fn MfaSettings() -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let status = RwSignal::new(None::<MfaStatus>);
    let enrollment = RwSignal::new(None::<TotpEnrollment>);
    let recovery_codes = RwSignal::new(None::<Vec<String>>);
    let confirm_code = RwSignal::new(String::new());
    let disable_code = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let note = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);

    let reload = {
        let navigate = navigate.clone();
        move || {
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::mfa_status().await {
                    Ok(s) => status.set(Some(s)),
                    Err(e) => report_error(app, &navigate, error, e),
                }
            });
        }
    };
    reload();
    let reload_for_passkeys = reload.clone();

    let enroll = {
        let navigate = navigate.clone();
        move |_| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            note.set(None);
            recovery_codes.set(None);
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::totp_enroll().await {
                    Ok(e) => enrollment.set(Some(e)),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let confirm = {
        let (navigate, reload) = (navigate.clone(), reload.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let code = digits(&confirm_code.get_untracked());
            if code.is_empty() {
                error.set(Some("Enter the 6-digit code your app shows.".into()));
                return;
            }
            busy.set(true);
            error.set(None);
            let (navigate, reload) = (navigate.clone(), reload.clone());
            spawn_local(async move {
                match api::totp_confirm(&TotpCode { code }).await {
                    Ok(codes) => {
                        enrollment.set(None);
                        confirm_code.set(String::new());
                        recovery_codes.set(Some(codes.codes));
                        reload();
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let disable = {
        let (navigate, reload) = (navigate.clone(), reload.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let entered = digits(&disable_code.get_untracked());
            if entered.is_empty() {
                error.set(Some(
                    "Enter a code from your app or one of your recovery codes.".into(),
                ));
                return;
            }
            // Six digits are an app code; anything else is taken as a recovery code.
            let body = if entered.len() == 6 && entered.chars().all(|c| c.is_ascii_digit()) {
                TotpDisableRequest {
                    code: Some(entered),
                    recovery_code: None,
                }
            } else {
                TotpDisableRequest {
                    code: None,
                    recovery_code: Some(entered),
                }
            };
            busy.set(true);
            error.set(None);
            note.set(None);
            let (navigate, reload) = (navigate.clone(), reload.clone());
            spawn_local(async move {
                match api::totp_disable(&body).await {
                    Ok(()) => {
                        disable_code.set(String::new());
                        recovery_codes.set(None);
                        note.set(Some("The authenticator is off."));
                        reload();
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    view! {
        <section id="mfa" class="card account-mfa" aria-labelledby="mfa-title">
            <h2 id="mfa-title">"Second factor"</h2>
            <p class="help">
                "With a second factor, logging in needs a passkey or a 6-digit code from an \
                 authenticator app as well as your password."
            </p>
            {move || error.get().map(|e| view! { <p id="mfa-settings-error" class="error" role="alert">{e}</p> })}
            {move || note.get().map(|n| view! { <p id="mfa-note" class="notice" role="status">{n}</p> })}
            {move || recovery_codes.get().map(|codes| view! {
                <div class="recovery-codes-box">
                    <h3>"Your recovery codes"</h3>
                    <p class="notice" role="status">
                        "Print these or store them somewhere safe now: they are shown only once, and \
                         any earlier codes no longer work. Each works once, in place of a passkey or \
                         a code from your app."
                    </p>
                    <ol id="recovery-codes" class="recovery-codes">
                        {codes.into_iter().map(|c| view! { <li class="recovery-code"><code>{c}</code></li> }).collect_view()}
                    </ol>
                </div>
            })}
            {
                let (enroll, confirm, disable) = (enroll.clone(), confirm.clone(), disable.clone());
                move || {
                    let (enroll, confirm, disable) = (enroll.clone(), confirm.clone(), disable.clone());
                    match (status.get(), enrollment.get()) {
                        (None, _) => view! { <Spinner label="Loading…" /> }.into_any(),
                        (Some(s), _) if s.totp_enabled => view! {
                            <p id="mfa-status" class="mfa-on">
                                {format!(
                                    "Authenticator on, {} recovery code{} left",
                                    s.recovery_codes_left,
                                    if s.recovery_codes_left == 1 { "" } else { "s" }
                                )}
                            </p>
                            <form id="mfa-disable-form" class="inline-form" on:submit=disable novalidate>
                                <div class="field">
                                    <label for="mfa-disable-code">"To turn it off, a code from your app or a recovery code"</label>
                                    <input id="mfa-disable-code" type="text" autocomplete="one-time-code"
                                        autocapitalize="none" spellcheck="false" bind:value=disable_code />
                                </div>
                                <button id="mfa-disable" type="submit" class="button danger"
                                    disabled=move || busy.get()>"Turn off"</button>
                            </form>
                        }.into_any(),
                        (Some(_), Some(e)) => {
                            let qr = qr_data_url(&e.otpauth_uri);
                            view! {
                                <div class="mfa-enrollment">
                                    <p>"Scan this code with your authenticator app, or type the secret below."</p>
                                    {qr.map(|src| view! {
                                        <img id="mfa-qr" class="mfa-qr" src=src width="200" height="200"
                                            alt="QR code of your authenticator secret" />
                                    })}
                                    <p>"Secret: " <code id="mfa-secret" class="mfa-secret">{grouped(&e.secret_base32)}</code></p>
                                    <form id="mfa-confirm-form" class="inline-form" on:submit=confirm novalidate>
                                        <div class="field">
                                            <label for="mfa-confirm-code">"The code your app shows now"</label>
                                            <input id="mfa-confirm-code" type="text" inputmode="numeric"
                                                autocomplete="one-time-code" maxlength="10" bind:value=confirm_code />
                                        </div>
                                        <button id="mfa-confirm" type="submit" class="button primary"
                                            disabled=move || busy.get()>"Turn on"</button>
                                    </form>
                                </div>
                            }.into_any()
                        }
                        (Some(_), None) => view! {
                            <p id="mfa-status" class="mfa-off">"Authenticator app off."</p>
                            <button id="mfa-enroll" type="button" class="button primary"
                                on:click=enroll disabled=move || busy.get()>
                                "Set up an authenticator"
                            </button>
                        }.into_any(),
                    }
                }
            }
            <PasskeySettings status=status recovery_codes=recovery_codes on_change=Callback::new(move |()| reload_for_passkeys())/>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_an_svg_data_url() {
        let url =
            qr_data_url("otpauth://totp/OptoVault:me?secret=JBSWY3DPEHPK3PXP&issuer=OptoVault")
                .unwrap();
        let b64 = url.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
    }

    #[test]
    fn secrets_are_grouped_by_four() {
        assert_eq!(grouped("JBSWY3DPEHPK3PXP"), "JBSW Y3DP EHPK 3PXP");
        assert_eq!(grouped("ABCDEF"), "ABCD EF");
        assert_eq!(digits(" 123 456 "), "123456");
    }
}

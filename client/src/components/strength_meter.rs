use leptos::prelude::*;
use optovault_shared::password::Strength;

fn describe(score: u8) -> &'static str {
    match score {
        0 => "Very weak",
        1 => "Weak",
        2 => "Fair",
        3 => "Strong",
        _ => "Very strong",
    }
}

/// The live password verdict: a four-segment bar for the zxcvbn score (0 to 4) and what is wrong.
#[component]
pub fn StrengthMeter(
    #[prop(into)] strength: Signal<Strength>,
    /// Whether anything has been typed yet (no verdict on an empty field).
    #[prop(into)]
    typed: Signal<bool>,
) -> impl IntoView {
    let score = move || strength.with(|s| s.score);
    view! {
        <div class="strength-wrap">
            <div
                id="strength"
                class="strength"
                data-score=move || score().to_string()
                role="meter"
                aria-label="Password strength"
                aria-valuemin="0"
                aria-valuemax="4"
                aria-valuenow=move || score().to_string()
                aria-valuetext=move || describe(score())
            >
                <span class="seg"></span>
                <span class="seg"></span>
                <span class="seg"></span>
                <span class="seg"></span>
            </div>
            <Show when=move || typed.get()>
                <p class="strength-label">
                    "Strength: " {move || describe(score())}
                    {move || strength.with(|s| s.acceptable).then_some(" — acceptable")}
                </p>
                <ul class="problems" id="password-problems" aria-live="polite">
                    {move || {
                        strength
                            .with(|s| {
                                s.problems
                                    .iter()
                                    .map(|p| view! { <li>{p.clone()}</li> })
                                    .collect_view()
                            })
                    }}
                </ul>
            </Show>
        </div>
    }
}

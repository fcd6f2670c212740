use leptos::prelude::*;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <main class="page narrow">
            <h1>"Page not found"</h1>
            <p>
                <a href="/clinics">"Go to your clinics"</a>
            </p>
        </main>
    }
}

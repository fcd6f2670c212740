//! "Who opened this chart", on a patient's page, for the clinic's owners: the `chart_read`
//! entries of the audit log naming this chart, newest first, with names from the verified roster.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use uuid::Uuid;

use crate::api;
use crate::state::{use_app, Unlocked};
use crate::util::local_time;

/// Most views listed.
const SHOWN: usize = 20;

#[component]
pub fn ChartViewers(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    #[prop(into)] ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let views = RwSignal::new(None::<Result<Vec<(String, i64)>, String>>);
    let me_id = me.account_id;
    let owner = Memo::new(move |_| {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.is_owner(&me_id))
    });
    Effect::new(move |started: Option<bool>| {
        if started == Some(true) || !owner.get() || !ready.get() {
            return started.unwrap_or(false);
        }
        spawn_local(async move {
            let filter = format!("&target={chart_id}&action=chart_read");
            let mut found = Vec::new();
            let mut since = 0;
            // A filtered page examines a bounded stretch of the log; read on to its end.
            let result = loop {
                match api::audit_page(clinic_id, since, 1000, &filter).await {
                    Ok(page) => {
                        found.extend(page.entries);
                        if !page.more {
                            break Ok(());
                        }
                        since = page.cursor;
                    }
                    Err(e) => break Err(e.message),
                }
            };
            let clinic = app.clinic(&clinic_id);
            views.set(Some(result.map(|()| {
                found
                    .iter()
                    .rev()
                    .take(SHOWN)
                    .map(|e| {
                        let who = e
                            .actor
                            .and_then(|a| clinic.as_ref().and_then(|c| c.author(&a)))
                            .map(|a| a.username().to_string())
                            .unwrap_or_else(|| "unknown".into());
                        (who, e.at)
                    })
                    .collect()
            })));
        });
        true
    });
    move || {
        owner.get().then(|| {
            view! {
                <section id="chart-viewers" class="card">
                    <h2>"Who opened this chart"</h2>
                    {move || match views.get() {
                        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                        Some(Err(why)) => view! { <p class="error">{why}</p> }.into_any(),
                        Some(Ok(v)) if v.is_empty() => view! { <p class="muted">"No one has opened it yet."</p> }.into_any(),
                        Some(Ok(v)) => view! {
                            <ul class="chart-viewers">
                                {v.into_iter().map(|(who, at)| view! { <li class="chart-viewer">{who}" — "{local_time(at)}</li> }).collect_view()}
                            </ul>
                        }.into_any(),
                    }}
                </section>
            }
        })
    }
}

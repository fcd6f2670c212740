//! Restricted charts: a chart whose records only its care team may fetch, sealed under the
//! chart's own keys, which are wrapped only to the care team. Everyone else in the clinic learns
//! at most that a restricted chart exists.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use optovault_shared::wire::{
    BatchWriteResponse, CareTeamRequest, ChartErased, EraseChartRequest, RestrictChartRequest,
    RestrictedChart, RestrictedChartList, Role, WrappedKey, WriteResult,
};
use optovault_shared::{limits, Compartment};
use uuid::Uuid;

use crate::clinics::{clinic_event, require_member, wrapped_key_well_formed};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::session::Authenticated;
use crate::store::{erase_conflict, ChartRow, MemberChange, MemberRow, StoreError};
use crate::{now, records, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/charts", get(list))
        .route(
            "/api/clinics/{clinic_id}/charts/{chart_id}/restrict",
            post(restrict),
        )
        .route(
            "/api/clinics/{clinic_id}/charts/{chart_id}/team",
            put(change_team),
        )
        .route(
            "/api/clinics/{clinic_id}/charts/{chart_id}/erase",
            post(erase),
        )
}

/// The restricted charts of a clinic, by chart id: what every record read and write consults.
pub struct ChartAcl(HashMap<Uuid, ChartRow>);

impl ChartAcl {
    pub async fn load(state: &AppState, clinic_id: Uuid) -> ApiResult<ChartAcl> {
        Ok(ChartAcl(
            state
                .store
                .charts(clinic_id)
                .await?
                .into_iter()
                .map(|c| (c.chart_id, c))
                .collect(),
        ))
    }
    pub fn get(&self, chart_id: &Uuid) -> Option<&ChartRow> {
        self.0.get(chart_id)
    }
    /// Whether `account` may fetch records of `chart_id`.
    pub fn allows(&self, chart_id: &Uuid, account: &Uuid) -> bool {
        self.0
            .get(chart_id)
            .is_none_or(|c| c.care_team.contains(account))
    }
}

/// Who may restrict a chart or change its care team: an owner or a practitioner with clinical
/// access ("treating"), who must be on the team.
fn may_manage(member: &MemberRow) -> bool {
    member.role == Role::Owner || member.role.grants(Compartment::Clinical)
}

fn forbidden_restricted() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "restricted_chart",
        "This chart is restricted to its care team.",
    )
}

fn invalid_keys(message: &str) -> ApiError {
    ApiError::bad_request("invalid_wrapped_keys", message)
}

/// Checks a set of new chart keys at `epoch`: one key per compartment, wrapped to every member of
/// `team` for exactly what its role grants, bound to `chart_id`.
fn check_new_chart_keys(
    keys: &[WrappedKey],
    chart_id: Uuid,
    epoch: u32,
    team: &[MemberRow],
    known: &BTreeSet<Uuid>,
) -> ApiResult<()> {
    let mut key_of: HashMap<Compartment, Uuid> = HashMap::new();
    let mut got = BTreeSet::new();
    for k in keys {
        if !wrapped_key_well_formed(k)
            || k.chart_id != Some(chart_id)
            || k.epoch != epoch
            || known.contains(&k.key_id)
        {
            return Err(invalid_keys(
                "Chart keys must be well formed, new, of this chart and of the new epoch.",
            ));
        }
        if *key_of.entry(k.compartment).or_insert(k.key_id) != k.key_id
            || !got.insert((k.recipient, k.compartment))
        {
            return Err(invalid_keys(
                "One key per compartment, wrapped once to each member.",
            ));
        }
    }
    let want: BTreeSet<(Uuid, Compartment)> = team
        .iter()
        .flat_map(|m| {
            Compartment::ALL
                .into_iter()
                .filter(|c| m.role.grants(*c))
                .map(|c| (m.account_id, c))
        })
        .collect();
    if got != want || key_of.len() != Compartment::ALL.len() {
        return Err(invalid_keys(
            "Every compartment gets a new chart key, wrapped to each care-team member for exactly what its role grants.",
        ));
    }
    Ok(())
}

/// The care team as member rows; every id must be a current member and the caller must be on it.
async fn team_members(
    state: &AppState,
    clinic_id: Uuid,
    team: &[Uuid],
    caller: Uuid,
) -> ApiResult<Vec<MemberRow>> {
    let ids: BTreeSet<Uuid> = team.iter().copied().collect();
    if ids.len() != team.len() || team.is_empty() || team.len() > 100 || !ids.contains(&caller) {
        return Err(ApiError::bad_request(
            "invalid_care_team",
            "A care team lists distinct members (at most 100) and includes you.",
        ));
    }
    let members: HashMap<Uuid, MemberRow> = state
        .store
        .members(clinic_id)
        .await?
        .into_iter()
        .map(|m| (m.account_id, m))
        .collect();
    ids.iter()
        .map(|id| {
            members.get(id).cloned().ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_care_team",
                    "Everyone on a care team must be a member.",
                )
            })
        })
        .collect()
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/charts", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = RestrictedChartList), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "charts")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<RestrictedChartList>> {
    let me = require_member(&state, &auth, clinic_id).await?;
    let charts = state
        .store
        .charts(clinic_id)
        .await?
        .into_iter()
        .map(|c| {
            let in_care_team = c.care_team.contains(&auth.account_id);
            RestrictedChart {
                chart_id: c.chart_id,
                in_care_team,
                // Owners see every care team: they must rotate chart keys when a member leaves.
                care_team: if in_care_team || me.role == Role::Owner {
                    c.care_team
                } else {
                    vec![]
                },
                key_epoch: c.key_epoch,
                restricted_at: c.restricted_at,
            }
        })
        .collect();
    Ok(Json(RestrictedChartList { charts }))
}

/// Erases a patient (GDPR Art. 17), by an owner: the chart must be restricted, so its records are
/// sealed under the chart's own keys; every version of its records, its files and every wrapped
/// copy of those keys are deleted in one transaction, logged as `chart_erased` with the chart's
/// random id and the count, nothing identifying.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/charts/{chart_id}/erase",
    params(("clinic_id" = Uuid, Path), ("chart_id" = Uuid, Path)), request_body = EraseChartRequest,
    responses((status = 200, body = ChartErased), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "charts")]
pub async fn erase(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, chart_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<EraseChartRequest>,
) -> ApiResult<Json<ChartErased>> {
    let member = require_member(&state, &auth, clinic_id).await?;
    if member.role != Role::Owner {
        return Err(ApiError::forbidden(
            "Only the clinic's owners erase a patient.",
        ));
    }
    if req.chart_id != chart_id || chart_id == clinic_id {
        return Err(ApiError::bad_request(
            "confirmation_mismatch",
            "Confirm the erasure with the chart's id.",
        ));
    }
    let event = clinic_event(&auth, clinic_id, "chart_erased", Some(chart_id), 0);
    let records = state
        .store
        .erase_chart(clinic_id, chart_id, event)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(w) if w == erase_conflict::NOT_RESTRICTED => ApiError::new(
                StatusCode::CONFLICT,
                "restrict_first",
                "Restrict the chart first, so its records are sealed under its own keys.",
            ),
            StoreError::Conflict(w) if w == erase_conflict::CHART_CHANGED => ApiError::new(
                StatusCode::CONFLICT,
                "chart_changed",
                "The chart changed meanwhile; reload and erase again.",
            ),
            e => e.into(),
        })?;
    Ok(Json(ChartErased { records }))
}

/// Restricts a chart: care team, the chart's own keys, and its records re-sealed, atomically.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/charts/{chart_id}/restrict",
    params(("clinic_id" = Uuid, Path), ("chart_id" = Uuid, Path)), request_body = RestrictChartRequest,
    responses((status = 200, body = BatchWriteResponse), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "charts")]
pub async fn restrict(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, chart_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<RestrictChartRequest>,
) -> ApiResult<Json<BatchWriteResponse>> {
    let me = require_member(&state, &auth, clinic_id).await?;
    if !may_manage(&me) {
        return Err(ApiError::forbidden(
            "Only an owner or a treating practitioner can restrict a chart.",
        ));
    }
    let acl = ChartAcl::load(&state, clinic_id).await?;
    if acl.get(&chart_id).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "chart_restricted",
            "This chart is restricted already.",
        ));
    }
    if req.reseal.len() > limits::MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            "Too many records to re-seal in one request.",
        ));
    }
    let team = team_members(&state, clinic_id, &req.care_team, auth.account_id).await?;
    let known: BTreeSet<Uuid> = me.wrapped_keys.iter().map(|k| k.key_id).collect();
    check_new_chart_keys(&req.wrapped_keys, chart_id, 1, &team, &known)?;
    // Every current record of the chart must be re-sealed under the new chart keys, so nothing of
    // it stays readable with clinic-wide keys.
    let on_chart: BTreeSet<Uuid> = records::chart_record_ids(&state, clinic_id, chart_id).await?;
    if on_chart.is_empty() {
        return Err(ApiError::not_found());
    }
    let resealed: BTreeSet<Uuid> = req.reseal.iter().map(|w| w.envelope.record_id).collect();
    if resealed != on_chart || resealed.len() != req.reseal.len() {
        return Err(ApiError::bad_request(
            "invalid_reseal",
            "Re-seal every current record of the chart, once each, under the chart's new keys.",
        ));
    }
    let mine: Vec<WrappedKey> = req
        .wrapped_keys
        .iter()
        .filter(|k| k.recipient == auth.account_id)
        .cloned()
        .collect();
    let mut rows = Vec::with_capacity(req.reseal.len());
    for w in req.reseal {
        if w.envelope.chart_id != chart_id
            || !mine
                .iter()
                .any(|k| k.key_id == w.envelope.key_id && k.compartment == w.envelope.compartment)
        {
            return Err(ApiError::bad_request(
                "invalid_reseal",
                "Re-sealed records must use this chart's new keys.",
            ));
        }
        rows.push(records::check_write_shape(w, &me)?);
    }
    let chart = ChartRow {
        chart_id,
        care_team: team.iter().map(|m| m.account_id).collect(),
        key_epoch: 1,
        restricted_by: auth.account_id,
        restricted_at: now(),
    };
    let event = clinic_event(
        &auth,
        clinic_id,
        "chart_restricted",
        Some(chart_id),
        rows.len() as u32,
    );
    let out = state
        .store
        .restrict_chart(clinic_id, chart, req.wrapped_keys, rows, now(), event)
        .await?;
    Ok(Json(BatchWriteResponse {
        results: out
            .into_iter()
            .map(|o| WriteResult {
                record_id: o.record_id,
                version: o.version,
                seq: o.seq,
            })
            .collect(),
    }))
}

/// For a rotation of the clinic's keys (a member removed or its role changed): every restricted
/// chart the member is on gets its next key epoch, with new keys for the care team as it stands
/// after the change. Checks `chart_keys` (the request's chart-scoped keys) accordingly and returns
/// the updated chart rows to commit with the rotation.
pub async fn rotate_for_member(
    state: &AppState,
    clinic_id: Uuid,
    member: Uuid,
    change: &MemberChange,
    members: &[MemberRow],
    chart_keys: &[WrappedKey],
) -> ApiResult<Vec<ChartRow>> {
    let known: BTreeSet<Uuid> = members
        .iter()
        .flat_map(|m| m.wrapped_keys.iter().map(|k| k.key_id))
        .collect();
    let mut updated = Vec::new();
    let mut accounted = 0;
    for chart in state.store.charts(clinic_id).await? {
        if !chart.care_team.contains(&member) {
            continue;
        }
        let team: Vec<MemberRow> = chart
            .care_team
            .iter()
            .filter_map(|id| members.iter().find(|m| &m.account_id == id))
            .filter_map(|m| match change {
                MemberChange::Remove(gone) if *gone == m.account_id => None,
                MemberChange::ChangeRole(who, role) if *who == m.account_id => Some(MemberRow {
                    role: *role,
                    ..m.clone()
                }),
                _ => Some(m.clone()),
            })
            .collect();
        if team.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "care_team_would_be_empty",
                "This member is the only one on a restricted chart's care team: add someone to it first.",
            ));
        }
        let epoch = chart.key_epoch + 1;
        let keys: Vec<WrappedKey> = chart_keys
            .iter()
            .filter(|k| k.chart_id == Some(chart.chart_id))
            .cloned()
            .collect();
        check_new_chart_keys(&keys, chart.chart_id, epoch, &team, &known)?;
        accounted += keys.len();
        updated.push(ChartRow {
            care_team: team.iter().map(|m| m.account_id).collect(),
            key_epoch: epoch,
            ..chart
        });
    }
    if accounted != chart_keys.len() {
        return Err(invalid_keys("Chart keys for charts the member is not on."));
    }
    Ok(updated)
}

/// Changes a care team; anyone leaving it makes the chart's keys rotate.
#[utoipa::path(put, path = "/api/clinics/{clinic_id}/charts/{chart_id}/team",
    params(("clinic_id" = Uuid, Path), ("chart_id" = Uuid, Path)), request_body = CareTeamRequest,
    responses((status = 200, body = RestrictedChart), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "charts")]
pub async fn change_team(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, chart_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<CareTeamRequest>,
) -> ApiResult<Json<RestrictedChart>> {
    let me = require_member(&state, &auth, clinic_id).await?;
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let chart = acl
        .get(&chart_id)
        .cloned()
        .ok_or_else(ApiError::not_found)?;
    if !chart.care_team.contains(&auth.account_id) {
        return Err(forbidden_restricted());
    }
    if !may_manage(&me) {
        return Err(ApiError::forbidden(
            "Only an owner or a treating practitioner can change a care team.",
        ));
    }
    let team = team_members(&state, clinic_id, &req.care_team, auth.account_id).await?;
    let new_ids: BTreeSet<Uuid> = team.iter().map(|m| m.account_id).collect();
    let removed: Vec<Uuid> = chart
        .care_team
        .iter()
        .filter(|id| !new_ids.contains(id))
        .copied()
        .collect();
    let known: BTreeSet<Uuid> = me.wrapped_keys.iter().map(|k| k.key_id).collect();
    if removed.is_empty() {
        // Only newcomers: they get every chart key (all epochs) their role grants, as I hold them.
        if req.key_epoch != chart.key_epoch {
            return Err(ApiError::bad_request(
                "invalid_epoch",
                "Adding people keeps the chart's key epoch.",
            ));
        }
        let newcomers: Vec<&MemberRow> = team
            .iter()
            .filter(|m| !chart.care_team.contains(&m.account_id))
            .collect();
        let mut want = BTreeSet::new();
        for m in &newcomers {
            for k in me
                .wrapped_keys
                .iter()
                .filter(|k| k.chart_id == Some(chart_id) && m.role.grants(k.compartment))
            {
                want.insert((m.account_id, k.key_id));
            }
        }
        let mut got = BTreeSet::new();
        for k in &req.wrapped_keys {
            if !wrapped_key_well_formed(k)
                || k.chart_id != Some(chart_id)
                || !known.contains(&k.key_id)
                || !got.insert((k.recipient, k.key_id))
            {
                return Err(invalid_keys(
                    "Newcomers receive the chart's existing keys, once each.",
                ));
            }
        }
        if got != want {
            return Err(invalid_keys(
                "Each newcomer receives exactly the chart keys its role grants, every epoch.",
            ));
        }
    } else {
        if req.key_epoch != chart.key_epoch + 1 {
            return Err(ApiError::bad_request(
                "invalid_epoch",
                "Removing someone starts the chart's next key epoch.",
            ));
        }
        check_new_chart_keys(&req.wrapped_keys, chart_id, req.key_epoch, &team, &known)?;
    }
    let next = ChartRow {
        care_team: new_ids.iter().copied().collect(),
        key_epoch: req.key_epoch,
        ..chart.clone()
    };
    state
        .store
        .update_care_team(
            clinic_id,
            next.clone(),
            chart.key_epoch,
            removed,
            req.wrapped_keys,
            clinic_event(
                &auth,
                clinic_id,
                "care_team_changed",
                Some(chart_id),
                next.care_team.len() as u32,
            ),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(what) => ApiError::new(
                StatusCode::CONFLICT,
                "care_team_conflict",
                format!("{what}; reload and retry."),
            ),
            e => e.into(),
        })?;
    Ok(Json(RestrictedChart {
        chart_id,
        in_care_team: true,
        care_team: next.care_team,
        key_epoch: next.key_epoch,
        restricted_at: next.restricted_at,
    }))
}

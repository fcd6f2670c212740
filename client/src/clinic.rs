//! Clinics: unwrapping a clinic's keys, verifying its profile, creating a new clinic.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{
    open_record, seal_record, unwrap_keyring, wrap_clinic_key, ClinicKeyring, RecordSlot,
};
use optovault_shared::envelope::Purpose;
use optovault_shared::wire::{ClinicView, CreateClinicRequest};
use optovault_shared::Compartment;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::api::{self, ApiError};
use crate::state::{AppState, Clinic, Unlocked};

/// The plaintext of a clinic's `profile` envelope.
#[derive(Serialize, Deserialize)]
pub struct ClinicProfile {
    pub name: String,
}

pub const NAME_MAX: usize = 100;

/// Unwraps the keys wrapped to me and opens the profile. Never fails: a clinic whose keys or
/// profile do not check out is kept with the reason, and shown as unverified.
pub fn open_clinic(me: &Unlocked, view: &ClinicView) -> Clinic {
    let id = view.clinic_id;
    let keyring = unwrap_keyring(&id, &view.wrapped_keys, &me.account_id, &me.keys).ok();
    let name = match &keyring {
        None => Err("Its keys could not be opened with your account.".to_string()),
        Some(_) if view.profile.record_id != id || view.profile.chart_id != id => {
            Err("Its profile belongs to another clinic.".to_string())
        }
        Some(kr) => open_record(&id, Purpose::ClinicProfile, &view.profile, kr, |a| {
            me.author_key(a)
        })
        .map_err(|_| "Its profile could not be verified.".to_string())
        .and_then(|plain| {
            serde_json::from_slice::<ClinicProfile>(&plain)
                .map(|p| p.name)
                .map_err(|_| "Its profile is unreadable.".to_string())
        }),
    };
    Clinic {
        id,
        role: view.role,
        name,
        keyring,
    }
}

/// Fetches the clinics I belong to and replaces the app's list with them.
pub async fn load_clinics(app: AppState, me: &Unlocked) -> Result<(), ApiError> {
    let list = api::list_clinics().await?;
    let clinics: BTreeMap<Uuid, Arc<Clinic>> = list
        .clinics
        .iter()
        .map(|v| (v.clinic_id, Arc::new(open_clinic(me, v))))
        .collect();
    app.clinics.set(clinics);
    Ok(())
}

/// The clinic from the app's list, fetched from the server when the page was opened directly.
pub async fn ensure_clinic(
    app: AppState,
    me: &Unlocked,
    id: Uuid,
) -> Result<Arc<Clinic>, ApiError> {
    if let Some(c) = app.clinic(&id) {
        return Ok(c);
    }
    let view = api::get_clinic(id).await?;
    let clinic = Arc::new(open_clinic(me, &view));
    app.clinics.update(|m| {
        m.insert(id, clinic.clone());
    });
    Ok(clinic)
}

/// Checks a clinic name; returns it trimmed.
pub fn check_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    let n = name.chars().count();
    if n == 0 {
        return Err("Enter the clinic's name.".into());
    }
    if n > NAME_MAX {
        return Err(format!("At most {NAME_MAX} characters ({n} now)."));
    }
    if name.chars().any(char::is_control) {
        return Err("Control characters are not allowed.".into());
    }
    Ok(name.to_string())
}

/// Creates a clinic: fresh keys for every compartment, wrapped to my own X25519 key, and the
/// profile sealed under the demographics key.
pub async fn create_clinic(me: &Unlocked, name: String) -> Result<Arc<Clinic>, ApiError> {
    let crypto_failed = |_| ApiError::local("crypto", "The clinic's keys could not be created.");
    let clinic_id = Uuid::new_v4();
    let keyring = ClinicKeyring::generate();
    let wrapped_keys = keyring
        .keys()
        .iter()
        .map(|k| {
            wrap_clinic_key(
                &clinic_id,
                k,
                &me.account_id,
                me.public_keys.x25519.as_slice(),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(crypto_failed)?;
    let plain = Zeroizing::new(
        serde_json::to_vec(&ClinicProfile { name: name.clone() }).expect("a string serializes"),
    );
    let slot = RecordSlot {
        clinic_id,
        chart_id: clinic_id,
        record_id: clinic_id,
        version: 1,
        purpose: Purpose::ClinicProfile,
    };
    let profile = seal_record(
        slot,
        Compartment::Demographics,
        &keyring,
        &me.account_id,
        &me.keys,
        &plain,
    )
    .map_err(crypto_failed)?;
    let view = api::create_clinic(&CreateClinicRequest {
        clinic_id,
        profile,
        wrapped_keys,
    })
    .await?;
    Ok(Arc::new(Clinic {
        id: clinic_id,
        role: view.role,
        name: Ok(name),
        keyring: Some(keyring),
    }))
}

//! Team helpers of the test kit: invitations, admission and rotations exactly as a client does
//! them, through `optovault_shared::team` (so the tests exercise the same code as the browser).

use optovault_shared::crypto::{self, ClinicKeyring};
use optovault_shared::roster::{Roster, RosterChange};
use optovault_shared::team;
use optovault_shared::wire::*;
use optovault_shared::{Compartment, B64};
use rand_core::{OsRng, RngCore};
use uuid::Uuid;

use crate::{ApiError, Client, Clinic, Raw, Session};

/// An invitation as its link carries it (the secret never goes to the server).
#[derive(Clone, Debug)]
pub struct InviteLink {
    pub clinic_id: Uuid,
    pub invitation_id: Uuid,
    pub role: Role,
    pub secret: [u8; 32],
    /// The clinic's trust anchor (its creator's Ed25519 key).
    pub anchor: Vec<u8>,
    /// The inviting owner's public keys (for the safety number).
    pub inviter: PublicKeys,
}

impl Client {
    pub fn roster(&self, clinic_id: Uuid) -> Result<RosterPage, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/roster?since=0")))
    }

    /// The roster verified from its genesis against `anchor`.
    pub fn verified_roster(&self, clinic_id: Uuid, anchor: &[u8]) -> Roster {
        let page = self.roster(clinic_id).expect("roster");
        team::verify_roster(clinic_id, &page.entries, Some(anchor), None).expect("roster verifies")
    }

    pub fn members(&self, clinic_id: Uuid) -> Result<MemberList, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/members")))
    }

    pub fn invitations(&self, clinic_id: Uuid) -> Result<InvitationList, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/invitations")))
    }

    /// The owner creates an invitation for `role`.
    pub fn invite(
        &self,
        owner: &Session,
        clinic: &Clinic,
        role: Role,
    ) -> Result<InviteLink, ApiError> {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        let invitation_id = Uuid::new_v4();
        let me = owner.keys.public_keys();
        let (enc, ciphertext) = crypto::seal_to(
            me.x25519.as_slice(),
            &team::invitation_secret_info(&clinic.id, &invitation_id),
            &secret,
        )
        .expect("seal invitation secret");
        let req = CreateInvitationRequest {
            invitation_id,
            role,
            expires_in_hours: 72,
            sealed_secret: SealedSecret {
                enc: B64(enc),
                ciphertext: B64(ciphertext),
            },
        };
        let _: InvitationView =
            Self::typed(self.post(&format!("/api/clinics/{}/invitations", clinic.id), &req))?;
        let anchor = team::open_pinned_anchor(&owner.keys, &clinic.id, &clinic.view.pinned_anchor)
            .expect("anchor");
        Ok(InviteLink {
            clinic_id: clinic.id,
            invitation_id,
            role,
            secret,
            anchor,
            inviter: me,
        })
    }

    /// The invitee accepts: MAC over its identity and keys, and its pinned anchor.
    pub fn accept_raw(&self, invitee: &Session, link: &InviteLink) -> Raw {
        let mac = team::invitation_mac(
            &link.secret,
            &link.invitation_id,
            &link.clinic_id,
            &invitee.account_id,
            &invitee.username,
            &invitee.keys.public_keys(),
        );
        let req = AcceptInvitationRequest {
            mac: B64(mac),
            pinned_anchor: team::pin_anchor(&invitee.keys, &link.clinic_id, &link.anchor),
        };
        self.post(
            &format!(
                "/api/clinics/{}/invitations/{}/accept",
                link.clinic_id, link.invitation_id
            ),
            &req,
        )
    }

    pub fn accept(&self, invitee: &Session, link: &InviteLink) -> Result<InvitationInfo, ApiError> {
        Self::typed(self.accept_raw(invitee, link))
    }

    /// The owner's side of admission: opens its sealed copy of the secret, checks the MAC, then
    /// signs the roster entry and wraps the role's keys. Fails (without calling the server) when
    /// the MAC does not verify.
    pub fn admit(
        &self,
        owner: &Session,
        clinic: &Clinic,
        invitation_id: Uuid,
    ) -> Result<Result<MemberView, ApiError>, &'static str> {
        let inv = self
            .invitations(clinic.id)
            .expect("invitations")
            .invitations
            .into_iter()
            .find(|i| i.invitation_id == invitation_id)
            .expect("the invitation is listed");
        let acc = inv.acceptance.clone().ok_or("not accepted")?;
        let secret = crypto::open_sealed(
            &owner.keys,
            &team::invitation_secret_info(&clinic.id, &invitation_id),
            inv.sealed_secret.enc.as_slice(),
            inv.sealed_secret.ciphertext.as_slice(),
        )
        .map_err(|_| "sealed secret does not open")?;
        if !team::verify_invitation_mac(
            &secret,
            &invitation_id,
            &clinic.id,
            &acc.account_id,
            &acc.username,
            &acc.public_keys,
            acc.mac.as_slice(),
        ) {
            return Err("the acceptance's MAC does not verify");
        }
        let anchor = team::open_pinned_anchor(&owner.keys, &clinic.id, &clinic.view.pinned_anchor)
            .expect("anchor");
        let roster = self.verified_roster(clinic.id, &anchor);
        let entry = team::next_entry(
            &roster,
            owner.account_id,
            RosterChange::Add {
                member: acc.account_id,
                username: acc.username.clone(),
                role: inv.role,
                public_keys: acc.public_keys.clone(),
            },
            roster.key_epoch,
            1_800_000_100,
        );
        let wrapped_keys = team::wrap_for_member(
            &clinic.id,
            &clinic.keyring,
            inv.role,
            &acc.account_id,
            &acc.public_keys,
        )
        .expect("wrap");
        let req = AddMemberRequest {
            invitation_id,
            roster_entry: team::sign_entry(&entry, &owner.keys),
            wrapped_keys,
        };
        Ok(Self::typed(self.post(
            &format!("/api/clinics/{}/members", clinic.id),
            &req,
        )))
    }

    /// Builds (but does not send) a rotation removing `member` or changing its role, returning
    /// the request and the keyring with the new epoch.
    pub fn rotation_request(
        &self,
        owner: &Session,
        clinic: &Clinic,
        change: RosterChange,
    ) -> (RotationRequest, ClinicKeyring) {
        let anchor = team::open_pinned_anchor(&owner.keys, &clinic.id, &clinic.view.pinned_anchor)
            .expect("anchor");
        let roster = self.verified_roster(clinic.id, &anchor);
        let epoch = roster.key_epoch + 1;
        let mut keyring = clinic.keyring.clone();
        keyring.rotate(&Compartment::ALL, epoch);
        let member = match &change {
            RosterChange::Remove { member } | RosterChange::ChangeRole { member, .. } => *member,
            RosterChange::Add { member, .. } => *member,
        };
        let signed = team::sign_entry(
            &team::next_entry(&roster, owner.account_id, change, epoch, 1_800_000_200),
            &owner.keys,
        );
        let (after, _, _) =
            Roster::apply_unverified(Some(&roster), clinic.id, &signed).expect("entry applies");
        let mut wrapped_keys = team::wrap_epoch_for_roster(&after, &keyring, epoch).expect("wrap");
        // A role that gains compartments also receives their older keys.
        if let (Some(from), Some(m)) = (roster.role_of(&member), after.members.get(&member)) {
            for k in clinic.keyring.keys().iter().filter(|k| {
                k.chart_id.is_none() && m.role.grants(k.compartment) && !from.grants(k.compartment)
            }) {
                wrapped_keys.push(
                    crypto::wrap_clinic_key(
                        &clinic.id,
                        k,
                        &member,
                        m.public_keys.x25519.as_slice(),
                    )
                    .expect("wrap"),
                );
            }
        }
        // Restricted charts the member is on get new chart keys for the team that stays.
        for chart in self.restricted_charts(clinic.id).expect("charts").charts {
            if !chart.care_team.contains(&member) {
                continue;
            }
            let stays: Vec<Uuid> = chart
                .care_team
                .iter()
                .copied()
                .filter(|id| after.members.contains_key(id))
                .collect();
            let next = chart.key_epoch + 1;
            keyring.add_chart_keys(chart.chart_id, &Compartment::ALL, next);
            wrapped_keys.extend(wrap_chart_keys(
                &after,
                &keyring,
                clinic.id,
                chart.chart_id,
                next,
                &stays,
            ));
        }
        (
            RotationRequest {
                roster_entry: signed,
                wrapped_keys,
            },
            keyring,
        )
    }

    pub fn rotate(&self, clinic_id: Uuid, req: &RotationRequest) -> Result<RosterPage, ApiError> {
        Self::typed(self.post(&format!("/api/clinics/{clinic_id}/rotations"), req))
    }

    /// A member's view of a clinic it was admitted to: its keyring holds only what its role grants.
    pub fn join_view(&self, member: &Session, clinic_id: Uuid) -> Clinic {
        let view = self.clinic(clinic_id).expect("member sees the clinic");
        let keyring = crypto::unwrap_keyring(
            &clinic_id,
            &view.wrapped_keys,
            &member.account_id,
            &member.keys,
        )
        .expect("unwrap");
        Clinic {
            id: clinic_id,
            keyring,
            view,
        }
    }
}

/// Seals a clinical note on `chart_id` as `author`.
pub fn clinical_note_write(
    author: &Session,
    clinic_id: Uuid,
    keyring: &ClinicKeyring,
    chart_id: Uuid,
    text: &str,
) -> RecordWrite {
    let record_id = Uuid::new_v4();
    let body = optovault_shared::domain::RecordBody::ClinicalNote(
        optovault_shared::domain::ClinicalNote { text: text.into() },
    );
    let envelope = crypto::seal_record(
        crypto::RecordSlot {
            clinic_id,
            chart_id,
            record_id,
            version: 1,
            purpose: optovault_shared::envelope::Purpose::Record,
        },
        Compartment::Clinical,
        keyring,
        &author.account_id,
        &author.keys,
        &serde_json::to_vec(&body).unwrap(),
    )
    .expect("seal note");
    RecordWrite {
        expected_version: 0,
        envelope,
    }
}

impl Client {
    pub fn restricted_charts(&self, clinic_id: Uuid) -> Result<RestrictedChartList, ApiError> {
        Self::typed(self.get(&format!("/api/clinics/{clinic_id}/charts")))
    }

    /// Restricts `chart_id` to `team` as `me` (who must be on it): new chart keys, wrapped to the
    /// team by role, and every current record of the chart re-sealed under them (opened with
    /// `clinic.keyring`, so only a chart that is not restricted yet). Returns the keyring with the
    /// chart keys added.
    pub fn restrict_chart(
        &self,
        me: &Session,
        clinic: &Clinic,
        chart_id: Uuid,
        team: &[Uuid],
        authors: &[&Session],
    ) -> Result<ClinicKeyring, ApiError> {
        let anchor = team::open_pinned_anchor(&me.keys, &clinic.id, &clinic.view.pinned_anchor)
            .expect("anchor");
        let roster = self.verified_roster(clinic.id, &anchor);
        let mut keyring = clinic.keyring.clone();
        keyring.add_chart_keys(chart_id, &Compartment::ALL, 1);
        let wrapped_keys = wrap_chart_keys(&roster, &keyring, clinic.id, chart_id, 1, team);
        let (records, _, _) = self.all_changes(clinic.id, 0, 1000, 1000)?;
        let reseal = records
            .into_iter()
            .filter(|r| r.envelope.chart_id == chart_id)
            .map(|r| {
                let pt = crypto::open_record(
                    &clinic.id,
                    optovault_shared::envelope::Purpose::Record,
                    &r.envelope,
                    &clinic.keyring,
                    |id| {
                        authors
                            .iter()
                            .find(|s| &s.account_id == id)
                            .map(|s| s.ed25519())
                    },
                )
                .expect("open the record to re-seal");
                let envelope = crypto::seal_record(
                    crypto::RecordSlot {
                        clinic_id: clinic.id,
                        chart_id,
                        record_id: r.envelope.record_id,
                        version: r.envelope.version + 1,
                        purpose: optovault_shared::envelope::Purpose::Record,
                    },
                    r.envelope.compartment,
                    &keyring,
                    &me.account_id,
                    &me.keys,
                    &pt,
                )
                .expect("re-seal");
                RecordWrite {
                    expected_version: r.envelope.version,
                    envelope,
                }
            })
            .collect();
        let req = RestrictChartRequest {
            care_team: team.to_vec(),
            wrapped_keys,
            reseal,
        };
        let _: BatchWriteResponse = Self::typed(self.post(
            &format!("/api/clinics/{}/charts/{chart_id}/restrict", clinic.id),
            &req,
        ))?;
        Ok(keyring)
    }

    pub fn change_care_team(
        &self,
        clinic_id: Uuid,
        chart_id: Uuid,
        req: &CareTeamRequest,
    ) -> Result<RestrictedChart, ApiError> {
        Self::typed(self.put(
            &format!("/api/clinics/{clinic_id}/charts/{chart_id}/team"),
            req,
        ))
    }
}

/// Wraps the chart keys of `epoch` to each of `team` for what its role (per the roster) grants.
pub fn wrap_chart_keys(
    roster: &Roster,
    keyring: &ClinicKeyring,
    clinic_id: Uuid,
    chart_id: Uuid,
    epoch: u32,
    team: &[Uuid],
) -> Vec<WrappedKey> {
    let mut out = Vec::new();
    for id in team {
        let m = &roster.members[id];
        for k in keyring.keys().iter().filter(|k| {
            k.chart_id == Some(chart_id) && k.epoch == epoch && m.role.grants(k.compartment)
        }) {
            out.push(
                crypto::wrap_clinic_key(&clinic_id, k, id, m.public_keys.x25519.as_slice())
                    .expect("wrap"),
            );
        }
    }
    out
}

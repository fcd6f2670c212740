//! Test fixture: registers an account on a running server, logs in, creates a clinic and fills
//! it with N sealed patients (batches of 1000) and, if asked, M exams per patient, then prints one
//! JSON line with what the caller
//! needs (username, clinic id, session cookie). Used by the browser sync test (a large clinic)
//! and by the API fuzzing (an authenticated session). Talks to the given loopback URL only.

use clap::Parser;
use optovault_tests::shared::domain::RecordBody;
use optovault_tests::{
    chart_write, index_writes, patient_write, sample_exam, sample_patient, Client,
};
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Base URL of the server, e.g. http://127.0.0.1:8080
    #[arg(long)]
    base: String,
    #[arg(long)]
    username: String,
    #[arg(long)]
    password: String,
    /// Name of the clinic to create.
    #[arg(long, default_value = "Fixture Clinic")]
    clinic_name: String,
    /// Number of patients to create.
    #[arg(long, default_value_t = 0)]
    patients: usize,
    /// Exams per patient (clinical compartment), as a real clinic's history.
    #[arg(long, default_value_t = 0)]
    exams_per_patient: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.base.starts_with("http://127.") && !args.base.starts_with("http://localhost") {
        anyhow::bail!("the fixture only talks to a loopback server");
    }
    let client = Client::new(&args.base);
    client.register(&args.username, &args.password)?;
    let session = client
        .login(&args.username, &args.password)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let clinic = client.create_clinic(&session, &args.clinic_name)?;
    let mut first_record = None;
    // The patient index a browser keeps beside the records (written last, in one batch).
    let mut summaries = Vec::with_capacity(args.patients);
    for chunk_start in (0..args.patients).step_by(1000) {
        let mut exams = Vec::new();
        let writes: Vec<_> = (chunk_start..(chunk_start + 1000).min(args.patients))
            .map(|i| {
                let id = Uuid::new_v4();
                first_record.get_or_insert(id);
                summaries.push((id, 1, sample_patient(i)));
                for visit in 0..args.exams_per_patient {
                    let body = RecordBody::Exam(sample_exam(i, visit, session.account_id));
                    exams.push(chart_write(
                        &session,
                        clinic.id,
                        &clinic.keyring,
                        id,
                        Uuid::new_v4(),
                        &body,
                    ));
                }
                patient_write(
                    &session,
                    clinic.id,
                    &clinic.keyring,
                    id,
                    0,
                    &sample_patient(i),
                )
            })
            .collect();
        client.batch(clinic.id, writes)?;
        for batch in exams.chunks(1000) {
            client.batch(clinic.id, batch.to_vec())?;
        }
    }
    if !summaries.is_empty() {
        client.batch(
            clinic.id,
            index_writes(&session, clinic.id, &clinic.keyring, &summaries),
        )?;
    }
    println!(
        "{}",
        serde_json::json!({
            "username": args.username,
            "account_id": session.account_id,
            "clinic_id": clinic.id,
            "record_id": first_record,
            "cookie": session.cookie_pair(),
        })
    );
    Ok(())
}

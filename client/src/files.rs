//! Files attached to a chart (fundus photos, OCT, visual fields, scanned consents), up to 50 MiB:
//! read from the picked file in 1 MiB slices, sealed in the browser with the file's own key
//! (`crypto::seal_file_chunk`: STREAM over AES-256-GCM), uploaded chunk by chunk with progress,
//! and resumable: the metadata record (name, type, size, checksum, the file key, a thumbnail) is
//! written first, so an interrupted upload can be finished later by picking the same file again.
//! Downloads fetch, open and check every chunk, then the whole file against its SHA-256.

use std::sync::Arc;

use base64::Engine;
use js_sys::{Array, Uint8Array};
use optovault_shared::chart::attachment::{Attachment, Thumbnail, MAX_THUMBNAIL_BYTES};
use optovault_shared::crypto::{
    file_chunk_count, open_file_chunk, seal_file_chunk, FileContext, FileKey, FILE_CHUNK_BYTES,
    FILE_CHUNK_OVERHEAD, MAX_FILE_BYTES,
};
use optovault_shared::domain::RecordBody;
use optovault_shared::wire::FileUploadStart;
use optovault_shared::{Compartment, B64};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api::{self, ApiError};
use crate::records::save_item;
use crate::state::{AppState, Unlocked};
use crate::util::sleep;

/// Where an upload or download is: `done` of `total` steps of the current phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Reading the file to compute its checksum.
    Checking { done: u64, total: u64 },
    /// Sealing and sending chunks.
    Uploading { done: u32, total: u32 },
    /// Fetching and opening chunks.
    Downloading { done: u32, total: u32 },
}

impl Progress {
    /// Percent, for a progress bar.
    pub fn percent(self) -> u32 {
        let (done, total) = match self {
            Progress::Checking { done, total } => (done, total),
            Progress::Uploading { done, total } | Progress::Downloading { done, total } => {
                (u64::from(done), u64::from(total))
            }
        };
        if total == 0 {
            100
        } else {
            u32::try_from(done.min(total) * 100 / total).unwrap_or(100)
        }
    }

    pub fn label(self) -> String {
        match self {
            Progress::Checking { .. } => format!("Reading the file… {}%", self.percent()),
            Progress::Uploading { done, total } => {
                format!(
                    "Encrypting and uploading: {done} of {total} MiB ({}%)",
                    self.percent()
                )
            }
            Progress::Downloading { done, total } => {
                format!(
                    "Downloading and decrypting: {done} of {total} MiB ({}%)",
                    self.percent()
                )
            }
        }
    }
}

/// What the user says about a file when attaching it.
#[derive(Clone, Debug, Default)]
pub struct Describe {
    pub category: optovault_shared::chart::attachment::AttachmentCategory,
    pub eye: Option<optovault_shared::chart::EyeSel>,
    pub taken: Option<String>,
    pub description: String,
}

fn local(message: &str) -> ApiError {
    ApiError::local("file", message)
}

/// Bytes `start..end` of a file or blob.
async fn read_slice(blob: &web_sys::Blob, start: u64, end: u64) -> Result<Vec<u8>, ApiError> {
    let part = blob
        .slice_with_f64_and_f64(start as f64, end as f64)
        .map_err(|_| local("The file could not be read."))?;
    let buf = JsFuture::from(part.array_buffer())
        .await
        .map_err(|_| local("The file could not be read (was it moved or changed?)."))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

fn blob_size(blob: &web_sys::Blob) -> u64 {
    blob.size().max(0.0) as u64
}

/// The SHA-256 of a whole file, read slice by slice.
async fn checksum(
    blob: &web_sys::Blob,
    progress: &impl Fn(Progress),
) -> Result<[u8; 32], ApiError> {
    let size = blob_size(blob);
    let mut hasher = Sha256::new();
    let mut at = 0u64;
    while at < size {
        let end = (at + FILE_CHUNK_BYTES as u64).min(size);
        hasher.update(read_slice(blob, at, end).await?);
        at = end;
        progress(Progress::Checking {
            done: at,
            total: size,
        });
    }
    Ok(hasher.finalize().into())
}

/// A small JPEG of an image (longest side 160 px, at most 32 KiB), drawn by the browser; `None`
/// for what is not an image the browser can decode.
async fn thumbnail(file: &web_sys::File) -> Option<Thumbnail> {
    if !file.type_().starts_with("image/") {
        return None;
    }
    let window = web_sys::window()?;
    let bitmap: web_sys::ImageBitmap =
        JsFuture::from(window.create_image_bitmap_with_blob(file).ok()?)
            .await
            .ok()?
            .dyn_into()
            .ok()?;
    let (w, h) = (f64::from(bitmap.width()), f64::from(bitmap.height()));
    if w < 1.0 || h < 1.0 {
        return None;
    }
    let scale = (160.0 / w.max(h)).min(1.0);
    let (tw, th) = ((w * scale).round().max(1.0), (h * scale).round().max(1.0));
    let canvas: web_sys::HtmlCanvasElement = window
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    canvas.set_width(tw as u32);
    canvas.set_height(th as u32);
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    ctx.draw_image_with_image_bitmap_and_dw_and_dh(&bitmap, 0.0, 0.0, tw, th)
        .ok()?;
    bitmap.close();
    for quality in [0.75, 0.5, 0.3] {
        let url = canvas
            .to_data_url_with_type_and_encoder_options("image/jpeg", &quality.into())
            .ok()?;
        // A data URL is standard base64 with padding (not the wire's base64url).
        let b64 = url.strip_prefix("data:image/jpeg;base64,")?;
        let data = B64(base64::engine::general_purpose::STANDARD.decode(b64).ok()?);
        if !data.is_empty() && data.len() <= MAX_THUMBNAIL_BYTES {
            return Some(Thumbnail {
                mime_type: "image/jpeg".into(),
                data,
            });
        }
    }
    None
}

/// Attaches a file to a chart: checksum, metadata record (with the file's key), then the sealed
/// chunks. Returns the file's id (also its metadata record's id).
pub async fn attach(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    file: web_sys::File,
    about: Describe,
    today: &str,
    progress: impl Fn(Progress),
) -> Result<Uuid, ApiError> {
    let size = blob_size(&file);
    if size == 0 || size > MAX_FILE_BYTES {
        return Err(local("Files must be between 1 byte and 50 MiB."));
    }
    let sha = checksum(&file, &progress).await?;
    let key = FileKey::generate();
    let mime = match file.type_() {
        t if t.is_empty() => "application/octet-stream".to_string(),
        t => t,
    };
    let attachment = Attachment {
        file_name: file.name(),
        mime_type: mime,
        size_bytes: size,
        category: about.category,
        taken: about.taken,
        chunk_count: file_chunk_count(size),
        thumbnail: thumbnail(&file).await,
        eye: about.eye,
        description: about.description,
        file_key: key.to_b64(),
        sha256: B64(sha.to_vec()),
    };
    if let Err(errs) = attachment.validate(today) {
        let msg: Vec<String> = errs.into_iter().map(|e| e.message).collect();
        return Err(local(&msg.join(" ")));
    }
    // The file's id is its metadata record's id: one id names both.
    let file_id = Uuid::new_v4();
    save_item(
        app,
        me.clone(),
        clinic_id,
        chart_id,
        file_id,
        0,
        RecordBody::Attachment(attachment.clone()),
    )
    .await?;
    send_chunks(
        app,
        &me,
        clinic_id,
        chart_id,
        file_id,
        &attachment,
        &file,
        &progress,
    )
    .await?;
    Ok(file_id)
}

/// Finishes an interrupted upload from the same file picked again (checked by size and SHA-256).
pub async fn resume(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    file_id: Uuid,
    attachment: &Attachment,
    file: web_sys::File,
    progress: impl Fn(Progress),
) -> Result<(), ApiError> {
    if blob_size(&file) != attachment.size_bytes
        || checksum(&file, &progress).await?.as_slice() != attachment.sha256.as_slice()
    {
        return Err(local(&format!(
            "That is not the same file as {}; pick the original to finish its upload.",
            attachment.file_name
        )));
    }
    send_chunks(
        app, &me, clinic_id, chart_id, file_id, attachment, &file, &progress,
    )
    .await
}

/// Starts (or re-reads) the upload on the server and sends the chunks it does not hold yet, each
/// retried a few times with backoff, then completes it.
#[allow(clippy::too_many_arguments)]
async fn send_chunks(
    app: AppState,
    me: &Unlocked,
    clinic_id: Uuid,
    chart_id: Uuid,
    file_id: Uuid,
    attachment: &Attachment,
    file: &web_sys::Blob,
    progress: &impl Fn(Progress),
) -> Result<(), ApiError> {
    let clinic = crate::clinic::ensure_clinic(app, me, clinic_id).await?;
    let keyring = clinic
        .trusted()
        .map_err(|why| ApiError::local("untrusted_clinic", &why))?
        .0;
    // The server admits chunks only from a member holding the current key of the compartment.
    let gate = keyring
        .sealing_key(&chart_id, Compartment::Clinical)
        .ok_or_else(|| local("Your role does not hold the clinical key this file needs."))?;
    let key = FileKey::from_b64(&attachment.file_key)
        .map_err(|_| local("The file's key is malformed."))?;
    let ctx = FileContext {
        clinic_id,
        chart_id,
        file_id,
    };
    let total = attachment.chunk_count;
    let start = FileUploadStart {
        file_id,
        chart_id,
        compartment: Compartment::Clinical,
        key_id: gate.key_id,
        epoch: gate.epoch,
        chunk_count: total,
        chunk_size: (FILE_CHUNK_BYTES + FILE_CHUNK_OVERHEAD) as u32,
        total_size: attachment.size_bytes + u64::from(total) * FILE_CHUNK_OVERHEAD as u64,
    };
    let status = match api::file_start(clinic_id, &start).await {
        Ok(s) => s,
        // Started earlier under other parameters (e.g. an older key epoch): read what is there.
        Err(e) if e.code == "file_exists" => api::file_status(clinic_id, file_id).await?,
        Err(e) => return Err(e),
    };
    if status.complete {
        progress(Progress::Uploading { done: total, total });
        return Ok(());
    }
    let mut done = status.received.len() as u32;
    progress(Progress::Uploading { done, total });
    for index in 0..total {
        if status.received.binary_search(&index).is_ok() {
            continue;
        }
        let from = u64::from(index) * FILE_CHUNK_BYTES as u64;
        let to = (from + FILE_CHUNK_BYTES as u64).min(attachment.size_bytes);
        let plain = zeroize::Zeroizing::new(read_slice(file, from, to).await?);
        let sealed = seal_file_chunk(&key, &ctx, index, index + 1 == total, &plain)
            .map_err(|_| local("A part of the file could not be encrypted."))?;
        put_with_retry(clinic_id, file_id, index, &sealed).await?;
        done += 1;
        progress(Progress::Uploading { done, total });
    }
    api::file_complete(clinic_id, file_id).await.map_err(|e| {
        if e.code == "stale_key_epoch" {
            local("The clinic's keys were changed during the upload; attach the file again.")
        } else {
            e
        }
    })
}

/// Network hiccups and server restarts are retried (0.5, 1, 2 s); refusals are not.
async fn put_with_retry(
    clinic_id: Uuid,
    file_id: Uuid,
    index: u32,
    sealed: &[u8],
) -> Result<(), ApiError> {
    let mut wait = 500;
    let mut tries = 0;
    loop {
        match api::file_put_chunk(clinic_id, file_id, index, sealed).await {
            Ok(()) => return Ok(()),
            Err(e) if (e.status == 0 || e.status >= 500) && tries < 3 => {
                tries += 1;
                sleep(wait).await;
                wait *= 2;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Fetches, opens and checks a complete file; returns it as a Blob of its own type.
pub async fn fetch(
    clinic_id: Uuid,
    chart_id: Uuid,
    file_id: Uuid,
    attachment: &Attachment,
    progress: impl Fn(Progress),
) -> Result<web_sys::Blob, ApiError> {
    let key = FileKey::from_b64(&attachment.file_key)
        .map_err(|_| local("The file's key is malformed."))?;
    let ctx = FileContext {
        clinic_id,
        chart_id,
        file_id,
    };
    let total = attachment.chunk_count;
    let parts = Array::new();
    let mut hasher = Sha256::new();
    for index in 0..total {
        let sealed = api::file_chunk(clinic_id, file_id, index).await?;
        let plain =
            open_file_chunk(&key, &ctx, index, index + 1 == total, &sealed).map_err(|_| {
                local("The file was altered or is incomplete on the server; it was not opened.")
            })?;
        hasher.update(plain.as_slice());
        parts.push(&Uint8Array::from(plain.as_slice()));
        progress(Progress::Downloading {
            done: index + 1,
            total,
        });
    }
    let sum: [u8; 32] = hasher.finalize().into();
    if sum.as_slice() != attachment.sha256.as_slice() {
        return Err(local(
            "The file does not match its checksum; it was not opened.",
        ));
    }
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(&attachment.mime_type);
    web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|_| local("The file could not be assembled."))
}

/// Hands text (a FHIR export, a CSV) to the browser as a download named `name`.
pub fn save_text(text: &str, mime: &str, name: &str) -> Result<(), ApiError> {
    let parts = Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type(mime);
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options)
        .map_err(|_| local("The browser refused to create the file."))?;
    save_as(&blob, name)
}

/// Hands a blob to the browser as a download named `name`: a `blob:` URL clicked through a
/// temporary `<a download>` (a navigation, not a fetch, so the CSP's `connect-src` does not apply).
pub fn save_as(blob: &web_sys::Blob, name: &str) -> Result<(), ApiError> {
    let url = web_sys::Url::create_object_url_with_blob(blob)
        .map_err(|_| local("The download could not start."))?;
    let anchor: web_sys::HtmlAnchorElement = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.create_element("a").ok())
        .and_then(|a| a.dyn_into().ok())
        .ok_or_else(|| local("The download could not start."))?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    // The browser has taken the blob by now; free the URL a little later.
    wasm_bindgen_futures::spawn_local(async move {
        sleep(60_000).await;
        let _ = web_sys::Url::revoke_object_url(&url);
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_reported_in_percent() {
        assert_eq!(Progress::Uploading { done: 5, total: 20 }.percent(), 25);
        assert_eq!(Progress::Checking { done: 0, total: 0 }.percent(), 100);
        assert_eq!(
            Progress::Downloading { done: 3, total: 3 }.label(),
            "Downloading and decrypting: 3 of 3 MiB (100%)"
        );
    }
}

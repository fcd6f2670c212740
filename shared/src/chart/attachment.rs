//! Attachment metadata (compartment `clinical`): what a stored file is. The file itself is
//! uploaded elsewhere, encrypted in `chunk_count` chunks.

use serde::{Deserialize, Serialize};

use super::{parse_date, Checks, EyeSel, LINE_MAX};
use crate::domain::FieldError;
use crate::B64;

/// Largest attachment, bytes (50 MiB).
pub const MAX_ATTACHMENT_BYTES: u64 = 50 * 1024 * 1024;
/// Largest inline thumbnail, bytes (it travels inside the record's ciphertext).
pub const MAX_THUMBNAIL_BYTES: usize = 32 * 1024;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentCategory {
    FundusPhoto,
    Oct,
    VisualField,
    Consent,
    #[default]
    Other,
}

/// A small preview image kept in the record itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thumbnail {
    /// `image/jpeg`, `image/png` or `image/webp`.
    pub mime_type: String,
    pub data: B64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub file_name: String,
    pub mime_type: String,
    pub size_bytes: u64,
    pub category: AttachmentCategory,
    /// When the image or document was made, `YYYY-MM-DD`.
    #[serde(default)]
    pub taken: Option<String>,
    /// How many encrypted chunks the upload has.
    pub chunk_count: u32,
    #[serde(default)]
    pub thumbnail: Option<Thumbnail>,
    #[serde(default)]
    pub eye: Option<EyeSel>,
    #[serde(default)]
    pub description: String,
    /// The file's own key (`crypto::FileKey`, 39 bytes): its chunks are stored on the server
    /// under this record's id as the file id, sealed with it. Inside this record, so only those
    /// who can open the record can open the file.
    pub file_key: B64,
    /// SHA-256 of the whole plaintext: a resumed upload must be of the same file, and a download
    /// is checked against it once assembled.
    pub sha256: B64,
}

/// `type/subtype` in lower case, RFC 6838 restricted-name characters, no parameters.
pub fn is_mime_shape(s: &str) -> bool {
    let Some((t, sub)) = s.split_once('/') else {
        return false;
    };
    let token = |x: &str| {
        !x.is_empty()
            && x.len() <= 127
            && x.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && x.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$&-^_.+".contains(&b))
    };
    token(t) && token(sub)
}

impl Attachment {
    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        let name = &self.file_name;
        if name.trim().is_empty() {
            c.err("file_name", "The file name is required.");
        } else if name.len() > 255
            || name == "."
            || name == ".."
            || name
                .chars()
                .any(|ch| ch == '/' || ch == '\\' || ch.is_control())
        {
            c.err(
                "file_name",
                "The file name must be at most 255 bytes, without / \\ or control characters.",
            );
        }
        if !is_mime_shape(&self.mime_type) {
            c.err("mime_type", "The file type must look like image/jpeg.");
        }
        if self.size_bytes == 0 || self.size_bytes > MAX_ATTACHMENT_BYTES {
            c.err("size_bytes", "Files must be between 1 byte and 50 MiB.");
        }
        if self.chunk_count == 0 || u64::from(self.chunk_count) > self.size_bytes.max(1) {
            c.err(
                "chunk_count",
                "The chunk count must be at least 1 and at most the size.",
            );
        }
        if let Some(t) = &self.taken {
            c.date("taken", t, "The date taken", parse_date(today), true);
        }
        if let Some(th) = &self.thumbnail {
            if !["image/jpeg", "image/png", "image/webp"].contains(&th.mime_type.as_str()) {
                c.err("thumbnail", "Thumbnails must be JPEG, PNG or WebP.");
            }
            if th.data.is_empty() || th.data.len() > MAX_THUMBNAIL_BYTES {
                c.err("thumbnail", "Thumbnails must be between 1 byte and 32 KiB.");
            }
        }
        c.text("description", &self.description, LINE_MAX, false);
        if self.file_key.len() != 39 {
            c.err("file_key", "The file's key is malformed.");
        }
        if self.sha256.len() != 32 {
            c.err("sha256", "The file's checksum is malformed.");
        }
        c.result()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_attachment() -> Attachment {
        Attachment {
            file_name: "fundus-od-2026-11-20.jpg".into(),
            mime_type: "image/jpeg".into(),
            size_bytes: 2_345_678,
            category: AttachmentCategory::FundusPhoto,
            taken: Some("2026-11-20".into()),
            chunk_count: 3,
            thumbnail: Some(Thumbnail {
                mime_type: "image/webp".into(),
                data: B64(vec![0x52, 0x49, 0x46, 0x46]),
            }),
            eye: Some(EyeSel::Od),
            description: "Optic disc centred".into(),
            file_key: B64(vec![7; 39]),
            sha256: B64(vec![9; 32]),
        }
    }

    fn fields(a: &Attachment) -> Vec<&'static str> {
        a.validate("2026-11-26")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn rules() {
        assert!(fields(&sample_attachment()).is_empty());
        let mut a = sample_attachment();
        a.file_name = "../etc/passwd".into();
        a.mime_type = "JPEG".into();
        a.taken = Some("2026-11-27".into());
        assert_eq!(fields(&a), vec!["file_name", "mime_type", "taken"]);
        let mut a = sample_attachment();
        a.chunk_count = 0;
        a.thumbnail = Some(Thumbnail {
            mime_type: "image/gif".into(),
            data: B64(vec![0; MAX_THUMBNAIL_BYTES + 1]),
        });
        assert_eq!(fields(&a), vec!["chunk_count", "thumbnail", "thumbnail"]);
        assert!(is_mime_shape("application/vnd.dicom+json"));
        assert!(!is_mime_shape("image/"));
        assert!(!is_mime_shape("image/jpeg; q=1"));
    }

    proptest! {
        #[test]
        fn size_limit(size in 0u64..=(60 * 1024 * 1024)) {
            let a = Attachment { size_bytes: size, chunk_count: 1, ..sample_attachment() };
            prop_assert_eq!(fields(&a).is_empty(), (1..=50 * 1024 * 1024).contains(&size));
        }

        #[test]
        fn names_never_panic(name in "\\PC{0,300}", mime in "\\PC{0,20}") {
            let a = Attachment { file_name: name, mime_type: mime, ..sample_attachment() };
            let _ = a.validate("2026-11-26");
        }
    }
}

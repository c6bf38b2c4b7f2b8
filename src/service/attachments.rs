//! Attachments: photos, video and audio streamed in chunks, stored content-addressed (sha256)
//! under the data directory. Limits are enforced while streaming; a refused or broken upload
//! leaves nothing behind.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{
    domain::{Caller, DomainError, DomainResult, case},
    storage::{self, entities::attachment},
};

/// The content types a handset or gateway may attach.
pub const ALLOWED_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/heic",
    "video/mp4",
    "audio/mpeg",
    "audio/aac",
    "audio/amr",
    "application/pdf",
];

/// What the first message of an upload declares.
#[derive(Debug, Clone)]
pub struct Header {
    pub content_type: String,
    pub size_bytes: i64,
    pub file_name: String,
}

#[derive(Debug, Clone)]
pub struct Attachments {
    db: DatabaseConnection,
    dir: PathBuf,
    max_bytes: u64,
}

/// Removes a temporary file unless it was kept.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Attachments {
    pub fn new(db: DatabaseConnection, data_dir: &Path, max_bytes: u64) -> Attachments {
        Attachments {
            db,
            dir: data_dir.join("attachments"),
            max_bytes,
        }
    }

    /// Where the content with this hash lives.
    pub fn path_of(&self, sha256: &str) -> PathBuf {
        self.dir.join(&sha256[..2.min(sha256.len())]).join(sha256)
    }

    fn check(&self, header: &Header) -> DomainResult<u64> {
        if !ALLOWED_TYPES.contains(&header.content_type.as_str()) {
            return Err(DomainError::invalid(
                "header.content_type",
                format!(
                    "{:?} is not allowed; use one of {}",
                    header.content_type,
                    ALLOWED_TYPES.join(", ")
                ),
            ));
        }
        let size = u64::try_from(header.size_bytes)
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| DomainError::invalid("header.size_bytes", "must be positive"))?;
        if size > self.max_bytes {
            return Err(DomainError::ResourceExhausted(format!(
                "header.size_bytes: {size} is over the limit of {} bytes",
                self.max_bytes
            )));
        }
        if header.file_name.chars().count() > 255 || header.file_name.contains(['/', '\\', '\0']) {
            return Err(DomainError::invalid(
                "header.file_name",
                "at most 255 characters, no path separators",
            ));
        }
        Ok(size)
    }

    /// Streams `chunks` to disk, checking the declared size as it goes, then records it.
    ///
    /// The work runs in a task of its own, which a cancelled request cannot interrupt half-way
    /// (a future dropped between creating a temporary file and arming its clean-up left empty
    /// files behind): the task notices the caller is gone at its next chunk, and removes its
    /// temporary file whatever happened. Once every byte has arrived and checked out, storing
    /// the file and its row runs to the end even if the caller has gone meanwhile, like a
    /// report whose answer was lost.
    pub async fn upload<S>(
        &self,
        caller: &Caller,
        header: Header,
        chunks: S,
    ) -> DomainResult<attachment::Model>
    where
        S: Stream<Item = DomainResult<Vec<u8>>> + Send + 'static,
    {
        let declared = self.check(&header)?;
        let this = self.clone();
        let owner = caller.sub.clone();
        // Dropped with this future, whether it finishes or is cancelled.
        let (_caller_waits, caller_gone) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            this.receive(owner, header, declared, chunks, caller_gone)
                .await
        })
        .await
        .map_err(DomainError::internal)?
    }

    async fn receive<S>(
        &self,
        owner: String,
        header: Header,
        declared: u64,
        chunks: S,
        mut caller_gone: tokio::sync::oneshot::Receiver<()>,
    ) -> DomainResult<attachment::Model>
    where
        S: Stream<Item = DomainResult<Vec<u8>>>,
    {
        let tmp_dir = self.dir.join(TMP);
        tokio::fs::create_dir_all(&tmp_dir)
            .await
            .map_err(DomainError::internal)?;
        let tmp_path = tmp_dir.join(uuid::Uuid::new_v4().simple().to_string());
        // Armed before the file exists; this task is never dropped between the two (only a
        // runtime shutting down drops it, and start-up sweeps what that leaves).
        let mut guard = TempFile(Some(tmp_path.clone()));
        let mut file = tokio::fs::File::create(&tmp_path)
            .await
            .map_err(DomainError::internal)?;
        let mut hasher = Sha256::new();
        let mut received: u64 = 0;
        let mut chunks = std::pin::pin!(chunks);
        loop {
            let chunk = tokio::select! {
                biased;
                _ = &mut caller_gone => {
                    return Err(DomainError::invalid("chunk", "the upload was cancelled"));
                }
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else { break };
            let chunk = chunk?;
            received += chunk.len() as u64;
            if received > declared {
                return Err(DomainError::invalid(
                    "chunk",
                    format!("more bytes than the {declared} declared"),
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(DomainError::internal)?;
        }
        if received != declared {
            return Err(DomainError::invalid(
                "chunk",
                format!("{received} bytes arrived; {declared} were declared"),
            ));
        }
        file.sync_all().await.map_err(DomainError::internal)?;
        drop(file);
        let sha256 = hex::encode(hasher.finalize());
        let path = self.path_of(&sha256);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(DomainError::internal)?;
        }
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            // The same content is stored already; this copy is not needed.
        } else {
            tokio::fs::rename(&tmp_path, &path)
                .await
                .map_err(DomainError::internal)?;
            guard.0 = None;
        }
        drop(guard);
        let model = attachment::Model {
            id: uuid::Uuid::now_v7().to_string(),
            sha256,
            size_bytes: header.size_bytes,
            content_type: header.content_type,
            file_name: header.file_name,
            owner_sub: owner,
            created_at: case::now(),
        };
        storage::cases::insert_attachment(&self.db, model.clone()).await?;
        Ok(model)
    }

    /// Removes what uploads left in the temporary directory when the process died mid-upload
    /// (kill -9, power cut). Run at start-up, before any upload: a data directory belongs to
    /// one process at a time.
    pub async fn sweep_temporary_files(&self) -> std::io::Result<usize> {
        let mut entries = match tokio::fs::read_dir(self.dir.join(TMP)).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_type().await?.is_file() {
                tokio::fs::remove_file(entry.path()).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Where uploads are written until their content is known.
const TMP: &str = "tmp";

/// Attachment ids must exist and belong to the caller; names the first that does not.
pub async fn check_owned(
    db: &DatabaseConnection,
    caller: &Caller,
    ids: &[String],
) -> DomainResult<()> {
    if ids.len() > 20 {
        return Err(DomainError::invalid(
            "attachment_ids",
            "at most 20 attachments",
        ));
    }
    let found = storage::cases::attachments(db, ids).await?;
    for (i, id) in ids.iter().enumerate() {
        if !found
            .iter()
            .any(|a| &a.id == id && a.owner_sub == caller.sub)
        {
            return Err(DomainError::invalid(
                format!("attachment_ids[{i}]"),
                format!("no attachment {id:?} uploaded by you"),
            ));
        }
    }
    Ok(())
}

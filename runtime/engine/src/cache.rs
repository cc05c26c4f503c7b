//! The on-disk cache of compiled hooks, so a restart loads a hook in about a millisecond
//! instead of compiling it again (seconds for a JavaScript hook).
//!
//! A compiled artifact is native code that runs outside the sandbox, so nothing is
//! deserialized on the strength of its file name:
//! - each artifact ends in an HMAC-SHA256 tag over the module's sha256, the engine's
//!   compatibility digest and the artifact, under a key derived from the installation's
//!   secrets key; a file whose tag does not verify (damaged, swapped for another hook's
//!   artifact, or written by someone else) is never deserialized and the module is compiled
//!   again;
//! - a file not owned by this process's user, or writable by group or others, is refused;
//! - artifacts are written to a uniquely named temporary file, synced, and renamed into
//!   place (then the directory is synced), so a crash never leaves a partial artifact under a
//!   valid name and two writers never share a temporary file.
//!
//! An artifact's name is the module's sha256 plus a digest of the engine's
//! `precompile_compatibility_hash()`: a different wasmtime version or engine configuration
//! never picks up an artifact it cannot run.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;

use aws_lc_rs::hmac;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::EngineError;

/// Length of the tag that ends every artifact file.
const TAG_LEN: usize = 32;

/// Where compiled hooks are cached and the key their artifacts are authenticated with.
#[derive(Clone)]
pub struct ArtifactCacheSettings {
    /// The directory (created 0700 when missing).
    pub dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for ArtifactCacheSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCacheSettings")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ArtifactCacheSettings {
    /// A cache in `dir` whose artifacts are authenticated under a key derived from
    /// `key_material` (the installation's secrets key; any secret of 32 bytes or more).
    pub fn new(dir: PathBuf, key_material: &[u8]) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, key_material);
        let mut key = [0u8; 32];
        key.copy_from_slice(hmac::sign(&derive, b"hookd compiled-artifact cache v1").as_ref());
        ArtifactCacheSettings { dir, key }
    }

    /// A cache in `dir` with its own key, kept in `dir/cache.key` (created 0600 when
    /// missing): for the local runner, which has no installation secrets key.
    pub fn with_local_key(dir: PathBuf) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let key_path = dir.join("cache.key");
        let key = match fs::read(&key_path) {
            Ok(key) if key.len() >= 32 => key,
            Ok(_) => return Err(std::io::Error::other("cache.key is shorter than 32 bytes")),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = vec![0u8; 32];
                aws_lc_rs::rand::fill(&mut key)
                    .map_err(|_| std::io::Error::other("the system random generator failed"))?;
                crate::files::write_private(&key_path, &key)?;
                key
            }
            Err(error) => return Err(error),
        };
        Ok(Self::new(dir, &key))
    }
}

/// A directory of compiled artifacts for one engine configuration.
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_digest: String,
    key: hmac::Key,
}

impl std::fmt::Debug for ArtifactCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactCache")
            .field("dir", &self.dir)
            .field("engine_digest", &self.engine_digest)
            .finish_non_exhaustive()
    }
}

/// Feeds `Hash` output into SHA-256, giving a digest that is stable across processes
/// (unlike `DefaultHasher`, which only promises stability within one build).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        0
    }
}

impl ArtifactCache {
    /// Opens (creating if needed, private to this user) the cache directory.
    pub(crate) fn open(
        settings: &ArtifactCacheSettings,
        engine: &Engine,
    ) -> Result<Self, EngineError> {
        let dir = settings.dir.as_path();
        let cache_error = |source| EngineError::Cache {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(cache_error)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(cache_error)?;
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_digest = hex::encode(&hasher.0.finalize()[..8]);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_digest,
            key: hmac::Key::new(hmac::HMAC_SHA256, &settings.key),
        })
    }

    fn artifact_path(&self, module_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{module_sha256}-{}.cwasm", self.engine_digest))
    }

    /// The tag that authenticates `artifact` as this module's, for this engine.
    fn tag(&self, module_sha256: &str, artifact: &[u8]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(module_sha256.as_bytes());
        context.update(b"\0");
        context.update(self.engine_digest.as_bytes());
        context.update(b"\0");
        context.update(artifact);
        context.sign()
    }

    /// The cached compiled component for a module, if there is a trustworthy one: owned by
    /// this user, not writable by others, and carrying a valid tag. Anything else is
    /// discarded (when it can be) and the module is compiled again.
    pub(crate) fn load(&self, engine: &Engine, module_sha256: &str) -> Option<Component> {
        let path = self.artifact_path(module_sha256);
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "compiled hook unreadable");
                return None;
            }
        };
        if let Err(reason) = check_owner(&file) {
            tracing::warn!(path = %path.display(), reason, "refusing a compiled hook");
            return None;
        }
        let mut bytes = Vec::new();
        if let Err(error) = std::io::Read::read_to_end(&mut file, &mut bytes) {
            tracing::warn!(path = %path.display(), %error, "compiled hook unreadable");
            return None;
        }
        let authentic = bytes.len() > TAG_LEN && {
            let (artifact, tag) = bytes.split_at(bytes.len() - TAG_LEN);
            aws_lc_rs::constant_time::verify_slices_are_equal(
                self.tag(module_sha256, artifact).as_ref(),
                tag,
            )
            .is_ok()
        };
        if !authentic {
            tracing::warn!(
                path = %path.display(),
                "discarding a compiled hook whose tag does not verify (damaged or not written \
                 by this installation)"
            );
            let _ = fs::remove_file(&path);
            return None;
        }
        let artifact = &bytes[..bytes.len() - TAG_LEN];
        // SAFETY: `deserialize` trusts its input to be an artifact wasmtime produced. This one
        // carries a tag under the installation's key over the module's sha256, this engine's
        // compatibility digest and the artifact itself, which only `store` below computes,
        // over bytes `Component::serialize` returned; wasmtime still checks the header and
        // engine compatibility.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize(engine, artifact) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled hook");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes a compiled component to the cache with its tag: a unique temporary file,
    /// synced, renamed into place, then the directory synced. Failure only costs a recompile
    /// later, so it is logged, not returned.
    pub(crate) fn store(&self, component: &Component, module_sha256: &str) {
        let path = self.artifact_path(module_sha256);
        let written = component
            .serialize()
            .map_err(|error| error.to_string())
            .and_then(|mut bytes| {
                let tag = self.tag(module_sha256, &bytes);
                bytes.extend_from_slice(tag.as_ref());
                crate::files::write_private(&path, &bytes).map_err(|error| error.to_string())
            });
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled hook");
        }
    }
}

/// Refuses a file not owned by this process's user or writable by group or others: whoever
/// could write it could put native code next to the signing keys.
fn check_owner(file: &fs::File) -> Result<(), &'static str> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let metadata = file.metadata().map_err(|_| "its metadata cannot be read")?;
        if metadata.uid() != rustix::process::geteuid().as_raw() {
            return Err("it is owned by another user");
        }
        if metadata.mode() & 0o022 != 0 {
            return Err("it is writable by group or others");
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

//! The on-disk cache of compiled hooks, so a restart loads a hook in about a millisecond
//! instead of compiling it again (seconds for a JavaScript hook).
//!
//! An artifact's name is the module's sha256 plus a digest of the engine's
//! `precompile_compatibility_hash()`: a different wasmtime version or engine configuration
//! never picks up an artifact it cannot run. Artifacts are written to a temporary file and
//! renamed into place, so a crash never leaves a partial artifact under a valid name.

use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::EngineError;

/// A directory of compiled artifacts for one engine configuration.
#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_digest: String,
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
    pub(crate) fn open(dir: &Path, engine: &Engine) -> Result<Self, EngineError> {
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
        })
    }

    fn artifact_path(&self, module_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{module_sha256}-{}.cwasm", self.engine_digest))
    }

    /// The cached compiled component for a module, if there is a usable one. An artifact
    /// wasmtime refuses is deleted so the next load recompiles it.
    pub(crate) fn load(&self, engine: &Engine, module_sha256: &str) -> Option<Component> {
        let path = self.artifact_path(module_sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be an artifact wasmtime produced.
        // Only this cache writes into its directory (created 0700 for hookd's user), under a
        // name that binds the module's sha256 and this engine's compatibility hash, and
        // wasmtime still checks the artifact's header and engine compatibility.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable compiled hook");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes a compiled component to the cache. Failure only costs a recompile later, so it
    /// is logged, not returned.
    pub(crate) fn store(&self, component: &Component, module_sha256: &str) {
        let path = self.artifact_path(module_sha256);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let written = component
            .serialize()
            .map_err(|error| error.to_string())
            .and_then(|bytes| fs::write(&temporary, bytes).map_err(|error| error.to_string()))
            .and_then(|()| fs::rename(&temporary, &path).map_err(|error| error.to_string()));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "could not cache compiled hook");
            let _ = fs::remove_file(&temporary);
        }
    }
}

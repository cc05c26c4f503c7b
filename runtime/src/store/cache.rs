//! The decoded records every token request reads (the client, the API by audience, the
//! client grant by pair), kept in memory so the token endpoint skips sled and JSON decoding;
//! every write to those trees empties it.
//!
//! Coherence rests on a generation number. A write to sled is followed by
//! [`RecordCache::invalidate`], which bumps the generation and empties the maps. A reader that
//! missed notes the generation before it reads sled, and its result is cached only if the
//! generation has not moved by the time it takes the lock to insert: a value read before or
//! during a write can never be cached after that write's invalidation. Only records that exist
//! are cached, so unknown client ids or audiences sent by anyone cannot grow it; each map is
//! also capped.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use crate::model::{Api, Client, ClientGrant};

/// At most this many records of each kind are cached; an insert into a full map empties it
/// first (a store this large still serves every request, from sled, until the map refills).
pub(super) const MAX_RECORDS_PER_KIND: usize = 10_000;

/// The maps, and the generation every write bumps.
#[derive(Debug, Default)]
pub(super) struct Records {
    generation: u64,
    clients: HashMap<String, Client>,
    apis_by_identifier: HashMap<String, Api>,
    grants_by_pair: HashMap<Vec<u8>, ClientGrant>,
}

/// The cache itself; shared by every clone of the store.
#[derive(Debug, Default)]
pub(super) struct RecordCache {
    records: RwLock<Records>,
}

/// Which map a lookup uses.
pub(super) trait Kind {
    type Key: Eq + Hash;
    type Record: Clone;
    fn map(records: &Records) -> &HashMap<Self::Key, Self::Record>;
    fn map_mut(records: &mut Records) -> &mut HashMap<Self::Key, Self::Record>;
}

/// Applications by `client_id`.
pub(super) struct Clients;
/// APIs by identifier (the audience).
pub(super) struct ApisByIdentifier;
/// Client grants by their (`client_id`, audience) index key.
pub(super) struct GrantsByPair;

/// `impl Kind for $kind`: its maps are `Records::$field`.
macro_rules! kind {
    ($kind:ident, $key:ty, $record:ty, $field:ident) => {
        impl Kind for $kind {
            type Key = $key;
            type Record = $record;
            fn map(records: &Records) -> &HashMap<$key, $record> {
                &records.$field
            }
            fn map_mut(records: &mut Records) -> &mut HashMap<$key, $record> {
                &mut records.$field
            }
        }
    };
}

kind!(Clients, String, Client, clients);
kind!(ApisByIdentifier, String, Api, apis_by_identifier);
kind!(GrantsByPair, Vec<u8>, ClientGrant, grants_by_pair);

impl RecordCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Records> {
        self.records.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Records> {
        self.records.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached record for `key`, or else what `load` reads (cached if it exists and no
    /// write happened meanwhile). `key` is built only on a miss that found a record.
    pub(super) fn get_or_load<K: Kind, E>(
        &self,
        lookup: impl FnOnce(&HashMap<K::Key, K::Record>) -> Option<&K::Record>,
        key: impl FnOnce() -> K::Key,
        load: impl FnOnce() -> Result<Option<K::Record>, E>,
    ) -> Result<Option<K::Record>, E> {
        let generation = {
            let records = self.read();
            if let Some(record) = lookup(K::map(&records)) {
                return Ok(Some(record.clone()));
            }
            records.generation
        };
        let loaded = load()?;
        if let Some(record) = &loaded {
            let mut records = self.write();
            if records.generation == generation {
                let map = K::map_mut(&mut records);
                if map.len() >= MAX_RECORDS_PER_KIND {
                    map.clear();
                }
                map.insert(key(), record.clone());
            }
        }
        Ok(loaded)
    }

    /// Forgets everything; called after every write to the clients, APIs or grants.
    pub(super) fn invalidate(&self) {
        let mut records = self.write();
        records.generation = records.generation.wrapping_add(1);
        records.clients.clear();
        records.apis_by_identifier.clear();
        records.grants_by_pair.clear();
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        let records = self.read();
        records.clients.len() + records.apis_by_identifier.len() + records.grants_by_pair.len()
    }
}

//! Lists: served from the watch cache (consistent: after the cache caught up with storage),
//! paginated with continue tokens that later pages read from storage at the first page's
//! revision, so an expired token gives 410.

use super::store::{storage_error, Store};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::storage::{ListOptions, StorageError};
use crate::watch_cache::{decode, Obj};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label: LabelSelector,
    pub field: FieldSelector,
    pub limit: i64,
    pub continue_token: Option<String>,
    /// None = consistent read; Some(0) = any; Some(n) = not older than n.
    pub resource_version: Option<i64>,
    /// resourceVersionMatch=Exact: the list as it was at `resource_version`, read from storage.
    pub exact: bool,
}

pub struct ListOutput {
    pub items: Vec<Obj>,
    pub resource_version: i64,
    pub continue_token: Option<String>,
}

/// Upstream's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key suffix>"}`.
#[derive(Serialize, Deserialize, Debug, PartialEq, Eq)]
struct Continue {
    v: String,
    rv: i64,
    start: String,
}

pub fn encode_continue(rv: i64, start: &str) -> String {
    let c = Continue { v: "meta.k8s.io/v1".into(), rv, start: start.into() };
    base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&c).unwrap_or_default())
}

fn decode_continue(token: &str) -> Result<(i64, String), ApiError> {
    let bad = || ApiError::BadRequest("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)".into());
    let raw = base64::engine::general_purpose::STANDARD.decode(token).or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(token)).map_err(|_| bad())?;
    let c: Continue = serde_json::from_slice(&raw).map_err(|_| bad())?;
    // -1 is upstream's "continue at the latest revision", handed out with an expired token.
    if c.v != "meta.k8s.io/v1" || (c.rv <= 0 && c.rv != LATEST) || c.start.contains("..") || c.start.starts_with('/') {
        return Err(bad());
    }
    Ok((c.rv, c.start))
}

/// A continue token's revision meaning "the latest", as upstream encodes it.
const LATEST: i64 = -1;

/// Upstream's answer to an Exact list below the compacted revision.
const EXPIRED_LIST: &str = "The resourceVersion for the provided list is too old.";

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

impl Store {
    fn matches(&self, p: &ListParams, o: &Obj) -> bool {
        (p.label.is_empty() || p.label.matches(&o.fields)) && (p.field.is_empty() || p.field.matches(self.row.kind(), &o.fields))
    }

    pub async fn list(&self, ns: Option<&str>, p: &ListParams) -> Result<ListOutput, ApiError> {
        let prefix = self.prefix(ns);
        let all_prefix = self.prefix(None);
        if let Some(token) = &p.continue_token {
            let (rv, start) = decode_continue(token)?;
            // A token can only name a revision that was current when it was made.
            if self.storage.current_revision().await.is_ok_and(|cur| rv > cur) {
                return Err(ApiError::BadRequest(format!("continue key is not valid: resource version {rv} is newer than the current one")));
            }
            let rv = if rv == LATEST { 0 } else { rv };
            return self.list_from_storage(&prefix, &all_prefix, p, rv, Some(format!("{all_prefix}{start}"))).await;
        }
        let cache_ok = match p.resource_version {
            Some(0) => self.cache.is_ready(),
            Some(rv) if p.exact => {
                if self.storage.current_revision().await.is_ok_and(|cur| rv > cur) {
                    return Err(ApiError::Timeout(format!("Too large resource version: {rv}, current: {}", self.cache.revision())));
                }
                return self.list_from_storage(&prefix, &all_prefix, p, rv, None).await;
            }
            Some(rv) => {
                if !self.cache.wait_for(rv, Duration::from_secs(3)).await {
                    if self.cache.is_ready() && self.storage.current_revision().await.is_ok_and(|cur| rv > cur) {
                        return Err(ApiError::Timeout(format!("Too large resource version: {rv}, current: {}", self.cache.revision())));
                    }
                    false
                } else {
                    true
                }
            }
            None => match self.cache.wait_fresh(Duration::from_secs(3)).await {
                Ok(_) => true,
                Err(crate::watch_cache::CacheError::Storage(e)) => return Err(storage_error(self.target(""), e)),
                Err(_) => false,
            },
        };
        if !cache_ok {
            return self.list_from_storage(&prefix, &all_prefix, p, 0, None).await;
        }
        let (snapshot, rev) = self.cache.snapshot(&prefix);
        let mut items = Vec::new();
        let mut continue_token = None;
        // Upstream ignores limit for resourceVersion=0 served from the cache.
        let limit = if p.resource_version == Some(0) { 0 } else { p.limit.max(0) as usize };
        for (i, o) in snapshot.iter().enumerate() {
            if !self.matches(p, o) {
                continue;
            }
            if limit > 0 && items.len() == limit {
                let _ = i;
                let last: &Obj = items.last().expect("limit > 0");
                let start = format!("{}\u{0}", &last.key[all_prefix.len()..]);
                continue_token = Some(encode_continue(rev, &start));
                break;
            }
            items.push(o.clone());
        }
        Ok(ListOutput { items, resource_version: rev, continue_token })
    }

    async fn list_from_storage(
        &self,
        prefix: &str,
        all_prefix: &str,
        p: &ListParams,
        revision: i64,
        start: Option<String>,
    ) -> Result<ListOutput, ApiError> {
        let limit = p.limit.max(0);
        let mut items: Vec<Obj> = Vec::new();
        let mut start_key = start.clone();
        let mut rev = revision;
        loop {
            let page = self
                .storage
                .list(prefix, ListOptions { revision: rev, start_key: start_key.clone(), limit: if limit > 0 { limit + 1 } else { 0 } })
                .await
                .map_err(|e| match (e, &start) {
                    // Upstream hands out a token that goes on from the same key at the latest
                    // revision, for clients that accept an inconsistent remainder.
                    (StorageError::Compacted { .. }, Some(key)) => ApiError::ExpiredContinue {
                        message: EXPIRED_CONTINUE.into(),
                        continue_token: encode_continue(LATEST, &key[all_prefix.len()..]),
                    },
                    (StorageError::Compacted { .. }, None) if revision > 0 => ApiError::Expired(EXPIRED_LIST.into()),
                    (other, _) => storage_error(self.target(""), other),
                })?;
            rev = page.revision;
            let mut last_key = None;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let Some(o) = decode(&kv.key, &kv.value, kv.mod_revision) else { continue };
                if !self.matches(p, &o) {
                    continue;
                }
                if limit > 0 && items.len() as i64 == limit {
                    let last = items.last().expect("limit > 0");
                    let start = format!("{}\u{0}", &last.key[all_prefix.len()..]);
                    return Ok(ListOutput { items, resource_version: rev, continue_token: Some(encode_continue(rev, &start)) });
                }
                items.push(o);
            }
            match (page.more, last_key) {
                (true, Some(k)) => start_key = Some(format!("{k}\u{0}")),
                _ => return Ok(ListOutput { items, resource_version: rev, continue_token: None }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_token_round_trips_and_rejects_garbage() {
        let t = encode_continue(42, "default/web\u{0}");
        assert_eq!(decode_continue(&t).unwrap(), (42, "default/web\u{0}".to_string()));
        assert!(decode_continue("%%%").is_err());
        assert!(decode_continue(&base64::engine::general_purpose::STANDARD.encode("{}")).is_err());
        assert!(decode_continue(&encode_continue(1, "../x")).is_err());
        assert_eq!(decode_continue(&encode_continue(-1, "ns/a\u{0}")).unwrap().0, -1);
        assert!(decode_continue(&encode_continue(0, "ns/a")).is_err());
    }
}

//! Reading a whole resource page by page at one revision (upstream's reflector lists the
//! watch cache's initial state in pages of 10,000): the caller holds one page of raw values
//! at a time, and the backend never has to answer with the whole resource at once.

use super::*;

/// Keys per page at most (upstream's storageWatchListPageSize).
pub const PAGE_KEYS: i64 = 10_000;
/// The size pages aim at, so that no response has to hold a whole resource.
pub const PAGE_BYTES: usize = 32 << 20;
/// The first page's keys, before anything is known of the values' size.
pub const FIRST_PAGE_KEYS: i64 = 100;

/// The keys of the next page: what [`PAGE_BYTES`] holds at the last page's average size.
pub fn next_page_keys(bytes: usize, keys: usize) -> i64 {
    let average = (bytes / keys.max(1)).max(1);
    ((PAGE_BYTES / average) as i64).clamp(1, PAGE_KEYS)
}

/// Hands every key under `prefix` to `each`, a page at a time, all read at the revision of
/// the first page (or `revision` when not 0); returns that revision.
pub async fn for_each_page(
    storage: &dyn Storage,
    prefix: &str,
    revision: i64,
    mut each: impl FnMut(Vec<KeyValue>),
) -> StorageResult<i64> {
    let mut opts = ListOptions { revision, start_key: None, limit: FIRST_PAGE_KEYS };
    loop {
        let page = storage.list(prefix, opts.clone()).await?;
        opts.revision = page.revision;
        let bytes = page.items.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
        opts.limit = next_page_keys(bytes, page.items.len());
        let next = page.items.last().filter(|_| page.more).map(|kv| format!("{}\0", kv.key));
        each(page.items);
        match next {
            Some(start) => opts.start_key = Some(start),
            None => return Ok(opts.revision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_aim_at_the_byte_budget() {
        assert_eq!(next_page_keys(100 * 200, 100), PAGE_KEYS);
        assert_eq!(next_page_keys(100 << 20, 100), 32);
        assert_eq!(next_page_keys(0, 0), PAGE_KEYS);
        assert_eq!(next_page_keys(1 << 30, 1), 1);
    }
}

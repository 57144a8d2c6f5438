//! Verified tokens, so a request with a token it has seen costs a hash and a lookup instead of
//! a signature check (upstream's cached token authenticator). Bounded: least recently used
//! entries go first. Keyed by the token's SHA-256, so the cache holds no credentials.

use parking_lot::Mutex;
use sha2::Digest;

pub type Key = [u8; 32];

pub struct TokenCache<V> {
    inner: Mutex<lru::LruCache<Key, V>>,
    capacity: usize,
}

impl<V: Clone> TokenCache<V> {
    /// Grows as tokens arrive (an idle server keeps no table), up to `capacity`.
    pub fn new(capacity: usize) -> Self {
        TokenCache { inner: Mutex::new(lru::LruCache::unbounded()), capacity: capacity.max(1) }
    }

    /// The key of `token` checked for `audiences`.
    pub fn key(token: &str, audiences: &[String]) -> Key {
        let mut h = sha2::Sha256::new();
        h.update(token.as_bytes());
        for a in audiences {
            h.update([0]);
            h.update(a.as_bytes());
        }
        h.finalize().into()
    }

    pub fn get(&self, key: &Key) -> Option<V> {
        self.inner.lock().get(key).cloned()
    }

    pub fn put(&self, key: Key, value: V) {
        let mut c = self.inner.lock();
        while c.len() >= self.capacity && !c.contains(&key) {
            c.pop_lru();
        }
        c.put(key, value);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_keyed_by_audience() {
        let c: TokenCache<u32> = TokenCache::new(2);
        let k1 = TokenCache::<u32>::key("t1", &[]);
        c.put(k1, 1);
        c.put(TokenCache::<u32>::key("t2", &[]), 2);
        c.put(TokenCache::<u32>::key("t3", &[]), 3);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&k1), None);
        assert_ne!(TokenCache::<u32>::key("t", &["a".into()]), TokenCache::<u32>::key("t", &[]));
    }
}

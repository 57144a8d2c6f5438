//! Service NodePorts (upstream pkg/registry/core/service/portallocator): a port range kept
//! as a bitmap in `/registry/ranges/servicenodeports`.

use super::range::RangeStore;
use super::AllocError;
use crate::storage::DynStorage;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub base: u16,
    pub size: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid port range {0:?}: want FROM-TO such as 30000-32767")]
pub struct PortRangeError(pub String);

impl PortRange {
    /// `30000-32767`, or a single port, as upstream's net.ParsePortRange.
    pub fn parse(s: &str) -> Result<Self, PortRangeError> {
        let err = || PortRangeError(s.into());
        let (a, b) = match s.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (s.trim(), s.trim()),
        };
        let base: u16 = a.parse().map_err(|_| err())?;
        let last: u16 = b.parse().map_err(|_| err())?;
        if base == 0 || last < base {
            return Err(err());
        }
        Ok(PortRange { base, size: last - base + 1 })
    }

    pub fn contains(&self, port: u16) -> bool {
        port >= self.base && (port - self.base) < self.size
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.base, self.base as u32 + self.size as u32 - 1)
    }
}

pub struct PortAllocator {
    pub range: PortRange,
    store: RangeStore,
}

impl PortAllocator {
    pub fn new(storage: DynStorage, etcd_prefix: &str, range: PortRange) -> Self {
        let store = RangeStore::new(storage, format!("{etcd_prefix}/ranges/servicenodeports"), range.to_string(), range.size as usize);
        PortAllocator { range, store }
    }

    pub async fn allocate(&self, port: u16) -> Result<(), AllocError> {
        if !self.range.contains(port) {
            return Err(AllocError::NotInRange { valid: self.range.to_string() });
        }
        self.store.allocate((port - self.range.base) as usize).await
    }

    pub async fn allocate_next(&self) -> Result<u16, AllocError> {
        Ok(self.range.base + self.store.allocate_next().await? as u16)
    }

    pub async fn release(&self, port: u16) -> Result<(), AllocError> {
        if !self.range.contains(port) {
            return Ok(());
        }
        self.store.release((port - self.range.base) as usize).await
    }

    pub fn store(&self) -> &RangeStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_upstream() {
        let r = PortRange::parse("30000-32767").unwrap();
        assert_eq!((r.base, r.size), (30000, 2768));
        assert_eq!(r.to_string(), "30000-32767");
        assert!(r.contains(32767) && !r.contains(32768) && !r.contains(29999));
        assert_eq!(PortRange::parse("8080").unwrap().size, 1);
        for bad in ["", "a-b", "5-4", "0-10", "1-70000"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }
}

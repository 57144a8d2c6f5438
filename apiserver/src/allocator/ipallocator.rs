//! Service cluster IPs (upstream pkg/registry/core/service/ipallocator): a CIDR whose
//! network and broadcast addresses are never handed out, kept as a bitmap in
//! `/registry/ranges/serviceips`.

use super::range::RangeStore;
use super::AllocError;
use crate::storage::DynStorage;
use std::net::Ipv4Addr;

/// An IPv4 service range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: Ipv4Addr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    #[error("invalid CIDR {0:?}: want an IPv4 address/prefix such as 10.96.0.0/16")]
    Syntax(String),
    #[error("specified --service-cluster-ip-range {0} is too large; for 32-bit addresses, the mask must be >= 12")]
    TooLarge(String),
    #[error("specified --service-cluster-ip-range {0} is too small: it must hold at least one service IP")]
    TooSmall(String),
}

impl IpRange {
    pub fn parse(cidr: &str) -> Result<Self, RangeError> {
        let (ip, prefix) = cidr.split_once('/').ok_or_else(|| RangeError::Syntax(cidr.into()))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| RangeError::Syntax(cidr.into()))?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(|| RangeError::Syntax(cidr.into()))?;
        if prefix < 12 {
            return Err(RangeError::TooLarge(cidr.into()));
        }
        if prefix > 30 {
            return Err(RangeError::TooSmall(cidr.into()));
        }
        let mask = u32::MAX << (32 - prefix);
        Ok(IpRange { network: Ipv4Addr::from(u32::from(ip) & mask), prefix })
    }

    /// How many addresses can be handed out: all but the network and broadcast addresses.
    pub fn size(&self) -> usize {
        (1usize << (32 - self.prefix)) - 2
    }

    /// The offset of `ip` in the bitmap, when it can be allocated.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<usize> {
        let d = u32::from(ip).checked_sub(u32::from(self.network))? as usize;
        (1..=self.size()).contains(&d).then(|| d - 1)
    }

    pub fn ip(&self, offset: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) + offset as u32 + 1)
    }

    /// The n-th address (1-based) of the range: 1 is the kubernetes Service, 10 kube-dns.
    pub fn nth(&self, n: usize) -> Ipv4Addr {
        self.ip(n - 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX << (32 - self.prefix);
        u32::from(ip) & mask == u32::from(self.network)
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

pub struct IpAllocator {
    pub range: IpRange,
    store: RangeStore,
}

impl IpAllocator {
    pub fn new(storage: DynStorage, etcd_prefix: &str, range: IpRange) -> Self {
        let store = RangeStore::new(storage, format!("{etcd_prefix}/ranges/serviceips"), range.to_string(), range.size());
        IpAllocator { range, store }
    }

    fn offset(&self, ip: Ipv4Addr) -> Result<usize, AllocError> {
        self.range.offset(ip).ok_or_else(|| AllocError::NotInRange { valid: self.range.to_string() })
    }

    pub async fn allocate(&self, ip: Ipv4Addr) -> Result<(), AllocError> {
        self.store.allocate(self.offset(ip)?).await
    }

    pub async fn allocate_next(&self) -> Result<Ipv4Addr, AllocError> {
        Ok(self.range.ip(self.store.allocate_next().await?))
    }

    /// Frees `ip`; an address outside the range (the flag changed) is nothing to free.
    pub async fn release(&self, ip: Ipv4Addr) -> Result<(), AllocError> {
        match self.range.offset(ip) {
            Some(o) => self.store.release(o).await,
            None => Ok(()),
        }
    }

    pub fn store(&self) -> &RangeStore {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slash_16_skips_network_and_broadcast() {
        let r = IpRange::parse("10.96.0.0/16").unwrap();
        assert_eq!(r.size(), 65534);
        assert_eq!(r.ip(0), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(r.nth(10), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(r.offset(Ipv4Addr::new(10, 96, 0, 0)), None);
        assert_eq!(r.offset(Ipv4Addr::new(10, 96, 255, 255)), None);
        assert_eq!(r.offset(Ipv4Addr::new(10, 96, 255, 254)), Some(65533));
        assert_eq!(r.offset(Ipv4Addr::new(10, 0, 0, 1)), None);
        assert!(r.contains(Ipv4Addr::new(10, 96, 3, 4)));
        assert_eq!(IpRange::parse("10.96.1.7/16").unwrap().to_string(), "10.96.0.0/16");
    }

    #[test]
    fn bad_ranges_are_refused() {
        assert!(matches!(IpRange::parse("10.96.0.0"), Err(RangeError::Syntax(_))));
        assert!(matches!(IpRange::parse("fd00::/112"), Err(RangeError::Syntax(_))));
        assert!(matches!(IpRange::parse("10.0.0.0/8"), Err(RangeError::TooLarge(_))));
        assert!(matches!(IpRange::parse("10.0.0.0/31"), Err(RangeError::TooSmall(_))));
    }
}

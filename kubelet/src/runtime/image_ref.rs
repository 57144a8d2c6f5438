//! Image names as the kubelet sees them: normalisation (`busybox` →
//! `docker.io/library/busybox:latest`) and registry mirrors.

use std::collections::BTreeMap;

/// A fully qualified image reference split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    /// Tag, absent when the reference is pinned by digest only.
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageRefError {
    #[error("couldn't parse image name {0:?}: invalid reference format")]
    Invalid(String),
}

impl ImageRef {
    /// Parses an image name the way the docker reference library does.
    pub fn parse(name: &str) -> Result<Self, ImageRefError> {
        let invalid = || ImageRefError::Invalid(name.to_string());
        if name.is_empty() || name.chars().any(|c| c.is_whitespace()) {
            return Err(invalid());
        }
        let (rest, digest) = match name.split_once('@') {
            Some((r, d)) => {
                if !d.contains(':') {
                    return Err(invalid());
                }
                (r, Some(d.to_string()))
            }
            None => (name, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (repo_part, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (
                &rest[..last_slash + i],
                Some(rest[last_slash + i + 1..].to_string()),
            ),
            None => (rest, None),
        };
        if repo_part.is_empty() || tag.as_deref() == Some("") {
            return Err(invalid());
        }
        let (registry, repository) = match repo_part.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), repo_part.to_string()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty()
            || repository
                .chars()
                .any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/".contains(c)))
        {
            return Err(invalid());
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The canonical name stored as containerd's image record.
    pub fn canonical(&self) -> String {
        let mut s = format!("{}/{}", self.registry, self.repository);
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// A registry host mapped to the endpoint pulls really go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// `host:port` without a scheme.
    pub host: String,
    /// Plain HTTP when the mirror URL says `http://`.
    pub insecure: bool,
}

/// Mirrors keyed by the registry they stand in for (`docker.io`).
#[derive(Debug, Clone, Default)]
pub struct Mirrors(pub BTreeMap<String, Mirror>);

impl Mirrors {
    /// Parses `docker.io=http://127.0.0.1:5000` flags.
    pub fn parse(flags: &[String]) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for f in flags {
            let (reg, url) = f
                .split_once('=')
                .ok_or_else(|| format!("--registry-mirror {f:?}: expected REGISTRY=URL"))?;
            let (insecure, host) = if let Some(h) = url.strip_prefix("http://") {
                (true, h)
            } else if let Some(h) = url.strip_prefix("https://") {
                (false, h)
            } else {
                (false, url)
            };
            let host = host.trim_end_matches('/').to_string();
            if reg.is_empty() || host.is_empty() {
                return Err(format!("--registry-mirror {f:?}: expected REGISTRY=URL"));
            }
            map.insert(reg.to_string(), Mirror { host, insecure });
        }
        Ok(Mirrors(map))
    }

    /// Where to fetch `r` from: the mirror's host if one is set, else the registry.
    pub fn endpoint(&self, r: &ImageRef) -> Mirror {
        match self.0.get(&r.registry) {
            Some(m) => m.clone(),
            None => Mirror {
                host: if r.registry == "docker.io" {
                    "registry-1.docker.io".to_string()
                } else {
                    r.registry.clone()
                },
                insecure: r.registry.starts_with("localhost") || r.registry.starts_with("127."),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_to_docker_library() {
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.canonical(), "docker.io/library/busybox:latest");
        let r = ImageRef::parse("nginx:1.0").unwrap();
        assert_eq!(r.canonical(), "docker.io/library/nginx:1.0");
        let r = ImageRef::parse("foo/bar").unwrap();
        assert_eq!(r.canonical(), "docker.io/foo/bar:latest");
    }

    #[test]
    fn registry_with_port_and_digest() {
        let r = ImageRef::parse("127.0.0.1:5000/library/busybox@sha256:abc").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag, None);
        assert_eq!(r.canonical(), "127.0.0.1:5000/library/busybox@sha256:abc");
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(ImageRef::parse("").is_err());
        assert!(ImageRef::parse("Busy Box").is_err());
        assert!(ImageRef::parse("busybox:").is_err());
        assert!(ImageRef::parse("UPPER").is_err());
    }

    #[test]
    fn mirror_replaces_docker_io() {
        let m = Mirrors::parse(&["docker.io=http://127.0.0.1:5000".into()]).unwrap();
        let e = m.endpoint(&ImageRef::parse("busybox").unwrap());
        assert_eq!(
            e,
            Mirror {
                host: "127.0.0.1:5000".into(),
                insecure: true
            }
        );
        assert!(Mirrors::parse(&["nope".into()]).is_err());
    }
}

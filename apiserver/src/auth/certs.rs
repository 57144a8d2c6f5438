//! The cluster CA and the certificates it signs, kept as PEM files in --cert-dir and reused
//! when present.

use super::AuthError;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use std::path::{Path, PathBuf};

pub struct Pem {
    pub cert: String,
    pub key: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AuthError + '_ {
    move |source| AuthError::Io { path: path.display().to_string(), source }
}

fn cert_err(e: rcgen::Error) -> AuthError {
    AuthError::Cert(e.to_string())
}

pub(crate) fn write_private(path: &Path, data: &str) -> Result<(), AuthError> {
    std::fs::write(path, data).map_err(io(path))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(())
}

fn read_pair(dir: &Path, name: &str) -> Option<Pem> {
    let cert = std::fs::read_to_string(dir.join(format!("{name}.crt"))).ok()?;
    let key = std::fs::read_to_string(dir.join(format!("{name}.key"))).ok()?;
    Some(Pem { cert, key })
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// `ca.crt`/`ca.key`, created when absent.
pub fn ensure_ca(dir: &Path) -> Result<Pem, AuthError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if let Some(p) = read_pair(dir, "ca") {
        return Ok(p);
    }
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ferrokube-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, 3650);
    let cert = params.self_signed(&key).map_err(cert_err)?;
    let pem = Pem { cert: cert.pem(), key: key.serialize_pem() };
    std::fs::write(dir.join("ca.crt"), &pem.cert).map_err(io(dir))?;
    write_private(&dir.join("ca.key"), &pem.key)?;
    Ok(pem)
}

/// Signs a new leaf certificate with the CA.
pub fn issue(ca: &Pem, cn: &str, orgs: &[String], sans: &[String], server: bool) -> Result<Pem, AuthError> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(cert_err)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(cert_err)?;
    let key = KeyPair::generate().map_err(cert_err)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(cert_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    params.distinguished_name = dn;
    for s in sans {
        params.subject_alt_names.push(match s.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(s.clone().try_into().map_err(cert_err)?),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = if server { vec![ExtendedKeyUsagePurpose::ServerAuth] } else { vec![ExtendedKeyUsagePurpose::ClientAuth] };
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 365);
    let cert = params.signed_by(&key, &issuer).map_err(cert_err)?;
    Ok(Pem { cert: cert.pem(), key: key.serialize_pem() })
}

fn ensure_leaf(dir: &Path, name: &str, make: impl FnOnce() -> Result<Pem, AuthError>) -> Result<Pem, AuthError> {
    if let Some(p) = read_pair(dir, name) {
        return Ok(p);
    }
    let pem = make()?;
    std::fs::write(dir.join(format!("{name}.crt")), &pem.cert).map_err(io(dir))?;
    write_private(&dir.join(format!("{name}.key")), &pem.key)?;
    Ok(pem)
}

/// Everything the server needs from --cert-dir, created on first start.
pub struct ServerCerts {
    pub ca: Pem,
    pub serving: Pem,
    pub kubelet_client: Pem,
    pub dir: PathBuf,
}

pub fn ensure_server_certs(dir: &Path, bind_address: &str) -> Result<ServerCerts, AuthError> {
    ensure_server_certs_with(dir, bind_address, &[])
}

/// As [`ensure_server_certs`], the serving certificate also naming `extra` (the first
/// service IP and the advertise address, so pods reach `https://kubernetes.default.svc`).
pub fn ensure_server_certs_with(dir: &Path, bind_address: &str, extra: &[String]) -> Result<ServerCerts, AuthError> {
    let ca = ensure_ca(dir)?;
    let mut sans = vec!["127.0.0.1".to_string(), "localhost".to_string(), "kubernetes".into(), "kubernetes.default".into(), "kubernetes.default.svc".into(), "kubernetes.default.svc.cluster.local".into()];
    for name in std::iter::once(bind_address).chain(extra.iter().map(String::as_str)) {
        if !sans.iter().any(|s| s == name) && !name.is_empty() && name != "0.0.0.0" {
            sans.push(name.to_string());
        }
    }
    let serving = ensure_leaf(dir, "apiserver", || issue(&ca, "kube-apiserver", &[], &sans, true))?;
    let kubelet_client = ensure_leaf(dir, "apiserver-kubelet-client", || {
        issue(&ca, "kube-apiserver-kubelet-client", &["system:masters".to_string()], &[], false)
    })?;
    Ok(ServerCerts { ca, serving, kubelet_client, dir: dir.to_path_buf() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certs_are_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let a = ensure_server_certs(dir.path(), "127.0.0.1").unwrap();
        let b = ensure_server_certs(dir.path(), "127.0.0.1").unwrap();
        assert_eq!(a.ca.cert, b.ca.cert);
        assert_eq!(a.serving.cert, b.serving.cert);
        let client = issue(&a.ca, "alice", &["devs".into()], &[], false).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(client.cert.as_bytes()).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert_eq!(cert.subject().iter_common_name().next().unwrap().as_str().unwrap(), "alice");
    }
}

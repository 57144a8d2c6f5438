//! `ferrokube-apiserver kubeconfig`: a client certificate signed by the cluster CA, written
//! into a kubeconfig with the CA and the credentials embedded.

use super::certs::{ensure_ca, issue};
use super::AuthError;
use base64::Engine;
use std::path::Path;

pub fn render(server: &str, ca_pem: &str, cert_pem: &str, key_pem: &str, user: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrokube\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: ferrokube\n  context:\n    cluster: ferrokube\n    user: {user}\n    namespace: default\ncurrent-context: ferrokube\npreferences: {{}}\n",
        b64(ca_pem),
        b64(cert_pem),
        b64(key_pem),
    )
}

pub fn write_kubeconfig(cert_dir: &Path, server: &str, user: &str, groups: &[String], out: &Path) -> Result<(), AuthError> {
    let ca = ensure_ca(cert_dir)?;
    let leaf = issue(&ca, user, groups, &[], false)?;
    let text = render(server, &ca.cert, &leaf.cert, &leaf.key, user);
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| AuthError::Io { path: parent.display().to_string(), source })?;
    }
    std::fs::write(out, text).map_err(|source| AuthError::Io { path: out.display().to_string(), source })
}

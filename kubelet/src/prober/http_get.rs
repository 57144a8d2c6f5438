//! The httpGet action of probes and lifecycle hooks, built as upstream's
//! NewRequestForHTTPGetAction: scheme, host (the pod IP by default), port by
//! number or container-port name, path and httpHeaders. HTTPS skips
//! certificate verification, as upstream's probes do.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpGetError {
    #[error("invalid port {0:?}")]
    InvalidPort(String),
    #[error("unsupported scheme {0:?}")]
    Scheme(String),
    #[error("{0}")]
    Request(String),
    #[error("HTTP probe failed with statuscode: {0}")]
    Status(u16),
    #[error("context deadline exceeded (Client.Timeout exceeded while awaiting headers)")]
    Timeout,
}

/// One GET, resolved against the container's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGet {
    pub https: bool,
    pub host: String,
    pub port: u16,
    pub path: String,
    /// Request headers in order; User-Agent and Accept defaults included.
    pub headers: Vec<(String, String)>,
}

impl HttpGet {
    /// `user_agent` is the default (`kube-probe/1.33`, `kube-lifecycle/1.33`);
    /// an httpHeaders entry of the same name replaces it, as upstream.
    pub fn from_action(
        container: &Container,
        a: &HTTPGetAction,
        default_host: &str,
        user_agent: &str,
    ) -> Result<HttpGet, HttpGetError> {
        let https = match a.scheme.as_deref().unwrap_or("HTTP") {
            s if s.eq_ignore_ascii_case("http") => false,
            s if s.eq_ignore_ascii_case("https") => true,
            s => return Err(HttpGetError::Scheme(s.to_string())),
        };
        let port = apimachinery::ports::container_port(container, &a.port)
            .map_err(|_| HttpGetError::InvalidPort(format!("{:?}", a.port)))?;
        let host = a
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| default_host.to_string());
        let path = match a.path.as_deref().unwrap_or("") {
            p if p.starts_with('/') => p.to_string(),
            p => format!("/{p}"),
        };
        let mut headers: Vec<(String, String)> = a
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect();
        let has =
            |hs: &[(String, String)], n: &str| hs.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        if !has(&headers, "Host") {
            let authority = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            headers.insert(0, ("Host".into(), authority));
        }
        if !has(&headers, "User-Agent") {
            headers.push(("User-Agent".into(), user_agent.to_string()));
        }
        if !has(&headers, "Accept") {
            headers.push(("Accept".into(), "*/*".into()));
        }
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case("Connection"));
        headers.push(("Connection".into(), "close".into()));
        Ok(HttpGet {
            https,
            host,
            port,
            path,
            headers,
        })
    }

    /// The request as it goes on the wire.
    pub fn request(&self) -> Vec<u8> {
        let mut r = format!("GET {} HTTP/1.1\r\n", self.path);
        for (k, v) in &self.headers {
            r.push_str(&format!("{k}: {v}\r\n"));
        }
        r.push_str("\r\n");
        r.into_bytes()
    }

    /// Sends the GET; success is a status in 200..400, as upstream.
    pub async fn run(&self, timeout: Duration) -> Result<u16, HttpGetError> {
        let fut = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| HttpGetError::Request(e.to_string()))?;
            if self.https {
                let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| HttpGetError::Request(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(insecure_tls())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| HttpGetError::Request(e.to_string()))?;
                exchange(tls, &self.request()).await
            } else {
                exchange(tcp, &self.request()).await
            }
        };
        let code = tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| HttpGetError::Timeout)??;
        if (200..400).contains(&code) {
            Ok(code)
        } else {
            Err(HttpGetError::Status(code))
        }
    }
}

/// Writes the request and reads up to the status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> Result<u16, HttpGetError> {
    let err = |e: std::io::Error| HttpGetError::Request(e.to_string());
    s.write_all(req).await.map_err(err)?;
    s.flush().await.map_err(err)?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.contains(&b'\n') && buf.len() < 8192 {
        let n = s.read(&mut chunk).await.map_err(err)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| HttpGetError::Request("malformed HTTP response".into()))
}

/// Accepts any server certificate: probes target pods, whose certificates
/// the kubelet has no way to trust (upstream sets InsecureSkipVerify).
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn insecure_tls() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::HTTPHeader;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn container() -> Container {
        serde_json::from_value(
            serde_json::json!({"name": "c", "ports": [{"name": "web", "containerPort": 8443}]}),
        )
        .unwrap()
    }

    #[test]
    fn request_honours_scheme_named_port_path_and_headers() {
        let a = HTTPGetAction {
            scheme: Some("HTTPS".into()),
            port: IntOrString::String("web".into()),
            path: Some("healthz?x=1".into()),
            http_headers: Some(vec![
                HTTPHeader {
                    name: "X-Custom".into(),
                    value: "a".into(),
                },
                HTTPHeader {
                    name: "User-Agent".into(),
                    value: "mine".into(),
                },
            ]),
            ..Default::default()
        };
        let g = HttpGet::from_action(&container(), &a, "10.0.0.5", "kube-probe/1.33").unwrap();
        assert!(g.https);
        assert_eq!((g.host.as_str(), g.port), ("10.0.0.5", 8443));
        let req = String::from_utf8(g.request()).unwrap();
        assert!(
            req.starts_with("GET /healthz?x=1 HTTP/1.1\r\nHost: 10.0.0.5:8443\r\n"),
            "{req}"
        );
        assert!(req.contains("X-Custom: a\r\n"));
        assert!(req.contains("User-Agent: mine\r\n"));
        assert!(!req.contains("kube-probe"));
        assert!(req.contains("Accept: */*\r\n"));
    }

    #[test]
    fn host_header_and_field_override_the_defaults() {
        let a = HTTPGetAction {
            host: Some("127.0.0.1".into()),
            port: IntOrString::Int(80),
            http_headers: Some(vec![HTTPHeader {
                name: "Host".into(),
                value: "example.com".into(),
            }]),
            ..Default::default()
        };
        let g = HttpGet::from_action(&container(), &a, "10.0.0.5", "kube-probe/1.33").unwrap();
        assert_eq!(g.host, "127.0.0.1");
        assert!(!g.https);
        let req = String::from_utf8(g.request()).unwrap();
        assert!(
            req.starts_with("GET / HTTP/1.1\r\nHost: example.com\r\n"),
            "{req}"
        );
        assert!(req.contains("User-Agent: kube-probe/1.33\r\n"));
        let bad = HTTPGetAction {
            port: IntOrString::String("nope".into()),
            ..Default::default()
        };
        assert!(matches!(
            HttpGet::from_action(&container(), &bad, "h", "ua"),
            Err(HttpGetError::InvalidPort(_))
        ));
    }

    /// A one-shot server that answers `status` and hands back the request it read.
    async fn serve_once(
        tls: Option<tokio_rustls::TlsAcceptor>,
        status: u16,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let h = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, status: u16) -> String {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                s.write_all(resp.as_bytes()).await.unwrap();
                let _ = s.shutdown().await;
                String::from_utf8_lossy(&buf).into_owned()
            }
            match tls {
                Some(acc) => answer(acc.accept(s).await.unwrap(), status).await,
                None => answer(s, status).await,
            }
        });
        (port, h)
    }

    fn action(scheme: &str, port: u16) -> HTTPGetAction {
        HTTPGetAction {
            scheme: Some(scheme.into()),
            port: IntOrString::Int(port as i32),
            path: Some("/ready".into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn http_get_sends_headers_and_judges_the_status() {
        let (port, h) = serve_once(None, 204).await;
        let g =
            HttpGet::from_action(&container(), &action("HTTP", port), "127.0.0.1", "ua").unwrap();
        assert_eq!(g.run(Duration::from_secs(5)).await, Ok(204));
        let req = h.await.unwrap();
        assert!(req.starts_with("GET /ready HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("X-Probe: yes\r\n"), "{req}");
        let (port, _h) = serve_once(None, 500).await;
        let g =
            HttpGet::from_action(&container(), &action("HTTP", port), "127.0.0.1", "ua").unwrap();
        assert_eq!(
            g.run(Duration::from_secs(5)).await,
            Err(HttpGetError::Status(500))
        );
    }

    #[tokio::test]
    async fn https_get_accepts_a_self_signed_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["pod.local".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
        let acc = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let (port, h) = serve_once(Some(acc), 200).await;
        let g =
            HttpGet::from_action(&container(), &action("HTTPS", port), "127.0.0.1", "ua").unwrap();
        assert_eq!(g.run(Duration::from_secs(5)).await, Ok(200));
        assert!(h.await.unwrap().contains("X-Probe: yes\r\n"));
    }
}

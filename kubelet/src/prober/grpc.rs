//! The gRPC probe: grpc.health.v1.Health/Check against the pod's IP, as
//! upstream's prober. SERVING passes; any other answer or error fails.

use std::time::Duration;

use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// grpc.health.v1.HealthCheckRequest.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// grpc.health.v1.HealthCheckResponse.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    pub status: i32,
}

pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// The ServingStatus names upstream's messages use.
pub fn status_name(status: i32) -> &'static str {
    match status {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcProbeError {
    #[error("timeout: failed to connect service {0:?} within {1:?}")]
    Connect(String, Duration),
    #[error("timeout: health rpc did not complete within {0:?}")]
    Timeout(Duration),
    #[error("error: health rpc probe failed: {0}")]
    Rpc(String),
    #[error("service unhealthy (responded with {0:?})")]
    Unhealthy(&'static str),
}

/// A prost codec; tonic's own lives in a crate the kubelet does not pull in.
#[derive(Default)]
struct ProstCodec<E, D>(std::marker::PhantomData<(E, D)>);

struct ProstEncoder<E>(std::marker::PhantomData<E>);
struct ProstDecoder<D>(std::marker::PhantomData<D>);

impl<E: prost::Message + Send + 'static> Encoder for ProstEncoder<E> {
    type Item = E;
    type Error = tonic::Status;
    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        item.encode(dst)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl<D: prost::Message + Default + Send + 'static> Decoder for ProstDecoder<D> {
    type Item = D;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, tonic::Status> {
        D::decode(src)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}

impl<E, D> Codec for ProstCodec<E, D>
where
    E: prost::Message + Send + 'static,
    D: prost::Message + Default + Send + 'static,
{
    type Encode = E;
    type Decode = D;
    type Encoder = ProstEncoder<E>;
    type Decoder = ProstDecoder<D>;
    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(std::marker::PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder(std::marker::PhantomData)
    }
}

/// Checks `service` (empty: the whole server) at host:port within `timeout`.
pub async fn check(
    host: &str,
    port: u16,
    service: &str,
    timeout: Duration,
) -> Result<(), GrpcProbeError> {
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| GrpcProbeError::Rpc(e.to_string()))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent("kube-probe/1.33")
        .map_err(|e| GrpcProbeError::Rpc(e.to_string()))?;
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| GrpcProbeError::Connect(authority.clone(), timeout))?
        .map_err(|_| GrpcProbeError::Connect(authority.clone(), timeout))?;
    let mut grpc = tonic::client::Grpc::new(channel);
    let call = async {
        grpc.ready()
            .await
            .map_err(|e| GrpcProbeError::Rpc(e.to_string()))?;
        grpc.unary(
            tonic::Request::new(HealthCheckRequest {
                service: service.to_string(),
            }),
            http::uri::PathAndQuery::from_static(CHECK_PATH),
            ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await
        .map_err(|s| {
            GrpcProbeError::Rpc(format!(
                "rpc error: code = {:?} desc = {}",
                s.code(),
                s.message()
            ))
        })
    };
    let resp = tokio::time::timeout(timeout, call)
        .await
        .map_err(|_| GrpcProbeError::Timeout(timeout))??;
    match resp.into_inner().status {
        1 => Ok(()),
        s => Err(GrpcProbeError::Unhealthy(status_name(s))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    /// A health server whose answer depends on the service asked about.
    #[derive(Clone)]
    struct Health(fn(&str) -> i32);

    struct Check(fn(&str) -> i32);

    impl tonic::server::UnaryService<HealthCheckRequest> for Check {
        type Response = HealthCheckResponse;
        type Future =
            std::future::Ready<Result<tonic::Response<HealthCheckResponse>, tonic::Status>>;
        fn call(&mut self, req: tonic::Request<HealthCheckRequest>) -> Self::Future {
            let status = (self.0)(&req.into_inner().service);
            std::future::ready(Ok(tonic::Response::new(HealthCheckResponse { status })))
        }
    }

    impl tower::Service<http::Request<tonic::body::Body>> for Health {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>,
        >;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
            let f = self.0;
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(ProstCodec::<
                    HealthCheckResponse,
                    HealthCheckRequest,
                >::default());
                Ok(grpc.unary(Check(f), req).await)
            })
        }
    }

    impl tonic::server::NamedService for Health {
        const NAME: &'static str = "grpc.health.v1.Health";
    }

    async fn serve(f: fn(&str) -> i32) -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(Health(f))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
        );
        port
    }

    /// [sig-node] Probing container should *not* be restarted / should be
    /// restarted with a GRPC liveness probe: SERVING passes, others fail.
    #[tokio::test]
    async fn serving_passes_and_anything_else_fails() {
        let port = serve(|service| if service == "down" { 2 } else { 1 }).await;
        let t = Duration::from_secs(5);
        assert_eq!(check("127.0.0.1", port, "", t).await, Ok(()));
        assert_eq!(
            check("127.0.0.1", port, "down", t).await,
            Err(GrpcProbeError::Unhealthy("NOT_SERVING"))
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert!(matches!(
            check("127.0.0.1", closed, "", Duration::from_secs(1)).await,
            Err(GrpcProbeError::Connect(..))
        ));
    }
}

//! The kubelet's side of one `portforward.k8s.io` SPDY connection, as upstream's
//! kubelet streaming server runs it (pkg/kubelet/cri/streaming/portforward/httpstream.go):
//! every forwarded TCP connection is a pair of client-opened streams, `streamType: error`
//! and `streamType: data`, joined by their `requestID` and naming the pod `port`. Data is
//! pumped between the data stream and the pod's port; a failure is written as text on the
//! error stream. Both streams are half-closed by the kubelet when the pod's side ends.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::dial::PortDialer;
use crate::container::spdy::frame::{rst, Codec, Frame, SpdyError};
use crate::container::spdy::headers::Headers;

/// Payload per DATA frame read from the pod: well under SPDY's 24-bit limit.
const CHUNK: usize = 32 * 1024;

/// The pod a session forwards to, and how to reach its ports.
pub struct Target {
    pub pod: String,
    pub uid: String,
    pub dialer: Arc<dyn PortDialer>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamType {
    Data,
    Error,
}

/// What a SYN_STREAM's headers ask for.
#[derive(Debug, PartialEq, Eq)]
struct StreamRequest {
    kind: StreamType,
    /// The pairing key: the requestID, or for clients that send none, the error stream's
    /// id (a data stream follows its error stream, two ids later).
    pair: String,
    port: Result<u16, String>,
}

fn header<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn stream_request(stream_id: u32, h: &Headers) -> Result<StreamRequest, String> {
    let kind = match header(h, "streamType") {
        Some("data") => StreamType::Data,
        Some("error") => StreamType::Error,
        Some(other) => return Err(format!("invalid stream type {other:?}")),
        None => return Err("missing stream type".into()),
    };
    let pair = match header(h, "requestID") {
        Some(id) => id.to_string(),
        None if kind == StreamType::Data => stream_id.saturating_sub(2).to_string(),
        None => stream_id.to_string(),
    };
    let port = match header(h, "port") {
        None => Err("unable to parse port: missing port header".into()),
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("unable to parse port {p:?}")),
            Ok(n) => Ok(n),
        },
    };
    Ok(StreamRequest { kind, pair, port })
}

/// The session's view of a stream the client opened.
struct Open {
    /// Where the client's DATA goes; `None` once it sent FIN.
    tx: Option<mpsc::Sender<Bytes>>,
    reset: CancellationToken,
    /// The kubelet's side is done; the entry stays until the client's FIN or reset so
    /// that its late DATA is not mistaken for an unknown stream.
    forwarded: bool,
}

/// The forwarder's view of the same stream.
struct Half {
    id: u32,
    rx: mpsc::Receiver<Bytes>,
    reset: CancellationToken,
}

#[derive(Default)]
struct Pair {
    data: Option<(Half, Result<u16, String>)>,
    error: Option<Half>,
}

/// Serves one connection until the client goes away or sends GOAWAY.
pub async fn serve<IO>(io: IO, target: Target) -> Result<(), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let target = Arc::new(target);
    let (mut sink, mut frames) = Framed::new(io, Codec::default()).split();
    // One writer owns the socket and the compressor; everyone else sends it frames.
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = out_rx.recv().await {
            sink.send(f).await?;
        }
        sink.close().await
    });
    let mut streams: HashMap<u32, Open> = HashMap::new();
    let mut pending: HashMap<String, Pair> = HashMap::new();
    let mut forwards: JoinSet<(u32, u32)> = JoinSet::new();
    let result = loop {
        let frame = tokio::select! {
            f = frames.next() => f,
            Some(Ok((data, error))) = forwards.join_next(), if !forwards.is_empty() => {
                for id in [data, error] {
                    match streams.get_mut(&id) {
                        Some(open) if open.tx.is_some() => open.forwarded = true,
                        _ => drop(streams.remove(&id)),
                    }
                }
                continue;
            }
        };
        let frame = match frame {
            None => break Ok(()),
            Some(Err(e)) => break Err(e),
            Some(Ok(f)) => f,
        };
        match frame {
            Frame::SynStream { stream_id, fin, headers, .. } => {
                let req = match stream_request(stream_id, &headers) {
                    Ok(r) => r,
                    Err(why) => {
                        tracing::debug!(stream_id, why, "refusing port-forward stream");
                        let _ = out.send(Frame::RstStream { stream_id, status: rst::PROTOCOL_ERROR }).await;
                        continue;
                    }
                };
                // The client's CreateStream waits for this reply.
                if out.send(Frame::SynReply { stream_id, fin: false, headers: vec![] }).await.is_err() {
                    break Ok(());
                }
                let (tx, rx) = mpsc::channel(32);
                let reset = CancellationToken::new();
                streams.insert(stream_id, Open { tx: (!fin).then_some(tx), reset: reset.clone(), forwarded: false });
                let half = Half { id: stream_id, rx, reset };
                let pair = pending.entry(req.pair.clone()).or_default();
                match req.kind {
                    StreamType::Data => pair.data = Some((half, req.port)),
                    StreamType::Error => pair.error = Some(half),
                }
                if pair.data.is_some() && pair.error.is_some() {
                    if let Some(Pair { data: Some((data, port)), error: Some(error) }) = pending.remove(&req.pair) {
                        forwards.spawn(forward(target.clone(), data, error, port, out.clone()));
                    }
                }
            }
            Frame::Data { stream_id, fin, data } => {
                if let Some(open) = streams.get_mut(&stream_id) {
                    if let (Some(tx), false) = (&open.tx, data.is_empty()) {
                        // A forwarder that already ended just drops what still arrives.
                        let _ = tx.send(data).await;
                    }
                    if fin {
                        open.tx = None;
                        if open.forwarded {
                            streams.remove(&stream_id);
                        }
                    }
                } else {
                    let _ = out.send(Frame::RstStream { stream_id, status: rst::INVALID_STREAM }).await;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(open) = streams.remove(&stream_id) {
                    open.reset.cancel();
                }
            }
            Frame::Ping { id } => {
                let _ = out.send(Frame::Ping { id }).await;
            }
            Frame::GoAway { .. } => break Ok(()),
            // No flow control is enforced by client-go's spdystream, nor here.
            Frame::SynReply { .. } | Frame::Headers { .. } | Frame::Settings | Frame::WindowUpdate { .. } | Frame::Unknown { .. } => {}
        }
    };
    forwards.abort_all();
    drop(out);
    drop(streams);
    // Frames already queued (a last FIN, an error message) still go out.
    let _ = writer.await;
    result
}

/// One forwarded connection: dial the pod's port, pump, then half-close both streams.
async fn forward(target: Arc<Target>, data: Half, error: Half, port: Result<u16, String>, out: mpsc::Sender<Frame>) -> (u32, u32) {
    let ids = (data.id, error.id);
    let dialed = match port {
        Ok(p) => target.dialer.dial(p).await.map(|c| (p, c)).map_err(|e| (p.to_string(), e.to_string())),
        Err(why) => Err(("".into(), why)),
    };
    let fin = |id| Frame::Data { stream_id: id, fin: true, data: Bytes::new() };
    match dialed {
        Ok((_, conn)) => pump(conn, data, &out).await,
        Err((port, why)) => {
            // Upstream kubelet's wording; kubectl prints it after "an error occurred forwarding".
            let msg = format!("error forwarding port {port} to pod {}, uid {}: {why}", target.pod, target.uid);
            if !error.reset.is_cancelled() {
                let _ = out.send(Frame::Data { stream_id: error.id, fin: false, data: Bytes::from(msg) }).await;
            }
            if !data.reset.is_cancelled() {
                let _ = out.send(fin(data.id)).await;
            }
        }
    }
    if !error.reset.is_cancelled() {
        let _ = out.send(fin(error.id)).await;
    }
    ids
}

/// Copies both ways until the pod's side ends (then FIN on the data stream) or the client
/// resets the stream. The client's FIN only half-closes the pod connection, so a server
/// that answers after its request ends (HTTP/1.0 style) still gets to answer.
async fn pump(conn: tokio::net::TcpStream, data: Half, out: &mpsc::Sender<Frame>) {
    let Half { id, mut rx, reset } = data;
    let (mut from_pod, mut to_pod) = conn.into_split();
    let upload = async move {
        while let Some(chunk) = rx.recv().await {
            if to_pod.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
        std::future::pending::<()>().await
    };
    let download = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Frame::Data { stream_id: id, fin: false, data: Bytes::copy_from_slice(&buf[..n]) };
                    if out.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.send(Frame::Data { stream_id: id, fin: true, data: Bytes::new() }).await;
    };
    tokio::select! {
        _ = download => {}
        _ = reset.cancelled() => {}
        _ = upload => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::dial::PodLocalhost;
    use super::*;
    use tokio::io::DuplexStream;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    /// A session on one end of a pipe, forwarding to the host's loopback; the other end
    /// is framed for the test, which plays client-go.
    fn start() -> Framed<DuplexStream, Codec> {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let target = Target { pod: "web".into(), uid: "u1".into(), dialer: Arc::new(PodLocalhost { netns: None }) };
        tokio::spawn(serve(server, target));
        Framed::new(client, Codec::default())
    }

    async fn open(c: &mut Framed<DuplexStream, Codec>, stream_id: u32, kind: &str, port: u16, request: &str) {
        let headers = h(&[("streamType", kind), ("port", &port.to_string()), ("requestID", request)]);
        c.send(Frame::SynStream { stream_id, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers }).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::SynReply { stream_id, fin: false, headers: vec![] });
    }

    fn fin(stream_id: u32) -> Frame {
        Frame::Data { stream_id, fin: true, data: Bytes::new() }
    }

    /// Reads frames until both streams have FIN, returning what arrived on each.
    async fn drain(c: &mut Framed<DuplexStream, Codec>, data_id: u32, error_id: u32) -> (Vec<u8>, Vec<u8>) {
        let (mut data, mut error) = (Vec::new(), Vec::new());
        let (mut data_done, mut error_done) = (false, false);
        while !(data_done && error_done) {
            match c.next().await.unwrap().unwrap() {
                Frame::Data { stream_id, fin, data: d } if stream_id == data_id => {
                    assert!(!data_done, "DATA after FIN");
                    data.extend_from_slice(&d);
                    data_done |= fin;
                }
                Frame::Data { stream_id, fin, data: d } if stream_id == error_id => {
                    error.extend_from_slice(&d);
                    error_done |= fin;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        (data, error)
    }

    #[test]
    fn stream_headers_name_type_port_and_pair() {
        let r = stream_request(3, &h(&[("streamtype", "data"), ("port", "80"), ("requestid", "7")])).unwrap();
        assert_eq!(r, StreamRequest { kind: StreamType::Data, pair: "7".into(), port: Ok(80) });
        // Without requestID a data stream pairs with the error stream opened just before it.
        assert_eq!(stream_request(3, &h(&[("streamtype", "data"), ("port", "80")])).unwrap().pair, "1");
        assert_eq!(stream_request(1, &h(&[("streamtype", "error"), ("port", "80")])).unwrap().pair, "1");
        assert!(stream_request(1, &h(&[("streamtype", "error"), ("port", "http")])).unwrap().port.is_err());
        assert!(stream_request(1, &h(&[("port", "80")])).is_err());
        assert!(stream_request(1, &h(&[("streamtype", "stdin")])).is_err());
    }

    #[tokio::test]
    async fn bytes_reach_the_port_and_the_reply_comes_back_then_both_streams_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            s.read_to_end(&mut req).await.unwrap();
            s.write_all(b"got: ").await.unwrap();
            s.write_all(&req).await.unwrap();
        });
        let mut c = start();
        open(&mut c, 1, "error", port, "0").await;
        // client-go never writes on the error stream.
        c.send(fin(1)).await.unwrap();
        open(&mut c, 3, "data", port, "0").await;
        c.send(Frame::Data { stream_id: 3, fin: false, data: Bytes::from_static(b"hello") }).await.unwrap();
        c.send(fin(3)).await.unwrap();
        let (data, error) = drain(&mut c, 3, 1).await;
        assert_eq!(data, b"got: hello");
        assert_eq!(error, b"");
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_on_the_error_stream() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = start();
        open(&mut c, 1, "error", port, "4").await;
        open(&mut c, 3, "data", port, "4").await;
        let (data, error) = drain(&mut c, 3, 1).await;
        assert_eq!(data, b"");
        let error = String::from_utf8(error).unwrap();
        let want = format!("error forwarding port {port} to pod web, uid u1: failed to connect to localhost:{port} inside namespace \"host\", IPv4: ");
        assert!(error.starts_with(&want), "{error}");
    }

    #[tokio::test]
    async fn pings_are_echoed_and_bad_streams_reset() {
        let mut c = start();
        c.send(Frame::Ping { id: 1 }).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::Ping { id: 1 });
        let headers = h(&[("streamType", "stdin"), ("port", "80")]);
        c.send(Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers }).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::RstStream { stream_id: 1, status: rst::PROTOCOL_ERROR });
        c.send(Frame::GoAway { last_good_stream_id: 0, status: 0 }).await.unwrap();
        assert!(c.next().await.is_none(), "GOAWAY ends the session");
    }

    #[tokio::test]
    async fn a_client_reset_stops_the_forward_and_ends_the_error_stream() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            // A server that never answers; it sees EOF once the kubelet drops the connection.
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf).await;
            let _ = closed_tx.send(());
        });
        let mut c = start();
        open(&mut c, 1, "error", port, "0").await;
        c.send(fin(1)).await.unwrap();
        open(&mut c, 3, "data", port, "0").await;
        c.send(Frame::RstStream { stream_id: 3, status: rst::CANCEL }).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), fin(1));
        closed_rx.await.unwrap();
    }

    #[tokio::test]
    async fn data_after_a_failed_forward_is_dropped_quietly() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = start();
        open(&mut c, 1, "error", port, "0").await;
        open(&mut c, 3, "data", port, "0").await;
        let (_, error) = drain(&mut c, 3, 1).await;
        assert!(!error.is_empty());
        // The client had not seen the failure yet and still writes; no RST_STREAM comes back.
        c.send(Frame::Data { stream_id: 3, fin: true, data: Bytes::from_static(b"late") }).await.unwrap();
        c.send(Frame::Ping { id: 5 }).await.unwrap();
        assert_eq!(c.next().await.unwrap().unwrap(), Frame::Ping { id: 5 });
    }
}

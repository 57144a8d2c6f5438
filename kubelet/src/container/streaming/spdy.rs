//! remotecommand over SPDY/3.1, as client-go's SPDY executor speaks it: the client opens one
//! stream per standard stream, named by its `streamType` header (error first, then stdin,
//! stdout, stderr, resize), and waits for each reply. The server starts once every stream
//! the request asked for is open (upstream's waitForStreams), then DATA flows; the session's
//! end is FIN on stdout and stderr, then the Status on the error stream and its FIN.
//! v4 and v5 write the Status as JSON; v2 and v3 write only a failure's message.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::{Input, Options, Output, Streams, TerminalSize};
use crate::container::spdy::frame::rst;
use crate::container::spdy::{Codec, Frame, Headers, SpdyError};

/// Stream protocols served, best first (apimachinery util/remotecommand constants.go).
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"];

/// Upstream's streamCreationTimeout default.
const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The first protocol the client offers that is served (the client lists its preference).
pub fn negotiate(offered: &[String]) -> Option<&'static str> {
    offered.iter().find_map(|o| PROTOCOLS.iter().find(|p| **p == o.as_str()).copied())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Error,
    Stdin,
    Stdout,
    Stderr,
    Resize,
}

impl StreamType {
    fn parse(h: &Headers) -> Option<StreamType> {
        let v = h.iter().find(|(n, _)| n.eq_ignore_ascii_case("streamType")).map(|(_, v)| v.as_str())?;
        Some(match v {
            "error" => StreamType::Error,
            "stdin" => StreamType::Stdin,
            "stdout" => StreamType::Stdout,
            "stderr" => StreamType::Stderr,
            "resize" => StreamType::Resize,
            _ => return None,
        })
    }
}

/// The streams a request with `opts` opens under `protocol`.
pub fn expected(protocol: &str, opts: Options) -> Vec<StreamType> {
    let mut v = vec![StreamType::Error];
    if opts.stdin {
        v.push(StreamType::Stdin);
    }
    if opts.stdout {
        v.push(StreamType::Stdout);
    }
    if opts.stderr {
        v.push(StreamType::Stderr);
    }
    if opts.tty && protocol != "v2.channel.k8s.io" {
        v.push(StreamType::Resize);
    }
    v
}

/// An accepted connection whose streams are all open.
pub struct Conn<IO> {
    framed: Framed<IO, Codec>,
    protocol: &'static str,
    ids: HashMap<StreamType, u32>,
}

/// Waits for the client's streams, replying to each; a client that does not open them all in
/// time is refused.
#[allow(clippy::type_complexity)]
pub async fn accept<IO>(io: IO, protocol: &'static str, opts: Options) -> Result<(Conn<IO>, mpsc::Sender<Input>, Streams, mpsc::Receiver<Output>), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let mut framed = Framed::new(io, Codec::default());
    let want = expected(protocol, opts);
    let mut ids = HashMap::new();
    let deadline = tokio::time::Instant::now() + STREAM_CREATION_TIMEOUT;
    while want.iter().any(|t| !ids.contains_key(t)) {
        let frame = match tokio::time::timeout_at(deadline, framed.next()).await {
            Err(_) => return Err(SpdyError::Malformed("timed out waiting for client to create streams")),
            Ok(None) => return Err(SpdyError::Io(std::io::ErrorKind::UnexpectedEof.into())),
            Ok(Some(f)) => f?,
        };
        match frame {
            Frame::SynStream { stream_id, headers, .. } => match StreamType::parse(&headers) {
                Some(t) => {
                    framed.send(Frame::SynReply { stream_id, fin: false, headers: vec![] }).await?;
                    ids.insert(t, stream_id);
                }
                None => framed.send(Frame::RstStream { stream_id, status: rst::PROTOCOL_ERROR }).await?,
            },
            Frame::Ping { id } => framed.send(Frame::Ping { id }).await?,
            Frame::GoAway { .. } => return Err(SpdyError::Io(std::io::ErrorKind::ConnectionAborted.into())),
            _ => {}
        }
    }
    let (in_tx, out_rx, streams) = super::pair();
    Ok((Conn { framed, protocol, ids }, in_tx, streams, out_rx))
}

impl<IO> Conn<IO>
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    /// Pumps frames until the session's `Exit` has been written or the client leaves.
    pub async fn run(self, in_tx: mpsc::Sender<Input>, mut out_rx: mpsc::Receiver<Output>) {
        let Conn { framed, protocol, ids } = self;
        let (mut sink, mut frames) = framed.split();
        let by_id: HashMap<u32, StreamType> = ids.iter().map(|(t, id)| (*id, *t)).collect();
        let (reply_tx, mut reply_rx) = mpsc::channel::<Frame>(8);
        let reader = async move {
            let mut resize = BytesMut::new();
            while let Some(Ok(f)) = frames.next().await {
                match f {
                    Frame::Data { stream_id, fin, data } => match by_id.get(&stream_id) {
                        Some(StreamType::Stdin) => {
                            if !data.is_empty() && in_tx.send(Input::Stdin(data)).await.is_err() {
                                break;
                            }
                            if fin && in_tx.send(Input::StdinEof).await.is_err() {
                                break;
                            }
                        }
                        Some(StreamType::Resize) => {
                            resize.extend_from_slice(&data);
                            for size in drain_sizes(&mut resize) {
                                let _ = in_tx.send(Input::Resize { width: size.width, height: size.height }).await;
                            }
                        }
                        _ => {}
                    },
                    Frame::Ping { id } => {
                        let _ = reply_tx.send(Frame::Ping { id }).await;
                    }
                    Frame::GoAway { .. } => break,
                    _ => {}
                }
            }
        };
        let writer = async move {
            loop {
                let out = tokio::select! {
                    o = out_rx.recv() => o,
                    Some(f) = reply_rx.recv() => {
                        if sink.send(f).await.is_err() { return; }
                        continue;
                    }
                };
                let Some(out) = out else { break };
                let frame = |t: StreamType, data: Bytes| ids.get(&t).map(|id| Frame::Data { stream_id: *id, fin: false, data });
                let f = match out {
                    Output::Stdout(b) => frame(StreamType::Stdout, b),
                    Output::Stderr(b) => frame(StreamType::Stderr, b),
                    Output::Exit(status) => {
                        for t in [StreamType::Stdout, StreamType::Stderr] {
                            if let Some(id) = ids.get(&t) {
                                let _ = sink.send(Frame::Data { stream_id: *id, fin: true, data: Bytes::new() }).await;
                            }
                        }
                        if let Some(id) = ids.get(&StreamType::Error) {
                            let body = status_body(protocol, &status);
                            if !body.is_empty() {
                                let _ = sink.send(Frame::Data { stream_id: *id, fin: false, data: body }).await;
                            }
                            let _ = sink.send(Frame::Data { stream_id: *id, fin: true, data: Bytes::new() }).await;
                        }
                        break;
                    }
                };
                if let Some(f) = f {
                    if sink.send(f).await.is_err() {
                        return;
                    }
                }
            }
            let _ = sink.send(Frame::GoAway { last_good_stream_id: 0, status: 0 }).await;
            let _ = sink.close().await;
        };
        // The writer finishing (the Status is out) ends the connection; the client going
        // away ends the reader, which closes the session's input.
        tokio::pin!(writer);
        tokio::select! {
            _ = &mut writer => {}
            _ = reader => { writer.await; }
        }
    }
}

/// The error stream's bytes for a Status under `protocol`.
pub fn status_body(protocol: &str, status: &serde_json::Value) -> Bytes {
    match protocol {
        "v4.channel.k8s.io" | "v5.channel.k8s.io" => Bytes::from(status.to_string()),
        _ if status["status"] == "Success" => Bytes::new(),
        _ => Bytes::from(status["message"].as_str().unwrap_or("error").to_string()),
    }
}

/// Whole TerminalSize objects at the front of `buf` (client-go writes them back to back).
fn drain_sizes(buf: &mut BytesMut) -> Vec<TerminalSize> {
    let mut out = Vec::new();
    let mut used = 0;
    {
        let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<TerminalSize>();
        while let Some(Ok(s)) = it.next() {
            out.push(s);
            used = it.byte_offset();
        }
    }
    let _ = buf.split_to(used);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::streaming::exit_status;

    fn h(t: &str) -> Headers {
        vec![("streamtype".to_string(), t.to_string())]
    }

    #[test]
    fn the_clients_first_served_protocol_wins() {
        let offered: Vec<String> = ["v6.channel.k8s.io", "v4.channel.k8s.io", "v5.channel.k8s.io"].iter().map(|s| s.to_string()).collect();
        assert_eq!(negotiate(&offered), Some("v4.channel.k8s.io"));
        assert_eq!(negotiate(&["channel.k8s.io".to_string()]), None);
    }

    #[test]
    fn resize_needs_v3_and_a_tty() {
        let tty = Options { stdin: true, stdout: true, stderr: false, tty: true };
        assert_eq!(expected("v4.channel.k8s.io", tty), vec![StreamType::Error, StreamType::Stdin, StreamType::Stdout, StreamType::Resize]);
        assert_eq!(expected("v2.channel.k8s.io", tty), vec![StreamType::Error, StreamType::Stdin, StreamType::Stdout]);
    }

    #[test]
    fn old_protocols_write_only_a_failures_message() {
        assert_eq!(status_body("v4.channel.k8s.io", &exit_status(0, &[])), Bytes::from_static(br#"{"metadata":{},"status":"Success"}"#));
        assert_eq!(status_body("v3.channel.k8s.io", &exit_status(0, &[])), Bytes::new());
        let failed = exit_status(2, &["false".into()]);
        assert!(String::from_utf8(status_body("v2.channel.k8s.io", &failed).to_vec()).unwrap().contains("exit code 2"));
    }

    #[test]
    fn sizes_split_across_frames_are_joined() {
        let mut b = BytesMut::from(&br#"{"Width":80,"Height":24}{"Width":1"#[..]);
        let got = drain_sizes(&mut b);
        assert_eq!(got.len(), 1);
        b.extend_from_slice(br#"00,"Height":50}"#);
        let got = drain_sizes(&mut b);
        assert_eq!((got[0].width, got[0].height), (100, 50));
        assert!(b.is_empty());
    }

    /// The client's side of a session as client-go's v4 executor runs it.
    #[tokio::test]
    async fn streams_open_then_output_then_status_and_fins() {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let opts = Options { stdin: true, stdout: true, stderr: true, tty: false };
        let srv = tokio::spawn(async move {
            let (conn, in_tx, mut streams, out_rx) = accept(server, "v4.channel.k8s.io", opts).await.unwrap();
            let t = tokio::spawn(conn.run(in_tx, out_rx));
            assert_eq!(streams.input.recv().await, Some(Input::Stdin(Bytes::from_static(b"ping"))));
            assert_eq!(streams.input.recv().await, Some(Input::StdinEof));
            streams.output.send(Output::Stdout(Bytes::from_static(b"pong"))).await.unwrap();
            streams.output.send(Output::Exit(exit_status(0, &[]))).await.unwrap();
            t.await.unwrap();
        });
        let mut c = Framed::new(client, Codec::default());
        for (id, t) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
            c.send(Frame::SynStream { stream_id: id, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers: h(t) }).await.unwrap();
            assert_eq!(c.next().await.unwrap().unwrap(), Frame::SynReply { stream_id: id, fin: false, headers: vec![] });
        }
        c.send(Frame::Data { stream_id: 3, fin: true, data: Bytes::from_static(b"ping") }).await.unwrap();
        let mut got = Vec::new();
        while let Some(Ok(f)) = c.next().await {
            got.push(f);
        }
        srv.await.unwrap();
        assert_eq!(got[0], Frame::Data { stream_id: 5, fin: false, data: Bytes::from_static(b"pong") });
        assert_eq!(got[1], Frame::Data { stream_id: 5, fin: true, data: Bytes::new() });
        assert_eq!(got[2], Frame::Data { stream_id: 7, fin: true, data: Bytes::new() });
        assert_eq!(got[3], Frame::Data { stream_id: 1, fin: false, data: Bytes::from_static(br#"{"metadata":{},"status":"Success"}"#) });
        assert_eq!(got[4], Frame::Data { stream_id: 1, fin: true, data: Bytes::new() });
    }
}

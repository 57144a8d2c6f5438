//! remotecommand over a WebSocket: every binary message starts with its channel (0 stdin,
//! 1 stdout, 2 stderr, 3 error Status, 4 resize; v5 adds 255 [stream] to close a stream).

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use super::{Input, Output, TerminalSize};

pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The Input a client message means, if any.
pub fn input(data: &[u8]) -> Option<Input> {
    match data.first() {
        Some(0) => Some(Input::Stdin(bytes::Bytes::copy_from_slice(&data[1..]))),
        Some(4) => serde_json::from_slice::<TerminalSize>(&data[1..]).ok().map(|s| Input::Resize { width: s.width, height: s.height }),
        Some(255) if data.get(1) == Some(&0) => Some(Input::StdinEof),
        _ => None,
    }
}

/// Pumps the socket until the session's `Exit` is written (then a 1000 close: client-go
/// reads any other close, even one without a code, as an error) or the client leaves.
pub async fn run(socket: WebSocket, in_tx: mpsc::Sender<Input>, mut out_rx: mpsc::Receiver<Output>) {
    let (mut tx, mut rx) = socket.split();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            let data = match m {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(_) => break,
                _ => continue,
            };
            if let Some(i) = input(&data) {
                if in_tx.send(i).await.is_err() {
                    break;
                }
            }
        }
    });
    while let Some(out) = out_rx.recv().await {
        let (chan, data) = match out {
            Output::Stdout(b) => (1u8, b.to_vec()),
            Output::Stderr(b) => (2u8, b.to_vec()),
            Output::Exit(status) => (3u8, status.to_string().into_bytes()),
        };
        let mut f = Vec::with_capacity(data.len() + 1);
        f.push(chan);
        f.extend_from_slice(&data);
        if tx.send(Message::Binary(f.into())).await.is_err() {
            break;
        }
        if chan == 3 {
            break;
        }
    }
    let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    let _ = tx.close().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_bytes_name_the_input() {
        assert_eq!(input(b"\x00hi"), Some(Input::Stdin(bytes::Bytes::from_static(b"hi"))));
        assert_eq!(input(b"\x04{\"Width\":80,\"Height\":24}"), Some(Input::Resize { width: 80, height: 24 }));
        assert_eq!(input(&[255, 0]), Some(Input::StdinEof));
        assert_eq!(input(&[255, 1]), None);
        assert_eq!(input(b"\x04nope"), None);
        assert_eq!(input(b""), None);
    }
}

//! Port-forward over a plain WebSocket (`v4.channel.k8s.io`), as upstream's kubelet still
//! serves it for clients without SPDY (the official Python client among them;
//! pkg/kubelet/cri/streaming/portforward/websocket.go). The ports come from `?ports=80,8080`;
//! port i has data channel 2i and error channel 2i+1, and the server's first message on each
//! is the port as two little-endian bytes. One connection per port; the socket closes once
//! every port's connection has ended.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::session::Target;

pub const PROTOCOLS: [&str; 1] = ["v4.channel.k8s.io"];

/// The `ports` query parameter: comma-separated, each 1..65535.
pub fn parse_ports(q: &[(String, String)]) -> Result<Vec<u16>, String> {
    let raw: Vec<&str> = q.iter().filter(|(k, _)| k == "ports").flat_map(|(_, v)| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).collect();
    if raw.is_empty() {
        return Err("query parameter \"port\" is required".into());
    }
    raw.iter()
        .map(|p| match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("unable to parse \"{p}\" as a port: invalid port")),
            Ok(n) => Ok(n),
        })
        .collect()
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut f = Vec::with_capacity(data.len() + 1);
    f.push(channel);
    f.extend_from_slice(data);
    Message::Binary(f.into())
}

/// Serves the socket until the client closes it.
pub async fn serve(socket: WebSocket, target: Arc<Target>, ports: Vec<u16>) {
    let (mut tx, mut rx) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(64);
    // The port announcement on every channel, before any data.
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i, 2 * i + 1] {
            if tx.send(framed(ch as u8, &port.to_le_bytes())).await.is_err() {
                return;
            }
        }
    }
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if tx.send(m).await.is_err() {
                break;
            }
        }
        let _ = tx.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
    });
    let mut to_pod: Vec<Option<mpsc::Sender<bytes::Bytes>>> = Vec::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data_tx, mut data_rx) = mpsc::channel::<bytes::Bytes>(32);
        to_pod.push(Some(data_tx));
        let out = out_tx.clone();
        let target = target.clone();
        tokio::spawn(async move {
            let (data_ch, err_ch) = ((2 * i) as u8, (2 * i + 1) as u8);
            let conn = match target.dialer.dial(port).await {
                Ok(c) => c,
                Err(e) => {
                    let msg = format!("error forwarding port {port} to pod {}, uid {}: {e}", target.pod, target.uid);
                    let _ = out.send(framed(err_ch, msg.as_bytes())).await;
                    return;
                }
            };
            let (mut from, mut into) = conn.into_split();
            let upload = async move {
                while let Some(b) = data_rx.recv().await {
                    if into.write_all(&b).await.is_err() {
                        break;
                    }
                }
                let _ = into.shutdown().await;
            };
            let download = async {
                let mut buf = vec![0u8; 32 * 1024];
                while let Ok(n) = from.read(&mut buf).await {
                    if n == 0 || out.send(framed(data_ch, &buf[..n])).await.is_err() {
                        break;
                    }
                }
            };
            // The pod's side ending ends this port (the client's only half-closes it); when
            // every port has ended the socket closes, as upstream's handler does.
            tokio::select! {
                _ = download => {}
                _ = async { upload.await; std::future::pending::<()>().await } => {}
            }
        });
    }
    drop(out_tx);
    while let Some(Ok(m)) = rx.next().await {
        let data = match m {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        let Some(ch) = data.first().copied() else { continue };
        // Only data channels carry client bytes.
        if ch % 2 == 0 {
            if let Some(Some(tx)) = to_pod.get((ch / 2) as usize) {
                let _ = tx.send(data.slice(1..)).await;
            }
        }
    }
    to_pod.clear();
    writer.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        vec![("ports".to_string(), s.to_string())]
    }

    #[test]
    fn ports_are_required_and_numeric() {
        assert_eq!(parse_ports(&q("80,8080")), Ok(vec![80, 8080]));
        assert!(parse_ports(&[]).unwrap_err().contains("is required"));
        assert!(parse_ports(&q("http")).is_err());
        assert!(parse_ports(&q("0")).is_err());
    }
}

//! pods/attach on the kubelet: a client joins a running container's own stdio, as
//! containerd's CRI attach does. The kubelet already reads the container's stdout and stderr
//! FIFOs for its log; what it reads is also broadcast to attached clients. A container with
//! `stdin: true` gets a stdin FIFO whose write end the kubelet keeps, so every attached
//! client writes into the same stdin; with `stdinOnce` the first client's EOF closes it for
//! good. A tty container has one output stream and takes resizes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

use crate::container::streaming::{failure, success, Input, Options, Output, Streams};
use crate::context::Kubelet;

/// Which of the container's streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One container's attachable stdio.
pub struct Hub {
    out: Mutex<Option<broadcast::Sender<(Stream, Bytes)>>>,
    /// Output streams still being read; the hub closes when none is.
    open_streams: Mutex<usize>,
    stdin: tokio::sync::Mutex<Option<tokio::net::unix::pipe::Sender>>,
    stdin_once: bool,
}

fn hubs() -> &'static Mutex<HashMap<String, Arc<Hub>>> {
    static HUBS: OnceLock<Mutex<HashMap<String, Arc<Hub>>>> = OnceLock::new();
    HUBS.get_or_init(Default::default)
}

/// The stdin FIFO of container `id` in `fifo_dir`.
pub fn stdin_fifo(fifo_dir: &Path, id: &str) -> std::path::PathBuf {
    fifo_dir.join(format!("{id}.stdin"))
}

impl Hub {
    /// Registers container `id`, which will have `streams` output FIFOs read into it and, with
    /// `stdin`, the write end of its stdin FIFO.
    pub fn register(id: &str, streams: usize, stdin: Option<tokio::net::unix::pipe::Sender>, stdin_once: bool) -> Arc<Hub> {
        let (tx, _) = broadcast::channel(256);
        let hub = Arc::new(Hub {
            out: Mutex::new(Some(tx)),
            open_streams: Mutex::new(streams),
            stdin: tokio::sync::Mutex::new(stdin),
            stdin_once,
        });
        if let Ok(mut h) = hubs().lock() {
            h.insert(id.to_string(), hub.clone());
        }
        hub
    }

    pub fn get(id: &str) -> Option<Arc<Hub>> {
        hubs().lock().ok()?.get(id).cloned()
    }

    /// Output read from the container; nobody attached is fine.
    pub fn publish(&self, stream: Stream, data: &[u8]) {
        if let Some(tx) = self.out.lock().ok().and_then(|o| o.clone()) {
            let _ = tx.send((stream, Bytes::copy_from_slice(data)));
        }
    }

    /// One output FIFO reached EOF; after the last, attached clients see the end.
    pub fn stream_closed(&self, id: &str) {
        let last = match self.open_streams.lock() {
            Ok(mut n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            Err(_) => true,
        };
        if last {
            if let Ok(mut o) = self.out.lock() {
                *o = None;
            }
            if let Ok(mut h) = hubs().lock() {
                if h.get(id).is_some_and(|x| std::ptr::eq(x.as_ref(), self)) {
                    h.remove(id);
                }
            }
        }
    }

    fn subscribe(&self) -> Option<broadcast::Receiver<(Stream, Bytes)>> {
        self.out.lock().ok()?.as_ref().map(|tx| tx.subscribe())
    }
}

/// One attached client on container `container_id`, until the container's output ends (the
/// container exited: Success) or the client leaves.
pub async fn session(k: Arc<Kubelet>, streams: Streams, container_id: String, opts: Options) {
    let Some(hub) = Hub::get(&container_id) else {
        let msg = "the container's stdio is not held by this kubelet (started before it restarted)".to_string();
        let _ = streams.output.send(Output::Exit(failure("InternalError", msg))).await;
        return;
    };
    let Some(mut rx) = hub.subscribe() else {
        let _ = streams.output.send(Output::Exit(success())).await;
        return;
    };
    let out = streams.output.clone();
    let pump = async move {
        loop {
            match rx.recv().await {
                Ok((Stream::Stdout, b)) if opts.stdout => {
                    if out.send(Output::Stdout(b)).await.is_err() {
                        return false;
                    }
                }
                Ok((Stream::Stderr, b)) if opts.stderr => {
                    if out.send(Output::Stderr(b)).await.is_err() {
                        return false;
                    }
                }
                Ok(_) => {}
                // A slow client misses output rather than holding the container up.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return true,
            }
        }
    };
    let hub2 = hub.clone();
    let cid = container_id.clone();
    let mut input = streams.input;
    let feed = async move {
        while let Some(i) = input.recv().await {
            match i {
                Input::Stdin(data) if opts.stdin => {
                    if let Some(w) = hub2.stdin.lock().await.as_mut() {
                        let _ = w.write_all(&data).await;
                    }
                }
                Input::Stdin(_) => {}
                Input::Resize { width, height } => {
                    // The init process's terminal: exec id "".
                    let _ = k.runtime.resize_exec(&cid, "", width.into(), height.into()).await;
                }
                Input::StdinEof if opts.stdin && hub2.stdin_once => {
                    if let Some(mut w) = hub2.stdin.lock().await.take() {
                        let _ = w.flush().await;
                        drop(w);
                        let _ = k.runtime.close_exec_stdin(&cid, "").await;
                    }
                }
                Input::StdinEof => {}
            }
        }
        std::future::pending::<()>().await
    };
    let ended = tokio::select! {
        e = pump => e,
        _ = feed => false,
    };
    if ended {
        let _ = streams.output.send(Output::Exit(success())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attached_clients_get_output_until_every_stream_closes() {
        let hub = Hub::register("c-test", 2, None, false);
        let mut rx = hub.subscribe().unwrap();
        hub.publish(Stream::Stdout, b"a");
        hub.publish(Stream::Stderr, b"b");
        assert_eq!(rx.recv().await.unwrap(), (Stream::Stdout, Bytes::from_static(b"a")));
        assert_eq!(rx.recv().await.unwrap(), (Stream::Stderr, Bytes::from_static(b"b")));
        hub.stream_closed("c-test");
        assert!(Hub::get("c-test").is_some());
        hub.stream_closed("c-test");
        assert!(Hub::get("c-test").is_none());
        assert!(matches!(rx.recv().await, Err(broadcast::error::RecvError::Closed)));
    }
}

//! Container logs in the CRI format (`<RFC3339Nano> <stream> <P|F> <line>`),
//! written by the kubelet from the task's stdout/stderr FIFOs and read back
//! for /containerLogs.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::AsyncWriteExt;

/// Lines longer than this are split into partial (P) records, as upstream does.
pub const MAX_LINE: usize = 16 * 1024;

/// Formats one CRI log record; `line` excludes the newline.
pub fn format_line(ts: DateTime<Utc>, stream: &str, partial: bool, line: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{} {} {} ",
        ts.to_rfc3339_opts(SecondsFormat::Nanos, true),
        stream,
        if partial { "P" } else { "F" }
    )
    .into_bytes();
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

/// One parsed CRI log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub timestamp: DateTime<Utc>,
    pub stream: String,
    pub partial: bool,
    pub content: Vec<u8>,
}

pub fn parse_line(line: &[u8]) -> Option<LogRecord> {
    let s = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = s.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let tag = parts.next()?;
    let content = parts.next().unwrap_or_default().to_vec();
    Some(LogRecord {
        timestamp: DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc),
        stream,
        partial: tag == b"P",
        content,
    })
}

/// Options of a /containerLogs request.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub tail_lines: Option<i64>,
    pub timestamps: bool,
    pub since: Option<DateTime<Utc>>,
    pub limit_bytes: Option<i64>,
}

/// Renders records as kubectl expects: content, optionally prefixed with the timestamp.
pub fn render(records: &[LogRecord], opts: &LogOptions) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut current: Vec<u8> = Vec::new();
    let mut current_ts = None;
    for r in records {
        if opts.since.is_some_and(|s| r.timestamp < s) {
            continue;
        }
        if current_ts.is_none() {
            current_ts = Some(r.timestamp);
        }
        current.extend_from_slice(&r.content);
        if !r.partial {
            let mut l = Vec::new();
            if opts.timestamps {
                l.extend_from_slice(
                    current_ts
                        .unwrap_or(r.timestamp)
                        .to_rfc3339_opts(SecondsFormat::Nanos, true)
                        .as_bytes(),
                );
                l.push(b' ');
            }
            l.append(&mut current);
            l.push(b'\n');
            lines.push(l);
            current_ts = None;
        }
    }
    // Output without a final newline (`echo -n`) ends in a partial record;
    // upstream still shows it.
    if let Some(ts) = current_ts {
        let mut l = Vec::new();
        if opts.timestamps {
            l.extend_from_slice(ts.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
            l.push(b' ');
        }
        l.append(&mut current);
        lines.push(l);
    }
    if let Some(n) = opts.tail_lines {
        let n = n.max(0) as usize;
        if lines.len() > n {
            lines.drain(..lines.len() - n);
        }
    }
    let mut out: Vec<u8> = lines.concat();
    if let Some(limit) = opts.limit_bytes {
        out.truncate(limit.max(0) as usize);
    }
    out
}

/// Reads and parses a whole log file; a missing file is empty.
pub async fn read_records(path: &Path) -> Vec<LogRecord> {
    match tokio::fs::read(path).await {
        Ok(b) => b
            .split_inclusive(|c| *c == b'\n')
            .filter_map(parse_line)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Where a container attempt's log lives: `<pod log dir>/<container>/<restartCount>.log`.
pub fn log_path(pod_log_dir: &Path, container: &str, restart_count: i32) -> PathBuf {
    pod_log_dir
        .join(container)
        .join(format!("{restart_count}.log"))
}

/// Copies one FIFO into the log file until the writer side closes, passing what it reads
/// on to attached clients as it arrives (a prompt without a newline included).
pub async fn copy_stream(
    fifo: tokio::net::unix::pipe::Receiver,
    stream: &'static str,
    file: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
    attach: Option<(std::sync::Arc<crate::container::attach::Hub>, String)>,
) {
    use crate::container::attach::Stream;
    let mut fifo = fifo;
    let kind = if stream == "stderr" { Stream::Stderr } else { Stream::Stdout };
    let mut buf = vec![0u8; MAX_LINE];
    // Bytes of a line not yet ended; written as a partial record once it reaches MAX_LINE.
    let mut line: Vec<u8> = Vec::new();
    loop {
        let n = match fifo.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some((hub, _)) = &attach {
            hub.publish(kind, &buf[..n]);
        }
        line.extend_from_slice(&buf[..n]);
        let mut records = Vec::new();
        while let Some(i) = line.iter().position(|b| *b == b'\n') {
            let rest = line.split_off(i + 1);
            let full = std::mem::replace(&mut line, rest);
            let content = &full[..full.len() - 1];
            let mut chunks = content.chunks(MAX_LINE).peekable();
            if content.is_empty() {
                records.extend(format_line(Utc::now(), stream, false, b""));
            }
            while let Some(c) = chunks.next() {
                records.extend(format_line(Utc::now(), stream, chunks.peek().is_some(), c));
            }
        }
        while line.len() >= MAX_LINE {
            let rest = line.split_off(MAX_LINE);
            records.extend(format_line(Utc::now(), stream, true, &line));
            line = rest;
        }
        if !records.is_empty() {
            let mut f = file.lock().await;
            if f.write_all(&records).await.is_err() {
                break;
            }
            let _ = f.flush().await;
        }
    }
    if !line.is_empty() {
        let mut f = file.lock().await;
        let _ = f.write_all(&format_line(Utc::now(), stream, true, &line)).await;
        let _ = f.flush().await;
    }
    if let Some((hub, id)) = &attach {
        hub.stream_closed(id);
    }
}

use tokio::io::AsyncReadExt;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        let ts = DateTime::parse_from_rfc3339("2016-10-06T00:17:09.669794202Z")
            .unwrap()
            .with_timezone(&Utc);
        let l = format_line(ts, "stdout", false, b"hello world");
        assert_eq!(l, b"2016-10-06T00:17:09.669794202Z stdout F hello world\n");
        let r = parse_line(&l).unwrap();
        assert_eq!(r.content, b"hello world");
        assert_eq!(r.stream, "stdout");
        assert!(!r.partial);
        assert_eq!(r.timestamp, ts);
    }

    #[test]
    fn render_joins_partials_and_tails() {
        let ts = Utc::now();
        let recs = vec![
            LogRecord {
                timestamp: ts,
                stream: "stdout".into(),
                partial: false,
                content: b"one".to_vec(),
            },
            LogRecord {
                timestamp: ts,
                stream: "stdout".into(),
                partial: true,
                content: b"tw".to_vec(),
            },
            LogRecord {
                timestamp: ts,
                stream: "stdout".into(),
                partial: false,
                content: b"o".to_vec(),
            },
            LogRecord {
                timestamp: ts,
                stream: "stderr".into(),
                partial: false,
                content: b"three".to_vec(),
            },
        ];
        assert_eq!(render(&recs, &LogOptions::default()), b"one\ntwo\nthree\n");
        assert_eq!(
            render(
                &recs,
                &LogOptions {
                    tail_lines: Some(2),
                    ..Default::default()
                }
            ),
            b"two\nthree\n"
        );
        assert_eq!(
            render(
                &recs,
                &LogOptions {
                    limit_bytes: Some(5),
                    ..Default::default()
                }
            ),
            b"one\nt"
        );
        let with_ts = render(
            &recs[..1],
            &LogOptions {
                timestamps: true,
                ..Default::default()
            },
        );
        assert!(with_ts.ends_with(b" one\n"));
        assert!(with_ts.starts_with(ts.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes()));
    }

    #[test]
    fn since_filters_old_records() {
        let old = Utc::now() - chrono::Duration::seconds(100);
        let new = Utc::now();
        let recs = vec![
            LogRecord {
                timestamp: old,
                stream: "stdout".into(),
                partial: false,
                content: b"old".to_vec(),
            },
            LogRecord {
                timestamp: new,
                stream: "stdout".into(),
                partial: false,
                content: b"new".to_vec(),
            },
        ];
        let out = render(
            &recs,
            &LogOptions {
                since: Some(new - chrono::Duration::seconds(10)),
                ..Default::default()
            },
        );
        assert_eq!(out, b"new\n");
    }

    #[test]
    fn trailing_partial_record_is_shown_without_newline() {
        let ts = Utc::now();
        let rec = |partial, c: &[u8]| LogRecord {
            timestamp: ts,
            stream: "stdout".into(),
            partial,
            content: c.to_vec(),
        };
        let recs = vec![rec(false, b"one"), rec(true, b"DONE")];
        assert_eq!(render(&recs, &LogOptions::default()), b"one\nDONE");
        let tail = render(
            &recs,
            &LogOptions {
                tail_lines: Some(1),
                ..Default::default()
            },
        );
        assert_eq!(tail, b"DONE");
    }

    #[test]
    fn since_time_and_since_seconds_cut_at_the_same_instant() {
        let t0 = Utc::now() - chrono::Duration::seconds(30);
        let rec = |dt: i64, c: &[u8]| LogRecord {
            timestamp: t0 + chrono::Duration::seconds(dt),
            stream: "stdout".into(),
            partial: false,
            content: c.to_vec(),
        };
        let recs = vec![rec(0, b"a"), rec(10, b"b"), rec(20, b"c")];
        // A record exactly at the cut-off is kept, as upstream's !Before.
        let since = |s| LogOptions {
            since: Some(t0 + chrono::Duration::seconds(s)),
            ..Default::default()
        };
        assert_eq!(render(&recs, &since(10)), b"b\nc\n");
        assert_eq!(render(&recs, &since(11)), b"c\n");
        assert_eq!(render(&recs, &since(21)), b"");
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert_eq!(parse_line(b"not a log line"), None);
    }
}

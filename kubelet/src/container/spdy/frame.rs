//! SPDY/3.1 frames (draft-mbelshe-httpbis-spdy-00 §2.2-2.6, plus 3.1's session-level
//! WINDOW_UPDATE) as a `tokio_util` codec. Every frame has an 8-byte head: a control
//! bit, then either version and type (control) or a stream id (data), 8 bits of flags
//! and a 24-bit length.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::headers::{Deflater, Headers, Inflater};

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;
const STREAM_ID_MASK: u32 = 0x7fff_ffff;
/// Lengths are 24 bits.
pub const MAX_FRAME_LEN: usize = 0x00ff_ffff;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (§2.6.3) that this server sends.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const CANCEL: u32 = 5;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream. Port-forward clients send one per stream, with `streamType`,
    /// `port` and `requestID` headers.
    SynStream { stream_id: u32, associated_to: u32, priority: u8, fin: bool, unidirectional: bool, headers: Headers },
    /// Accepts a stream the peer opened; the opener waits for it.
    SynReply { stream_id: u32, fin: bool, headers: Headers },
    /// Abnormal end of one stream, in either direction.
    RstStream { stream_id: u32, status: u32 },
    /// Session settings; nothing in port-forward depends on them, so they are read and dropped.
    Settings,
    /// Liveness probe; the receiver echoes the id.
    Ping { id: u32 },
    /// The sender will open no more streams.
    GoAway { last_good_stream_id: u32, status: u32 },
    /// More headers for an open stream.
    Headers { stream_id: u32, fin: bool, headers: Headers },
    /// Flow-control credit (stream 0: the whole session).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream payload; `fin` half-closes the sender's side.
    Data { stream_id: u32, fin: bool, data: Bytes },
    /// A control frame type this server does not know; the spec says to ignore it.
    Unknown { kind: u16 },
}

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("header block: {0}")]
    Headers(String),
    #[error("a frame of {0} bytes does not fit SPDY's 24-bit length")]
    TooLarge(usize),
}

/// One connection's codec. It owns both zlib streams, so it must see every header block
/// in order, including those of frames the session ignores.
#[derive(Default)]
pub struct Codec {
    inflate: Inflater,
    deflate: Deflater,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Decoder for Codec {
    type Item = Frame;
    type Error = SpdyError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if src.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([0, src[5], src[6], src[7]]) as usize;
        if src.len() < 8 + len {
            src.reserve(8 + len - src.len());
            return Ok(None);
        }
        let head = src.split_to(8);
        let body = src.split_to(len).freeze();
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data { stream_id: u32_at(&head, 0) & STREAM_ID_MASK, fin, data: body }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let need = |n: usize, what: &'static str| if body.len() < n { Err(SpdyError::Malformed(what)) } else { Ok(()) };
        let frame = match kind {
            SYN_STREAM => {
                need(10, "SYN_STREAM")?;
                Frame::SynStream {
                    stream_id: u32_at(&body, 0) & STREAM_ID_MASK,
                    associated_to: u32_at(&body, 4) & STREAM_ID_MASK,
                    priority: body[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.inflate.inflate(&body[10..])?,
                }
            }
            SYN_REPLY => {
                need(4, "SYN_REPLY")?;
                Frame::SynReply { stream_id: u32_at(&body, 0) & STREAM_ID_MASK, fin, headers: self.inflate.inflate(&body[4..])? }
            }
            HEADERS => {
                need(4, "HEADERS")?;
                Frame::Headers { stream_id: u32_at(&body, 0) & STREAM_ID_MASK, fin, headers: self.inflate.inflate(&body[4..])? }
            }
            RST_STREAM => {
                need(8, "RST_STREAM")?;
                Frame::RstStream { stream_id: u32_at(&body, 0) & STREAM_ID_MASK, status: u32_at(&body, 4) }
            }
            SETTINGS => Frame::Settings,
            PING => {
                need(4, "PING")?;
                Frame::Ping { id: u32_at(&body, 0) }
            }
            GOAWAY => {
                need(8, "GOAWAY")?;
                Frame::GoAway { last_good_stream_id: u32_at(&body, 0) & STREAM_ID_MASK, status: u32_at(&body, 4) }
            }
            WINDOW_UPDATE => {
                need(8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate { stream_id: u32_at(&body, 0) & STREAM_ID_MASK, delta: u32_at(&body, 4) & STREAM_ID_MASK }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }
}

fn put_len(dst: &mut BytesMut, flags: u8, len: usize) -> Result<(), SpdyError> {
    if len > MAX_FRAME_LEN {
        return Err(SpdyError::TooLarge(len));
    }
    dst.put_u8(flags);
    dst.put_uint(len as u64, 3);
    Ok(())
}

fn control_head(dst: &mut BytesMut, kind: u16, flags: u8, len: usize) -> Result<(), SpdyError> {
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(kind);
    put_len(dst, flags, len)
}

impl Encoder<Frame> for Codec {
    type Error = SpdyError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
        match frame {
            Frame::Data { stream_id, fin, data } => {
                dst.put_u32(stream_id & STREAM_ID_MASK);
                put_len(dst, fin_flag(fin), data.len())?;
                dst.extend_from_slice(&data);
            }
            Frame::SynStream { stream_id, associated_to, priority, fin, unidirectional, headers } => {
                let block = self.deflate.deflate(&headers)?;
                let flags = fin_flag(fin) | if unidirectional { FLAG_UNIDIRECTIONAL } else { 0 };
                control_head(dst, SYN_STREAM, flags, 10 + block.len())?;
                dst.put_u32(stream_id & STREAM_ID_MASK);
                dst.put_u32(associated_to & STREAM_ID_MASK);
                dst.put_u8((priority & 0x7) << 5);
                dst.put_u8(0);
                dst.extend_from_slice(&block);
            }
            Frame::SynReply { stream_id, fin, headers } => {
                let block = self.deflate.deflate(&headers)?;
                control_head(dst, SYN_REPLY, fin_flag(fin), 4 + block.len())?;
                dst.put_u32(stream_id & STREAM_ID_MASK);
                dst.extend_from_slice(&block);
            }
            Frame::Headers { stream_id, fin, headers } => {
                let block = self.deflate.deflate(&headers)?;
                control_head(dst, HEADERS, fin_flag(fin), 4 + block.len())?;
                dst.put_u32(stream_id & STREAM_ID_MASK);
                dst.extend_from_slice(&block);
            }
            Frame::RstStream { stream_id, status } => {
                control_head(dst, RST_STREAM, 0, 8)?;
                dst.put_u32(stream_id & STREAM_ID_MASK);
                dst.put_u32(status);
            }
            Frame::Settings => {
                control_head(dst, SETTINGS, 0, 4)?;
                dst.put_u32(0);
            }
            Frame::Ping { id } => {
                control_head(dst, PING, 0, 4)?;
                dst.put_u32(id);
            }
            Frame::GoAway { last_good_stream_id, status } => {
                control_head(dst, GOAWAY, 0, 8)?;
                dst.put_u32(last_good_stream_id & STREAM_ID_MASK);
                dst.put_u32(status);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                control_head(dst, WINDOW_UPDATE, 0, 8)?;
                dst.put_u32(stream_id & STREAM_ID_MASK);
                dst.put_u32(delta & STREAM_ID_MASK);
            }
            Frame::Unknown { kind } => control_head(dst, kind, 0, 0)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: Vec<Frame>) {
        // Two codecs, as the two peers: one's deflater feeds the other's inflater.
        let (mut tx, mut rx) = (Codec::default(), Codec::default());
        let mut wire = BytesMut::new();
        for f in &frames {
            tx.encode(f.clone(), &mut wire).unwrap();
        }
        let mut got = Vec::new();
        while let Some(f) = rx.decode(&mut wire).unwrap() {
            got.push(f);
        }
        assert!(wire.is_empty());
        assert_eq!(got, frames);
    }

    fn hdrs(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn every_frame_type_survives_encode_and_decode() {
        roundtrip(vec![
            Frame::SynStream { stream_id: 1, associated_to: 0, priority: 0, fin: false, unidirectional: false, headers: hdrs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]) },
            Frame::SynStream { stream_id: 3, associated_to: 0, priority: 7, fin: true, unidirectional: true, headers: hdrs(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]) },
            Frame::SynReply { stream_id: 1, fin: false, headers: vec![] },
            Frame::Headers { stream_id: 3, fin: true, headers: hdrs(&[("x", "y")]) },
            Frame::Data { stream_id: 3, fin: false, data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n") },
            Frame::Data { stream_id: 3, fin: true, data: Bytes::new() },
            Frame::RstStream { stream_id: 3, status: rst::CANCEL },
            Frame::Ping { id: 7 },
            Frame::WindowUpdate { stream_id: 0, delta: 65536 },
            Frame::GoAway { last_good_stream_id: 3, status: 0 },
            Frame::Settings,
        ]);
    }

    #[test]
    fn data_and_ping_frames_are_byte_exact() {
        let mut c = Codec::default();
        let mut wire = BytesMut::new();
        c.encode(Frame::Data { stream_id: 5, fin: true, data: Bytes::from_static(b"hi") }, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0, 0, 0, 5, 1, 0, 0, 2, b'h', b'i']);
        wire.clear();
        c.encode(Frame::Ping { id: 2 }, &mut wire).unwrap();
        assert_eq!(&wire[..], &[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
    }

    #[test]
    fn a_frame_split_across_reads_waits_for_the_rest() {
        let mut c = Codec::default();
        let mut wire = BytesMut::from(&[0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0][..]);
        assert_eq!(c.decode(&mut wire).unwrap(), None);
        wire.extend_from_slice(&[0, 9]);
        assert_eq!(c.decode(&mut wire).unwrap(), Some(Frame::Ping { id: 9 }));
    }

    #[test]
    fn unknown_control_types_are_skipped_and_other_versions_refused() {
        let mut c = Codec::default();
        let mut wire = BytesMut::from(&[0x80, 3, 0, 0x0a, 0, 0, 0, 2, 1, 2, 0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(c.decode(&mut wire).unwrap(), Some(Frame::Unknown { kind: 10 }));
        assert_eq!(c.decode(&mut wire).unwrap(), Some(Frame::Ping { id: 1 }));
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(c.decode(&mut v2), Err(SpdyError::Version(2))));
        let mut short = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 0][..]);
        assert!(matches!(c.decode(&mut short), Err(SpdyError::Malformed("RST_STREAM"))));
    }

    #[test]
    fn oversized_data_is_refused() {
        let mut c = Codec::default();
        let big = Bytes::from(vec![0u8; MAX_FRAME_LEN + 1]);
        assert!(matches!(c.encode(Frame::Data { stream_id: 1, fin: false, data: big }, &mut BytesMut::new()), Err(SpdyError::TooLarge(_))));
    }
}

//! SPDY/3 name/value header blocks (draft-mbelshe-httpbis-spdy-00 §2.6.10): a count and
//! length-prefixed pairs, compressed with one zlib stream per direction for the whole
//! connection, primed with the spec's dictionary and sync-flushed after every block.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame::SpdyError;

/// A decoded header block, names lowercased as SPDY/3 requires.
pub type Headers = Vec<(String, String)>;

/// The dictionary's length-prefixed part (§2.6.10.1), in the spec's order.
const DICTIONARY_WORDS: &[&str] = &[
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type", "date",
    "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since", "if-none-match",
    "if-range", "if-unmodified-since", "last-modified", "location", "max-forwards", "pragma",
    "proxy-authenticate", "proxy-authorization", "range", "referer", "retry-after", "server", "te",
    "trailer", "transfer-encoding", "upgrade", "user-agent", "vary", "via", "warning",
    "www-authenticate", "method", "get", "status", "200 OK", "version", "HTTP/1.1", "url",
    "public", "set-cookie", "keep-alive", "origin",
];

/// The dictionary's plain-text tail, which follows the words without length prefixes.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
    "text/plain,text/javascript,public",
    "private",
    "max-age=",
    "gzip,deflate,sdch",
    "charset=utf-8",
    "charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 zlib dictionary; both peers must prime their streams with exactly these bytes.
pub fn dictionary() -> &'static [u8] {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| {
        let mut d = Vec::new();
        for w in DICTIONARY_WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(DICTIONARY_TAIL.as_bytes());
        d
    })
}

/// The uncompressed block: a pair count, then each name and value with a 32-bit length.
/// Repeated names are joined with NUL into one value, as §2.6.10 asks.
pub fn encode_block(headers: &[(String, String)]) -> Vec<u8> {
    let mut joined: Vec<(String, String)> = Vec::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        match joined.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push('\0');
                v.push_str(value);
            }
            None => joined.push((name, value.clone())),
        }
    }
    let mut out = Vec::new();
    out.extend_from_slice(&(joined.len() as u32).to_be_bytes());
    for (name, value) in &joined {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value.as_bytes());
    }
    out
}

/// Parses an uncompressed block; NUL-separated values become repeated pairs.
pub fn decode_block(raw: &[u8]) -> Result<Headers, SpdyError> {
    let bad = |why: &str| SpdyError::Headers(why.to_string());
    let mut rest = raw;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if rest.len() < n {
            return Err(bad("header block is truncated"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let len = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = len(take(4)?);
    let mut headers = Vec::new();
    for _ in 0..count {
        let n = len(take(4)?);
        let name = String::from_utf8(take(n)?.to_vec()).map_err(|_| bad("header name is not UTF-8"))?;
        let n = len(take(4)?);
        let value = String::from_utf8(take(n)?.to_vec()).map_err(|_| bad("header value is not UTF-8"))?;
        for v in value.split('\0') {
            headers.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    Ok(headers)
}

/// The receiving direction's zlib stream.
pub struct Inflater {
    z: Decompress,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater { z: Decompress::new(true) }
    }
}

impl Inflater {
    /// Decompresses one header block and parses it.
    pub fn inflate(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let zerr = |e: String| SpdyError::Headers(format!("zlib: {e}"));
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(1024));
            }
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            match self.z.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                // The peer's stream names the dictionary in its zlib header (FDICT).
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(dictionary()).map_err(|e| zerr(e.to_string()))?;
                }
                Err(e) => return Err(zerr(e.to_string())),
            }
            let used = (self.z.total_in() - before_in) as usize;
            let made = self.z.total_out() - before_out;
            input = &input[used..];
            // Done once all input is in and zlib left room unused (nothing more pending).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if used == 0 && made == 0 && out.len() < out.capacity() {
                return Err(zerr("no progress inflating the header block".into()));
            }
        }
        decode_block(&out)
    }
}

/// The sending direction's zlib stream.
pub struct Deflater {
    z: Compress,
    primed: bool,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater { z: Compress::new(Compression::default(), true), primed: false }
    }
}

impl Deflater {
    /// Encodes and compresses one header block, sync-flushed so the peer can read it whole.
    pub fn deflate(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let zerr = |e: String| SpdyError::Headers(format!("zlib: {e}"));
        if !self.primed {
            self.z.set_dictionary(dictionary()).map_err(|e| zerr(e.to_string()))?;
            self.primed = true;
        }
        let raw = encode_block(headers);
        let mut input = &raw[..];
        let mut out = Vec::with_capacity(raw.len() + 64);
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            let before = self.z.total_in();
            let status = self.z.compress_vec(input, &mut out, FlushCompress::Sync).map_err(|e| zerr(e.to_string()))?;
            input = &input[(self.z.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() || status == Status::StreamEnd {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn dictionary_has_the_specs_shape() {
        let d = dictionary();
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head\0\0\0\x04post"));
        assert!(d.ends_with(b"charset=iso-8859-1,utf-,*,enq=0."));
        assert_eq!(d.len(), 1423, "the SPDY/3 dictionary is 1423 bytes");
    }

    #[test]
    fn repeated_names_travel_joined_with_nul() {
        let raw = encode_block(&h(&[("Accept", "a"), ("accept", "b"), ("port", "80")]));
        let mut expect = vec![0, 0, 0, 2, 0, 0, 0, 6];
        expect.extend_from_slice(b"accept");
        expect.extend_from_slice(&[0, 0, 0, 3]);
        expect.extend_from_slice(b"a\0b");
        expect.extend_from_slice(&[0, 0, 0, 4]);
        expect.extend_from_slice(b"port");
        expect.extend_from_slice(&[0, 0, 0, 2]);
        expect.extend_from_slice(b"80");
        assert_eq!(raw, expect);
        assert_eq!(decode_block(&raw).unwrap(), h(&[("accept", "a"), ("accept", "b"), ("port", "80")]));
    }

    #[test]
    fn truncated_blocks_are_errors_not_panics() {
        assert!(decode_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'x']).is_err());
        assert!(decode_block(&[0, 0]).is_err());
    }

    #[test]
    fn one_zlib_stream_carries_many_blocks_and_names_the_dictionary() {
        let mut d = Deflater::default();
        let mut i = Inflater::default();
        let first = d.deflate(&h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")])).unwrap();
        // zlib header with FDICT set, then the dictionary's Adler-32.
        assert_eq!(first[1] & 0x20, 0x20, "FDICT flag");
        let mut adler = flate2::Decompress::new(true);
        let dict_id = {
            let mut probe = Vec::with_capacity(16);
            adler.decompress_vec(&first, &mut probe, FlushDecompress::Sync).unwrap_err().needs_dictionary().unwrap()
        };
        assert_eq!(u32::from_be_bytes([first[2], first[3], first[4], first[5]]), dict_id);
        assert_eq!(i.inflate(&first).unwrap(), h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]));
        // The second block depends on the first's history: same streams on both sides.
        let second = d.deflate(&h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")])).unwrap();
        assert_eq!(i.inflate(&second).unwrap(), h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]));
        let empty = d.deflate(&[]).unwrap();
        assert_eq!(i.inflate(&empty).unwrap(), Headers::new());
        let big: Headers = (0..200).map(|n| (format!("x-{n}"), "v".repeat(100))).collect();
        let block = d.deflate(&big).unwrap();
        assert_eq!(i.inflate(&block).unwrap(), big);
    }
}

//! SPDY/3.1, the multiplexed-stream protocol client-go still speaks to kubelets for
//! port-forward, exec and attach: frames, and the zlib-compressed header blocks.

pub mod frame;
pub mod headers;

pub use frame::{Codec, Frame, SpdyError};
pub use headers::Headers;

/// The `Upgrade` token of a SPDY connection.
pub const SPDY_UPGRADE: &str = "SPDY/3.1";

//! Length-prefixed frames: a 4-byte big-endian length, then that many bytes of one encoded
//! protobuf message. Every stream carries exactly one frame each way.

use prost::Message;

/// Default cap on a frame's length (1 MiB).
pub const DEFAULT_MAX_FRAME: usize = 1 << 20;

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The announced length exceeds the cap; nothing of it was allocated.
    #[error("frame of {len} bytes exceeds the cap of {cap} bytes")]
    TooLarge {
        /// announced length
        len: u64,
        /// configured cap
        cap: usize,
    },
    /// The frame is shorter than its prefix announces.
    #[error("frame truncated: {got} of {want} bytes")]
    Truncated {
        /// bytes present
        got: usize,
        /// bytes announced
        want: usize,
    },
    /// The bytes are not the expected protobuf message.
    #[error("frame is not a valid message: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Encodes `msg` as one frame.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let len = msg.encoded_len();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_be_bytes());
    // Encoding into a Vec cannot run out of capacity.
    msg.encode(&mut out).unwrap_or_default();
    out
}

/// Checks a length prefix against the cap before anything is allocated.
pub fn check_len(prefix: [u8; 4], cap: usize) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(prefix) as u64;
    if len > cap as u64 {
        return Err(FrameError::TooLarge { len, cap });
    }
    Ok(len as usize)
}

/// Decodes one complete frame held in memory (prefix included).
pub fn decode<M: Message + Default>(bytes: &[u8], cap: usize) -> Result<M, FrameError> {
    if bytes.len() < 4 {
        return Err(FrameError::Truncated {
            got: bytes.len(),
            want: 4,
        });
    }
    let len = check_len([bytes[0], bytes[1], bytes[2], bytes[3]], cap)?;
    let rest = &bytes[4..];
    if rest.len() < len {
        return Err(FrameError::Truncated {
            got: rest.len(),
            want: len,
        });
    }
    Ok(M::decode(&rest[..len])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn round_trip() {
        let m = pb::Envelope {
            body: vec![1, 2, 3],
            signature: vec![9; 64],
            signer: vec![7; 32],
        };
        let f = encode(&m);
        assert_eq!(&f[..4], &(m.encoded_len() as u32).to_be_bytes());
        assert_eq!(decode::<pb::Envelope>(&f, DEFAULT_MAX_FRAME), Ok(m));
    }

    #[test]
    fn huge_prefix_is_refused_before_allocation() {
        assert_eq!(
            check_len([0xff, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME),
            Err(FrameError::TooLarge {
                len: u32::MAX as u64,
                cap: DEFAULT_MAX_FRAME
            })
        );
        assert_eq!(check_len([0, 0x10, 0, 0], DEFAULT_MAX_FRAME), Ok(1 << 20));
        assert!(check_len([0, 0x10, 0, 1], DEFAULT_MAX_FRAME).is_err());
    }

    #[test]
    fn truncated_frame_is_refused() {
        let f = encode(&pb::Envelope {
            body: vec![1; 10],
            ..Default::default()
        });
        assert!(matches!(
            decode::<pb::Envelope>(&f[..f.len() - 1], DEFAULT_MAX_FRAME),
            Err(FrameError::Truncated { .. })
        ));
    }
}

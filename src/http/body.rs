//! Bodies of HTTP/1.1 messages, read from the same framed buffer as their
//! heads and handed on as they arrive, whatever their framing: a length,
//! chunked, or until the connection closes.

use std::io;

use bytes::{Bytes, BytesMut};
use monoio::io::AsyncReadRent;
use monoio_codec::{Decoded, Decoder, FramedRead};
use monoio_http::h1::codec::decoder::{ChunkedBodyDecoder, DecodeError};

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Transfer-Encoding: chunked.
    Chunked,
    /// Until the connection closes (responses only).
    UntilClose,
}

/// Decodes a body from the framed read buffer, handing on bytes as they arrive.
pub struct BodyDecoder {
    framing: BodyFraming,
    remaining: u64,
    chunked: ChunkedBodyDecoder,
    done: bool,
}

impl BodyDecoder {
    /// A decoder for a body framed as `framing`.
    pub fn new(framing: BodyFraming) -> Self {
        let remaining = match framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        BodyDecoder {
            framing,
            remaining,
            chunked: ChunkedBodyDecoder::default(),
            done: framing == BodyFraming::Empty,
        }
    }

    /// True once the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The framing this decoder reads.
    pub fn framing(&self) -> BodyFraming {
        self.framing
    }
}

impl Decoder for BodyDecoder {
    type Item = Bytes;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Decoded<Bytes>, DecodeError> {
        if self.done {
            return Ok(Decoded::Some(Bytes::new()));
        }
        match self.framing {
            BodyFraming::Empty => Ok(Decoded::Some(Bytes::new())),
            BodyFraming::Length(_) => {
                if src.is_empty() {
                    return Ok(Decoded::Insufficient);
                }
                let n = (src.len() as u64).min(self.remaining) as usize;
                self.remaining -= n as u64;
                self.done = self.remaining == 0;
                Ok(Decoded::Some(src.split_to(n).freeze()))
            }
            BodyFraming::Chunked => match self.chunked.decode(src)? {
                Decoded::Some(Some(data)) => Ok(Decoded::Some(data)),
                Decoded::Some(None) => {
                    self.done = true;
                    Ok(Decoded::Some(Bytes::new()))
                }
                Decoded::Insufficient => Ok(Decoded::Insufficient),
                Decoded::InsufficientAtLeast(n) => Ok(Decoded::InsufficientAtLeast(n)),
            },
            BodyFraming::UntilClose => {
                if src.is_empty() {
                    return Ok(Decoded::Insufficient);
                }
                Ok(Decoded::Some(src.split().freeze()))
            }
        }
    }
}

/// Read the next piece of a body: `Ok(None)` once it is complete, an error if
/// the peer closed early.
pub async fn next_body_chunk<IO: AsyncReadRent, C>(
    framed: &mut FramedRead<IO, C>,
    body: &mut BodyDecoder,
) -> io::Result<Option<Bytes>> {
    loop {
        if body.is_done() {
            return Ok(None);
        }
        match framed.next_with(body).await {
            Some(Ok(data)) if data.is_empty() => continue,
            Some(Ok(data)) => return Ok(Some(data)),
            Some(Err(DecodeError::Io(e))) => return Err(e),
            Some(Err(e)) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            None if body.framing == BodyFraming::UntilClose => {
                body.done = true;
                return Ok(None);
            }
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the body was complete",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_decoder_hands_on_partial_bytes() {
        let mut dec = BodyDecoder::new(BodyFraming::Length(10));
        let mut buf = BytesMut::from(&b"abcd"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Some(Bytes::from("abcd"))
        );
        assert!(!dec.is_done());
        let mut buf = BytesMut::from(&b"efghijNEXT"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Some(Bytes::from("efghij"))
        );
        assert!(dec.is_done());
        assert_eq!(&buf[..], b"NEXT");

        let mut dec = BodyDecoder::new(BodyFraming::Chunked);
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nNEXT"[..]);
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Decoded::Some(Bytes::from("abc"))
        );
        assert_eq!(dec.decode(&mut buf).unwrap(), Decoded::Some(Bytes::new()));
        assert!(dec.is_done());
        assert_eq!(&buf[..], b"NEXT");
    }
}

//! `multipart/byteranges` answers (RFC 9110 section 14.6) assembled from slices.
//!
//! A request for several ranges gets one 206 whose parts each carry their own
//! Content-Type and Content-Range, separated by a boundary. Ranges are
//! resolved, sorted and coalesced first ([`crate::http::range::coalesce`]); each
//! part is streamed through the same slice pipeline as any range, so parts
//! share the cache and the single-flight fetches. The body's length is known
//! before the head is sent.

use std::rc::Rc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};

use crate::error::Result;
use crate::http::sink::{BodyLength, ResponseSink};
use crate::proxy::exchange::Exchange;
use crate::slice::job::SliceJob;
use crate::slice::plan::SlicePlan;
use crate::slice::stream::{self, Delivery, Pacing};

/// The framing of one multipart answer.
pub struct Multipart {
    boundary: String,
    heads: Vec<Bytes>,
    tail: Bytes,
}

impl Multipart {
    /// Framing for `parts` of an object of `len` bytes whose own type is `content_type`.
    pub fn new(parts: &[(u64, u64)], len: u64, content_type: Option<&HeaderValue>) -> Multipart {
        let boundary = format!("edgeslice-{:016x}", fastrand::u64(..));
        let type_line = content_type
            .and_then(|v| v.to_str().ok())
            .map(|t| format!("Content-Type: {t}\r\n"))
            .unwrap_or_default();
        let heads = parts
            .iter()
            .enumerate()
            .map(|(i, (a, b))| {
                let lead = if i == 0 { "" } else { "\r\n" };
                Bytes::from(format!(
                    "{lead}--{boundary}\r\n{type_line}Content-Range: bytes {a}-{b}/{len}\r\n\r\n"
                ))
            })
            .collect();
        let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
        Multipart {
            boundary,
            heads,
            tail,
        }
    }

    /// The body's length for `parts`.
    pub fn content_length(&self, parts: &[(u64, u64)]) -> u64 {
        let framing: usize = self.heads.iter().map(Bytes::len).sum::<usize>() + self.tail.len();
        framing as u64 + parts.iter().map(|(a, b)| b - a + 1).sum::<u64>()
    }

    /// The answer's Content-Type.
    pub fn content_type(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/byteranges; boundary={}", self.boundary))
            .expect("the boundary is ASCII")
    }
}

/// Send a 206 `multipart/byteranges` answer for `parts`, each part's bytes
/// streamed by a job like `job` planned on that part.
pub async fn send<S: ResponseSink>(
    job: &SliceJob,
    parts: &[(u64, u64)],
    mut headers: HeaderMap,
    how: Pacing<'_>,
    ex: &mut Exchange<'_, S>,
) -> Result<()> {
    let multipart = Multipart::new(
        parts,
        job.plan.object_len,
        headers.get(header::CONTENT_TYPE),
    );
    headers.insert(header::CONTENT_TYPE, multipart.content_type());
    let length = multipart.content_length(parts);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    headers.remove(header::CONTENT_RANGE);
    let length = BodyLength::Known(length);
    ex.send_head(StatusCode::PARTIAL_CONTENT, headers, length)
        .await?;
    if ex.head_only {
        return Ok(());
    }
    let mut delivered = Delivery::default();
    let mut result = Ok(());
    for ((a, b), head) in parts.iter().zip(&multipart.heads) {
        ex.write(head.clone()).await?;
        ex.body_bytes += head.len() as u64;
        let part = Rc::new(job.with_plan(
            SlicePlan::new(*a, *b, job.plan.object_len, job.plan.slice_size),
            job.counted.clone(),
        ));
        // The parts add up in one Delivery.
        result = stream::send_slices(part, how, None, ex.sink, &mut delivered).await;
        if result.is_err() {
            break;
        }
    }
    ex.record(&delivered);
    result?;
    ex.body_bytes += multipart.tail.len() as u64;
    ex.write(multipart.tail.clone()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_length_matches_what_is_written() {
        let parts = [(0, 1), (10, 15)];
        let ct = HeaderValue::from_static("video/mp4");
        let m = Multipart::new(&parts, 16, Some(&ct));
        let mut body = Vec::new();
        for ((a, b), head) in parts.iter().zip(&m.heads) {
            body.extend_from_slice(head);
            body.extend(std::iter::repeat_n(b'x', (b - a + 1) as usize));
        }
        body.extend_from_slice(&m.tail);
        assert_eq!(body.len() as u64, m.content_length(&parts));
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!(
            "--{}\r\nContent-Type: video/mp4\r\nContent-Range: bytes 0-1/16\r\n\r\nxx\r\n--",
            m.boundary
        )));
        assert!(text.ends_with(&format!("\r\n--{}--\r\n", m.boundary)));
        assert!(m
            .content_type()
            .to_str()
            .unwrap()
            .starts_with("multipart/byteranges; boundary=edgeslice-"));
    }
}

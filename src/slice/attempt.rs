//! One attempt at a slice from a peer or the origin, and the one loop that
//! retries failed ones.
//!
//! Every request for a slice, the probe of a cold object's included, is
//! sent by [`open`]: to the slice's home peer when that is another node and
//! up, else (or when the peer's answer does not pass) to the origin, each
//! origin request counted in the exchange's [`OriginAttempts`]. Every
//! failed attempt takes the same step in the one retry loop
//! ([`retrying`]): counted, logged, backed off as [`Retry`] says, or given up.

use std::rc::Rc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method};
use tracing::debug;

use crate::cluster::ring::home_key;
use crate::cluster::{ask_home, PeerId, Peers};
use crate::error::{Error, Result};
use crate::ops::metrics;
use crate::origin::pool::{OriginPool, OriginResponse};
use crate::origin::retry::Retry;

/// The requests one client's exchange sent to the origin (probe, slices,
/// retries, pass-through), counted wherever they are sent, for its log
/// line; clones count into the same total.
#[derive(Debug, Clone, Default)]
pub struct OriginAttempts(Rc<std::cell::Cell<u64>>);

impl OriginAttempts {
    /// One more request sent to the origin.
    pub fn count_one(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// How many were sent.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
}

/// Where a request for slice `index` of an object goes, and with what.
pub struct Asking<'a> {
    /// The worker's origin pool.
    pub pool: &'a Rc<OriginPool>,
    /// The cluster's peers and the object's key on the ring (the cache key
    /// its slices are stored under), when the slice's home peer is to be
    /// asked first; `None` to ask the origin only.
    pub home: Option<(&'a Peers, &'a str)>,
    /// The client's Host, sent to the peer so it picks the same route.
    pub host: Option<&'a HeaderValue>,
    /// Request target (path and query) forwarded unchanged.
    pub target: &'a str,
    /// The request's headers, the slice's Range included.
    pub headers: &'a HeaderMap,
    /// The Range the home peer is asked for instead of the one in
    /// `headers`: only the bytes the client needs of a slice this node
    /// will not store (the origin is always asked for the whole slice).
    pub peer_range: Option<HeaderValue>,
    /// The exchange's count of requests sent to the origin.
    pub attempts: &'a OriginAttempts,
}

/// Send the request for slice `index`: to its home peer when `asking` names
/// one that is another node and up, and its answer passes `check`; else
/// (a peer's answer of another version, or one that fails its check, is
/// settled by the origin, and the peer is not at fault) to the origin,
/// whose answer goes through `check` too (told whether a peer gave it).
/// Says which peer answered, if one did.
pub async fn open(
    asking: &Asking<'_>,
    index: u64,
    check: impl Fn(OriginResponse, bool) -> Result<OriginResponse>,
) -> Result<(OriginResponse, Option<PeerId>)> {
    if let Some((peers, object)) = asking.home {
        let key = home_key(object, index);
        let part_headers = asking.peer_range.as_ref().map(|range| {
            let mut headers = asking.headers.clone();
            headers.insert(http::header::RANGE, range.clone());
            headers
        });
        let headers = part_headers.as_ref().unwrap_or(asking.headers);
        let asked = ask_home(peers, &key, asking.target, headers, asking.host).await;
        if let Some((resp, peer)) = asked {
            match check(resp, true) {
                Ok(resp) => return Ok((resp, Some(peer))),
                Err(e) => {
                    debug!(index, peer = %peers.addr(peer), error = %e, "peer's slice refused: asking the origin")
                }
            }
        }
    }
    asking.attempts.count_one();
    let resp = asking
        .pool
        .request(&Method::GET, asking.target, asking.headers)
        .await?;
    Ok((check(resp, false)?, None))
}

/// How one attempt at a slice (or the probe) ended, for [`retrying`].
pub enum Attempt<T> {
    /// It succeeded: the result.
    Done(T),
    /// The origin answered this server error (5xx): retried while [`Retry`]
    /// allows, else this answer is the result (the probe relays it).
    ServerError(u16, T),
    /// It failed: retried while [`Retry`] allows, else this is the error.
    Failed(Error),
}

/// The one retry loop of a slice's fetch, the probe's included: run
/// `attempt` (given how many retries came before it) until it is done or
/// [`Retry`] (`max_retries`, the backoff by kind of failure) allows no
/// other. Each retry is counted (`edgeslice_origin_retries_total`), logged
/// with `what` ("slice", "probe") and the failure, and waits its backoff.
pub async fn retrying<T>(
    max_retries: u32,
    index: u64,
    what: &str,
    mut attempt: impl AsyncFnMut(u32) -> Attempt<T>,
) -> Result<T> {
    let mut retry = Retry::new(max_retries);
    loop {
        let delay: Duration = match attempt(retry.retries()).await {
            Attempt::Done(done) => return Ok(done),
            Attempt::ServerError(status, answer) => {
                let Some(delay) = retry.after_status(index, status) else {
                    return Ok(answer);
                };
                debug!(
                    index,
                    retry = retry.retries(),
                    delay_ms = delay.as_millis() as u64,
                    status,
                    "retrying {what}"
                );
                delay
            }
            Attempt::Failed(e) => {
                if matches!(e, Error::SliceMismatch { .. }) {
                    metrics::with(|m| m.origin_failures.inc(metrics::FailureReason::Mismatch));
                }
                let Some(delay) = retry.after(&e) else {
                    return Err(e);
                };
                debug!(index, retry = retry.retries(), delay_ms = delay.as_millis() as u64, error = %e, "retrying {what}");
                delay
            }
        };
        metrics::with(|m| m.origin_retries.inc());
        if !delay.is_zero() {
            monoio::time::sleep(delay).await;
        }
    }
}

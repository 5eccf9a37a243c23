//! What this cache did for an answer, as `Cache-Status` (RFC 9211) says it.
//!
//! The lookup and probe phases record how the object's stored state was had
//! ([`Served`]); the respond phase adds how many slices the origin gave and
//! [`cache_status`] writes this cache's member of the header.

use std::fmt::Write;

use http::HeaderValue;

use crate::cache::CacheResult;

use crate::http::headers::header_value;

/// How the object's stored state was had, for `Cache-Status` and `Age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// Not from the cache: the cache is off, this route does not slice the
    /// path, or this request may not use it.
    Bypass,
    /// A method other than GET/HEAD, passed through.
    Method,
    /// Fetched from the origin; `stored` when the cache keeps it.
    Miss {
        /// The cache kept the answer.
        stored: bool,
    },
    /// Fresh in the cache.
    Fresh,
    /// Stale, served while one background revalidation runs.
    StaleWhileRevalidate,
    /// Revalidated with the origin just now.
    Revalidated,
    /// Fresh, but revalidated just now because the request asked
    /// (`no-cache`, `max-age`, `min-fresh` with `cache.client_revalidate`).
    RequestRevalidated,
    /// Stale, served because the origin failed to revalidate it.
    StaleIfError,
    /// Stale, served because the request's `max-stale` accepts it.
    StaleAccepted,
    /// Stale: the origin's answer to its revalidation (a HEAD's, which did
    /// not vouch for it) relayed as it is.
    StaleRelayed,
}

impl Served {
    /// What the access log and the metrics call an answer of this kind that
    /// needed no slice (a 304 or 412 from the stored version).
    pub(crate) fn cache_result(self) -> Option<CacheResult> {
        match self {
            Served::Bypass | Served::Method => None,
            Served::Miss { .. } | Served::StaleRelayed => Some(CacheResult::Miss),
            _ => Some(CacheResult::Hit),
        }
    }
}

/// The slices of an answer that were not in this node's cache when its
/// head went out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fetch {
    /// Slices fetched (from the origin or another node).
    pub(crate) fetched: u64,
    /// Of those, slices asked of another node of the cluster (their home):
    /// relayed, not stored here.
    pub(crate) relayed: u64,
}

/// The `Cache-Status` member of this cache (RFC 9211) for an answer of
/// `served` with `fetch`'s slices not in the cache; `ttl` is the stored
/// object's freshness left (negative when stale), `fwd_status` the origin's
/// status when an origin answer is relayed. `stored` is said only when a
/// slice of the answer is stored on this node; slices relayed from another
/// node are counted in the extension parameter `peer=N`.
pub(crate) fn cache_status(
    node: &str,
    served: Served,
    Fetch { fetched, relayed }: Fetch,
    ttl: i64,
    fwd_status: Option<u16>,
) -> HeaderValue {
    let mut v = String::with_capacity(48);
    v.push_str(node);
    let stale_hit = served == Served::StaleWhileRevalidate;
    match served {
        Served::Bypass => v.push_str("; fwd=bypass"),
        Served::Method => v.push_str("; fwd=method"),
        Served::Miss { .. } => v.push_str("; fwd=miss"),
        Served::Revalidated => v.push_str("; fwd=stale; fwd-status=304"),
        Served::RequestRevalidated => v.push_str("; fwd=request; fwd-status=304"),
        Served::StaleIfError | Served::StaleRelayed => v.push_str("; fwd=stale"),
        Served::Fresh | Served::StaleWhileRevalidate | Served::StaleAccepted if fetched > 0 => {
            v.push_str("; fwd=partial")
        }
        Served::Fresh | Served::StaleWhileRevalidate | Served::StaleAccepted => v.push_str("; hit"),
    }
    if let Some(status) = fwd_status {
        let _ = write!(v, "; fwd-status={status}");
    }
    let stored_here = fetched > relayed;
    let stored = match served {
        Served::Miss { stored } => stored && (stored_here || fetched == 0),
        Served::Fresh | Served::StaleWhileRevalidate | Served::StaleAccepted => stored_here,
        _ => false,
    };
    if stored {
        v.push_str("; stored");
    }
    if relayed > 0 {
        let _ = write!(v, "; peer={relayed}");
    }
    if !matches!(
        served,
        Served::Bypass | Served::Method | Served::Miss { .. } | Served::StaleRelayed
    ) {
        let _ = write!(v, "; ttl={ttl}");
    }
    if served == Served::StaleIfError {
        v.push_str("; detail=stale-if-error");
    } else if stale_hit {
        v.push_str("; detail=stale-while-revalidate");
    } else if served == Served::StaleAccepted {
        v.push_str("; detail=max-stale");
    }
    header_value(&v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_status_values() {
        use Served::*;
        // (served, (slices fetched, of those relayed from a peer), ttl, fwd-status, header)
        type Case<'a> = (Served, (u64, u64), i64, Option<u16>, &'a str);
        let cases: &[Case] = &[
            (Fresh, (0, 0), 60, None, "n; hit; ttl=60"),
            (Fresh, (2, 0), 60, None, "n; fwd=partial; stored; ttl=60"),
            (Fresh, (1, 1), 60, None, "n; fwd=partial; peer=1; ttl=60"),
            (
                Miss { stored: true },
                (4, 0),
                0,
                None,
                "n; fwd=miss; stored",
            ),
            (
                Miss { stored: true },
                (4, 2),
                0,
                None,
                "n; fwd=miss; stored; peer=2",
            ),
            (
                Miss { stored: true },
                (2, 2),
                0,
                None,
                "n; fwd=miss; peer=2",
            ),
            (
                Miss { stored: false },
                (0, 0),
                0,
                Some(503),
                "n; fwd=miss; fwd-status=503",
            ),
            (
                Revalidated,
                (0, 0),
                60,
                None,
                "n; fwd=stale; fwd-status=304; ttl=60",
            ),
            (
                RequestRevalidated,
                (0, 0),
                60,
                None,
                "n; fwd=request; fwd-status=304; ttl=60",
            ),
            (
                StaleWhileRevalidate,
                (0, 0),
                -5,
                None,
                "n; hit; ttl=-5; detail=stale-while-revalidate",
            ),
            (
                StaleAccepted,
                (0, 0),
                -5,
                None,
                "n; hit; ttl=-5; detail=max-stale",
            ),
            (
                StaleIfError,
                (0, 0),
                -5,
                None,
                "n; fwd=stale; ttl=-5; detail=stale-if-error",
            ),
            (Bypass, (0, 0), 0, None, "n; fwd=bypass"),
            (
                Bypass,
                (0, 0),
                0,
                Some(404),
                "n; fwd=bypass; fwd-status=404",
            ),
            (Method, (0, 0), 0, None, "n; fwd=method"),
            (
                Miss { stored: true },
                (0, 0),
                0,
                Some(200),
                "n; fwd=miss; fwd-status=200; stored",
            ),
        ];
        for (served, (fetched, relayed), ttl, status, want) in cases {
            let fetch = Fetch {
                fetched: *fetched,
                relayed: *relayed,
            };
            let got = cache_status("n", *served, fetch, *ttl, *status);
            assert_eq!(got.to_str().unwrap(), *want, "{served:?}");
        }
    }
}

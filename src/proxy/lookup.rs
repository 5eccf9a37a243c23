//! Phase "lookup": what the cache holds for the object a request names.
//!
//! A fresh manifest is served with no origin request; a stale one is served
//! within stale-while-revalidate (revalidated in the background), else
//! revalidated once per object, then served or, within stale-if-error while
//! the origin fails, served stale. A cold object is probed once however many
//! clients ask at the same moment: the first leads the probe's flight, the
//! others wait for it and look again. The request's own `Cache-Control`
//! (RFC 9111 5.2.1) moves these lines: `max-stale` serves a stale object
//! as it is, `no-cache`, `max-age` and `min-fresh` revalidate a fresh one
//! (with `cache.client_revalidate`), and `only-if-cached` and `no-store`
//! take only an object stored whole that will do as it is (else a 504, or
//! the origin's answer, not stored). A HEAD revalidates with a HEAD, whose
//! answer, when it does not vouch for the stored version, is the client's.

use std::sync::Arc;

use crate::cache::flight::FlightLeader;
use crate::cache::freshness::forbids_stale;
use crate::cache::manifest::unix_now;
use crate::cache::{FlightEvent, Joined, ObjectKey, ObjectManifest, SliceCache};
use crate::origin::pool::OriginResponse;
use crate::proxy::cache_status::Served;
use crate::proxy::context::{ObjectRequest, Proxy};
use crate::proxy::respond::StoredObject;
use crate::proxy::revalidate::{revalidate, Answer, ChangedAnswer, Revalidation};
use crate::slice::job::CacheTarget;

/// What the lookup found.
// Built once per request and moved to the driver: a Box would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Lookup {
    /// A manifest to answer from (`ObjectRequest::served` says how it was had).
    Stored(StoredObject),
    /// Nothing stored: this request leads the object's probe.
    Cold(Cold),
    /// No cache for this request, or none usable now: probe without storing.
    Uncached,
    /// Nothing stored will do, and the request says `only-if-cached`: a 504.
    Unavailable,
    /// The origin's answer to the HEAD that revalidated a stale object
    /// without vouching for it: relayed as it is (the object stays stale).
    Relay(Box<OriginResponse>),
}

/// A cold object whose probe this request leads; others wait on `flight`.
pub(crate) struct Cold {
    pub(crate) cache: Arc<SliceCache>,
    pub(crate) base: ObjectKey,
    pub(crate) flight: FlightLeader,
    /// What this request's revalidation got instead of a 304: the probe's
    /// answer, when it asks for the same slice, so the origin is not asked
    /// twice for one request.
    /// Boxed: it is rare, and a hit's [`Lookup`] should not carry its size.
    pub(crate) changed: Option<Box<ChangedAnswer>>,
}

impl Proxy {
    /// Phase "lookup" (see the module doc); records in `ask` how the
    /// manifest was had, its age and its freshness left.
    pub(crate) async fn lookup(&self, ask: &mut ObjectRequest<'_>) -> Lookup {
        let cc = ask.cc;
        // A request that may not reach the origin (`only-if-cached`), or
        // whose answer may not be stored (`no-store`), is served only what
        // is stored whole and will do; else it gets this.
        let only_stored = cc.only_if_cached || cc.no_store;
        let not_stored = || match cc.only_if_cached {
            true => Lookup::Unavailable,
            false => Lookup::Uncached,
        };
        let Some(cache) = self.cache.clone() else {
            return not_stored();
        };
        let base = self.object_key(ask.req, ask.target);
        if ask.req.headers.contains_key(http::header::AUTHORIZATION) {
            // A request with credentials is answered by the origin, never
            // from the cache; its answer is stored (for requests without)
            // only when it says it may be shared (RFC 9111 3.5, checked as
            // it is stored). It leads the object's probe when nobody else
            // does, unless it may store nothing.
            if only_stored {
                return not_stored();
            }
            return match self.lead_probe(base) {
                Some(cold) => Lookup::Cold(cold),
                None => Lookup::Uncached,
            };
        }
        let mut revalidated = false;
        // Revalidated only because the client asked (RFC 9211 `fwd=request`).
        let mut by_request = false;
        let mut changed = None;
        // A few rounds: after waiting on another request's probe or
        // revalidation, the manifest it stored is looked up again.
        for _ in 0..3 {
            if let Some((key, decoded)) = cache.lookup(&base, &ask.forwarded).await {
                let m = &decoded.manifest;
                if m.whole_only && !all_slices_cached(&cache, &key, m) {
                    // Cut from a whole answer: a missing slice cannot be asked by range.
                    cache.forget(&key);
                    continue;
                }
                let now = unix_now();
                let fresh = now < m.expires_at;
                // The client's Cache-Control (RFC 9111 5.2.1): a fresh object
                // it wants validated first (`cache.client_revalidate`), a
                // stale one its `max-stale` takes (unless the answer forbids
                // serving it stale, 4.2.4).
                let validate = self.settings.client_revalidate
                    && fresh
                    && cc.wants_validation(m.age(), m.ttl());
                let stale_taken = !fresh
                    && cc.accepts_stale(now - m.expires_at, m.age())
                    && !forbids_stale(&decoded.headers);
                let usable = (fresh && !validate) || revalidated || stale_taken;
                if only_stored && !(usable && all_slices_cached(&cache, &key, m)) {
                    return not_stored();
                }
                // Validated by this request's own revalidation, it is
                // served even with no freshness left (RFC 9111 4.3.3).
                ask.served = if (fresh && !validate) || revalidated {
                    match (revalidated, by_request) {
                        (true, true) => Served::RequestRevalidated,
                        (true, false) => Served::Revalidated,
                        (false, _) => Served::Fresh,
                    }
                } else if stale_taken {
                    Served::StaleAccepted
                } else if !validate && now < m.expires_at.saturating_add(m.stale.while_revalidate) {
                    // stale-while-revalidate: serve now, revalidate in the background.
                    let revalidation = self.revalidate(ask, &cache, &key, m.clone());
                    monoio::spawn(async move { revalidation.await.0 });
                    Served::StaleWhileRevalidate
                } else {
                    let (outcome, answer) = self.revalidate(ask, &cache, &key, m.clone()).await;
                    match answer {
                        // Another version came whole: it is the probe's answer.
                        Some(Answer::Probe(answer)) => changed = Some(Box::new(answer)),
                        Some(Answer::Relay(resp)) => return Lookup::Relay(Box::new(resp)),
                        None => {}
                    }
                    match outcome {
                        // Still fresh, validated only because the client asked.
                        Revalidation::Failed if validate => Served::Fresh,
                        // stale-if-error: the origin is failing, the object is not too old.
                        Revalidation::Failed
                            if now < m.expires_at.saturating_add(m.stale.if_error) =>
                        {
                            Served::StaleIfError
                        }
                        // Too stale to serve with the origin failing: ask it once more, uncached.
                        Revalidation::Failed => return Lookup::Uncached,
                        Revalidation::Fresh => {
                            revalidated = true;
                            by_request = validate;
                            continue;
                        }
                        Revalidation::Changed
                        | Revalidation::Waited
                        | Revalidation::Unconfirmed => continue,
                    }
                };
                ask.age = m.age();
                ask.ttl = m.ttl();
                let target = CacheTarget {
                    cache: cache.clone(),
                    key,
                    generation: m.generation,
                };
                return Lookup::Stored(StoredObject {
                    version: decoded.version.clone(),
                    headers: decoded.headers.clone(),
                    slice_size: m.slice_size,
                    status: http::StatusCode::from_u16(m.status).unwrap_or(http::StatusCode::OK),
                    cache: Some(target),
                    probe: None,
                });
            }
            if only_stored {
                // Cold: not probed for this request, nor stored from it.
                return not_stored();
            }
            match cache.flights.join(&probe_flight(&base)) {
                Joined::Leader(flight) => {
                    // A probe that finished between our lookup and our join
                    // stored its manifest first: look once more.
                    if cache.lookup(&base, &ask.forwarded).await.is_some() {
                        drop(flight);
                        continue;
                    }
                    return Lookup::Cold(Cold {
                        cache,
                        base,
                        flight,
                        changed,
                    });
                }
                Joined::Follower(rx) => {
                    while let Ok(event) = rx.recv_async().await {
                        if !matches!(event, FlightEvent::Data(_)) {
                            break;
                        }
                    }
                }
            }
        }
        Lookup::Uncached
    }

    /// Leads the probe of `base` for an answer that is stored without a
    /// lookup first (a request with credentials, a POST's answer): `None`
    /// without a cache, or when another request leads it.
    pub(crate) fn lead_probe(&self, base: ObjectKey) -> Option<Cold> {
        let cache = self.cache.clone()?;
        match cache.flights.join(&probe_flight(&base)) {
            Joined::Leader(flight) => Some(Cold {
                cache,
                base,
                flight,
                changed: None,
            }),
            Joined::Follower(_) => None,
        }
    }

    /// Revalidate a stale manifest, once per object (see [`revalidate`]).
    fn revalidate(
        &self,
        ask: &ObjectRequest<'_>,
        cache: &Arc<SliceCache>,
        key: &ObjectKey,
        m: ObjectManifest,
    ) -> impl std::future::Future<Output = (Revalidation, Option<Answer>)> + 'static {
        revalidate(
            self.pool.clone(),
            cache.clone(),
            ask.target.to_string(),
            ask.req.method.clone(),
            (*ask.forwarded).clone(),
            key.clone(),
            m,
            self.settings.stale_defaults,
        )
    }
}

/// The flight a cold object's probe leads.
fn probe_flight(base: &ObjectKey) -> String {
    format!("p|{}", base.as_str())
}

/// Whether every slice of the object `m` describes is in the store.
fn all_slices_cached(cache: &SliceCache, key: &ObjectKey, m: &ObjectManifest) -> bool {
    (0..m.len.div_ceil(m.slice_size)).all(|k| cache.find_slice(key, m.generation, k).is_some())
}

//! Seeing into edgeslice: every metric declared in one place, the admin
//! listener (`/metrics`, `/health`, `/status`) and the access log line each
//! request ends with. Every layer counts into [`metrics`]; only the server
//! layer calls [`access`] and starts [`admin`].

pub mod access;
pub mod admin;
pub mod metrics;

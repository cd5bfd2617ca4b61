//! Admin HTTP listener: health, readiness, metrics and the admin API.
#![forbid(unsafe_code)]

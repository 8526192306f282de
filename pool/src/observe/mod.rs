//! What the pool shows about itself: live counters ([`stats`]), per-worker live figures
//! ([`live`]) shared with the other pool processes on the database ([`processes`]), best share difficulties ([`best`]), latency histograms ([`latency`]), and the HTTP [`api`] (Miningcore-shaped
//! JSON, Prometheus `/metrics`, the dashboard).

pub mod api;
pub mod best;
pub mod latency;
pub mod live;
pub mod notify;
pub mod processes;
pub mod stats;

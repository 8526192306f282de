//! Stratum v1 on the wire: the [`listener`] (accept loops, PROXY headers, TLS), who may
//! connect ([`admission`]), what the connection tasks share ([`shared`]), each
//! [`connection`] (socket lines to and from its [`session`], the sans-IO state machine).
//! A v2 front door will stand beside this one over the same `shares`, `chain` and `store`.

pub mod admission;
pub mod ban_sharing;
pub mod connection;
pub mod events;
pub mod lines;
pub mod listener;
pub mod proxy_protocol;
pub mod session;
pub mod shared;
pub mod tls;
pub mod v2;

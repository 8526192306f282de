//! What every protocol's sessions share: share [`validate`]ion, [`vardiff`], extranonce1
//! leases ([`extranonce`]), the junk rate limit ([`bucket`]), and the [`record`] of an
//! accepted share or a found block. Pure:
//! no sockets, no clock.

pub mod bucket;
pub mod extranonce;
pub mod profile;
pub mod record;
pub mod validate;
pub mod vardiff;

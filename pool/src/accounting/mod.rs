//! The back office, run by one pool process per database (the [`leader`]): the [`tracker`]
//! freezes PPLNS windows ([`pplns`], pure) and decides blocks by the node's chain,
//! [`payments`] pays balances through the node wallet. The SQL they need is in
//! `store::books`; what is here decides and calls the node.

pub mod coinbase_payouts;
pub mod coinbase_plan;
pub mod leader;
pub mod payments;
pub mod payout_admin;
pub mod pplns;
pub mod tracker;
pub mod withholding;

//! The chain side: the nodes' RPC ([`node`]) and ZMQ ([`zmq`]), the template [`feed`],
//! [`jobs`] made from [`template`]s, and block submission ([`blocks`]).

pub mod blocks;
pub mod feed;
pub mod jobs;
pub mod node;
pub mod template;
pub mod zmq;

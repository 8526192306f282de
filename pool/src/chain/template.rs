//! A template as the pool keeps it: the node's checked `getblocktemplate` answer with where
//! it came from. The feed makes them; jobs are made from them.

use std::time::Duration;

use protocol::template::CheckedTemplate;

/// A template and where it came from.
#[derive(Debug)]
pub struct Template {
    /// The decoded, checked template.
    pub checked: CheckedTemplate,
    /// The node that sent it.
    pub node: String,
    /// How long the `getblocktemplate` call took.
    pub fetch_time: Duration,
}

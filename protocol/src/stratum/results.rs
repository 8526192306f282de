//! Typed results of the replies whose shape matters: `mining.subscribe` and
//! `mining.configure`.

use serde_json::{Map, Value, json};

use crate::stratum::message::{MessageError, value_text};

/// The result of `mining.subscribe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscribeResult {
    /// (method, subscription id) pairs, e.g. ("mining.notify", "ae6812eb4cd7735a").
    pub subscriptions: Vec<(String, String)>,
    /// The session's extranonce1.
    pub extranonce1: Vec<u8>,
    /// Size of extranonce2 in bytes.
    pub extranonce2_size: usize,
}

/// The result of `mining.configure`, as far as this software uses it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfigureResult {
    /// The mask the server granted for version rolling; `None` if refused or not asked.
    pub version_rolling_mask: Option<u32>,
    /// Whether the server accepted `minimum-difficulty`; `None` if not asked.
    pub minimum_difficulty: Option<bool>,
}

impl SubscribeResult {
    /// Encodes as `[[[method, id], ...], extranonce1, extranonce2_size]`.
    pub fn to_value(&self) -> Value {
        let subs: Vec<Value> = self
            .subscriptions
            .iter()
            .map(|(m, id)| json!([m, id]))
            .collect();
        json!([subs, hex::encode(&self.extranonce1), self.extranonce2_size])
    }

    /// Decodes a subscribe result, including the flat `[method, id]` form some pools send.
    pub fn from_value(v: &Value) -> Result<SubscribeResult, MessageError> {
        let bad = |reason: &str| MessageError::BadResult {
            method: "mining.subscribe",
            reason: reason.to_string(),
        };
        let items = v.as_array().ok_or_else(|| bad("must be an array"))?;
        let pair = |p: &[Value]| {
            let text = |i: usize| p.get(i).map(value_text).unwrap_or_default();
            (text(0), text(1))
        };
        let subscriptions = match items.first() {
            Some(Value::Array(subs)) if subs.iter().all(Value::is_array) => subs
                .iter()
                .filter_map(Value::as_array)
                .map(|p| pair(p))
                .collect(),
            Some(Value::Array(flat)) => vec![pair(flat)],
            _ => return Err(bad("the first element must be the subscription list")),
        };
        let extranonce1 = items
            .get(1)
            .and_then(Value::as_str)
            .and_then(|s| hex::decode(s).ok())
            .ok_or_else(|| bad("extranonce1 must be a hex string"))?;
        let extranonce2_size = items
            .get(2)
            .and_then(Value::as_u64)
            .filter(|&n| n <= 255)
            .ok_or_else(|| bad("extranonce2 size must be an integer 0..=255"))?
            as usize;
        Ok(SubscribeResult {
            subscriptions,
            extranonce1,
            extranonce2_size,
        })
    }
}

impl ConfigureResult {
    /// Encodes as the BIP 310 result object.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        if let Some(mask) = self.version_rolling_mask {
            obj.insert("version-rolling".into(), Value::Bool(true));
            obj.insert("version-rolling.mask".into(), json!(format!("{mask:08x}")));
        }
        if let Some(accepted) = self.minimum_difficulty {
            obj.insert("minimum-difficulty".into(), Value::Bool(accepted));
        }
        Value::Object(obj)
    }

    /// Decodes the BIP 310 result object.
    pub fn from_value(v: &Value) -> Result<ConfigureResult, MessageError> {
        let bad = |reason: &str| MessageError::BadResult {
            method: "mining.configure",
            reason: reason.to_string(),
        };
        let obj = v.as_object().ok_or_else(|| bad("must be an object"))?;
        let version_rolling_mask = match obj.get("version-rolling") {
            Some(Value::Bool(true)) => Some(
                obj.get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .and_then(|m| u32::from_str_radix(m, 16).ok())
                    .ok_or_else(|| bad("version-rolling.mask must be hex"))?,
            ),
            _ => None,
        };
        let minimum_difficulty = obj.get("minimum-difficulty").and_then(Value::as_bool);
        Ok(ConfigureResult {
            version_rolling_mask,
            minimum_difficulty,
        })
    }
}

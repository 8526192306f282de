//! `/api/pools/{id}/miners/{address}/settings`: a miner's own settings, in Miningcore's
//! shape (`{"paymentThreshold": 0.05}`, in coins), changed by a message signed with the
//! address's key instead of Miningcore's "the request comes from an IP address that mined
//! recently" (which anyone behind the same NAT, or nobody behind a proxy, passes).
//!
//! `POST` takes `{"settings": {"paymentThreshold": 0.05}, "timestamp": 1764800000,
//! "signature": "<base64>"}` where the signature is the wallet's "sign message" of
//! [`protocol::signed_message::settings_message`]:
//! `sha256d-pool settings pool=<id> address=<address> paymentThreshold=0.05000000
//! timestamp=1764800000`. It binds the pool, the address, the value and the time: the
//! timestamp must be within ten minutes of the pool's clock and later than the last one
//! taken for the address, so a captured request cannot be replayed, here or on another
//! pool. Miningcore's `ipAddress` field is accepted and ignored.

use axum::Json;
use axum::extract::{Path, State};
use protocol::signed_message::{self, SignatureError};
use serde_json::{Value, json};
use tracing::info;

use crate::config::{Mode, PayoutMethod};
use crate::observe::api::miningcore::{check_id, store};
use crate::observe::api::time::{iso8601_us, now};
use crate::observe::api::{ApiError, ApiState};

/// How far a signed timestamp may be from the pool's clock, seconds.
pub const CLOCK_WINDOW_SECS: u64 = 600;

/// Satoshis per coin.
const COIN: u64 = 100_000_000;

type ApiResult = Result<Json<Value>, ApiError>;

/// `GET`: the threshold that applies to the address, where it comes from (`pool`: the
/// pool's threshold; `address`: set for this address, by its key or by the operator),
/// and the bounds.
pub async fn get(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
) -> ApiResult {
    check_id(&state, &id)?;
    let address = parsed(&state, &address)?;
    wallet_payouts(&state)?;
    let own = store(&state)?.miner_settings(&address.text).await?;
    Ok(Json(shown(&state, own.as_ref())))
}

/// `POST`: a signed change.
pub async fn post(
    State(state): State<ApiState>,
    Path((id, address)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> ApiResult {
    check_id(&state, &id)?;
    let address = parsed(&state, &address)?;
    wallet_payouts(&state)?;
    let store = store(&state)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("the body must be JSON: {e}")))?;
    let threshold = body
        .pointer("/settings/paymentThreshold")
        .ok_or_else(|| {
            ApiError::BadRequest("the body needs settings.paymentThreshold (in coins)".into())
        })
        .and_then(satoshis)?;
    let (least, most) = state.facts.miner_threshold;
    if !(least..=most).contains(&threshold) {
        return Err(ApiError::BadRequest(format!(
            "paymentThreshold must be {} to {} on this pool",
            coins(least),
            coins(most)
        )));
    }
    let timestamp = body
        .get("timestamp")
        .and_then(Value::as_u64)
        .ok_or_else(|| ApiError::BadRequest("the body needs timestamp (unix seconds)".into()))?;
    if now().abs_diff(timestamp) > CLOCK_WINDOW_SECS {
        return Err(ApiError::BadRequest(format!(
            "timestamp {timestamp} is more than {CLOCK_WINDOW_SECS} s from the pool's clock \
             ({}): sign a fresh message",
            now()
        )));
    }
    let signature = body
        .get("signature")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest("the body needs signature (base64)".into()))?;
    let message = signed_message::settings_message(
        &state.facts.id,
        &address.text,
        &format!("paymentThreshold={}", coins(threshold)),
        timestamp,
    );
    match signed_message::verify(&address, &message, signature) {
        Ok(true) => {}
        Ok(false) => {
            return Err(ApiError::Forbidden(format!(
                "the signature is not {}'s signature of: {message}",
                address.text
            )));
        }
        Err(e @ SignatureError::Malformed(_)) => return Err(ApiError::BadRequest(e.to_string())),
        Err(e @ SignatureError::Unsupported(_)) => {
            return Err(ApiError::BadRequest(format!(
                "{e}; or ask the operator to set it for you"
            )));
        }
    }
    let signed_at = i64::try_from(timestamp)
        .map_err(|_| ApiError::BadRequest("timestamp out of range".into()))?;
    if !store
        .set_payment_threshold(
            &address.text,
            i64::try_from(threshold).unwrap_or(i64::MAX),
            signed_at,
        )
        .await?
    {
        return Err(ApiError::Conflict(format!(
            "a change signed at {timestamp} or later was taken already: sign a new message \
             with the current time"
        )));
    }
    info!(address = %address.text, threshold, "miner set its payment threshold (signed)");
    let own = store.miner_settings(&address.text).await?;
    Ok(Json(shown(&state, own.as_ref())))
}

fn parsed(state: &ApiState, text: &str) -> Result<protocol::address::PayoutAddress, ApiError> {
    protocol::address::parse(text, state.facts.network)
        .map_err(|e| ApiError::BadRequest(format!("not an address on this pool's network: {e}")))
}

/// Thresholds apply to wallet payments; a SOLO or coinbase-payout pool has none to set.
fn wallet_payouts(state: &ApiState) -> Result<(), ApiError> {
    let f = &state.facts;
    if f.mode == Mode::Pplns && f.method == PayoutMethod::Wallet && f.payments {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "this pool sends no wallet payments, so there is no payment threshold to set".into(),
        ))
    }
}

fn shown(state: &ApiState, own: Option<&crate::store::settings::MinerSettings>) -> Value {
    let (least, most) = state.facts.miner_threshold;
    let pool = state.facts.threshold;
    let threshold = own.map_or(pool, |s| u64::try_from(s.payment_threshold).unwrap_or(pool));
    json!({
        "paymentThreshold": threshold as f64 / COIN as f64,
        "source": if own.is_some() { "address" } else { "pool" },
        "minimumPaymentThreshold": least as f64 / COIN as f64,
        "maximumPaymentThreshold": most as f64 / COIN as f64,
        "signedAt": own.map(|s| s.signed_at),
        "updated": own.map(|s| iso8601_us(s.updated_us)),
    })
}

/// Coins (a JSON number or a decimal string) to whole satoshis; anything finer, negative
/// or not a number is refused rather than rounded.
pub(crate) fn satoshis(value: &Value) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "paymentThreshold must be an amount in coins with at most 8 decimals, not {value}"
        ))
    };
    let text = match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(bad()),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    if whole.is_empty()
        || fraction.len() > 8
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let fraction: u64 = format!("{fraction:0<8}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(COIN)
        .and_then(|w| w.checked_add(fraction))
        .ok_or_else(bad)
}

/// Satoshis as coins with all 8 decimals, as the signed message writes them.
pub(crate) fn coins(sat: u64) -> String {
    format!("{}.{:08}", sat / COIN, sat % COIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_in_coins_are_exact_or_refused() {
        let ok = |v: Value| satoshis(&v).ok();
        assert_eq!(ok(json!(0.05)), Some(5_000_000));
        assert_eq!(ok(json!(1)), Some(100_000_000));
        assert_eq!(ok(json!("0.00000546")), Some(546));
        assert_eq!(
            ok(json!(0.1)),
            Some(10_000_000),
            "not 9,999,999 through a float"
        );
        assert_eq!(ok(json!(0.000000001)), None, "finer than a satoshi");
        assert_eq!(ok(json!(-1)), None);
        assert_eq!(ok(json!("1e-3")), None);
        assert_eq!(ok(json!(true)), None);
        assert_eq!(ok(json!(".5")), None);
        assert_eq!(coins(5_000_000), "0.05000000");
        assert_eq!(coins(123_456_789_012), "1234.56789012");
    }
}

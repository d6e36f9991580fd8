//! Bearer tokens from `POST /auth`: fetched on first use, renewed a margin
//! before the JWT's `exp`, and dropped when the API answers 401.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::Secret;

/// Lifetime assumed for a token whose `exp` cannot be read; Qualys
/// documents four hours.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(4 * 3600);

/// A token and when to stop using it.
#[derive(Debug, Clone)]
pub struct Token {
    pub value: Secret,
    /// Epoch ms after which the token is renewed before use.
    pub renew_at_ms: i64,
}

impl Token {
    /// Wraps a token from `/auth` received at `now_ms`, to be renewed
    /// `margin` before its `exp` claim.
    pub fn new(value: String, now_ms: i64, margin: Duration) -> Self {
        // Saturating arithmetic throughout, because `exp` comes from the
        // server and may be any 64-bit number.
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        let expires_ms = expiry_ms(&value).unwrap_or_else(|| {
            now_ms.saturating_add(i64::try_from(DEFAULT_TOKEN_LIFETIME.as_millis()).unwrap_or(0))
        });
        // A token that lives shorter than the margin is still used for half
        // its life rather than renewed on every call.
        let lifetime = expires_ms.saturating_sub(now_ms).max(0);
        let renew_at_ms = if lifetime > margin_ms.saturating_mul(2) {
            expires_ms - margin_ms
        } else {
            now_ms.saturating_add(lifetime / 2)
        };
        Self {
            value: Secret::new(value),
            renew_at_ms,
        }
    }

    pub fn is_fresh(&self, now_ms: i64) -> bool {
        now_ms < self.renew_at_ms
    }
}

/// Reads the `exp` claim (seconds) of a JWT without checking its signature:
/// the client only needs to know when to renew.
pub fn expiry_ms(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp.as_i64().or_else(|| exp.as_str()?.parse().ok())?;
    seconds.checked_mul(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE_TOKEN: &str = include_str!("../../../../fixtures/qualys-fim/auth/token.txt");

    #[test]
    fn reads_exp_of_fixture_token() {
        assert_eq!(expiry_ms(FIXTURE_TOKEN.trim()), Some(1_714_564_800_000));
    }

    #[test]
    fn renews_margin_before_exp() {
        let token = Token::new(
            FIXTURE_TOKEN.trim().to_owned(),
            1_714_550_400_000,
            Duration::from_secs(300),
        );
        assert_eq!(token.renew_at_ms, 1_714_564_800_000 - 300_000);
    }

    #[test]
    fn short_token_renews_at_half_life() {
        let token = Token::new(
            FIXTURE_TOKEN.trim().to_owned(),
            1_714_564_790_000,
            Duration::from_secs(300),
        );
        assert_eq!(token.renew_at_ms, 1_714_564_795_000);
    }

    /// Builds an unsigned JWT whose claims are `claims`.
    fn token_with_claims(claims: &str) -> String {
        format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims))
    }

    #[test]
    fn exp_far_in_the_past_renews_at_once() {
        let token = Token::new(
            token_with_claims(r#"{"exp":-9223372036854775}"#),
            1_714_550_400_000,
            Duration::from_secs(300),
        );
        assert_eq!(token.renew_at_ms, 1_714_550_400_000);
    }

    #[test]
    fn exp_far_in_the_future_renews_margin_before() {
        let token = Token::new(
            token_with_claims(r#"{"exp":9223372036854775}"#),
            -9_000_000_000_000_000_000,
            Duration::from_secs(300),
        );
        assert_eq!(token.renew_at_ms, 9_223_372_036_854_775_000 - 300_000);
    }

    #[test]
    fn huge_margin_does_not_overflow() {
        let token = Token::new(
            FIXTURE_TOKEN.trim().to_owned(),
            1_714_550_400_000,
            Duration::MAX,
        );
        assert_eq!(token.renew_at_ms, 1_714_550_400_000 + 14_400_000 / 2);
    }

    #[test]
    fn unreadable_token_gets_default_lifetime() {
        let token = Token::new("opaque".to_owned(), 0, Duration::from_secs(300));
        assert_eq!(token.renew_at_ms, 4 * 3_600_000 - 300_000);
    }
}

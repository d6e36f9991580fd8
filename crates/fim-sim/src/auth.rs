//! Tokens for `POST /auth`: HS256 JSON Web Tokens with real `iat` and `exp`
//! claims, signed with a per-process random key.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Issues and checks tokens.
pub struct TokenIssuer {
    key: [u8; 32],
    /// Serial number (`jti` claim) of the next token.
    next_serial: u64,
    /// Tokens with a lower serial are rejected: raised by the
    /// `expire-tokens` fault to end every token issued so far.
    first_valid_serial: u64,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("key", &"<redacted>")
            .field("next_serial", &self.next_serial)
            .field("first_valid_serial", &self.first_valid_serial)
            .finish()
    }
}

impl TokenIssuer {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            next_serial: 0,
            first_valid_serial: 0,
        }
    }

    /// Issues a token for `subject` valid from `now_ms` for `ttl_ms`.
    pub fn issue(&mut self, subject: &str, now_ms: i64, ttl_ms: i64) -> String {
        let serial = self.next_serial;
        self.next_serial += 1;
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = serde_json::json!({
            "sub": subject,
            "iss": "fim-sim",
            "iat": now_ms / 1000,
            "exp": (now_ms + ttl_ms) / 1000,
            "jti": serial.to_string(),
            // `exp` has whole seconds; the simulator checks the exact end so
            // short test lifetimes behave precisely.
            "exp_ms": now_ms + ttl_ms,
        });
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// Checks signature, expiry and revocation of a bearer token.
    pub fn verify(&self, token: &str, now_ms: i64) -> bool {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(format!("{header}.{payload}").as_bytes());
        if mac.verify_slice(&signature).is_err() {
            return false;
        }
        let Ok(claims) = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| ())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|_| ()))
        else {
            return false;
        };
        let serial = claims["jti"]
            .as_str()
            .and_then(|jti| jti.parse::<u64>().ok());
        let expires = claims["exp_ms"].as_i64().unwrap_or(0);
        serial.is_some_and(|serial| serial >= self.first_valid_serial) && now_ms < expires
    }

    /// Makes every token issued so far invalid.
    pub fn expire_all(&mut self) {
        self.first_valid_serial = self.next_serial;
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_token_verifies_until_exp() {
        let mut issuer = TokenIssuer::new([7; 32]);
        let token = issuer.issue("demo", 1_000_000, 60_000);
        assert!(issuer.verify(&token, 1_059_999));
        assert!(!issuer.verify(&token, 1_060_000));
    }

    #[test]
    fn tampered_token_fails() {
        let mut issuer = TokenIssuer::new([7; 32]);
        let token = issuer.issue("demo", 1_000_000, 60_000);
        let other = TokenIssuer::new([8; 32]).issue("demo", 1_000_000, 60_000);
        let forged = format!(
            "{}.{}",
            token.rsplit_once('.').unwrap().0,
            other.rsplit_once('.').unwrap().1
        );
        assert!(!issuer.verify(&forged, 1_000_001));
    }

    #[test]
    fn expire_all_ends_earlier_tokens() {
        let mut issuer = TokenIssuer::new([7; 32]);
        let token = issuer.issue("demo", 1_000_000, 60_000);
        issuer.expire_all();
        assert!(!issuer.verify(&token, 1_000_001));
        let fresh = issuer.issue("demo", 1_000_001, 60_000);
        assert!(issuer.verify(&fresh, 1_000_002));
    }
}

//! Synchronizer CSRF tokens, masked per response.
//!
//! The secret never appears twice the same way: each rendering draws a random pad and sends
//! `pad ‖ (pad XOR secret)`. Compressed pages therefore carry no repeated secret for a BREACH
//! attacker to probe for, and any masking of the secret verifies.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A masked token for `secret` (32 bytes), as put into forms and `hx-headers`.
pub fn mask(secret: &[u8]) -> String {
    let mut out = Vec::with_capacity(secret.len() * 2);
    let pad: [u8; 32] = rand::random();
    let pad = &pad[..secret.len().min(32)];
    out.extend_from_slice(pad);
    out.extend(pad.iter().zip(secret).map(|(p, s)| p ^ s));
    URL_SAFE_NO_PAD.encode(out)
}

/// Whether `presented` is a masking of `secret`; constant time in the secret.
pub fn verify(secret: &[u8], presented: &str) -> bool {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(presented.trim()) else {
        return false;
    };
    if secret.is_empty() || raw.len() != secret.len() * 2 {
        return false;
    }
    let (pad, masked) = raw.split_at(secret.len());
    let unmasked: Vec<u8> = pad.iter().zip(masked).map(|(p, m)| p ^ m).collect();
    unmasked.ct_eq(secret).into()
}

/// The CSRF secret for forms shown before signing in, derived from the pre-session cookie's
/// token (an attacker can neither read that HttpOnly cookie nor set one for this site).
pub fn pre_session_secret(cookie_token: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"natter pre-session csrf\0");
    h.update(cookie_token);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_masking_verifies_and_differs() {
        let secret: [u8; 32] = rand::random();
        let a = mask(&secret);
        let b = mask(&secret);
        assert_ne!(a, b);
        assert!(verify(&secret, &a));
        assert!(verify(&secret, &b));
    }

    #[test]
    fn wrong_or_garbled_tokens_fail() {
        let secret: [u8; 32] = rand::random();
        let other: [u8; 32] = rand::random();
        assert!(!verify(&secret, &mask(&other)));
        assert!(!verify(&secret, ""));
        assert!(!verify(&secret, "not base64!"));
        assert!(!verify(&secret, &URL_SAFE_NO_PAD.encode(secret)));
        let mut token = mask(&secret).into_bytes();
        let last = token.len() - 2;
        token[last] = if token[last] == b'A' { b'B' } else { b'A' };
        assert!(!verify(&secret, std::str::from_utf8(&token).unwrap()));
    }
}

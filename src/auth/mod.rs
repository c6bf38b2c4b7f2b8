//! Authentication: JWT verification and minting, and the tower layer that puts the caller into
//! each request.
//!
//! The algorithm is pinned by configuration; `exp`, `iss` and `aud` are required and `nbf` is
//! checked. A token whose `iat` lies in the future by more than the leeway is refused too: the
//! leeway absorbs clock skew between issuer and server, and a token issued later than that was
//! made by a clock that is wrong, or for a replay later on. HS256 uses one secret; RS256 and EdDSA choose a public key by the token's `kid`.

pub mod layer;
pub mod limits;
pub mod permissions;

use std::{collections::HashMap, fs, path::Path, sync::RwLock, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    config::{JwtAlgorithm, JwtSettings},
    domain::{Caller, Role},
};

pub use layer::AuthLayer;

/// Why a token was refused. Every variant is UNAUTHENTICATED to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing authorization: send `authorization: Bearer <token>`")]
    Missing,
    #[error("malformed authorization header: expected `Bearer <token>`")]
    NotBearer,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token key id {0:?} is not known")]
    UnknownKid(String),
    #[error("token has no key id (kid); one is required for {0:?}")]
    MissingKid(JwtAlgorithm),
    #[error("token role: {0}")]
    Role(String),
}

/// The claims gridcase issues and reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: String,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// Only the claims gridcase needs after validation; `iss`, `aud`, `exp`, `nbf` are checked by
/// `jsonwebtoken` against the raw claims.
#[derive(Debug, Deserialize)]
struct CallerClaims {
    sub: String,
    role: String,
    #[serde(default)]
    iat: Option<u64>,
    /// Read again only to know how long a verified token may be remembered (see
    /// [`Verifier::verify`]); a value that is not a plain integer is never remembered.
    #[serde(default)]
    exp: Option<serde_json::Value>,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
}

/// How many verified tokens a [`Verifier`] remembers (a few MiB at most): a city's handsets and
/// gateways each reuse one token for hours, so this many cover every caller of a busy hour.
const REMEMBERED_TOKENS: usize = 16_384;

/// A token that passed every check, and the window in which it keeps passing them.
#[derive(Debug)]
struct Verified {
    caller: Caller,
    /// `exp`: refused once `exp < now - leeway`, as jsonwebtoken does.
    exp: u64,
    /// The later of `nbf` and `iat`: refused while it is `> now + leeway`.
    not_before: u64,
}

/// A configuration problem with the keys; stops start-up.
#[derive(Debug, thiserror::Error)]
#[error("jwt keys: {0}")]
pub struct KeyError(String);

/// Checks bearer tokens against the configured algorithm, keys, issuer and audience.
pub struct Verifier {
    algorithm: JwtAlgorithm,
    /// HS256: the one key, under "". RS256 / EdDSA: by `kid`.
    keys: HashMap<String, DecodingKey>,
    validation: Validation,
    /// Tokens verified before, by their exact text: a signature, its claims and the role stay
    /// what they were for the same text, so only the clock is checked again. Failures are
    /// never remembered. foldhash: SipHash over a ~270-byte token was a tenth of the auth
    /// layer's cost per call; only verified tokens are ever inserted, so a caller cannot
    /// choose the keys.
    verified: RwLock<HashMap<Box<str>, Verified, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("algorithm", &self.algorithm)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn jwt_alg(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::HS256 => Algorithm::HS256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, KeyError> {
    fs::read(path).map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))
}

/// The HS256 secret: the configured one, or the one kept in `{data_dir}/jwt-secret`, made on
/// first use so that a new installation works without set-up. Operators set their own.
pub fn resolve_secret(
    settings: &JwtSettings,
    data_dir: &Path,
) -> Result<Option<SecretString>, KeyError> {
    if settings.algorithm != JwtAlgorithm::HS256 {
        return Ok(None);
    }
    if let Some(secret) = &settings.secret {
        return Ok(Some(secret.clone()));
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(Some(SecretString::from(existing)));
        }
        return Err(KeyError(format!(
            "{} holds too short a secret",
            path.display()
        )));
    }
    fs::create_dir_all(data_dir)
        .map_err(|e| KeyError(format!("cannot create {}: {e}", data_dir.display())))?;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, secret.as_bytes())
        .map_err(|e| KeyError(format!("cannot write {}: {e}", path.display())))?;
    tracing::warn!(
        path = %path.display(),
        "no GRIDCASE_JWT_SECRET configured: generated a development secret; set your own in production"
    );
    Ok(Some(SecretString::from(secret)))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

impl Verifier {
    /// `secret` is the resolved HS256 secret (see [`resolve_secret`]); unused for RS256/EdDSA.
    pub fn new(settings: &JwtSettings, secret: Option<&SecretString>) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        match settings.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = secret.ok_or_else(|| KeyError("HS256 needs a secret".into()))?;
                keys.insert(
                    String::new(),
                    DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                );
            }
            JwtAlgorithm::RS256 | JwtAlgorithm::EdDSA => {
                for (kid, path) in &settings.public_keys {
                    let pem = read_pem(path)?;
                    let key = match settings.algorithm {
                        JwtAlgorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                        _ => DecodingKey::from_ed_pem(&pem),
                    }
                    .map_err(|e| {
                        KeyError(format!("public key {kid:?} ({}): {e}", path.display()))
                    })?;
                    keys.insert(kid.clone(), key);
                }
            }
        }
        let mut validation = Validation::new(jwt_alg(settings.algorithm));
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = settings.leeway_secs;
        Ok(Verifier {
            algorithm: settings.algorithm,
            keys,
            validation,
            verified: RwLock::default(),
        })
    }

    /// The caller named by an `authorization` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::NotBearer)?;
        self.verify(token)
    }

    /// The caller a token names, if it passes every check now. A token verified before is
    /// answered from memory while its clock checks (`exp`, `nbf`, `iat`, with the same leeway)
    /// still pass, at the same second the full check would start refusing it; a remembered
    /// caller still goes through the member and permission checks of every call.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Ok(verified) = self.verified.read()
            && let Some(v) = verified.get(token)
            && self.in_window(v, now)
        {
            return Ok(v.caller.clone());
        }
        let (caller, window) = self.verify_fully(token)?;
        if let Some((exp, not_before)) = window {
            self.remember(
                token,
                Verified {
                    caller: caller.clone(),
                    exp,
                    not_before,
                },
                now,
            );
        }
        Ok(caller)
    }

    fn in_window(&self, v: &Verified, now: u64) -> bool {
        let leeway = self.validation.leeway;
        v.exp >= now.saturating_sub(leeway) && v.not_before <= now.saturating_add(leeway)
    }

    fn remember(&self, token: &str, verified: Verified, now: u64) {
        let Ok(mut remembered) = self.verified.write() else {
            return;
        };
        if remembered.len() >= REMEMBERED_TOKENS {
            remembered.retain(|_, v| self.in_window(v, now));
            if remembered.len() >= REMEMBERED_TOKENS {
                remembered.clear();
            }
        }
        remembered.insert(token.into(), verified);
    }

    /// Every check, from the signature on; with the window in which the token stays valid
    /// when its `exp` and `nbf` are plain integers.
    fn verify_fully(&self, token: &str) -> Result<(Caller, Option<(u64, u64)>), AuthError> {
        // Rejects `alg: none` and anything not parseable before any key is looked at.
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = match self.algorithm {
            JwtAlgorithm::HS256 => self.keys.get(""),
            alg => {
                let kid = header.kid.ok_or(AuthError::MissingKid(alg))?;
                Some(self.keys.get(&kid).ok_or(AuthError::UnknownKid(kid))?)
            }
        }
        .ok_or_else(|| AuthError::Invalid("no key".into()))?;
        let data = jsonwebtoken::decode::<CallerClaims>(token, key, &self.validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        if let Some(iat) = data.claims.iat
            && iat > jsonwebtoken::get_current_timestamp() + self.validation.leeway
        {
            return Err(AuthError::Invalid(format!(
                "issued in the future (iat {iat}), beyond the {} s leeway",
                self.validation.leeway
            )));
        }
        let role: Role = data
            .claims
            .role
            .parse()
            .map_err(|e: crate::domain::access::UnknownRole| AuthError::Role(e.to_string()))?;
        if data.claims.sub.is_empty() {
            return Err(AuthError::Invalid("empty sub".into()));
        }
        let exp = data.claims.exp.as_ref().and_then(serde_json::Value::as_u64);
        let nbf = match &data.claims.nbf {
            None => Some(0),
            Some(v) => v.as_u64(),
        };
        let window = exp
            .zip(nbf)
            .map(|(exp, nbf)| (exp, nbf.max(data.claims.iat.unwrap_or(0))));
        Ok((
            Caller {
                sub: data.claims.sub,
                role,
            },
            window,
        ))
    }
}

/// Signs tokens with the configured key, for `gridcase token` and tests.
pub struct Minter {
    header: Header,
    key: EncodingKey,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("alg", &self.header.alg)
            .finish_non_exhaustive()
    }
}

impl Minter {
    pub fn new(settings: &JwtSettings, secret: Option<&SecretString>) -> Result<Self, KeyError> {
        let mut header = Header::new(jwt_alg(settings.algorithm));
        let key = match settings.algorithm {
            JwtAlgorithm::HS256 => {
                let secret = secret.ok_or_else(|| KeyError("HS256 needs a secret".into()))?;
                EncodingKey::from_secret(secret.expose_secret().as_bytes())
            }
            alg => {
                let path = settings.signing_key.as_ref().ok_or_else(|| {
                    KeyError(format!(
                        "{alg:?} minting needs jwt.signing_key (a PEM private key)"
                    ))
                })?;
                let pem = read_pem(path)?;
                header.kid = settings.signing_kid.clone();
                if header.kid.is_none() {
                    return Err(KeyError("jwt.signing_kid is not set".into()));
                }
                match alg {
                    JwtAlgorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                    _ => EncodingKey::from_ed_pem(&pem),
                }
                .map_err(|e| KeyError(format!("signing key {}: {e}", path.display())))?
            }
        };
        Ok(Minter {
            header,
            key,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// A token for `sub` in `role`, valid from now for `ttl`.
    pub fn mint(&self, sub: &str, role: Role, ttl: Duration) -> Result<String, KeyError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: sub.to_owned(),
            role: role.as_str().to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            nbf: Some(now),
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|e| KeyError(format!("signing failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &str = "unit-test-secret-unit-test-secret-0123456789";

    fn verifier(leeway_secs: u64) -> Verifier {
        let settings = JwtSettings {
            leeway_secs,
            ..JwtSettings::default()
        };
        Verifier::new(&settings, Some(&SecretString::from(SECRET))).unwrap()
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn claims(exp: u64, nbf: u64) -> serde_json::Value {
        let d = JwtSettings::default();
        serde_json::json!({
            "sub": "gm-1", "role": "grid_member", "iss": d.issuer, "aud": d.audience,
            "exp": exp, "nbf": nbf, "iat": nbf,
        })
    }

    #[test]
    fn a_verified_token_is_remembered_and_answers_the_same() {
        let v = verifier(5);
        let now = jsonwebtoken::get_current_timestamp();
        let t = token(claims(now + 600, now));
        let first = v.verify(&t).unwrap();
        assert_eq!(v.verified.read().unwrap().len(), 1);
        assert_eq!(v.verify(&t).unwrap(), first);
        // A float `exp` passes jsonwebtoken's check but is never remembered.
        let mut c = claims(now + 600, now);
        c["exp"] = serde_json::json!((now + 600) as f64 + 0.5);
        let floaty = token(c);
        v.verify(&floaty).unwrap();
        assert_eq!(v.verified.read().unwrap().len(), 1);
        // Failures are not remembered.
        assert!(v.verify("garbage").is_err());
        assert!(v.verify(&token(claims(now - 600, now - 1200))).is_err());
        assert_eq!(v.verified.read().unwrap().len(), 1);
    }

    #[test]
    fn a_remembered_token_is_refused_at_the_second_the_full_check_would() {
        let v = verifier(5);
        let now = jsonwebtoken::get_current_timestamp();
        let remembered = |exp, not_before| Verified {
            caller: Caller {
                sub: "gm-1".into(),
                role: Role::GridMember,
            },
            exp,
            not_before,
        };
        // exp: valid while exp >= now - leeway (jsonwebtoken refuses exp < now - leeway).
        assert!(v.in_window(&remembered(now - 5, now - 100), now));
        assert!(!v.in_window(&remembered(now - 6, now - 100), now));
        // nbf / iat: valid while not_before <= now + leeway.
        assert!(v.in_window(&remembered(now + 100, now + 5), now));
        assert!(!v.in_window(&remembered(now + 100, now + 6), now));
        // A token the full check refuses as expired is refused from memory too: remember it
        // as if verified long ago, then ask.
        let expired = token(claims(now - 6, now - 100));
        assert!(v.verify(&expired).is_err(), "the full check refuses it");
        v.remember(&expired, remembered(now - 6, now - 100), now);
        assert!(v.verify(&expired).is_err(), "and so does memory");
        // The same at the boundary the full check accepts.
        let edge = token(claims(now - 5, now - 100));
        assert!(v.verify(&edge).is_ok());
    }

    #[test]
    fn memory_is_bounded() {
        let v = verifier(0);
        let now = jsonwebtoken::get_current_timestamp();
        for i in 0..REMEMBERED_TOKENS + 10 {
            let caller = Caller {
                sub: format!("gm-{i}"),
                role: Role::GridMember,
            };
            v.remember(
                &format!("t{i}"),
                Verified {
                    caller,
                    exp: now + 600,
                    not_before: now,
                },
                now,
            );
        }
        assert!(v.verified.read().unwrap().len() <= REMEMBERED_TOKENS);
    }
}

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

use std::{collections::HashMap, fs, path::Path, time::Duration};

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

    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
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
        Ok(Caller {
            sub: data.claims.sub,
            role,
        })
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

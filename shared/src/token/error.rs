//! Why a token was refused before its claims were looked at.

use super::strict_json::JsonError;

/// The part of a token a malformation is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Payload,
    Signature,
    /// A PASETO footer.
    Footer,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
            Part::Footer => "footer",
        }
    }
}

/// How a token is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformation {
    /// Not `header.payload.signature` (or not a PASETO `v4.public.` token).
    #[error("not a compact token")]
    Structure,
    #[error("the {} is not unpadded base64url", .0.name())]
    Base64(Part),
    #[error("the {} is not a JSON object: {}", .0.name(), .1)]
    Json(Part, JsonError),
    #[error("header member '{0}' is missing or has the wrong type")]
    HeaderMember(&'static str),
    #[error("claim '{0}' has the wrong type or an impossible value")]
    Claim(&'static str),
    #[error("the signature has the wrong length")]
    SignatureLength,
}

/// Why a token (JWT or PASETO) was refused before or at its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("malformed token: {0}")]
    Malformed(Malformation),
    /// `alg` is `none`, unknown, or not the algorithm of any key that could verify the token.
    #[error("the token's algorithm is not accepted")]
    AlgorithmNotAllowed,
    #[error("the token has a critical header extension we do not implement")]
    UnsupportedCritical,
    /// The token names a `kid` the provider has no key for (a refetch may find it).
    #[error("no key with the token's kid")]
    UnknownKid,
    #[error("the signature is not valid")]
    BadSignature,
}

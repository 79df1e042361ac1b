//! mTLS peer allow-lists (SPIFFE IDs), alone or combined with a token requirement.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "token_support/mod.rs"]
mod support;

use palisade::matcher::Request;
use palisade::token::alg::JwsAlgorithm;
use palisade::token::outcome::{AllowBasis, DenyReason, Outcome};
use palisade::token::peers::{check_trust_domain, PeerDenial, SpiffeIdError};
use palisade::token::{
    KeyStore, Peer, SpiffeId, TokenConfig, TokenLocation, TokenRequest, Verifier,
};
use serde_json::{json, Value};
use support::*;
use wasm_bindgen_test::wasm_bindgen_test;

const CHECKOUT: &str = "spiffe://cluster.local/ns/payments/sa/checkout";
const REPORTING: &str = "spiffe://cluster.local/ns/payments/sa/reporting";
const PARTNER: &str = "spiffe://partners.example/billing";
const STRANGER: &str = "spiffe://evil.example/ns/payments/sa/checkout";

fn signer() -> Signer {
    Signer::Ed(ed_key(21))
}

fn token(extra: Value) -> String {
    let mut claims =
        json!({"iss": "https://corp.example", "sub": "alice", "exp": NOW + 600, "scope": "read"});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    jwt(&signer(), JwsAlgorithm::EdDsa, "c", &claims)
}

/// One provider `corp`; `/peer` allows checkout alone, `/both` wants checkout and a token,
/// `/either` partners.example or cluster.local peers, or else a token; `/` needs a token.
fn cfg() -> TokenConfig {
    config(json!({
        "realm": "api",
        "providers": [{"name": "corp", "issuer": "https://corp.example",
                       "jwks": jwks(vec![signer().jwk("c", None)]),
                       "claim_to_headers": [{"claim": "sub", "header": "x-user"}]}],
        "rules": [
            {"match": {"path": {"prefix": "/peer"}},
             "peers": {"spiffe_ids": [CHECKOUT], "mode": "alone"}},
            {"match": {"path": {"prefix": "/both"}},
             "peers": {"spiffe_ids": [CHECKOUT], "mode": "and_token"}},
            {"match": {"path": {"prefix": "/either"}},
             "peers": {"trust_domains": ["partners.example", "cluster.local"], "mode": "or_token"}},
        ]
    }))
}

fn run(cfg: &TokenConfig, path: &str, peer: Peer<'_>, token: Option<&str>) -> Outcome {
    let headers = token.map(bearer).unwrap_or_default();
    let route = Request {
        authority: "api.example",
        path,
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    let requirement = cfg.select(&route).policy;
    let request = TokenRequest {
        method: "GET",
        path,
        headers: &headers,
    };
    let keys = KeyStore::new(cfg);
    Verifier::new(cfg, &keys).check_with_peer(requirement, &request, &peer, NOW, None)
}

fn sans(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn denial(o: &Outcome) -> DenyReason {
    o.denial().expect("denied").reason.clone()
}

#[wasm_bindgen_test(unsupported = test)]
fn alone_a_listed_peer_passes_without_a_token() {
    let cfg = cfg();
    let checkout = sans(&[CHECKOUT]);
    let o = run(
        &cfg,
        "/peer",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        None,
    );
    match &o {
        Outcome::Allow {
            basis: AllowBasis::Peer(id),
            tokens,
            ..
        } => {
            assert_eq!(id.as_str(), CHECKOUT);
            assert!(tokens.is_empty());
        }
        other => panic!("expected a peer allow, got {other:?}"),
    }
    assert_eq!(o.metric(), "allowed");
    assert!(
        o.upstream_headers(&cfg).is_empty(),
        "no claims without a token"
    );
    // A token is neither needed nor looked at: even a bad one does not matter.
    let o = run(
        &cfg,
        "/peer",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        Some("not.a.jwt"),
    );
    assert!(o.is_allowed());
}

#[wasm_bindgen_test(unsupported = test)]
fn alone_other_peers_and_no_certificate_get_403_forbidden() {
    let cfg = cfg();
    let cases: [(Vec<String>, &str); 5] = [
        (sans(&[REPORTING]), "peer"),
        (sans(&[STRANGER]), "peer"),
        // Not a SPIFFE ID, several URI SANs, none at all: not an X.509-SVID.
        (
            sans(&["https://cluster.local/ns/payments/sa/checkout"]),
            "peer",
        ),
        (sans(&[CHECKOUT, REPORTING]), "peer"),
        (sans(&[]), "peer"),
    ];
    for (uri_sans, label) in &cases {
        let o = run(
            &cfg,
            "/peer",
            Peer::Certificate { uri_sans },
            Some(&token(json!({}))),
        );
        assert_eq!(o.metric(), format!("denied_{label}"), "{uri_sans:?}");
        let r = o.response(&cfg).unwrap();
        assert_eq!((r.status, r.error), (403, "forbidden"), "{uri_sans:?}");
        assert!(
            r.headers.is_empty(),
            "no WWW-Authenticate: no challenge asks for a certificate"
        );
    }
    assert_eq!(
        denial(&run(
            &cfg,
            "/peer",
            Peer::Certificate {
                uri_sans: &sans(&[REPORTING])
            },
            None
        )),
        DenyReason::Peer(PeerDenial::NotAllowed)
    );
    assert_eq!(
        denial(&run(
            &cfg,
            "/peer",
            Peer::Certificate {
                uri_sans: &sans(&[])
            },
            None
        )),
        DenyReason::Peer(PeerDenial::NotSpiffe)
    );
    // A valid token does not replace the peer on an `alone` route.
    let o = run(&cfg, "/peer", Peer::NoCertificate, Some(&token(json!({}))));
    assert_eq!(denial(&o), DenyReason::Peer(PeerDenial::NoCertificate));
    assert_eq!(o.metric(), "denied_peer_missing");
    let r = o.response(&cfg).unwrap();
    assert_eq!((r.status, r.error), (403, "forbidden"));
    assert_eq!(r.message, "a client certificate is required");
}

#[wasm_bindgen_test(unsupported = test)]
fn spiffe_ids_are_compared_exactly() {
    let cfg = cfg();
    for near_miss in [
        "spiffe://cluster.local/ns/payments/sa/checkout/extra",
        "spiffe://cluster.local/ns/payments/sa/Checkout",
        "spiffe://CLUSTER.local/ns/payments/sa/checkout",
        "SPIFFE://cluster.local/ns/payments/sa/checkout",
        "spiffe://cluster.local/ns/payments/sa/checkout/",
        "spiffe://cluster.local/ns/payments/sa/checkout?x=1",
        "spiffe://cluster.local/ns/payments/sa/check%6Fut",
        "spiffe://cluster.local:443/ns/payments/sa/checkout",
        "spiffe://user@cluster.local/ns/payments/sa/checkout",
        "spiffe://cluster.local/ns/payments/sa/../sa/checkout",
        " spiffe://cluster.local/ns/payments/sa/checkout",
    ] {
        let uri_sans = sans(&[near_miss]);
        let o = run(
            &cfg,
            "/peer",
            Peer::Certificate {
                uri_sans: &uri_sans,
            },
            None,
        );
        assert!(!o.is_allowed(), "{near_miss}");
    }
    let long = format!("{CHECKOUT}/{}", "a".repeat(4096));
    let o = run(
        &cfg,
        "/peer",
        Peer::Certificate {
            uri_sans: &sans(&[&long]),
        },
        None,
    );
    assert_eq!(denial(&o), DenyReason::Peer(PeerDenial::NotSpiffe));
}

#[wasm_bindgen_test(unsupported = test)]
fn and_token_needs_both() {
    let cfg = cfg();
    let checkout = sans(&[CHECKOUT]);
    let t = token(json!({}));
    let o = run(
        &cfg,
        "/both",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        Some(&t),
    );
    assert_eq!(o.tokens().len(), 1, "{o:?}");
    assert!(matches!(
        o,
        Outcome::Allow {
            basis: AllowBasis::Verified,
            ..
        }
    ));
    assert_eq!(
        o.upstream_headers(&cfg),
        vec![("x-user".to_owned(), "alice".to_owned())]
    );
    assert_eq!(
        o.locations_to_strip(&cfg),
        vec![TokenLocation::Header("authorization".into())]
    );
    // The peer alone: the token's usual 401.
    let o = run(
        &cfg,
        "/both",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        None,
    );
    assert_eq!(denial(&o), DenyReason::Missing);
    let r = o.response(&cfg).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers,
        vec![("www-authenticate", "Bearer realm=\"api\"".to_owned())]
    );
    let o = run(
        &cfg,
        "/both",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        Some(&token(json!({"exp": NOW - 3600}))),
    );
    assert_eq!(denial(&o), DenyReason::Expired);
    // The token alone, or another peer: 403 for the peer, the token is not even checked.
    let o = run(&cfg, "/both", Peer::NoCertificate, Some(&t));
    assert_eq!(denial(&o), DenyReason::Peer(PeerDenial::NoCertificate));
    let o = run(
        &cfg,
        "/both",
        Peer::Certificate {
            uri_sans: &sans(&[REPORTING]),
        },
        Some(&t),
    );
    assert_eq!(denial(&o), DenyReason::Peer(PeerDenial::NotAllowed));
    assert_eq!(o.response(&cfg).unwrap().status, 403);
}

#[wasm_bindgen_test(unsupported = test)]
fn or_token_takes_either() {
    let cfg = cfg();
    let t = token(json!({}));
    for id in [CHECKOUT, REPORTING, PARTNER, "spiffe://partners.example"] {
        let uri_sans = sans(&[id]);
        let o = run(
            &cfg,
            "/either",
            Peer::Certificate {
                uri_sans: &uri_sans,
            },
            None,
        );
        assert!(
            matches!(&o, Outcome::Allow { basis: AllowBasis::Peer(p), .. } if p.as_str() == id),
            "{id}: {o:?}"
        );
    }
    // Trust domains match whole names, not suffixes.
    let o = run(
        &cfg,
        "/either",
        Peer::Certificate {
            uri_sans: &sans(&["spiffe://evil-partners.example/x"]),
        },
        None,
    );
    assert_eq!(denial(&o), DenyReason::Missing);
    let o = run(
        &cfg,
        "/either",
        Peer::Certificate {
            uri_sans: &sans(&["spiffe://sub.partners.example/x"]),
        },
        None,
    );
    assert_eq!(denial(&o), DenyReason::Missing);
    // No allowed peer: the token decides, and the answer is the token's.
    let o = run(&cfg, "/either", Peer::NoCertificate, Some(&t));
    assert!(
        matches!(
            o,
            Outcome::Allow {
                basis: AllowBasis::Verified,
                ..
            }
        ),
        "{o:?}"
    );
    let o = run(
        &cfg,
        "/either",
        Peer::Certificate {
            uri_sans: &sans(&[STRANGER]),
        },
        Some(&t),
    );
    assert!(o.is_allowed());
    let o = run(&cfg, "/either", Peer::NoCertificate, None);
    assert_eq!(o.response(&cfg).unwrap().status, 401);
    let o = run(
        &cfg,
        "/either",
        Peer::NoCertificate,
        Some(&token(json!({"iss": "https://evil.example"}))),
    );
    assert_eq!(denial(&o), DenyReason::Issuer);
}

#[wasm_bindgen_test(unsupported = test)]
fn routes_without_peers_never_look_at_the_peer() {
    let cfg = cfg();
    let checkout = sans(&[CHECKOUT]);
    let o = run(
        &cfg,
        "/",
        Peer::Certificate {
            uri_sans: &checkout,
        },
        None,
    );
    assert_eq!(
        denial(&o),
        DenyReason::Missing,
        "a listed peer is no token elsewhere"
    );
    assert!(run(&cfg, "/", Peer::NoCertificate, Some(&token(json!({})))).is_allowed());
    // `check` is `check_with_peer` without a certificate.
    let keys = KeyStore::new(&cfg);
    let headers: Vec<(String, String)> = Vec::new();
    let req = Request {
        authority: "a",
        path: "/peer",
        method: "GET",
        route_name: None,
        headers: &headers,
    };
    let requirement = cfg.select(&req).policy;
    let request = TokenRequest {
        method: "GET",
        path: "/peer",
        headers: &headers,
    };
    let o = Verifier::new(&cfg, &keys).check(requirement, &request, NOW, None);
    assert_eq!(denial(&o), DenyReason::Peer(PeerDenial::NoCertificate));
}

#[wasm_bindgen_test(unsupported = test)]
fn rules_inherit_peers_and_can_drop_them() {
    let cfg = config(json!({
        "providers": [{"name": "corp", "issuer": "https://corp.example", "jwks": jwks(vec![signer().jwk("c", None)])}],
        "peers": {"spiffe_ids": [CHECKOUT], "mode": "and_token"},
        "rules": [
            {"match": {"path": {"prefix": "/reports"}}, "peers": {"spiffe_ids": [REPORTING]}},
            {"match": {"path": {"prefix": "/health"}}, "peers": null, "requires": {"mode": "none"}},
            {"match": {"path": {"prefix": "/internal"}}, "peers": {"mode": "alone"}},
        ]
    }));
    let (checkout, reporting) = (sans(&[CHECKOUT]), sans(&[REPORTING]));
    let t = token(json!({}));
    assert!(run(
        &cfg,
        "/",
        Peer::Certificate {
            uri_sans: &checkout
        },
        Some(&t)
    )
    .is_allowed());
    assert!(!run(
        &cfg,
        "/",
        Peer::Certificate {
            uri_sans: &reporting
        },
        Some(&t)
    )
    .is_allowed());
    // Lists replace the default's; `mode` is inherited.
    assert!(run(
        &cfg,
        "/reports",
        Peer::Certificate {
            uri_sans: &reporting
        },
        Some(&t)
    )
    .is_allowed());
    assert!(!run(
        &cfg,
        "/reports",
        Peer::Certificate {
            uri_sans: &checkout
        },
        Some(&t)
    )
    .is_allowed());
    assert_eq!(
        denial(&run(
            &cfg,
            "/reports",
            Peer::Certificate {
                uri_sans: &reporting
            },
            None
        )),
        DenyReason::Missing
    );
    assert!(run(&cfg, "/health", Peer::NoCertificate, None).is_allowed());
    assert!(run(
        &cfg,
        "/internal",
        Peer::Certificate {
            uri_sans: &checkout
        },
        None
    )
    .is_allowed());
}

#[wasm_bindgen_test(unsupported = test)]
fn spiffe_id_parsing() {
    let id = SpiffeId::parse(CHECKOUT).unwrap();
    assert_eq!(id.trust_domain(), "cluster.local");
    assert_eq!(id.path(), "/ns/payments/sa/checkout");
    let td = SpiffeId::parse("spiffe://cluster.local").unwrap();
    assert_eq!((td.trust_domain(), td.path()), ("cluster.local", ""));
    assert!(SpiffeId::parse("spiffe://a_b-c.9/A.b_c-9/x").is_ok());
    let bad = [
        ("", SpiffeIdError::Scheme),
        ("https://cluster.local/x", SpiffeIdError::Scheme),
        ("Spiffe://cluster.local/x", SpiffeIdError::Scheme),
        ("spiffe://", SpiffeIdError::EmptyTrustDomain),
        ("spiffe:///x", SpiffeIdError::EmptyTrustDomain),
        (
            "spiffe://Cluster.local/x",
            SpiffeIdError::TrustDomainCharacter,
        ),
        (
            "spiffe://cluster.local:8443/x",
            SpiffeIdError::TrustDomainCharacter,
        ),
        (
            "spiffe://u@cluster.local/x",
            SpiffeIdError::TrustDomainCharacter,
        ),
        ("spiffe://cluster.local/", SpiffeIdError::EmptySegment),
        ("spiffe://cluster.local//x", SpiffeIdError::EmptySegment),
        ("spiffe://cluster.local/x/", SpiffeIdError::EmptySegment),
        ("spiffe://cluster.local/./x", SpiffeIdError::DotSegment),
        ("spiffe://cluster.local/x/..", SpiffeIdError::DotSegment),
        ("spiffe://cluster.local/x?y", SpiffeIdError::PathCharacter),
        ("spiffe://cluster.local/x#y", SpiffeIdError::PathCharacter),
        ("spiffe://cluster.local/%41", SpiffeIdError::PathCharacter),
        ("spiffe://cluster.local/é", SpiffeIdError::PathCharacter),
    ];
    for (s, want) in bad {
        assert_eq!(SpiffeId::parse(s).unwrap_err(), want, "{s}");
    }
    assert_eq!(
        SpiffeId::parse(&format!("spiffe://{}", "a".repeat(256))).unwrap_err(),
        SpiffeIdError::TrustDomainTooLong
    );
    assert_eq!(
        SpiffeId::parse(&format!("spiffe://a/{}", "b".repeat(2048))).unwrap_err(),
        SpiffeIdError::TooLong
    );
    assert!(check_trust_domain("cluster.local").is_ok());
    assert_eq!(
        check_trust_domain("spiffe://cluster.local"),
        Err(SpiffeIdError::TrustDomainCharacter)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn peer_config_mistakes_name_the_field() {
    let keys = jwks(vec![signer().jwk("c", None)]);
    let doc = |extra: Value| {
        let mut d = json!({"providers": [{"name": "a", "jwks": keys}]});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    let cases = [
        (json!({"peers": {"mode": "alone"}}), "peers: list at least one of 'spiffe_ids' or 'trust_domains'".to_owned()),
        (json!({"peers": {"spiffe_ids": [CHECKOUT]}}), "peers: missing field `mode`".to_owned()),
        (json!({"peers": {"spiffe_ids": [CHECKOUT], "mode": "either"}}), "peers.mode: unknown variant `either`, expected one of `alone`, `and_token`, `or_token`".to_owned()),
        (json!({"peers": {"spiffe_id": [CHECKOUT], "mode": "alone"}}), "peers.spiffe_id: unknown field `spiffe_id`, expected one of `spiffe_ids`, `trust_domains`, `mode`".to_owned()),
        (json!({"peers": {"spiffe_ids": [CHECKOUT, "spiffe://Cluster.local/x"], "mode": "alone"}}),
         "peers.spiffe_ids[1]: 'spiffe://Cluster.local/x' is not a SPIFFE ID: it has a trust domain with a character other than a-z, 0-9, '.', '-' or '_' (no upper case, port or user)".to_owned()),
        (json!({"peers": {"spiffe_ids": ["cluster.local/ns/a"], "mode": "alone"}}),
         "peers.spiffe_ids[0]: 'cluster.local/ns/a' is not a SPIFFE ID: it does not start with 'spiffe://'".to_owned()),
        (json!({"peers": {"trust_domains": ["spiffe://cluster.local"], "mode": "alone"}}),
         "peers.trust_domains[0]: 'spiffe://cluster.local' is not a trust domain name: it has a trust domain with a character other than a-z, 0-9, '.', '-' or '_' (no upper case, port or user) (write the name without 'spiffe://')".to_owned()),
        (json!({"peers": {"trust_domains": [""], "mode": "alone"}}),
         "peers.trust_domains[0]: '' is not a trust domain name: it has an empty trust domain".to_owned()),
        (json!({"rules": [{"match": {}, "peers": {"trust_domains": ["a"], "mode": "or_token"}, "allow_missing": true}]}),
         "rules[0].peers.mode: 'or_token' with allow_missing would let requests without a valid token or peer through; use 'alone' or 'and_token', or drop allow_missing".to_owned()),
        (json!({"peers": {"trust_domains": ["a"], "mode": "or_token"}, "requires": {"mode": "none"}}),
         "peers.mode: 'or_token' with requires.mode 'none' would let requests without a valid token or peer through; use 'alone' or 'and_token', or drop requires.mode 'none'".to_owned()),
        (json!({"peers": {"trust_domains": ["a"], "mode": "and_token"}, "requires": {"mode": "none"}}),
         "peers.mode: 'and_token' with requires.mode 'none' asks for no token: use 'alone'".to_owned()),
    ];
    for (extra, want) in cases {
        assert_eq!(config_error(doc(extra)), want);
    }
    // Fine: a peer and an optional token; the peer alone on a route that needs no token.
    config(doc(
        json!({"peers": {"trust_domains": ["a"], "mode": "and_token"}, "allow_missing": true}),
    ));
    config(doc(
        json!({"peers": {"trust_domains": ["a"], "mode": "alone"}, "requires": {"mode": "none"}}),
    ));
}

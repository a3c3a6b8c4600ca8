//! HTTP authentication as Infinispan's server does it: BASIC and DIGEST offered
//! together, 401 with both challenges when a request has no valid credentials.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

pub const REALM: &str = "ApplicationRealm";

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// The nonce this lab hands out (one per lab run).
    pub nonce: String,
}

impl Credentials {
    /// Whether the request's `Authorization` header carries these credentials.
    pub fn accepts(&self, headers: &HeaderMap, method: &Method, uri: &str) -> bool {
        let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if let Some(b64) = value.strip_prefix("Basic ") {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
                return false;
            };
            return String::from_utf8_lossy(&bytes)
                == format!("{}:{}", self.username, self.password);
        }
        if value.starts_with("Digest ") {
            let Ok(header) = digest_auth::AuthorizationHeader::parse(value) else {
                return false;
            };
            if header.username != self.username
                || header.nonce != self.nonce
                || header.realm != REALM
            {
                return false;
            }
            // The digest covers the URI the client signed; it must be this request's.
            if header.uri != uri {
                return false;
            }
            let context = digest_auth::AuthContext::new_with_method(
                &self.username,
                &self.password,
                &header.uri,
                Option::<&[u8]>::None,
                digest_auth::HttpMethod::from(method.as_str().to_string()),
            );
            let mut expected = header.clone();
            expected.digest(&context);
            return expected.response == header.response;
        }
        false
    }

    pub fn challenge(&self) -> Response {
        let mut resp = (
            StatusCode::UNAUTHORIZED,
            "ISPN006017: Unauthorized: credentials missing or wrong",
        )
            .into_response();
        let h = resp.headers_mut();
        h.append(
            "www-authenticate",
            HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")).expect("static"),
        );
        h.append(
            "www-authenticate",
            HeaderValue::from_str(&format!(
                "Digest realm=\"{REALM}\", domain=\"/\", nonce=\"{}\", opaque=\"00000000000000000000000000000000\", algorithm=MD5, qop=\"auth\"",
                self.nonce
            ))
            .expect("ascii"),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials {
            username: "admin".into(),
            password: "pw".into(),
            nonce: "abc123".into(),
        }
    }

    #[test]
    fn basic_is_checked() {
        let mut h = HeaderMap::new();
        let good = base64::engine::general_purpose::STANDARD.encode("admin:pw");
        h.insert("authorization", format!("Basic {good}").parse().unwrap());
        assert!(creds().accepts(&h, &Method::GET, "/x"));
        let bad = base64::engine::general_purpose::STANDARD.encode("admin:nope");
        h.insert("authorization", format!("Basic {bad}").parse().unwrap());
        assert!(!creds().accepts(&h, &Method::GET, "/x"));
        assert!(!creds().accepts(&HeaderMap::new(), &Method::GET, "/x"));
    }

    #[test]
    fn digest_is_checked_with_the_client_side_of_the_same_crate() {
        let c = creds();
        let challenge = c.challenge();
        let www: Vec<&str> = challenge
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap())
            .filter(|v| v.starts_with("Digest"))
            .collect();
        let mut prompt = digest_auth::parse(www[0]).unwrap();
        let ctx = digest_auth::AuthContext::new_with_method(
            "admin",
            "pw",
            "/rest/v2/caches",
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::POST,
        );
        let answer = prompt.respond(&ctx).unwrap().to_header_string();
        let mut h = HeaderMap::new();
        h.insert("authorization", answer.parse().unwrap());
        assert!(c.accepts(&h, &Method::POST, "/rest/v2/caches"));
        assert!(
            !c.accepts(&h, &Method::GET, "/rest/v2/caches"),
            "method is part of the digest"
        );
        let wrong = digest_auth::AuthContext::new_with_method(
            "admin",
            "bad",
            "/rest/v2/caches",
            Option::<&[u8]>::None,
            digest_auth::HttpMethod::POST,
        );
        let answer = prompt.respond(&wrong).unwrap().to_header_string();
        h.insert("authorization", answer.parse().unwrap());
        assert!(!c.accepts(&h, &Method::POST, "/rest/v2/caches"));
    }
}

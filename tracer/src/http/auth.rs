//! Basic authentication against bcrypt hashes, the way exporter-toolkit does it
//! (`web/handler.go`): an unknown user is checked against a fixed hash, so that timing does not
//! tell which users exist; the comparison itself is bcrypt's (constant time); successful checks
//! are cached, since one bcrypt costs 50-250 ms of CPU and Prometheus scrapes every few seconds.
//! Unlike the toolkit, the cache keys are digests (no password stays in memory) and failures
//! are not cached (a flood of wrong passwords cannot evict the good ones). One bcrypt runs at a
//! time, off the runtime thread: a flood costs one core at most and never stalls the endpoints.

use std::{
    collections::{BTreeMap, HashSet},
    sync::Mutex,
};

use base64::Engine as _;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// A bcrypt hash of "fakepassword" (the toolkit's), checked for unknown users.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Verified (user, hash, password) digests kept; past it the cache starts over.
const CACHE_SIZE: usize = 64;

type Digest = [u8; 32];

pub struct BasicAuth {
    users: BTreeMap<String, String>,
    verified: Mutex<HashSet<Digest>>,
    bcrypt: Semaphore,
}

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>) -> BasicAuth {
        BasicAuth {
            users,
            verified: Mutex::new(HashSet::new()),
            bcrypt: Semaphore::new(1),
        }
    }

    /// True when the `Authorization` header names a user with the right password.
    pub async fn check(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = authorization.and_then(credentials) else {
            return false;
        };
        let (hash, known) = match self.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let key = digest(&user, hash, &password);
        if known && self.is_verified(&key) {
            return true;
        }
        let Ok(_turn) = self.bcrypt.acquire().await else {
            return false;
        };
        // Another request may have verified the same credentials meanwhile.
        if known && self.is_verified(&key) {
            return true;
        }
        let hash = hash.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok
            && known
            && let Ok(mut v) = self.verified.lock()
        {
            if v.len() >= CACHE_SIZE {
                v.clear();
            }
            v.insert(key);
        }
        ok && known
    }

    fn is_verified(&self, key: &Digest) -> bool {
        self.verified.lock().map(|v| v.contains(key)).unwrap_or(false)
    }
}

/// `Basic base64(user:password)` -> (user, password).
fn credentials(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, encoded) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// SHA-256 of the three, each length-prefixed (no two triples share an encoding).
fn digest(user: &str, hash: &str, password: &str) -> Digest {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash, password] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {b}")).unwrap_or_else(|e| panic!("{e}"))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn only_the_right_password_of_a_known_user_passes() {
        let hash = bcrypt::hash("s3cret", 4).unwrap_or_else(|e| panic!("{e}"));
        let auth = BasicAuth::new(BTreeMap::from([("prometheus".to_owned(), hash)]));
        let rt = rt();
        let check = |h: Option<HeaderValue>| rt.block_on(auth.check(h.as_ref()));
        assert!(check(Some(header("prometheus", "s3cret"))));
        // Cached now, and still right.
        assert!(check(Some(header("prometheus", "s3cret"))));
        assert!(!check(Some(header("prometheus", "wrong"))));
        assert!(!check(Some(header("prometheus", ""))));
        assert!(
            !check(Some(header("Prometheus", "s3cret"))),
            "user names are case-sensitive"
        );
        // An unknown user whose password is the dummy hash's.
        assert!(!check(Some(header("nobody", "fakepassword"))));
        assert!(!check(None));
        for bad in [
            "Bearer abc",
            "Basic",
            "Basic !!!",
            "Basic Zm9v", /* "foo": no colon */
        ] {
            assert!(!check(Some(HeaderValue::from_static(bad))), "{bad}");
        }
        // The scheme is case-insensitive, as in Go's Request.BasicAuth.
        let b = base64::engine::general_purpose::STANDARD.encode("prometheus:s3cret");
        let lower = HeaderValue::from_str(&format!("basic {b}")).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(Some(lower)));
        // Only the success was cached.
        assert_eq!(auth.verified.lock().map(|v| v.len()).unwrap_or(0), 1);
    }

    #[test]
    fn a_password_with_a_colon_keeps_it() {
        let hash = bcrypt::hash("a:b", 4).unwrap_or_else(|e| panic!("{e}"));
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]));
        assert!(rt().block_on(auth.check(Some(&header("u", "a:b")))));
    }

    #[test]
    fn the_cache_does_not_outgrow_its_size() {
        let hash = bcrypt::hash("p", 4).unwrap_or_else(|e| panic!("{e}"));
        let auth = BasicAuth::new(BTreeMap::from([("u".to_owned(), hash)]));
        {
            let mut v = auth.verified.lock().unwrap_or_else(|e| panic!("{e}"));
            for i in 0..CACHE_SIZE {
                v.insert(digest("x", "y", &i.to_string()));
            }
        }
        assert!(rt().block_on(auth.check(Some(&header("u", "p")))));
        assert_eq!(auth.verified.lock().map(|v| v.len()).unwrap_or(0), 1);
        assert_ne!(digest("a", "bc", ""), digest("ab", "c", ""));
    }
}
